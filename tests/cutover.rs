//! A domain's cutover from the plan against real DNS servers: a BIND primary taking
//! TSIG-signed updates and a secondary transferring from it on NOTIFY. The plan's `dns:` block
//! opens the zone and the propagation check (`mailshift::cutover::zones`), the steps run to the
//! end (switch, both servers answering, final sync, accounts marked, TTL raised back), then
//! `rollback` puts the previous records back, checked at both servers again.

use std::time::{Duration, Instant};

use base64::Engine;
use mailshift::cutover::{Accounts, Cutover, NotWhole, Stop, zones};
use mailshift_core::dns::{RecordSet, RecordType};
use mailshift_core::error::StepError;
use mailshift_core::plan::load::{Format, load_str};
use mailshift_core::plane::PlaneResult;
use mailshift_core::state::StateStore;
use mailshift_dns::ask_each;

use crate::support::bind::{BindConfig, BindPair, UPDATE_KEY};

const ZONE: &str = "example.test";
const CONVERGE: Duration = Duration::from_secs(30);

/// The domain has no account in this plan: nothing to keep the switch back or to sync
/// (tests/cutover_ovh.rs too).
pub(crate) struct NoAccounts;

impl Accounts for NoAccounts {
    fn not_whole(&self, _: &[String]) -> Result<Vec<NotWhole>, StepError> {
        Ok(Vec::new())
    }

    fn final_sync<'a>(
        &'a self,
        _: &'a [String],
        _: &'a mut Option<u64>,
    ) -> PlaneResult<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }
}

/// The wall clock in seconds, as the cutover steps take it.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A BIND primary and secondary (NOTIFY on) serving `zone_records`, the TSIG key in a file
/// beside the state, and a plan whose domain cuts over through them to `records` (YAML list
/// items), due at once with a 1 s low TTL.
fn bind_cutover(zone_records: &str, records: &str) -> (BindPair, tempfile::TempDir, String) {
    let bind = BindPair::start(&BindConfig {
        zone: ZONE,
        records: zone_records,
        notify: true,
    });
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("tsig.key");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode(&bind.secret),
    )
    .unwrap();
    let plan = format!(
        "version: 1
platforms:
  new: {{type: imap, imap: {{host: new.example.net}}}}
domains:
  - name: {ZONE}
    platform: new
    mode: authoritative
    dns:
      provider: rfc2136
      server: '{primary}'
      tsig: {{name: {UPDATE_KEY}, secret: {{file: {key}}}}}
      nameservers: ['{primary}', '{secondary}']
    records:
{records}    cutover: {{at: '2020-01-01T00:00:00Z', low_ttl: 1}}
",
        primary = bind.primary.addr(),
        secondary = bind.secondary.addr(),
        key = key_file.display(),
    );
    (bind, dir, plan)
}

#[test]
fn a_cutover_switches_a_bind_zone_checked_at_both_servers_then_rolls_back() {
    // A short TTL: nothing to lower, so the switch is due at once.
    let (bind, dir, plan) = bind_cutover(
        "@ 2 IN MX 10 mx.old-host.example.net.\n\
                  @ 2 IN TXT \"v=spf1 include:old-host.example.net ~all\" \"x\"\n\
                  @ 2 IN TXT \"site-verification=abc\"",
        "      - {name: '@', type: MX, values: ['10 mx1.new-host.example.net.', '20 mx2.new-host.example.net.']}\n      - {name: '@', type: TXT, values: ['v=spf1 include:new-host.example.net -all']}\n",
    );
    let loaded = load_str(
        &plan,
        Format::Yaml,
        dir.path().join("p.yaml").as_path(),
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let domain = &loaded.plan.domains[0];
    let c = Cutover::from_plan(&loaded.plan, domain).unwrap();
    let store = StateStore::open(&dir.path().join("state.redb")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opened = rt.block_on(zones::open(&loaded, domain)).unwrap();
    let servers = [bind.primary.addr(), bind.secondary.addr()];
    let mx_at_both = |want: &[&str]| {
        rt.block_on(ask_each(&servers, ZONE, RecordType::Mx))
            .into_iter()
            .all(|a| matches!(a.result, Ok(Some(s)) if s.data == want))
    };

    // Run as watch mode would, until done (the secondary takes a moment).
    let deadline = Instant::now() + CONVERGE;
    loop {
        let r = rt
            .block_on(c.advance(
                opened.zone.as_ref(),
                opened.propagation.as_ref(),
                &NoAccounts,
                &store,
                now(),
            ))
            .unwrap();
        match r.stop {
            Stop::Done => break,
            Stop::Waiting { .. } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => panic!("the cutover stopped: {other:?}"),
        }
    }
    assert!(mx_at_both(&[
        "10 mx1.new-host.example.net",
        "20 mx2.new-host.example.net"
    ]));
    let txt = rt
        .block_on(opened.zone.read(ZONE, RecordType::Txt))
        .unwrap()
        .unwrap();
    assert!(
        txt.data.iter().any(|d| d.contains("site-verification=abc")),
        "the other TXT strings are kept: {txt:?}"
    );
    assert!(txt.data.iter().any(|d| d.contains("new-host")), "{txt:?}");
    assert!(!txt.data.iter().any(|d| d.contains("old-host")), "{txt:?}");
    // The TTL back to what the zone had.
    let mx = rt
        .block_on(opened.zone.read(ZONE, RecordType::Mx))
        .unwrap()
        .unwrap();
    assert_eq!(mx.ttl, 2);
    assert!(
        store
            .cutover(ZONE)
            .unwrap()
            .unwrap()
            .is_done(mailshift_core::cutover::Step::RaiseTtl)
            .is_some()
    );

    // A hand-made change is drift, shown and not overwritten by the rollback.
    let hand = RecordSet::new(
        ZONE,
        RecordType::Mx,
        2,
        vec!["5 mx.by-hand.example.net".into()],
    );
    rt.block_on(opened.zone.write(&hand)).unwrap();
    let record = store.cutover(ZONE).unwrap().unwrap();
    let drift = rt.block_on(c.drift(opened.zone.as_ref(), &record)).unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    let r = rt
        .block_on(c.rollback(
            opened.zone.as_ref(),
            opened.propagation.as_ref(),
            &store,
            now(),
        ))
        .unwrap();
    assert!(matches!(r.stop, Stop::Conflict { .. }), "{r:?}");
    assert_eq!(
        rt.block_on(opened.zone.read(ZONE, RecordType::Mx)).unwrap(),
        Some(hand)
    );
    // Kept by a person (`ack`): the rollback goes on from it.
    rt.block_on(c.accept_drift(opened.zone.as_ref(), &store))
        .unwrap();
    let deadline = Instant::now() + CONVERGE;
    loop {
        let r = rt
            .block_on(c.rollback(
                opened.zone.as_ref(),
                opened.propagation.as_ref(),
                &store,
                now(),
            ))
            .unwrap();
        match r.stop {
            Stop::Done => break,
            Stop::Waiting { .. } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => panic!("the rollback stopped: {other:?}"),
        }
    }
    assert!(mx_at_both(&["10 mx.old-host.example.net"]));
    let txt = rt
        .block_on(opened.zone.read(ZONE, RecordType::Txt))
        .unwrap()
        .unwrap();
    assert!(txt.data.iter().any(|d| d.contains("old-host")), "{txt:?}");
}

/// `examples/cutover-rfc2136.yaml` run by `mailshift apply` (the binary), pointed at two local
/// Dovecot servers and the BIND pair: the accounts' mail is copied, then the cutover's steps run
/// through apply, paused (exit 75) while a step waits and taken up again by the next apply,
/// until the zone answers the new records at both servers; a second apply changes nothing;
/// `mailshift rollback --cutover` puts the old records back.
#[test]
fn apply_runs_the_rfc2136_example_to_the_end_and_a_second_apply_changes_nothing() {
    use crate::common::{mailshift_env, repo_root};
    use crate::support::dovecot::{Dovecot, DovecotConfig};

    const PW: &str = "Pa55word-cut";
    let bind = BindPair::start(&BindConfig {
        zone: "example.com",
        // The old TTL the switch waits out: 2 s.
        records: "@ 2 IN MX 10 mx.old.example.net.\n\
                  @ 2 IN TXT \"v=spf1 include:old.example.net ~all\"\n\
                  autodiscover 2 IN CNAME autodiscover.old.example.net.",
        notify: true,
    });
    let users: &[(&str, &str)] = &[("alice", PW), ("bob", PW)];
    let src = Dovecot::start(DovecotConfig {
        users,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users,
        ..DovecotConfig::default()
    });
    src.deliver(
        "alice",
        b"From: a@example.org\r\nTo: alice@example.com\r\nSubject: before the cutover\r\nMessage-ID: <cut-1@example.org>\r\n\r\nHello.\r\n",
    );
    let example =
        std::fs::read_to_string(repo_root().join("examples/cutover-rfc2136.yaml")).unwrap();
    let plan = example
        .replace("port: 10143", &format!("port: {}", src.port()))
        .replace("port: 10144", &format!("port: {}", dst.port()))
        .replace("'127.0.0.1:5353'", &format!("'{}'", bind.primary.addr()))
        .replace("127.0.0.1:5353", &bind.primary.addr().to_string())
        .replace("'[::1]:5353'", &format!("'{}'", bind.secondary.addr()))
        .replace("at: 2026-12-05T22:00:00+01:00", "at: 2020-01-01T00:00:00Z")
        .replace("low_ttl: 300", "low_ttl: 1");
    assert!(
        plan.contains(&bind.secondary.addr().to_string()) && plan.contains("2020-01-01"),
        "the example changed: update the replacements above\n{plan}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), &plan).unwrap();
    let secret = base64::engine::general_purpose::STANDARD.encode(&bind.secret);
    let env = [
        ("ALICE_OLD", PW),
        ("ALICE_NEW", PW),
        ("BOB_OLD", PW),
        ("BOB_NEW", PW),
        ("TSIG_SECRET", secret.as_str()),
    ];
    let apply = || mailshift_env(dir.path(), &["apply", "p.yaml"], &env);
    // An `imap` platform has no API: the domain is attached by hand, and said so.
    let ack = mailshift_env(
        dir.path(),
        &["ack", "p.yaml", "domain/new/example.com"],
        &env,
    );
    assert_eq!(ack.code, 0, "{}", ack.transcript());

    let deadline = Instant::now() + CONVERGE;
    let mut transcripts = String::new();
    loop {
        let out = apply();
        transcripts.push_str(&out.transcript());
        match out.code {
            0 => break,
            75 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(300)),
            _ => panic!("apply did not finish the cutover:\n{transcripts}"),
        }
    }
    for step in [
        "lower-ttl",
        "switch",
        "propagation",
        "final-sync",
        "mark-cut-over",
        "raise-ttl",
    ] {
        assert!(
            transcripts.contains(&format!("cutover/example.com/{step}: ")),
            "{step} never ran:\n{transcripts}"
        );
    }
    let servers = [bind.primary.addr(), bind.secondary.addr()];
    for a in rt_block(ask_each(&servers, "example.com", RecordType::Mx)) {
        assert!(
            // The TTL raised back reaches the secondary a moment later (NOTIFY): data only.
            matches!(&a.result, Ok(Some(s)) if s.data == ["10 mx1.new.example.net", "20 mx2.new.example.net"]),
            "{a:?}"
        );
    }
    let primary = rt_block(ask_each(&servers[..1], "example.com", RecordType::Mx));
    assert!(
        matches!(&primary[0].result, Ok(Some(s)) if s.ttl == 2),
        "the TTL back to the zone's: {primary:?}"
    );
    assert_eq!(dst.stored_messages("alice"), 1);

    // Everything is done: nothing runs, nothing is written.
    let serial = bind.primary.serial("example.com");
    let again = apply();
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(!again.stdout.contains("cutover/"), "{}", again.transcript());
    assert_eq!(bind.primary.serial("example.com"), serial);
    let plan_out = mailshift_env(dir.path(), &["plan", "p.yaml"], &env);
    assert!(
        plan_out
            .stdout
            .contains("= cutover/example.com/mark-cut-over: done"),
        "{}",
        plan_out.transcript()
    );

    // `mailshift rollback --cutover`: the old records back at both servers, checked there.
    let back = mailshift_env(
        dir.path(),
        &["rollback", "p.yaml", "--cutover", "example.com", "--yes"],
        &env,
    );
    assert_eq!(back.code, 0, "{}", back.transcript());
    for a in rt_block(ask_each(&servers, "example.com", RecordType::Mx)) {
        assert!(
            matches!(&a.result, Ok(Some(s)) if s.data == ["10 mx.old.example.net"]),
            "{a:?}\n{}",
            back.transcript()
        );
    }
}

fn rt_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Where people watch a cutover: `mailshift status` (text and `--json`) mid-cutover, then a
/// `mailshift watch` whose switch meets a record changed by hand: `/api/status`, the page and
/// `status` show the drift (exit 1), `POST /api/ack/cutover/DOMAIN/switch` keeps it, and the
/// cutover goes on to the end, shown done.
#[test]
fn status_and_watch_show_a_cutover_and_a_drift_is_acknowledged_over_http() {
    use crate::common::mailshift_env;
    use crate::watch_cmd::{Watch, http_request};

    // The old TTL the switch waits out: 2 s.
    // `_bind` keeps both name servers up until the test ends.
    let (_bind, dir, plan) = bind_cutover(
        "@ 2 IN MX 10 mx.old-host.example.net.",
        "      - {name: '@', type: MX, values: ['10 mx1.new-host.example.net.']}\n",
    );
    std::fs::write(dir.path().join("plan.yaml"), &plan).unwrap();
    let run = |args: &[&str]| mailshift_env(dir.path(), args, &[]);
    let ack = run(&["ack", "plan.yaml", &format!("domain/new/{ZONE}")]);
    assert_eq!(ack.code, 0, "{}", ack.transcript());

    // The TTL lowered; the switch waits for the old TTL to run out (apply pauses: 75).
    let first = run(&["apply", "plan.yaml"]);
    assert_eq!(first.code, 75, "{}", first.transcript());
    let status = run(&["status", "plan.yaml"]);
    assert_eq!(
        status.code,
        0,
        "waiting is no problem:\n{}",
        status.transcript()
    );
    for line in [
        &format!("{ZONE}  cutover 1/6 steps done (zone: {ZONE}, rfc2136)\n  cutover:\n"),
        &format!("    = cutover/{ZONE}/lower-ttl: done "),
        &format!("    ~ cutover/{ZONE}/switch: waits until "),
        &format!("    ~ cutover/{ZONE}/propagation: after the step above\n"),
    ] {
        assert!(
            status.stdout.contains(line.as_str()),
            "no {line:?} in\n{}",
            status.stdout
        );
    }
    let json = run(&["status", "plan.yaml", "--json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let c = &doc["cutovers"][0];
    assert_eq!(c["domain"], ZONE);
    assert_eq!(c["provider"], "rfc2136");
    assert_eq!(c["steps"][0]["state"], "done", "{doc:#}");
    assert!(c["steps"][0]["at"].is_string(), "{doc:#}");
    assert_eq!(c["steps"][1]["id"], format!("cutover/{ZONE}/switch"));
    assert_eq!(c["steps"][1]["state"], "waiting", "{doc:#}");
    assert!(
        c["steps"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("old TTL"),
        "{doc:#}"
    );

    // A person changes the MX by hand before the switch: drift, not overwritten.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let loaded = mailshift::plan::load_file(&dir.path().join("plan.yaml")).unwrap();
    let opened = rt
        .block_on(zones::open(&loaded, &loaded.plan.domains[0]))
        .unwrap();
    let hand = RecordSet::new(
        ZONE,
        RecordType::Mx,
        1,
        vec!["5 mx.by-hand.example.net".into()],
    );
    rt.block_on(opened.zone.write(&hand)).unwrap();

    let w = Watch::start(dir.path(), "watch.log", &[]);
    let step = |s: &serde_json::Value, i: usize| {
        s["cutovers"][0]["steps"][i]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let s = w.wait_for("the switch stopped at the drift", 30, |s| {
        step(s, 1) == "drift"
    });
    assert!(
        s["cutovers"][0]["steps"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("mx.by-hand.example.net"),
        "{s:#}"
    );
    let (code, page) = w.get("/");
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!("<h2>Cutover of {ZONE}</h2>")),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "data-step=\"cutover/{ZONE}/switch\" data-state=\"drift\""
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("POST /api/ack/cutover/{ZONE}/switch")),
        "{page}"
    );
    // In a real browser too, after the page's script refreshed it (when Chromium is here:
    // `watch_cmd::status_page_in_headless_chromium_matches_the_api` says so loudly if not).
    if let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) {
        let profile = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                &format!("--user-data-dir={}", profile.path().display()),
                "--virtual-time-budget=4000",
                "--dump-dom",
                &format!("http://{}/", w.addr),
            ])
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            dom.contains("data-live=\"1\"")
                && dom.contains(&format!(
                    "data-step=\"cutover/{ZONE}/switch\" data-state=\"drift\""
                )),
            "{dom}"
        );
    }
    // `status` reads the state beside the running watch: a drift is a problem.
    let status = run(&["status", "plan.yaml"]);
    assert_eq!(status.code, 1, "{}", status.transcript());
    assert!(
        status.stdout.contains(&format!(
            "    ! cutover/{ZONE}/switch: drift awaiting ack since "
        )),
        "{}",
        status.stdout
    );
    assert_eq!(
        rt.block_on(opened.zone.read(ZONE, RecordType::Mx)).unwrap(),
        Some(hand),
        "the hand-made record is not overwritten"
    );

    let (code, _, body) = http_request(
        "POST",
        &w.addr,
        &format!("/api/ack/cutover/{ZONE}/switch"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("kept as they are"), "{body}");
    // The switch goes on from the kept record (the propagation check then asks again every
    // 30 s: the rest of the steps are `a_cutover_switches_...`'s).
    let s = w.wait_for("the switch ran after the ack", 30, |s| step(s, 1) == "done");
    assert!(s["cutovers"][0]["steps"][1]["detail"].is_null(), "{s:#}");
    assert!(
        matches!(step(&s, 2).as_str(), "waiting" | "done" | "next"),
        "{s:#}"
    );
    assert_eq!(
        rt.block_on(opened.zone.read(ZONE, RecordType::Mx))
            .unwrap()
            .map(|s| s.data),
        Some(vec!["10 mx1.new-host.example.net".to_string()])
    );
    let status = run(&["status", "plan.yaml"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
}
