//! One view of many shards (issue 15, item 2): three `mailshift watch --shard I/3` processes on
//! their share of a small plan against real Dovecot servers, then `mailshift status --from`
//! their three URLs and `mailshift watch --aggregate` over them: the merged totals are the sum
//! of the shards', every account appears once with its shard, and a killed shard shows as
//! unreachable (exit 1), the others still shown.

use std::path::Path;

use serde_json::Value;

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::watch_cmd::{Watch, http_get, mailshift, migrated, seed};

/// Users and the shard of 3 their address hashes to (`mailshift_core::shard::shard_of`,
/// checked below): two per shard.
const USERS: [(&str, u32); 6] = [
    ("alice", 0),
    ("bob", 0),
    ("erin", 1),
    ("heidi", 1),
    ("dave", 2),
    ("grace", 2),
];

fn pw(user: &str, side: &str) -> String {
    format!("{user}-{side}-pw-S4rd")
}

/// Shard `index`'s plan: its accounts only, passwords from files beside it.
fn plan(dir: &Path, src: u16, dst: u16, index: u32) -> String {
    let mut p = format!(
        "version: 1\noptions: {{sync_interval: 1h}}\nplatforms:\n  \
         old: {{type: imap, imap: {{host: 127.0.0.1, port: {src}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {dst}, security: none}}}}\n\
         accounts:\n"
    );
    for (user, _) in USERS.iter().filter(|(_, s)| *s == index) {
        for side in ["old", "new"] {
            std::fs::write(dir.join(format!("{user}.{side}")), pw(user, side)).unwrap();
        }
        p.push_str(&format!(
            "  - address: {user}@example.com\n    from: old\n    to: new\n    \
             source: {{login: {user}, password: {{file: {user}.old}}}}\n    \
             destination: {{login: {user}, password: {{file: {user}.new}}}}\n"
        ));
    }
    p
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

fn json(out: &str) -> Value {
    let start = out
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in:\n{out}"));
    let end = out.rfind('}').unwrap();
    serde_json::from_str(&out[start..=end]).unwrap_or_else(|e| panic!("{e}:\n{out}"))
}

fn shard_of_row(status: &Value, address: &str) -> Vec<u64> {
    status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["address"] == address)
        .map(|a| a["shard"].as_u64().unwrap())
        .collect()
}

#[test]
fn three_shards_merge_into_one_view_and_a_killed_shard_shows_as_unreachable() {
    for (user, shard) in USERS {
        assert_eq!(
            mailshift_core::shard::shard_of(&format!("{user}@example.com"), 3),
            shard,
            "{user}"
        );
    }
    let olds: Vec<(String, String)> = USERS
        .iter()
        .map(|(u, _)| (u.to_string(), pw(u, "old")))
        .collect();
    let news: Vec<(String, String)> = USERS
        .iter()
        .map(|(u, _)| (u.to_string(), pw(u, "new")))
        .collect();
    let old_users = as_refs(&olds);
    let new_users = as_refs(&news);
    let src = Dovecot::start(DovecotConfig {
        users: &old_users,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &new_users,
        ..DovecotConfig::default()
    });
    // A different count per account, so a sum cannot come out right by accident.
    let counts: Vec<u64> = (0..USERS.len() as u64).map(|i| 3 + i).collect();
    for ((user, _), n) in USERS.iter().zip(&counts) {
        seed(&src, user, &pw(user, "old"), 0, *n as usize, 1_500);
    }
    let root = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for i in 0..3u32 {
        let dir = root.path().join(format!("shard-{i}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("plan.yaml"), plan(&dir, src.port(), dst.port(), i)).unwrap();
        let w = Watch::start(
            &dir,
            "watch.log",
            &[
                "--shard",
                &format!("{i}/3"),
                "--token",
                "{env: WATCH_TOKEN}",
            ],
        )
        .with_token();
        shards.push(w);
    }
    let mut per_shard_messages = Vec::new();
    for (i, w) in shards.iter().enumerate() {
        let mine: Vec<(&str, u64)> = USERS
            .iter()
            .zip(&counts)
            .filter(|((_, s), _)| *s == i as u32)
            .map(|((u, _), n)| (*u, *n))
            .collect();
        let s = w.wait_for("the shard's accounts migrated", 60, |s| {
            mine.iter()
                .all(|(u, n)| migrated(s, &format!("{u}@example.com"), *n))
        });
        assert_eq!(s["shard"]["index"], i as u64, "{s:#}");
        assert_eq!(s["shard"]["count"], 3, "{s:#}");
        per_shard_messages.push(s["summary"]["messages_migrated"].as_u64().unwrap());
        let (_, metrics) = w.get("/metrics");
        assert!(
            metrics.contains(&format!("mailshift_shards{{shard=\"{i}\"}} 3")),
            "{metrics}"
        );
    }
    let total: u64 = counts.iter().sum();
    assert_eq!(per_shard_messages.iter().sum::<u64>(), total);

    let urls: Vec<String> = shards
        .iter()
        .map(|w| format!("http://{}", w.addr))
        .collect();
    let from = |extra: &[&str]| {
        let mut args = vec!["status", "--from"];
        args.extend(urls.iter().map(String::as_str));
        args.extend_from_slice(extra);
        mailshift(root.path(), &args)
    };

    // Without the token, every shard refuses, and the view says how to fix it.
    let (code, out) = from(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("it needs a token (401)"), "{out}");

    // status --from: the merged document, totals the sum of the shards'.
    let (code, out) = from(&["--token", "{env: WATCH_TOKEN}", "--json"]);
    assert_eq!(code, 0, "{out}");
    let merged = json(&out);
    assert_eq!(
        merged["summary"]["accounts"],
        USERS.len() as u64,
        "{merged:#}"
    );
    assert_eq!(merged["summary"]["messages_migrated"], total, "{merged:#}");
    assert_eq!(
        merged["shard"]["count"], 1,
        "the merged view is the whole plan"
    );
    assert!(merged.get("problems").is_none(), "{merged:#}");
    let health = merged["shards"].as_array().unwrap();
    assert_eq!(health.len(), 3);
    for (i, h) in health.iter().enumerate() {
        assert_eq!(h["reachable"], true, "{h:#}");
        assert_eq!(h["shard"]["index"], i as u64, "{h:#}");
        assert_eq!(h["accounts"], 2, "{h:#}");
        assert!(
            h["answered_at"].is_string() && h["plan_sha256"].is_string(),
            "{h:#}"
        );
    }
    for (user, shard) in USERS {
        assert_eq!(
            shard_of_row(&merged, &format!("{user}@example.com")),
            [u64::from(shard)],
            "{user}: once, with its shard"
        );
    }
    let (code, text) = from(&["--token", "{env: WATCH_TOKEN}"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("shards  3 of 3 reachable"), "{text}");
    assert!(
        text.contains("erin@example.com  1/1 steps done  [shard 1]"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "total  6 accounts: 0 failing, 0 running, 6 synced · {total} messages"
        )),
        "{text}"
    );

    // watch --aggregate: the same view, served, with its own metrics.
    let mut args = vec![
        "watch",
        "--listen",
        "127.0.0.1:0",
        "--poll",
        "1s",
        "--aggregate",
    ];
    args.extend(urls.iter().map(String::as_str));
    args.extend(["--token", "{env: WATCH_TOKEN}"]);
    let agg = Watch::spawn(root.path(), "aggregate.log", &args).with_token();
    let s = agg.wait_for("the aggregator's first poll", 20, |s| {
        s["summary"]["accounts"] == USERS.len() as u64
    });
    assert_eq!(s["summary"]["messages_migrated"], total, "{s:#}");
    assert_eq!(http_get(&agg.addr, "/api/status", None).0, 401);
    assert_eq!(http_get(&agg.addr, "/healthz", None).0, 200);
    let (_, page) = agg.get("/");
    assert!(page.contains("<table id=\"shards\">"), "{page}");
    assert_eq!(page.matches("data-up=\"true\"").count(), 3, "{page}");
    let (_, metrics) = agg.get("/metrics");
    for line in [
        "mailshift_aggregate_shards 3".to_string(),
        format!(
            "mailshift_aggregate_shard_up{{shard=\"2\",url=\"{}/api/status\"}} 1",
            urls[2]
        ),
        "mailshift_aggregate_accounts{state=\"all\"} 6".to_string(),
        format!("mailshift_aggregate_messages_migrated {total}"),
        "mailshift_aggregate_problems 0".to_string(),
    ] {
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }

    // Shard 2 killed: shown as unreachable, the others still shown, exit 1.
    let killed = shards.pop().unwrap();
    drop(killed);
    let (code, out) = from(&["--token", "{env: WATCH_TOKEN}", "--json"]);
    assert_eq!(code, 1, "{out}");
    let merged = json(&out);
    assert_eq!(merged["shards"][2]["reachable"], false, "{merged:#}");
    assert!(
        merged["shards"][2]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach it")
    );
    assert_eq!(merged["summary"]["accounts"], 4, "{merged:#}");
    assert!(
        merged["problems"][0]
            .as_str()
            .unwrap()
            .contains("is unreachable"),
        "{merged:#}"
    );
    let (code, text) = from(&["--token", "{env: WATCH_TOKEN}"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("shards  2 of 3 reachable"), "{text}");
    assert!(text.contains("alice@example.com"), "{text}");
    let s = agg.wait_for("the aggregator sees shard 2 down", 20, |s| {
        s["shards"][2]["reachable"] == false
    });
    assert_eq!(s["shards"][2]["shard"]["index"], 2, "remembered: {s:#}");
    assert!(
        s["shards"][2]["answered_at"].is_string(),
        "since when: {s:#}"
    );
    let (_, metrics) = agg.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "mailshift_aggregate_shard_up{{shard=\"2\",url=\"{}/api/status\"}} 0",
            urls[2]
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailshift_aggregate_problems 1"),
        "{metrics}"
    );
    let (_, page) = agg.get("/");
    assert!(page.contains("id=\"problems\""), "{page}");
}
