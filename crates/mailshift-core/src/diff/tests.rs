//! The diff's table: every (desired, recorded) case and the change it must give.

use std::collections::BTreeMap;

use super::*;
use crate::model::{Execution, Resource, ResourceKind, Spec};
use crate::state::record::{ResourceRecord, Status};

fn res(id: &str, kind: ResourceKind, execution: Execution, fp: &str, identity: &str) -> Resource {
    Resource {
        addr: id.parse().expect("a resource address"),
        id: id.to_string(),
        kind,
        account: Some("a@x.org".into()),
        platform: "new".into(),
        summary: format!("want {fp}"),
        fingerprint: fp.into(),
        identity: identity.into(),
        execution,
        depends_on: vec![],
        // The diff never reads the spec.
        spec: Spec::Group {
            address: "t@x.org".into(),
            display_name: None,
            members: vec![],
            owners: vec![],
        },
    }
}

fn rec(kind: ResourceKind, status: Status, fp: &str, identity: &str) -> ResourceRecord {
    ResourceRecord {
        kind: kind.as_str().into(),
        account: Some("a@x.org".into()),
        fingerprint: fp.into(),
        identity: identity.into(),
        status,
        summary: format!("had {fp}"),
        outputs: BTreeMap::new(),
        last_error: (status == Status::Failed).then(|| "boom".to_string()),
        sync_point: Some(3),
        created_at: 0,
        updated_at: 0,
    }
}

const API: Execution = Execution::Api;
const SYNC: Execution = Execution::Sync { cut_over: false };
const CUT: Execution = Execution::Sync { cut_over: true };

fn manual() -> Execution {
    Execution::Manual {
        instructions: "Do it.".into(),
    }
}

/// (case, desired, recorded, expected action or None for no change, reason fragment)
#[allow(clippy::type_complexity)]
fn table() -> Vec<(
    &'static str,
    Option<Resource>,
    Option<ResourceRecord>,
    Option<Action>,
    &'static str,
)> {
    use ResourceKind as K;
    use Status as S;
    let alias = |e: Execution, fp: &str, idn: &str| {
        Some(res("account/a@x.org/alias/b@x.org", K::Alias, e, fp, idn))
    };
    let mail =
        |e: Execution, fp: &str, idn: &str| Some(res("account/a@x.org/mail", K::Mail, e, fp, idn));
    let rename = |fp: &str, idn: &str| Some(res("account/a@x.org/rename", K::Rename, API, fp, idn));
    vec![
        (
            "api, new",
            alias(API, "f1", "i1"),
            None,
            Some(Action::Create),
            "not yet applied",
        ),
        (
            "api, done, same",
            alias(API, "f1", "i1"),
            Some(rec(K::Alias, S::Done, "f1", "i1")),
            None,
            "",
        ),
        (
            "api, done, changed",
            alias(API, "f2", "i1"),
            Some(rec(K::Alias, S::Done, "f1", "i1")),
            Some(Action::Update),
            "changed in the plan",
        ),
        (
            "api, done, identity changed",
            rename("f2", "i2"),
            Some(rec(K::Rename, S::Done, "f1", "i1")),
            Some(Action::Conflict),
            "cannot be changed in place",
        ),
        (
            "api, failed",
            alias(API, "f1", "i1"),
            Some(rec(K::Alias, S::Failed, "f1", "i1")),
            Some(Action::Create),
            "last attempt failed: boom",
        ),
        (
            "api, in progress",
            alias(API, "f1", "i1"),
            Some(rec(K::Alias, S::InProgress, "f1", "i1")),
            Some(Action::Create),
            "resume",
        ),
        (
            "api, failed with other identity retries",
            rename("f2", "i2"),
            Some(rec(K::Rename, S::Failed, "f1", "i1")),
            Some(Action::Create),
            "retry",
        ),
        (
            "manual, new",
            alias(manual(), "f1", "i1"),
            None,
            Some(Action::Manual),
            "by hand",
        ),
        (
            "manual, acknowledged",
            alias(manual(), "f1", "i1"),
            Some(rec(K::Alias, S::Acknowledged, "f1", "i1")),
            None,
            "",
        ),
        (
            "manual, acknowledged, changed",
            alias(manual(), "f2", "i1"),
            Some(rec(K::Alias, S::Acknowledged, "f1", "i1")),
            Some(Action::Manual),
            "change it by hand",
        ),
        (
            "sync, new",
            mail(SYNC, "f1", "i1"),
            None,
            Some(Action::Sync),
            "first full copy",
        ),
        (
            "sync, done",
            mail(SYNC, "f1", "i1"),
            Some(rec(K::Mail, S::Done, "f1", "i1")),
            Some(Action::Sync),
            "since sync point 3",
        ),
        (
            "sync, done, settings changed",
            mail(SYNC, "f2", "i1"),
            Some(rec(K::Mail, S::Done, "f1", "i1")),
            Some(Action::Sync),
            "changed settings",
        ),
        (
            "sync, interrupted",
            mail(SYNC, "f1", "i1"),
            Some(rec(K::Mail, S::InProgress, "f1", "i1")),
            Some(Action::Sync),
            "resume the interrupted copy",
        ),
        (
            "sync, failed",
            mail(SYNC, "f1", "i1"),
            Some(rec(K::Mail, S::Failed, "f1", "i1")),
            Some(Action::Sync),
            "boom",
        ),
        (
            "sync, destination changed",
            mail(SYNC, "f1", "i2"),
            Some(rec(K::Mail, S::Done, "f1", "i1")),
            Some(Action::Conflict),
            "state forget",
        ),
        (
            "sync, cut over, done",
            mail(CUT, "f1", "i1"),
            Some(rec(K::Mail, S::Done, "f1", "i1")),
            None,
            "",
        ),
        (
            "sync, cut over, never copied",
            mail(CUT, "f1", "i1"),
            None,
            Some(Action::Sync),
            "first full copy",
        ),
        (
            "sync, cut over, interrupted",
            mail(CUT, "f1", "i1"),
            Some(rec(K::Mail, S::InProgress, "f1", "i1")),
            Some(Action::Sync),
            "resume",
        ),
        (
            "feature gone",
            None,
            Some(rec(K::Alias, S::Done, "f1", "i1")),
            Some(Action::Delete),
            "removed from the plan",
        ),
        (
            "failed feature gone",
            None,
            Some(rec(K::Alias, S::Failed, "f1", "i1")),
            Some(Action::Delete),
            "removed from the plan",
        ),
        (
            "manual feature gone",
            None,
            Some(rec(K::Group, S::Acknowledged, "f1", "i1")),
            Some(Action::Manual),
            "remove it by hand",
        ),
        (
            "mail gone",
            None,
            Some(rec(K::Mail, S::Done, "f1", "i1")),
            Some(Action::Orphaned),
            "never removed by omission",
        ),
        (
            "account create gone",
            None,
            Some(rec(K::Create, S::Done, "f1", "i1")),
            Some(Action::Orphaned),
            "state forget",
        ),
        (
            "rename gone",
            None,
            Some(rec(K::Rename, S::Done, "f1", "i1")),
            Some(Action::Orphaned),
            "accounts",
        ),
        (
            "domain gone",
            None,
            Some(rec(K::Domain, S::Done, "f1", "i1")),
            Some(Action::Orphaned),
            "domains",
        ),
    ]
}

#[test]
fn every_case_of_the_table() {
    for (case, desired, recorded, expected, reason) in table() {
        let id = desired
            .as_ref()
            .map(|r| r.id().to_string())
            .unwrap_or_else(|| "account/a@x.org/alias/gone@x.org".to_string());
        let desired: Vec<Resource> = desired.into_iter().collect();
        let state: BTreeMap<String, ResourceRecord> =
            recorded.into_iter().map(|r| (id.clone(), r)).collect();
        let changes = diff(&desired, &state);
        match expected {
            None => assert!(
                changes.is_empty(),
                "{case}: expected no change, got {changes:?}"
            ),
            Some(action) => {
                assert_eq!(changes.len(), 1, "{case}: {changes:?}");
                assert_eq!(changes[0].action, action, "{case}: {:?}", changes[0]);
                assert!(
                    changes[0].reason.contains(reason),
                    "{case}: reason {:?} lacks {reason:?}",
                    changes[0].reason
                );
            }
        }
    }
}

#[test]
fn manual_changes_carry_instructions_and_updates_show_both_sides() {
    let m = res("group/t@x.org", ResourceKind::Group, manual(), "f1", "i1");
    let c = diff(&[m], &BTreeMap::new());
    assert_eq!(
        c[0].instructions.as_deref(),
        Some("Do it. Then run `mailshift ack PLAN group/t@x.org`.")
    );
    let u = res(
        "account/a@x.org/alias/b@x.org",
        ResourceKind::Alias,
        API,
        "f2",
        "i1",
    );
    let state = BTreeMap::from([(
        u.id().to_string(),
        rec(ResourceKind::Alias, Status::Done, "f1", "i1"),
    )]);
    let c = diff(&[u], &state);
    assert_eq!(c[0].before.as_deref(), Some("had f1"));
    assert_eq!(c[0].after.as_deref(), Some("want f2"));
}

#[test]
fn output_is_sorted_by_id_and_summarised() {
    let a = res("group/b@x.org", ResourceKind::Group, API, "f", "i");
    let b = res("account/a@x.org/mail", ResourceKind::Mail, SYNC, "f", "i");
    let state = BTreeMap::from([(
        "group/c@x.org".to_string(),
        rec(ResourceKind::Mail, Status::Done, "f", "i"),
    )]);
    let c = diff(&[a, b], &state);
    let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["account/a@x.org/mail", "group/b@x.org", "group/c@x.org"]
    );
    let s = Summary::of(&c);
    assert_eq!((s.add, s.sync, s.orphaned), (1, 1, 1));
    assert!(s.has_changes());
    let only_orphans = Summary {
        orphaned: 2,
        ..Summary::default()
    };
    assert!(!only_orphans.has_changes());
}
