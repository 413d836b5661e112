//! `mailshift state` and `status`: inspecting and repairing the state, and its lock.

use std::collections::BTreeMap;

use mailshift::state::{ResourceRecord, StateStore, Status};

use crate::common::{mailshift, repo_root};

fn rec(status: Status, error: Option<&str>) -> ResourceRecord {
    ResourceRecord {
        kind: "mail".into(),
        account: Some("alice@example.com".into()),
        fingerprint: "f".into(),
        identity: "i".into(),
        status,
        summary: "copy mail of alice@example.com".into(),
        outputs: BTreeMap::from([("folders".to_string(), "3".to_string())]),
        last_error: error.map(str::to_string),
        sync_point: Some(2),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_060,
    }
}

#[test]
fn list_show_forget_and_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("examples/imap-to-imap.yaml"),
        dir.path().join("plan.yaml"),
    )
    .unwrap();
    let state = dir.path().join(".mailshift/state.redb");
    let out = mailshift(dir.path(), &["state", "list", "--plan", "plan.yaml"]);
    assert_eq!(
        out.stdout,
        "./.mailshift/state.redb: no resources recorded\n"
    );
    assert!(!state.exists(), "reading must not create the state");

    let store = StateStore::open(&state).unwrap();
    store
        .put_resource(
            "account/alice@example.com/mail",
            &rec(Status::Failed, Some("connection reset")),
        )
        .unwrap();
    // Readers work while a writer holds the state.
    let out = mailshift(dir.path(), &["state", "list", "--plan", "plan.yaml"]);
    assert_eq!(
        out.stdout,
        "account/alice@example.com/mail  failed       2023-11-14 22:14:20 UTC  (connection reset)\n"
    );
    let out = mailshift(
        dir.path(),
        &[
            "state",
            "show",
            "account/alice@example.com/mail",
            "--state",
            ".mailshift/state.redb",
        ],
    );
    insta::assert_snapshot!(out.transcript());
    let out = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert_eq!(out.code, 1, "a failed step makes status exit 1");
    assert!(
        out.stdout.contains(
            "mail                           failed, sync point 2, 2023-11-14 22:14:20 UTC: connection reset"
        ),
        "{}",
        out.stdout
    );

    // A second writer is refused, naming this process.
    let out = mailshift(
        dir.path(),
        &[
            "state",
            "forget",
            "account/alice@example.com/mail",
            "--plan",
            "plan.yaml",
        ],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "error: state file ./.mailshift/state.redb is in use by another mailshift process (pid {}): wait for it to finish; the lock is released when that process exits\n",
            std::process::id()
        )
    );
    drop(store);
    let out = mailshift(
        dir.path(),
        &[
            "state",
            "forget",
            "account/alice@example.com/mial",
            "--plan",
            "plan.yaml",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("did you mean `account/alice@example.com/mail`?"),
        "{}",
        out.stderr
    );
    let out = mailshift(
        dir.path(),
        &[
            "state",
            "forget",
            "account/alice@example.com/mail",
            "--plan",
            "plan.yaml",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let out = mailshift(dir.path(), &["state", "list", "--plan", "plan.yaml"]);
    assert_eq!(
        out.stdout,
        "./.mailshift/state.redb: no resources recorded\n"
    );
}
