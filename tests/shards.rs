//! Shards (`--shard I/N`, issue 15): each process runs the accounts whose address hashes to
//! it, shard 0 also the platform-level steps, and together the shards run the whole plan,
//! each step exactly once.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{mailshift, mailshift_env, repo_root};

/// A plan of `n` IMAP accounts (`user{i}@example.com`), never contacted by `plan`.
fn imap_plan(dir: &Path, n: usize) {
    let mut text = String::from(
        "version: 1\nplatforms:\n  old: {type: imap, imap: {host: 127.0.0.1, port: 10143, security: none}}\n  \
         new: {type: imap, imap: {host: 127.0.0.1, port: 10144, security: none}}\naccounts:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - {{address: user{i}@example.com, from: old, to: new, source: {{login: user{i}, password: {{env: PW}}}}, destination: {{login: user{i}, password: {{env: PW}}}}}}\n"
        ));
    }
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
}

fn plan_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--json", "plan.yaml"];
    all.extend_from_slice(args);
    let out = mailshift(dir, &all);
    assert_eq!(out.code, 0, "{}", out.transcript());
    serde_json::from_str(&out.stdout).unwrap()
}

fn ids(doc: &serde_json::Value) -> Vec<String> {
    doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_split_the_plan_each_step_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // Domains, accounts, a manual group and an external contact.
    std::fs::copy(
        repo_root().join("examples/ovh-exchange-to-email-pro.yaml"),
        dir.path().join("plan.yaml"),
    )
    .unwrap();
    let whole = plan_json(dir.path(), &[]);
    assert!(whole.get("shard").is_none(), "{whole}");
    let whole: Vec<String> = ids(&whole);
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let doc = plan_json(dir.path(), &["--shard", &format!("{i}/3")]);
        assert_eq!(doc["shard"]["index"], i);
        assert_eq!(doc["shard"]["count"], 3);
        for c in doc["changes"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap().to_string();
            match c["account"].as_str() {
                Some(a) => assert_eq!(
                    mailshift_core::shard::shard_of(a, 3),
                    i,
                    "{id} is in shard {i}"
                ),
                None => assert_eq!(i, 0, "platform-level {id} is in shard {i}"),
            }
            assert!(seen.insert(id.clone()), "{id} is in two shards");
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), whole);
    // john@ hashes to shard 1 of 3 (pinned by the hash's own tests).
    let out = mailshift(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--shard",
            "0/3",
            "--target",
            "john@mydomain.ovh",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(
        out.stderr.contains("belongs to shard 1/3")
            && out.stderr.contains("run the command with --shard 1/3"),
        "{}",
        out.stderr
    );
    let out = mailshift(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--shard",
            "1/3",
            "--target",
            "john@mydomain.ovh",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains("account john@mydomain.ovh"),
        "{}",
        out.stdout
    );
}

#[test]
fn plan_says_which_share_it_shows_and_the_environment_selects_it() {
    let dir = tempfile::tempdir().unwrap();
    imap_plan(dir.path(), 50);
    let mut total = 0;
    for i in 0..4u32 {
        // As a Kubernetes Indexed Job runs it.
        let index = i.to_string();
        let out = mailshift_env(
            dir.path(),
            &["plan", "plan.yaml"],
            &[("JOB_COMPLETION_INDEX", &index), ("MAILSHIFT_SHARDS", "4")],
        );
        assert_eq!(out.code, 0, "{}", out.transcript());
        let owned = (0..50)
            .filter(|n| mailshift_core::shard::shard_of(&format!("user{n}@example.com"), 4) == i)
            .count();
        assert!(
            out.stdout
                .contains(&format!("shard {i}/4: {owned} of 50 accounts")),
            "{}",
            out.stdout
        );
        // One copy per account owned, and no other account's.
        assert_eq!(
            out.stdout.matches("# account user").count(),
            owned,
            "{}",
            out.stdout
        );
        total += owned;
    }
    assert_eq!(total, 50);
}
