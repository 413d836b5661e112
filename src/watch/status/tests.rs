//! The model fed through its hooks and the scheduler's calls, read back through its views and
//! `/metrics`.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::apply::{Hooks, Outcome, StepResult};
use crate::diff::{Action, Change};
use crate::error::StepError;
use crate::model::ResourceKind;
use crate::state::StateStore;
use crate::transfer::imap::copy::Progress;
use crate::watch::schedule::RunEnd;

fn change(id: &str, account: &str) -> Change {
    Change {
        id: id.into(),
        addr: id.parse().ok(),
        action: Action::Sync,
        kind: ResourceKind::Mail,
        account: Some(account.into()),
        platform: None,
        reason: String::new(),
        before: None,
        after: None,
        instructions: None,
        depends_on: Vec::new(),
    }
}

#[test]
fn hooks_feed_the_counters_and_histograms_of_metrics() {
    let m = StatusModel::new("plan.yaml".into());
    let a = "a@example.com";
    m.unit_started(Some(a));
    m.step_started(&change("account/a@example.com/mail", a));
    m.folder_started(a, "INBOX", 10);
    m.copied(a, 4, 4000);
    m.copied(a, 6, 6000);
    m.step_finished(&StepResult {
        id: "account/a@example.com/mail".into(),
        account: Some(a.into()),
        action: Action::Sync,
        outcome: Outcome::Failed(StepError::new(
            ErrorKind::Network,
            "cannot connect to IMAP server h:1: refused",
        )),
    });
    m.api_call(
        "ovh",
        "GET /email/pro/{service}",
        Duration::from_millis(300),
        true,
    );
    m.api_call(
        "ovh",
        "GET /email/pro/{service}",
        Duration::from_secs(3),
        false,
    );
    let text = m.metrics_text();
    for line in [
        "mailshift_messages_copied_total{shard=\"0\",account=\"a@example.com\"} 10",
        "mailshift_bytes_copied_total{shard=\"0\",account=\"a@example.com\"} 10000",
        "mailshift_errors_total{shard=\"0\",resource=\"mail\",kind=\"network\"} 1",
        "mailshift_errors_total{shard=\"0\",resource=\"api:ovh\",kind=\"api-call\"} 1",
        "mailshift_step_runs_total{shard=\"0\",outcome=\"failed\"} 1",
        "mailshift_api_call_duration_seconds_bucket{shard=\"0\",api=\"ovh\",operation=\"GET /email/pro/{service}\",le=\"0.5\"} 1",
        "mailshift_api_call_duration_seconds_count{shard=\"0\",api=\"ovh\",operation=\"GET /email/pro/{service}\"} 2",
        "mailshift_step_duration_seconds_count{shard=\"0\",kind=\"mail\"} 1",
    ] {
        assert!(text.contains(line), "no {line} in\n{text}");
    }
    let s = m.snapshot();
    let acc = &s.accounts[0];
    assert_eq!((acc.copy.to_copy, acc.copy.copied), (10, 10));
    assert_eq!(acc.state, RunState::Running);
    let end = RunEnd::Failed {
        retry: crate::error::Retry::Backoff,
        after: None,
    };
    m.unit_finished(
        Some(a),
        &end,
        Some("x".into()),
        Some(ErrorKind::Network),
        1,
        None,
    );
    assert_eq!(m.snapshot().accounts[0].health, Health::Failing);
}

/// Every output of the model, pinned byte for byte: `/metrics` and `/api/status` are read
/// by scrapers and scripts. Values that depend on the clock are left out.
#[test]
fn metrics_and_snapshot_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(
        &path,
        "version: 1\nplatforms:\n  \
         old: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\n  \
         new: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\naccounts:\n  \
         - address: a@example.com\n    from: old\n    to: new\n    \
         rename_to: a.old@example.com\n    \
         source: {password: {env: X}}\n    destination: {password: {env: X}}\n  \
         - address: b@example.com\n    from: old\n    to: new\n    \
         source: {password: {env: X}}\n    destination: {password: {env: X}}\n",
    )
    .unwrap();
    let loaded = crate::plan::load_file(&path).unwrap();
    let store = StateStore::open(&loaded.state_path()).unwrap();
    let m = StatusModel::sharded(
        "plan.yaml".into(),
        mailshift_core::shard::Shard::new(2, 10).unwrap(),
    );
    m.plan_loaded(&loaded, 1, &store);
    let (a, b) = ("a@example.com", "b@example.com");
    m.unit_queued(Some(b));
    m.unit_started(Some(a));
    m.step_started(&change("account/a@example.com/mail", a));
    m.folder_started(a, "INBOX", 10);
    m.copied(a, 4, 4000);
    m.items_copied(a, "contacts", 3, 900);
    m.step_finished(&StepResult {
        id: "account/a@example.com/mail".into(),
        account: Some(a.into()),
        action: Action::Sync,
        outcome: Outcome::Failed(StepError::new(ErrorKind::Auth, "login refused")),
    });
    m.step_finished(&StepResult {
        id: "account/a@example.com/rename".into(),
        account: Some(a.into()),
        action: Action::Manual,
        outcome: Outcome::Manual("rename it by hand".into()),
    });
    m.api_call("ovh", "GET /me", Duration::from_millis(70), true);
    m.api_call("ovh", "POST /x", Duration::from_secs(40), false);
    m.plan_rejected("error: bad \"plan\"\n".into());
    m.unit_finished(
        Some(a),
        &RunEnd::Failed {
            retry: crate::error::Retry::AwaitChange,
            after: None,
        },
        Some("waiting".into()),
        Some(ErrorKind::Auth),
        2,
        Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
    );
    let text: String = m
        .metrics_text()
        .lines()
        .filter(|l| !l.starts_with("mailshift_step_duration_seconds_sum"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(text, PINNED_METRICS, "{text}");
    let mut snapshot = m.snapshot();
    snapshot.version = "VERSION".into();
    snapshot.plan.sha256 = Some("SHA256".into());
    snapshot.now = "NOW".into();
    snapshot.started_at = "STARTED".into();
    snapshot.plan.loaded_at = None;
    snapshot.plan.error_at = None;
    snapshot.accounts[0].last_run = None;
    let json = serde_json::to_string_pretty(&snapshot).unwrap();
    assert_eq!(json, PINNED_SNAPSHOT, "{json}");
}

const PINNED_METRICS: &str = include_str!("testdata/metrics.txt");
const PINNED_SNAPSHOT: &str = include_str!("testdata/status.json");

#[test]
fn contacts_events_and_tasks_recorded_in_the_state_show_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(
        &path,
        "version: 1\nplatforms:\n  old: {type: imap, imap: {host: 127.0.0.1}, dav: {url: \"http://127.0.0.1:1/\"}}\n  \
         new: {type: imap, imap: {host: 127.0.0.1}, dav: {url: \"http://127.0.0.1:2/\"}}\n\
         accounts:\n  - address: a@example.com\n    from: old\n    to: new\n    \
         content: [mail, contacts, calendars]\n    \
         source: {password: {env: X}}\n    destination: {password: {env: X}}\n",
    )
    .unwrap();
    let loaded = crate::plan::load_file(&path).unwrap();
    let store = StateStore::open(&loaded.state_path()).unwrap();
    let object = |n: u64| crate::state::DavObjectRecord {
        source_href: format!("/a/{n}"),
        source_etag: None,
        source_hash: "00".repeat(32),
        dest_href: format!("/b/{n}"),
        dest_etag: None,
        size: 1,
        sync_point: 1,
        created_sync_point: Some(1),
    };
    let coll = |objects| crate::state::DavCollectionRecord {
        dest_href: "/b/".into(),
        objects,
        ..Default::default()
    };
    store
        .record_dav(
            "account/a@example.com/contacts",
            "work",
            &[("uid:1".into(), object(1))],
            Some(&coll(3)),
        )
        .unwrap();
    store
        .record_dav(
            "account/a@example.com/contacts",
            "home",
            &[],
            Some(&coll(2)),
        )
        .unwrap();
    store
        .record_dav(
            "account/a@example.com/calendars",
            "cal",
            &[],
            Some(&coll(4)),
        )
        .unwrap();
    let m = StatusModel::new("plan.yaml".into());
    m.plan_loaded(&loaded, 1, &store);
    let snapshot = m.snapshot();
    let a = &snapshot.accounts[0];
    assert_eq!(
        a.items_migrated,
        [("calendars".to_string(), 4), ("contacts".to_string(), 5)].into()
    );
    let page = crate::watch::page::render(&snapshot);
    assert!(page.contains("4 events · 5 contacts"), "{page}");
}

#[test]
fn a_running_copy_has_an_eta_from_the_engine_estimate_and_its_rate_so_far() {
    let m = StatusModel::new("plan.yaml".into());
    let a = "a@example.com";
    m.unit_started(Some(a));
    m.account_started(a, 400);
    m.folder_started(a, "INBOX", 100);
    m.copied(a, 100, 100_000);
    // Read at a chosen time, not waited for: 100 messages in the first minute, 300 to go.
    let eta = |m: &StatusModel, after: u64| {
        let inner = m.lock();
        let info = &inner.accounts[a];
        let now = info.copy_started.unwrap() + after;
        super::views::account_view(a, info, &[], now)
            .copy
            .eta_seconds
    };
    assert_eq!(
        eta(&m, 60),
        Some(180),
        "the folders not started yet count too"
    );
    assert_eq!(eta(&m, 0), None, "no rate in the first second");
    m.lock().accounts.get_mut(a).unwrap().unit.run = RunState::Idle;
    assert_eq!(eta(&m, 60), None, "no ETA once the run ended");
}
