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
    // Without its DNS cutover, which a split run refuses (a_split_run_refuses_a_cutover...).
    let example =
        std::fs::read_to_string(repo_root().join("examples/ovh-exchange-to-email-pro.yaml"))
            .unwrap();
    let cutover = "    dns: {provider: ovh}\n    cutover: {at: 2030-06-01T22:00:00+02:00, lower_ttl_ahead: 1d}\n";
    assert!(
        example.contains(cutover),
        "the example's cutover changed shape"
    );
    std::fs::write(dir.path().join("plan.yaml"), example.replace(cutover, "")).unwrap();
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

/// Two ports `base` and `base + 1`, `base` a multiple of 10, free now: shard I listens on
/// `base + I`, so `http://127.0.0.1:{prefix}{shard}` reaches every shard.
fn shard_ports() -> u16 {
    for _ in 0..100 {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = p - p % 10;
        if base >= 10_000
            && (base..base + 2).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        {
            return base;
        }
    }
    panic!("no two free ports in a row");
}

#[test]
fn a_step_waits_for_what_another_shard_runs_then_runs_once_it_is_done() {
    use crate::support::dovecot::{Dovecot, DovecotConfig};
    use crate::watch_cmd::{ALICE_NEW, ALICE_OLD, Watch, env, http_request, inbox_count, resource};
    let users: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
    let shard_of = |u: &str| mailshift_core::shard::shard_of(&format!("{u}@example.com"), 2);
    assert!(users.iter().any(|u| shard_of(u) == 1) && users.iter().any(|u| shard_of(u) == 0));
    let src_users: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), ALICE_OLD)).collect();
    let dst_users: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), ALICE_NEW)).collect();
    let src = Dovecot::start(DovecotConfig {
        users: &src_users,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &dst_users,
        ..DovecotConfig::default()
    });
    for u in &users {
        crate::watch_cmd::seed(&src, u, ALICE_OLD, 0, 2, 500);
    }
    let base = shard_ports();
    let prefix = base / 10;
    // The destination's domain is a manual step (no API on a plain IMAP server): shard 0's,
    // and every account's copy depends on it, shard 1's too.
    let mut plan = format!(
        "version: 1\nshards: {{status: \"http://127.0.0.1:{prefix}{{shard}}\", every: 1s}}\n\
         platforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n\
         domains:\n  - {{name: example.com, platform: new, mode: authoritative}}\naccounts:\n",
        src.port(),
        dst.port()
    );
    for u in &users {
        plan.push_str(&format!(
            "  - {{address: {u}@example.com, from: old, to: new, source: {{login: {u}, password: {{env: ALICE_OLD}}}}, destination: {{login: {u}, password: {{env: ALICE_NEW}}}}}}\n"
        ));
    }
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        std::fs::write(d.path().join("plan.yaml"), &plan).unwrap();
    }
    let copied = |u: &str| inbox_count(&dst, u, ALICE_NEW);
    let domain = "domain/new/example.com";

    // Shard 0 is not up: shard 1's copies wait (exit 75), nothing is copied, nothing failed.
    let out = mailshift_env(
        dirs[1].path(),
        &["apply", "plan.yaml", "--shard", "1/2"],
        &env(),
    );
    assert_eq!(out.code, 75, "{}", out.transcript());
    assert!(
        out.stdout.contains("its status cannot be read") && out.stdout.contains("waiting"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

    let shard0 = Watch::start_at(
        dirs[0].path(),
        "watch0.log",
        &format!("127.0.0.1:{base}"),
        &["--shard", "0/2"],
    );
    shard0.wait_for("the domain waits for a person", 30, |s| {
        resource(s, domain).is_some_and(|r| r["status"] == "manual")
    });
    // Shard 1 as a daemon: its copies show as waiting for shard 0, not as failed.
    let shard1 = Watch::start_at(
        dirs[1].path(),
        "watch1.log",
        &format!("127.0.0.1:{}", base + 1),
        &["--shard", "1/2"],
    );
    let mine: Vec<&String> = users.iter().filter(|u| shard_of(u) == 1).collect();
    let mail = |u: &str| format!("account/{u}@example.com/mail");
    let s = shard1.wait_for("shard 1's copies wait for shard 0", 30, |s| {
        mine.iter()
            .all(|u| resource(s, &mail(u)).is_some_and(|r| r["status"] == "waiting"))
    });
    assert!(
        resource(&s, &mail(mine[0]))
            .unwrap()
            .to_string()
            .contains("(there: manual)"),
        "{s:#}"
    );
    // Not done, not failing: pending.
    for u in &mine {
        let a = crate::watch_cmd::account(&s, &format!("{u}@example.com")).unwrap();
        assert_eq!(a["health"], "pending", "{a:#}");
    }
    // Shard 1 lists none of shard 0's steps, and shard 0 none of shard 1's.
    assert!(resource(&s, domain).is_none(), "{s:#}");
    assert!(resource(&shard0.status(), &mail(mine[0])).is_none());
    for u in &users {
        assert_eq!(copied(u), 0, "{u}");
    }

    // The person does the manual step on shard 0: both shards' copies go on by themselves.
    let (code, _, body) = http_request("POST", &shard0.addr, &format!("/api/ack/{domain}"), None);
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while users.iter().any(|u| copied(u) != 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "not every account copied: {:?}\n--- shard 0\n{}\n--- shard 1\n{}",
            users.iter().map(|u| (u, copied(u))).collect::<Vec<_>>(),
            shard0.log_text(),
            shard1.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    shard1.wait_for("shard 1's copies are done", 30, |s| {
        mine.iter()
            .all(|u| resource(s, &mail(u)).is_some_and(|r| r["status"] == "done"))
    });
}

/// Each user's folders, each message by its bytes, sorted.
fn contents(
    server: &crate::support::dovecot::Dovecot,
    users: &[String],
    pass: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<Vec<u8>>>> {
    users
        .iter()
        .map(|u| {
            let folders = server
                .login(u, pass)
                .mailboxes()
                .unwrap()
                .into_iter()
                .map(|(f, msgs)| {
                    let mut bytes: Vec<Vec<u8>> = msgs.into_iter().map(|m| m.bytes).collect();
                    bytes.sort();
                    (f, bytes)
                })
                .collect();
            (u.clone(), folders)
        })
        .collect()
}

/// `mailshift status` by account: each account's block of lines, without the dates of its
/// sync points (the runs were not at the same second).
fn status_by_account(dir: &Path, args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let mut all = vec!["status", "plan.yaml"];
    all.extend_from_slice(args);
    let out = mailshift_env(dir, &all, &crate::watch_cmd::env());
    assert_eq!(out.code, 0, "{}", out.transcript());
    let mut blocks = std::collections::BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in out.stdout.lines() {
        if !line.starts_with(' ') {
            if let Some((a, b)) = current.take() {
                blocks.insert(a, b);
            }
            let address = line.split_whitespace().next().unwrap_or("").to_string();
            current = Some((address, String::new()));
        }
        current.as_mut().unwrap().1.push_str(&undated(line));
        current.as_mut().unwrap().1.push('\n');
    }
    if let Some((a, b)) = current {
        blocks.insert(a, b);
    }
    blocks
}

/// `line` without its times ("2026-11-29 00:14:45 UTC" becomes "DATE").
fn undated(line: &str) -> String {
    let mut out = line.to_string();
    while let Some(end) = out.find(" UTC") {
        let start = end.saturating_sub("2026-11-29 00:14:45".len());
        out.replace_range(start..end + " UTC".len(), "DATE");
    }
    out
}

/// Issue 15's proof on one machine: the same 30-account plan (three source servers of ten
/// users each) run once whole and once as three shard processes at the same time gives the
/// same destinations message for message, every account copied by exactly one shard, and the
/// shards' statuses together are the whole run's.
#[test]
fn three_shards_in_parallel_do_what_one_process_does() {
    use crate::support::dovecot::{Dovecot, DovecotConfig};
    use crate::watch_cmd::{ALICE_NEW, ALICE_OLD, env};
    let sets: Vec<Vec<String>> = ["a", "b", "c"]
        .iter()
        .map(|p| (0..10).map(|i| format!("{p}{i}")).collect())
        .collect();
    let everyone: Vec<String> = sets.concat();
    let sources: Vec<Dovecot> = sets
        .iter()
        .map(|set| {
            let users: Vec<(&str, &str)> = set.iter().map(|u| (u.as_str(), ALICE_OLD)).collect();
            Dovecot::start(DovecotConfig {
                users: &users,
                ..DovecotConfig::default()
            })
        })
        .collect();
    let dst_users: Vec<(&str, &str)> = everyone.iter().map(|u| (u.as_str(), ALICE_NEW)).collect();
    let destinations: Vec<Dovecot> = (0..2)
        .map(|_| {
            Dovecot::start(DovecotConfig {
                separator: '.',
                users: &dst_users,
                ..DovecotConfig::default()
            })
        })
        .collect();
    for (server, set) in sources.iter().zip(&sets) {
        for (i, u) in set.iter().enumerate() {
            let mut c = server.login(u, ALICE_OLD);
            c.create("Archive").unwrap();
            for n in 0..(3 + i % 4) {
                let m = format!(
                    "From: {u}@example.com\r\nTo: x@example.com\r\nSubject: {n}\r\n\
                     Message-ID: <{u}.{n}@example.com>\r\n\r\nbody {u} {n}\r\n"
                );
                let folder = if n % 2 == 0 { "INBOX" } else { "Archive" };
                c.append(folder, &["\\Seen"], None, m.as_bytes()).unwrap();
            }
        }
    }
    let plan = |dst: &Dovecot| {
        let mut p = String::from("version: 1\nplatforms:\n");
        for (i, s) in sources.iter().enumerate() {
            p.push_str(&format!(
                "  old{i}: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n",
                s.port()
            ));
        }
        p.push_str(&format!(
            "  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\naccounts:\n",
            dst.port()
        ));
        for (i, set) in sets.iter().enumerate() {
            for u in set {
                p.push_str(&format!(
                    "  - {{address: {u}@example.com, from: old{i}, to: new, source: {{login: {u}, password: {{env: ALICE_OLD}}}}, destination: {{login: {u}, password: {{env: ALICE_NEW}}}}}}\n"
                ));
            }
        }
        p
    };

    // Once, whole.
    let whole = tempfile::tempdir().unwrap();
    std::fs::write(whole.path().join("plan.yaml"), plan(&destinations[0])).unwrap();
    let out = mailshift_env(whole.path(), &["apply", "plan.yaml"], &env());
    assert_eq!(out.code, 0, "{}", out.transcript());

    // Three shard processes at once, beside one plan whose state path holds `{shard}`.
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(
        shared.path().join("plan.yaml"),
        plan(&destinations[1]).replacen(
            "version: 1\n",
            "version: 1\nstate: .mailshift/state-{shard}.redb\n",
            1,
        ),
    )
    .unwrap();
    let running: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
                .args(["apply", "plan.yaml", "--shard", &format!("{i}/3")])
                .current_dir(shared.path())
                .envs(env())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in running.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {i}/3: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The destinations, message for message; and what the sources hold.
    let single = contents(&destinations[0], &everyone, ALICE_NEW);
    assert_eq!(single, contents(&destinations[1], &everyone, ALICE_NEW));
    for (server, set) in sources.iter().zip(&sets) {
        for (u, folders) in contents(server, set, ALICE_OLD) {
            for (f, msgs) in folders {
                assert_eq!(single[&u][&f].len(), msgs.len(), "{u} {f}");
            }
        }
    }

    // Every account in exactly one shard's state, and the same steps as the whole run's.
    let whole_state =
        mailshift::state::read_resources(&whole.path().join(".mailshift/state.redb")).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..3 {
        let state = mailshift::state::read_resources(
            &shared.path().join(format!(".mailshift/state-{i}.redb")),
        )
        .unwrap();
        for (id, rec) in state {
            let account = rec.account.clone().unwrap();
            assert_eq!(
                mailshift_core::shard::shard_of(&account, 3),
                i as u32,
                "{id} in shard {i}"
            );
            assert_eq!(rec.status, whole_state[&id].status, "{id}");
            assert!(seen.insert(id.clone(), i).is_none(), "{id} in two shards");
        }
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        whole_state.keys().collect::<Vec<_>>()
    );
    let per_shard: Vec<usize> = (0..3)
        .map(|i| seen.values().filter(|s| **s == i).count())
        .collect();
    assert!(per_shard.iter().all(|n| *n > 0), "{per_shard:?}");

    // The shards' statuses together are the whole run's.
    let whole_status = status_by_account(whole.path(), &[]);
    assert_eq!(whole_status.len(), 30, "{whole_status:#?}");
    let mut merged = std::collections::BTreeMap::new();
    for i in 0..3 {
        for (a, block) in status_by_account(shared.path(), &["--shard", &format!("{i}/3")]) {
            assert!(
                merged.insert(a.clone(), block).is_none(),
                "{a} in two shards"
            );
        }
    }
    assert_eq!(merged, whole_status);
}
