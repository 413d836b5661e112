//! Pausing and resuming a migration (issue 13 item 4, OVH Mail Migrator's project "pause"):
//! `paused: true` in the plan for `apply`, and in `mailshift watch` both a plan edit and
//! `POST /api/pause/ACCOUNT` stopping a copy under way at a checkpoint, the API's pause kept
//! across a restart, and a resume that finishes the copy with every message exactly once. Real
//! Dovecot servers on both sides; the destination behind a proxy that slows the copy down so
//! that the pause lands in the middle of it.

use serde_json::Value;

use crate::support::faultproxy::{Fault, FaultProxy};
use crate::watch_cmd::{
    ALICE_NEW, ALICE_OLD, BOB_NEW, BOB_OLD, CAROL_NEW, CAROL_OLD, TOKEN, Watch, account,
    assert_no_secret_in, copy_under_way, http_request, inbox_count, mailshift, migrated, plan,
    replace_plan, seed, servers,
};

/// `text` with `paused: true` on `login`'s account.
fn pause_account(text: &str, login: &str) -> String {
    let line = format!("- address: {login}@example.com\n");
    assert!(text.contains(&line), "{text}");
    text.replace(&line, &format!("{line}    paused: true\n"))
}

/// The account is held by a person (`by`: `plan` or `api`) and no run of it is in flight.
fn held(status: &Value, address: &str, by: &str) -> bool {
    account(status, address).is_some_and(|a| {
        a["health"] == "paused-by-user" && a["paused_by"] == by && a["state"] == "idle"
    })
}

fn post(w: &Watch, path: &str, headers: Option<&str>) -> (u16, String) {
    let (code, _, body) = http_request("POST", &w.addr, path, headers);
    (code, body)
}

const AUTH: &str = "Authorization: Bearer watch-T0ken-4bV8";

#[test]
fn apply_leaves_a_paused_account_alone_and_copies_the_others() {
    assert!(AUTH.ends_with(TOKEN));
    let (src, dst) = servers();
    seed(&src, "alice", ALICE_OLD, 0, 20, 2_000);
    seed(&src, "bob", BOB_OLD, 0, 10, 2_000);
    let dir = tempfile::tempdir().unwrap();
    // alice's alias waits for her copy (on a plain IMAP server: a manual step).
    let free = plan(src.port(), dst.port(), "", &["alice", "bob"]).replace(
        "- address: alice@example.com\n",
        "- address: alice@example.com\n    aliases: [al@example.com]\n",
    );
    replace_plan(dir.path(), &pause_account(&free, "alice"));

    let (code, out) = mailshift(dir.path(), &["plan", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("| account/alice@example.com/mail")
            && out.contains("paused by the plan (`paused: true` on the account)")
            && out.contains("> account/bob@example.com/mail")
            && out.contains("1 to sync, 1 manual, 1 paused."),
        "{out}"
    );
    let (_, json) = mailshift(dir.path(), &["plan", "plan.yaml", "--json"]);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["summary"]["paused"], 1, "{json}");
    let alice = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "account/alice@example.com/mail")
        .unwrap();
    assert_eq!(alice["action"], "paused", "{json}");

    // Not converged, not failed: the exit code of a pause (75), bob copied, alice untouched.
    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 75, "{out}");
    assert!(
        out.contains("paused  account/alice@example.com/mail: paused by the plan")
            && out.contains("done    account/bob@example.com/mail")
            && out.contains("waits for account/alice@example.com/mail, which is paused")
            && out.contains("0 failed")
            && !out.contains("daily"),
        "{out}"
    );
    assert_eq!(inbox_count(&dst, "bob", BOB_NEW), 10);
    assert_eq!(inbox_count(&dst, "alice", ALICE_NEW), 0);
    let (_, status) = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert!(status.contains("paused by the plan"), "{status}");

    // The whole plan paused: nothing moves, bob's new mail included.
    seed(&src, "bob", BOB_OLD, 10, 5, 2_000);
    replace_plan(dir.path(), &format!("paused: true\n{free}"));
    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 75, "{out}");
    assert!(out.contains("`paused: true` for the whole plan"), "{out}");
    assert_eq!(inbox_count(&dst, "bob", BOB_NEW), 10);

    // Lifted: both go on, and converge.
    replace_plan(dir.path(), &free);
    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(inbox_count(&dst, "alice", ALICE_NEW), 20);
    assert_eq!(inbox_count(&dst, "bob", BOB_NEW), 15);
    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
}

/// The API's pause: refused without the token or from another origin; with them, carol's copy
/// stops mid-way at a checkpoint while alice goes on; the pause outlives a restart and shows on
/// the page, in `/api/status`, `/metrics` and `status`; a resume finishes the copy, each
/// message exactly once.
#[test]
fn an_api_pause_stops_a_copy_mid_way_survives_a_restart_and_resume_finishes_it() {
    let (src, dst) = servers();
    let proxy = FaultProxy::to_port(dst.port());
    seed(&src, "alice", ALICE_OLD, 0, 20, 2_000);
    seed(&src, "carol", CAROL_OLD, 0, 600, 4_000);
    let dir = tempfile::tempdir().unwrap();
    let options = "sync_interval: 2s, connections_per_account: 1";
    replace_plan(
        dir.path(),
        &plan(src.port(), proxy.port(), options, &["alice", "carol"]),
    );
    proxy.set(Fault::Delay { per_chunk_ms: 30 });
    let token = ["--token", "{env: WATCH_TOKEN}"];
    let mut first = Watch::start(dir.path(), "watch-1.log", &token).with_token();
    first.wait_for("carol's copy under way", 30, |s| {
        account(s, "carol@example.com").is_some_and(copy_under_way)
    });

    let path = "/api/pause/carol@example.com";
    let (code, _) = post(&first, path, Some("Authorization: Bearer wrong"));
    assert_eq!(code, 401, "a wrong token is refused");
    let (code, body) = post(
        &first,
        path,
        Some(&format!("{AUTH}\r\nOrigin: http://evil.example")),
    );
    assert_eq!(code, 403, "another origin is refused: {body}");
    let (code, body) = post(&first, "/api/pause/nobody@example.com", Some(AUTH));
    assert_eq!(code, 404, "{body}");
    let (code, body) = post(&first, path, Some(AUTH));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Paused carol@example.com"), "{body}");

    let s = first.wait_for("carol paused", 30, |s| held(s, "carol@example.com", "api"));
    let note = account(&s, "carol@example.com").unwrap()["paused_by_note"].clone();
    assert!(
        note.as_str()
            .is_some_and(|n| n.starts_with("paused from the status page")),
        "{s:#}"
    );
    assert!(
        account(&s, "carol@example.com").unwrap()["paused_until"].is_null(),
        "not a daily limit's pause: {s:#}"
    );
    let stopped_at = inbox_count(&dst, "carol", CAROL_NEW);
    assert!(
        stopped_at > 0 && stopped_at < 600,
        "the pause stopped the copy mid-way: {stopped_at}"
    );
    first.wait_for("alice migrated meanwhile", 30, |s| {
        migrated(s, "alice@example.com", 20)
    });
    let (_, page) = first.get("/");
    assert!(
        page.contains("data-health=\"paused-by-user\"")
            && page.contains(">paused</span>")
            && page.contains("from the status page"),
        "{page}"
    );
    let (_, metrics) = first.get("/metrics");
    assert!(
        metrics.contains(
            "mailshift_account_paused_by_user{shard=\"0\",account=\"carol@example.com\"} 1"
        ),
        "{metrics}"
    );
    let (_, status) = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert!(status.contains("paused from the status page"), "{status}");

    // A restart keeps the pause: carol is not copied, whatever its sync interval says.
    first.signal("TERM");
    assert_eq!(first.wait_exit(30), 0, "{}", first.log_text());
    proxy.clear();
    let mut second = Watch::start(dir.path(), "watch-2.log", &token).with_token();
    second.wait_for("carol still paused after a run", 30, |s| {
        held(s, "carol@example.com", "api")
            && account(s, "carol@example.com").is_some_and(|a| !a["last_run"].is_null())
    });
    assert_eq!(inbox_count(&dst, "carol", CAROL_NEW), stopped_at);

    let resume = "/api/resume/carol@example.com";
    let (code, body) = post(&second, resume, Some(AUTH));
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&second, resume, Some(AUTH));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("is not paused"), "{body}");
    second.wait_for("carol's copy finished", 60, |s| {
        migrated(s, "carol@example.com", 600)
    });
    second.signal("TERM");
    assert_eq!(second.wait_exit(30), 0, "{}", second.log_text());

    assert_eq!(
        inbox_count(&dst, "carol", CAROL_NEW),
        600,
        "each exactly once"
    );
    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert_no_secret_in(&[first.log_text(), second.log_text()]);
}

/// A plan edit pauses carol's copy under way; the API cannot lift a pause the plan set; the
/// edit back resumes it and the copy ends with every message exactly once.
#[test]
fn a_plan_edit_pauses_a_copy_at_once_and_only_the_plan_resumes_it() {
    let (src, dst) = servers();
    let proxy = FaultProxy::to_port(dst.port());
    seed(&src, "carol", CAROL_OLD, 0, 600, 4_000);
    let dir = tempfile::tempdir().unwrap();
    let options = "sync_interval: 2s, connections_per_account: 1";
    let free = plan(src.port(), proxy.port(), options, &["carol"]);
    replace_plan(dir.path(), &free);
    proxy.set(Fault::Delay { per_chunk_ms: 30 });
    let mut w = Watch::start(dir.path(), "watch.log", &[]);
    w.wait_for("carol's copy under way", 30, |s| {
        account(s, "carol@example.com").is_some_and(copy_under_way)
    });
    replace_plan(dir.path(), &pause_account(&free, "carol"));
    w.wait_for("carol paused by the plan", 30, |s| {
        held(s, "carol@example.com", "plan")
    });
    let stopped_at = inbox_count(&dst, "carol", CAROL_NEW);
    assert!(stopped_at > 0 && stopped_at < 600, "{stopped_at}");
    assert!(
        w.log_text()
            .contains("stopping its copy at the next checkpoint"),
        "{}",
        w.log_text()
    );

    let (code, body) = post(&w, "/api/resume/carol@example.com", None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("paused in the plan") && body.contains("edit the plan"),
        "{body}"
    );

    proxy.clear();
    replace_plan(dir.path(), &free);
    w.wait_for("carol's copy finished", 60, |s| {
        migrated(s, "carol@example.com", 600)
    });
    w.signal("TERM");
    assert_eq!(w.wait_exit(30), 0, "{}", w.log_text());
    assert_eq!(
        inbox_count(&dst, "carol", CAROL_NEW),
        600,
        "each exactly once"
    );
    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
}
