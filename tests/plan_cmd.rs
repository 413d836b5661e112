//! `mailshift plan`: the human and JSON views, exit codes, and the state it diffs against.

use std::path::Path;

use mailshift::apply::record::fresh;
use mailshift::model::{Resource, compile};
use mailshift::plan::load_file;
use mailshift::state::{ResourceRecord, StateStore, Status};

use crate::common::{mailshift, repo_root};

fn copy_example(dir: &Path, name: &str, as_name: &str) {
    std::fs::copy(repo_root().join("examples").join(name), dir.join(as_name)).unwrap();
}

/// Records every resource of the plan as applied, the way `apply` would.
fn record_all(plan: &Path, status: Status) {
    let loaded = load_file(plan).unwrap();
    let store = StateStore::open(&loaded.state_path()).unwrap();
    for r in compile(&loaded.plan) {
        store.put_resource(r.id(), &record(&r, status)).unwrap();
    }
}

fn record(r: &Resource, status: Status) -> ResourceRecord {
    ResourceRecord {
        sync_point: Some(1),
        ..fresh(r, status, 1_700_000_000)
    }
}

#[test]
fn yaml_and_toml_give_identical_json_plans() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path(), "imap-to-imap.yaml", "a.yaml");
    copy_example(dir.path(), "imap-to-imap.toml", "a.toml");
    let y = mailshift(dir.path(), &["plan", "--json", "a.yaml"]);
    let t = mailshift(dir.path(), &["plan", "--json", "a.toml"]);
    assert_eq!(y.code, 0, "{}", y.transcript());
    assert_eq!(y.stdout, t.stdout);

    // The richest example, converted to TOML by the model's own serializer.
    copy_example(dir.path(), "ovh-exchange-to-email-pro.yaml", "b.yaml");
    let plan = load_file(&dir.path().join("b.yaml")).unwrap().plan;
    std::fs::write(dir.path().join("b.toml"), toml::to_string(&plan).unwrap()).unwrap();
    let y = mailshift(dir.path(), &["plan", "--json", "b.yaml"]);
    let t = mailshift(dir.path(), &["plan", "--json", "b.toml"]);
    assert_eq!(y.code, 0, "{}", y.transcript());
    assert_eq!(y.stdout, t.stdout);
    let doc: serde_json::Value = serde_json::from_str(&y.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["summary"]["add"], 12);
}

#[test]
fn human_plan_for_the_exchange_to_email_pro_example() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path(), "ovh-exchange-to-email-pro.yaml", "plan.yaml");
    let out = mailshift(dir.path(), &["plan", "plan.yaml"]);
    assert_eq!(out.code, 0);
    insta::assert_snapshot!(out.transcript());
}

#[test]
fn detailed_exit_codes_gate_ci() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path(), "imap-to-imap.yaml", "plan.yaml");
    let plan = dir.path().join("plan.yaml");
    // Fresh: changes.
    assert_eq!(
        mailshift(dir.path(), &["plan", "--detailed-exitcode", "plan.yaml"]).code,
        2
    );
    // Copied but not cut over: mail keeps syncing, so still changes.
    record_all(&plan, Status::Done);
    let out = mailshift(dir.path(), &["plan", "--detailed-exitcode", "plan.yaml"]);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(
        out.stdout
            .contains("(incremental: copy what is new since sync point 1)"),
        "{}",
        out.stdout
    );
    // Cut over: nothing to do.
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, format!("{text}    options: {{cut_over: true}}\n")).unwrap();
    let cut = load_file(&plan).unwrap();
    let store = StateStore::open(&cut.state_path()).unwrap();
    for r in compile(&cut.plan) {
        store
            .put_resource(r.id(), &record(&r, Status::Done))
            .unwrap();
    }
    drop(store);
    let out = mailshift(dir.path(), &["plan", "--detailed-exitcode", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("Plan: 0 to add, 0 to change, 0 to remove, 0 to sync, 0 manual.\n")
    );
    // Invalid plan: 1.
    std::fs::write(&plan, "version: 2\nplatforms: {}\n").unwrap();
    assert_eq!(
        mailshift(dir.path(), &["plan", "--detailed-exitcode", "plan.yaml"]).code,
        1
    );
}

#[test]
fn conflicts_deletes_and_orphans_after_plan_edits() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path(), "ovh-exchange-to-email-pro.yaml", "plan.yaml");
    let plan = dir.path().join("plan.yaml");
    record_all(&plan, Status::Done);
    let text = std::fs::read_to_string(&plan).unwrap();
    let edited = text
        // The rename already happened: changing its target is a conflict.
        .replace(
            "rename_to: john.old@mydomain.ovh",
            "rename_to: john.previous@mydomain.ovh",
        )
        // A removed alias is removed from the destination.
        .replace(
            "aliases: [j.smith@mydomain.ovh, contact@mydomain.ovh]",
            "aliases: [j.smith@mydomain.ovh]",
        )
        // Changed delegation rights are an in-place update.
        .replace("rights: [send-as, full-access]", "rights: [send-as]");
    // An account dropped from the plan is orphaned, never destroyed.
    let cut = edited.find("  - address: assistant@mydomain.ovh").unwrap();
    let end = edited.find("groups:").unwrap();
    let edited = format!("{}{}", &edited[..cut], &edited[end..]).replace(
        "members: [john@mydomain.ovh, assistant@mydomain.ovh]",
        "members: [john@mydomain.ovh]",
    );
    std::fs::write(&plan, edited).unwrap();
    let out = mailshift(dir.path(), &["plan", "--detailed-exitcode", "plan.yaml"]);
    assert_eq!(
        out.code,
        1,
        "conflicts exit 1 with --detailed-exitcode\n{}",
        out.transcript()
    );
    insta::assert_snapshot!(out.transcript());
    let json = mailshift(dir.path(), &["plan", "--json", "plan.yaml"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let s = &doc["summary"];
    assert_eq!(
        (
            s["conflict"].as_u64(),
            s["remove"].as_u64(),
            s["orphaned"].as_u64()
        ),
        (Some(1), Some(1), Some(3))
    );
}

#[test]
fn target_limits_the_plan_to_accounts() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path(), "ovh-exchange-to-email-pro.yaml", "plan.yaml");
    let out = mailshift(
        dir.path(),
        &[
            "plan",
            "--json",
            "--target",
            "assistant@mydomain.ovh",
            "plan.yaml",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<&str> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "account/assistant@mydomain.ovh/create",
            "account/assistant@mydomain.ovh/mail",
            "account/assistant@mydomain.ovh/rename"
        ]
    );
    let out = mailshift(
        dir.path(),
        &["plan", "--target", "nobody@mydomain.ovh", "plan.yaml"],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: --target nobody@mydomain.ovh: no such account in plan.yaml\n"
    );
    // apply and verify check their targets the same way, before touching any server.
    for cmd in ["apply", "verify"] {
        let out = mailshift(
            dir.path(),
            &[cmd, "--target", "nobody@mydomain.ovh", "plan.yaml"],
        );
        assert_eq!(out.code, 1, "{cmd}");
        assert_eq!(
            out.stderr, "error: --target nobody@mydomain.ovh: no such account in plan.yaml\n",
            "{cmd}"
        );
    }
}

#[test]
fn secrets_never_reach_plan_output() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("examples/imap-to-imap.yaml"))
        .unwrap()
        .replace("version: 1", "version: 1\nallow_inline_secrets: true")
        .replace("{env: ALICE_OLD}", "Sup3rS3cret-old")
        .replace("{env: ALICE_NEW}", "Sup3rS3cret-new");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    for args in [
        ["plan", "plan.yaml"].as_slice(),
        &["plan", "--json", "plan.yaml"],
        &["validate", "plan.yaml"],
        &["status", "plan.yaml"],
    ] {
        let out = mailshift(dir.path(), args);
        assert!(
            !out.stdout.contains("Sup3rS3cret") && !out.stderr.contains("Sup3rS3cret"),
            "{args:?} leaked:\n{}",
            out.transcript()
        );
    }
}

#[test]
fn ack_records_manual_steps_only() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path(), "ovh-exchange-to-email-pro.yaml", "plan.yaml");
    let out = mailshift(
        dir.path(),
        &["ack", "plan.yaml", "account/john@mydomain.ovh/create"],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: `account/john@mydomain.ovh/create` is not a manual step (it is `create`): `apply` carries it out\n"
    );
    let out = mailshift(dir.path(), &["ack", "plan.yaml", "group/tem@mydomain.ovh"]);
    assert_eq!(
        out.stderr,
        "error: `group/tem@mydomain.ovh` is not a pending step of plan.yaml: did you mean `group/team@mydomain.ovh`?\n"
    );
    let out = mailshift(dir.path(), &["ack", "plan.yaml", "group/team@mydomain.ovh"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    let json = mailshift(dir.path(), &["plan", "--json", "plan.yaml"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["summary"]["manual"], 0);
    // Changing the group in the plan makes it a manual step again.
    let plan = dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        text.replace(
            "members: [john@mydomain.ovh, assistant@mydomain.ovh]",
            "members: [john@mydomain.ovh]",
        ),
    )
    .unwrap();
    let json = mailshift(dir.path(), &["plan", "--json", "plan.yaml"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["summary"]["manual"], 1);
}
