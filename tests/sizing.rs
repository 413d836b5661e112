//! Pre-flight sizing on real Dovecot servers (`plan --refresh`, issue 13 item 5): the messages
//! and bytes to move match a seeded mailbox, whether or not the source advertises STATUS=SIZE;
//! an incremental run moves only what the last copy did not; the destination's quota comes
//! from GETQUOTAROOT and a quota too small is a warning naming the account, the numbers and
//! the fixes; `--json` has the same; a source that refuses the login fails its account only,
//! without its password anywhere.

use std::path::Path;
use std::process::Command;

use crate::support::dovecot::{Dovecot, DovecotConfig};

const OLD_PW: &str = "old-S1zing-pw";
const NEW_PW: &str = "new-S1zing-pw";
/// Messages of 20,000 bytes: 16 of them (320 KB) are enough for the copy to be measured.
const SIZE: usize = 20_000;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

fn mailshift(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("OLD_PW", OLD_PW)
        .env("NEW_PW", NEW_PW)
        .output()
        .expect("run mailshift");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Dovecot's quota plugins with a storage limit, for the destination.
fn quota(limit: &str) -> String {
    format!(
        "mail_fsync = never
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage={limit}
}}
"
    )
}

/// `accounts` (login, source password env var) from `src_port` to `dst_port`.
fn write_plan(dir: &Path, src_port: u16, dst_port: u16, accounts: &[(&str, &str)]) {
    let mut plan = format!(
        "version: 1\nplatforms:\n  \
         old: {{type: imap, imap: {{host: 127.0.0.1, port: {src_port}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {dst_port}, security: none}}}}\n\
         accounts:\n"
    );
    for (login, env) in accounts {
        plan.push_str(&format!(
            "  - address: {login}@example.com\n    from: old\n    to: new\n    \
             source: {{login: {login}, password: {{env: {env}}}}}\n    \
             destination: {{login: {login}, password: {{env: NEW_PW}}}}\n"
        ));
    }
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

/// A message of `size` bytes exactly (CRLF lines), different for every `n`.
fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: sizing {n}\r\n\
         Message-ID: <s{n}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        let line = (size - m.len()).saturating_sub(2).clamp(1, 72);
        m.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, line));
        m.extend_from_slice(b"\r\n");
    }
    assert_eq!(m.len(), size);
    m
}

/// Appends `count` messages to each folder, numbered from `first`.
fn seed(server: &Dovecot, user: &str, folders: &[(&str, usize)], first: usize) {
    let mut c = server.login(user, OLD_PW);
    let mut n = first;
    for (folder, count) in folders {
        if *folder != "INBOX" {
            let _ = c.create(folder);
        }
        for _ in 0..*count {
            c.append(folder, &[], None, &message(n, SIZE)).unwrap();
            n += 1;
        }
    }
    c.logout().unwrap();
}

fn source(capabilities_override: Option<&str>) -> Dovecot {
    Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW), ("bob", OLD_PW)],
        capabilities_override,
        extra: "mail_fsync = never\n",
        ..DovecotConfig::default()
    })
}

fn destination(extra: &str) -> Dovecot {
    Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW), ("bob", NEW_PW)],
        extra,
        ..DovecotConfig::default()
    })
}

/// Alice's sizing record in `plan --refresh --json`.
fn sizing_of(run: &Run, account: &str) -> serde_json::Value {
    run.json()["sizing"]
        .as_array()
        .unwrap_or_else(|| panic!("no sizing: {}", run.text()))
        .iter()
        .find(|a| a["account"] == account)
        .unwrap_or_else(|| panic!("no sizing of {account}: {}", run.text()))
        .clone()
}

#[test]
fn sizes_match_a_seeded_mailbox_with_and_without_status_size() {
    let with = source(None);
    // Dovecot 2.3 advertises STATUS=SIZE: the sizing must not trip on it (the parser under
    // async-imap rejects the SIZE item, so mailshift fetches RFC822.SIZE instead).
    let caps = with.login("alice", OLD_PW).capabilities().unwrap();
    assert!(caps.iter().any(|c| c == "STATUS=SIZE"), "{caps:?}");
    let without = source(Some(
        "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE UIDPLUS MOVE",
    ));
    let dst = destination(&quota("10M"));
    for src in [&with, &without] {
        seed(src, "alice", &[("INBOX", 10), ("Archive", 6)], 0);
        let dir = tempfile::tempdir().unwrap();
        write_plan(dir.path(), src.port(), dst.port(), &[("alice", "OLD_PW")]);

        let json = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
        assert_eq!(json.code, 0, "{}", json.text());
        let a = sizing_of(&json, "alice@example.com");
        let size = &a["size"];
        assert_eq!(size["items"], 16, "{a}");
        assert_eq!(size["bytes"], 16 * SIZE, "{a}");
        assert_eq!(size["to_move_items"], 16, "{a}");
        assert_eq!(size["to_move_bytes"], 16 * SIZE, "{a}");
        assert_eq!(size["unit"], "message");
        assert_eq!(size["dest_quota"]["limit"], 10 * 1024 * 1024, "{a}");
        assert_eq!(size["dest_quota"]["used"], 0, "{a}");
        assert_eq!(a["quota"]["fits"], true, "{a}");
        assert_eq!(a["estimate"]["measured"], false, "{a}");
        assert_eq!(a["estimate"]["rate"], 2_000_000, "{a}");
        assert_eq!(a["resource"], "account/alice@example.com/mail");

        let human = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh"]);
        assert_eq!(human.code, 0, "{}", human.text());
        assert!(
            human.stdout.contains(
                "      to move: 16 messages (320.0 KB) of 16 messages (320.0 KB) on the source [UID FETCH RFC822.SIZE]\n"
            ) && human.stdout.contains("(no measurement yet; assuming 2.0 MB/s)")
                && human.stdout.contains(": fits\n"),
            "{}",
            human.text()
        );
    }
}

#[test]
fn an_incremental_copy_moves_only_what_the_last_one_did_not_at_its_measured_rate() {
    let src = source(None);
    let dst = destination(&quota("10M"));
    seed(&src, "alice", &[("INBOX", 10), ("Archive", 6)], 0);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), src.port(), dst.port(), &[("alice", "OLD_PW")]);
    let first = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.text());
    // As many again arrive on the source: half the mailbox is copied, half is to move.
    seed(&src, "alice", &[("INBOX", 10), ("Archive", 6)], 100);

    let json = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
    let a = sizing_of(&json, "alice@example.com");
    assert_eq!(a["size"]["items"], 32, "{a}");
    assert_eq!(a["size"]["to_move_items"], 16, "{a}");
    assert_eq!(a["size"]["to_move_bytes"], 16 * SIZE, "{a}");
    // What the first copy put there, as the destination's quota counts it (units of 1 KiB).
    let used = a["size"]["dest_quota"]["used"].as_u64().unwrap();
    assert!(used.abs_diff(16 * SIZE as u64) < 2048, "{a}");
    assert_eq!(a["quota"]["used"], used, "{a}");
    // The first copy moved 320 KB: its rate is the estimate's, named after the source server.
    assert_eq!(a["estimate"]["measured"], true, "{a}");
    let server = format!("imap://127.0.0.1:{}", src.port());
    assert!(
        a["estimate"]["basis"]
            .as_str()
            .unwrap()
            .contains(&format!("measured on {server} (320.0 KB in ")),
        "{a}"
    );
    let reader =
        mailshift::state::StateReader::open(&dir.path().join(".mailshift/state.redb")).unwrap();
    let t = reader.throughput(&server).unwrap().expect("a measurement");
    assert_eq!(t.bytes, 16 * SIZE as u64);
    assert_eq!(a["estimate"]["rate"], t.rate(), "{a}");
}

#[test]
fn a_quota_too_small_is_a_warning_with_the_numbers_and_the_fixes() {
    let src = source(None);
    let dst = destination(&quota("200K"));
    seed(&src, "alice", &[("INBOX", 10), ("Archive", 6)], 0);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), src.port(), dst.port(), &[("alice", "OLD_PW")]);

    let human = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh"]);
    assert_eq!(human.code, 0, "a warning, not an error: {}", human.text());
    assert!(
        human.stdout.contains(
            "warning: alice@example.com will not fit: 320.0 KB to move + 0 B already there is \
             more than 204.8 KB (the destination's quota (GETQUOTAROOT INBOX)); raise the \
             account's quota on the destination, or leave folders out"
        ) && human.stdout.contains("max_message_size")
            && human.stdout.contains(": DOES NOT FIT\n"),
        "{}",
        human.text()
    );
    let json = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
    let a = sizing_of(&json, "alice@example.com");
    assert_eq!(a["quota"]["fits"], false, "{a}");
    assert_eq!(a["quota"]["limit"], 200 * 1024, "{a}");
    assert!(
        a["quota"]["warning"]
            .as_str()
            .unwrap()
            .contains("will not fit")
    );
}

#[test]
fn a_source_that_refuses_the_login_fails_its_account_only() {
    let src = source(None);
    let dst = destination(&quota("10M"));
    seed(&src, "alice", &[("INBOX", 3)], 0);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        src.port(),
        dst.port(),
        &[("alice", "OLD_PW"), ("bob", "NEW_PW")],
    );
    let json = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
    assert_eq!(json.code, 0, "{}", json.text());
    assert_eq!(sizing_of(&json, "alice@example.com")["size"]["items"], 3);
    let bob = sizing_of(&json, "bob@example.com");
    assert!(bob.get("size").is_none(), "{bob}");
    assert!(bob["error"].as_str().unwrap().contains("source"), "{bob}");
    let human = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh"]);
    assert!(
        human.stdout.contains(
            "  bob@example.com  (account/bob@example.com/mail)\n      could not be sized: "
        ),
        "{}",
        human.text()
    );
    // `--target` sizes only that account: bob's server is not even asked. Dovecot logs a
    // refused login late (its auth failure delay, 2 s, then the disconnect): count once the
    // log has settled, so a late line of the runs above is not taken for a new attempt.
    let count = || src.log().matches("user=<bob>").count();
    let mut logins = count();
    let mut settled = std::time::Instant::now();
    let deadline = settled + std::time::Duration::from_secs(15);
    while settled.elapsed() < std::time::Duration::from_secs(3)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = count();
        if now != logins {
            (logins, settled) = (now, std::time::Instant::now());
        }
    }
    assert!(logins > 0, "bob's refused logins are logged: {}", src.log());
    let alice = mailshift(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--refresh",
            "--json",
            "--target",
            "alice@example.com",
        ],
    );
    let sized = alice.json()["sizing"].as_array().unwrap().clone();
    assert_eq!(sized.len(), 1, "{}", alice.text());
    // Given the same time to show up, a login of this run would be logged by now.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(count(), logins);
    for run in [&json, &human] {
        assert!(
            !run.stdout.contains(NEW_PW) && !run.stderr.contains(NEW_PW),
            "a password in the output: {}",
            run.text()
        );
    }
}

#[test]
fn status_shows_an_eta_while_a_copy_is_in_progress_and_none_once_it_is_done() {
    use crate::support::faultproxy::{Fault, FaultProxy};
    let src = source(None);
    let dst = destination("mail_fsync = never\n");
    let folders: Vec<(String, usize)> = (0..8).map(|i| (format!("F{i}"), 4)).collect();
    let folders: Vec<(&str, usize)> = folders.iter().map(|(f, n)| (f.as_str(), *n)).collect();
    seed(&src, "alice", &folders, 0);
    // A slow link to the destination: the copy records folder after folder for a few seconds.
    let proxy = FaultProxy::to_port(dst.port());
    proxy.set(Fault::Delay { per_chunk_ms: 200 });
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), src.port(), proxy.port(), &[("alice", "OLD_PW")]);
    let mut apply = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "plan.yaml"])
        .current_dir(dir.path())
        .env("OLD_PW", OLD_PW)
        .env("NEW_PW", NEW_PW)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let line = loop {
        let status = mailshift(dir.path(), &["status", "plan.yaml"]);
        if let Some(l) = status.stdout.lines().find(|l| l.contains("ETA about")) {
            break l.trim().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline && apply.try_wait().unwrap().is_none(),
            "no ETA while the copy ran: {}",
            status.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // "this run: N of about 32 messages copied (last batch …); ETA about T at its rate so far"
    let copied: u64 = line
        .strip_prefix("this run: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        (1..32).contains(&copied)
            && line.contains(" of about 32 messages copied (last batch 20")
            && line.contains(" UTC); ETA about ")
            && line.ends_with(" at its rate so far"),
        "{line}"
    );
    proxy.clear();
    let code = apply.wait().unwrap().code();
    assert_eq!(code, Some(0));
    let done = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert!(
        done.stdout
            .contains("    mail                           done, sync point 1")
            && !done.stdout.contains("ETA"),
        "{}",
        done.text()
    );
}

const AK: &str = "sizingApplicationKey";
const AS: &str = "sizingApplicationSecret0123456789";
const CK: &str = "sizingConsumerKey0123456789abcdef";

/// An OVHcloud simulator with the test keys and these services (YAML).
fn sim(services: &str) -> ovh_sim::SimHandle {
    let world = format!(
        "applications: [{{key: {AK}, secret: {AS}}}]\n\
         consumer_keys: [{{key: {CK}, application: {AK}}}]\ntask_delay_ms: 20\n{services}"
    );
    ovh_sim::SimHandle::spawn(ovh_sim::world::World::from_yaml(&world).expect("test world"))
        .expect("simulator")
}

/// `plan --refresh --json` of alice from `src` onto the OVHcloud platform `dest` (YAML).
fn plan_onto(sim: &ovh_sim::SimHandle, src: &Dovecot, dest: &str, login: &str) -> Run {
    let plan = format!(
        "version: 1\nproviders:\n  ovh: {{type: ovh, endpoint: \"{}\", \
         application_key: {{env: OVH_AK}}, application_secret: {{env: OVH_AS}}, \
         consumer_key: {{env: OVH_CK}}, poll_interval: 20ms}}\nplatforms:\n  \
         old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n  \
         new: {dest}\n\
         accounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    \
         source: {{login: alice, password: {{env: OLD_PW}}}}\n    \
         destination: {{{login}password: {{env: NEW_PW}}}}\n",
        sim.base_url(),
        src.port()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["plan", "plan.yaml", "--refresh", "--json"])
        .current_dir(dir.path())
        .envs([
            ("OLD_PW", OLD_PW),
            ("NEW_PW", NEW_PW),
            ("OVH_AK", AK),
            ("OVH_AS", AS),
            ("OVH_CK", CK),
        ])
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{}", run.text());
    run
}

/// A copy onto an MX Plan account that `apply` has yet to create: its source is sized (no
/// destination to read yet) and checked against the offer's 5 GB per account.
#[test]
fn a_copy_waiting_for_its_account_is_sized_from_its_source_against_the_offer() {
    let src = source(None);
    seed(&src, "alice", &[("INBOX", 3), ("Archive", 2)], 0);
    let sim = sim("mxplan:\n  - service: mxplan-ab12345-1\n    \
         domains: [{name: example.com, type: nonAuthoritative, mx_relay: ssl0.ovh.net}]\n    \
         placeholders: 2\n");
    let run = plan_onto(
        &sim,
        &src,
        "{type: ovh-mx-plan, provider: ovh, service: mxplan-ab12345-1, \
         imap: {host: 127.0.0.1, port: 9, security: none}}",
        "",
    );
    let a = sizing_of(&run, "alice@example.com");
    assert_eq!(a["size"]["to_move_items"], 5, "{a}");
    assert_eq!(a["size"]["to_move_bytes"], 5 * SIZE, "{a}");
    assert!(a["size"].get("dest_quota").is_none(), "{a}");
    assert_eq!(a["quota"]["limit"], 5_000_000_000u64, "{a}");
    assert_eq!(a["quota"]["source"], "MX Plan's limit per account", "{a}");
    assert_eq!(a["quota"]["fits"], true, "{a}");
    assert!(a["quota"].get("used").is_none(), "{a}");
}

/// An Exchange account's quota is its object's in the API (`quota`, `currentUsage`) when its
/// IMAP server does not say one: one nearly full is warned about, with a bigger offer as a fix.
#[test]
fn an_exchange_account_is_checked_against_its_quota_in_the_api() {
    let src = source(None);
    seed(&src, "alice", &[("INBOX", 16)], 0);
    let dst = destination("mail_fsync = never\n");
    let sim = sim("exchange:\n  - organization: hosted-ab12345-1\n    \
         service: hosted-ab12345-1\n    offer: hosted\n    \
         domains: [{name: example.com, type: authoritative}]\n    \
         accounts:\n      - {email: alice@example.com, password: pw, current_usage: 49999900000}\n");
    let run = plan_onto(
        &sim,
        &src,
        &format!(
            "{{type: ovh-exchange, provider: ovh, organization: hosted-ab12345-1, \
             service: hosted-ab12345-1, imap: {{host: 127.0.0.1, port: {}, security: none}}}}",
            dst.port()
        ),
        "login: alice, ",
    );
    let a = sizing_of(&run, "alice@example.com");
    assert_eq!(a["size"]["to_move_bytes"], 16 * SIZE, "{a}");
    let q = &a["quota"];
    assert_eq!(
        q["source"], "the account's quota in the platform's API",
        "{a}"
    );
    assert_eq!(q["limit"], 50_000_000_000u64, "{a}");
    assert_eq!(q["used"], 49_999_900_000u64, "{a}");
    assert_eq!(q["fits"], false, "{a}");
    assert!(
        q["warning"]
            .as_str()
            .unwrap()
            .contains("give the account a bigger Exchange offer"),
        "{a}"
    );
}

/// A POP3 source is sized by UIDL and LIST: its one maildrop (INBOX), less what the state
/// recorded as copied.
#[test]
fn a_pop3_source_is_sized_from_its_listing_less_what_was_copied() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        tls: true,
        pop3: true,
        extra: "mail_fsync = never\n",
        ..DovecotConfig::default()
    });
    let dst = destination(&quota("10M"));
    // Archive is not in the maildrop: POP3 sees INBOX only.
    seed(&src, "alice", &[("INBOX", 4), ("Archive", 2)], 0);
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1\nplatforms:\n  \
         old: {{type: imap, pop3: {{host: 127.0.0.1, port: {}, security: tls, ca_file: {}}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n\
         accounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    \
         source: {{login: alice, password: {{env: OLD_PW}}}}\n    \
         destination: {{login: alice, password: {{env: NEW_PW}}}}\n",
        src.pop3s_port(),
        src.ca_pem_path().display(),
        dst.port()
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let first = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
    let a = sizing_of(&first, "alice@example.com");
    assert_eq!(a["size"]["method"], "POP3 UIDL and LIST", "{a}");
    assert_eq!(a["size"]["items"], 4, "{a}");
    assert_eq!(a["size"]["bytes"], 4 * SIZE, "{a}");
    assert_eq!(a["size"]["to_move_items"], 4, "{a}");
    assert_eq!(a["size"]["dest_quota"]["limit"], 10 * 1024 * 1024, "{a}");

    let apply = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    // The run said up front what it would copy: what `status` computes its ETA from.
    let reader =
        mailshift::state::StateReader::open(&dir.path().join(".mailshift/state.redb")).unwrap();
    let run = reader
        .copy_run("account/alice@example.com/mail")
        .unwrap()
        .expect("the run's start is recorded");
    assert_eq!((run.sync_point, run.to_copy), (1, 4));
    drop(reader);
    seed(&src, "alice", &[("INBOX", 2)], 100);
    let next = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
    let a = sizing_of(&next, "alice@example.com");
    assert_eq!(a["size"]["items"], 6, "{a}");
    assert_eq!(a["size"]["to_move_items"], 2, "{a}");
    assert_eq!(a["size"]["to_move_bytes"], 2 * SIZE, "{a}");
}

/// From Gmail, a message is counted once: in its label's folder, or in All Mail when it has
/// no label that is a folder (what the copy takes from All Mail), not in both.
#[test]
fn a_gmail_source_counts_each_message_once() {
    let gm = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        gmail: true,
        ..DovecotConfig::default()
    });
    let sim = gm.gmail();
    let labels: [&[&str]; 6] = [
        &["\\Inbox"],
        &["\\Inbox"],
        &["\\Inbox"],
        &["Work"],
        &[],
        &[],
    ];
    let seeds: Vec<provider_sim::gmail::Seed> = labels
        .iter()
        .enumerate()
        .map(|(n, l)| provider_sim::gmail::Seed {
            raw: message(n, SIZE),
            labels: l.iter().map(|l| l.to_string()).collect(),
            flags: Vec::new(),
            internal_date: None,
        })
        .collect();
    sim.seed("alice", &seeds).unwrap();
    let dst = destination(&quota("10M"));
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1\nplatforms:\n  \
         old: {{type: gmail, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n\
         accounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    \
         source: {{login: alice, password: {{env: OLD_PW}}}}\n    \
         destination: {{login: alice, password: {{env: NEW_PW}}}}\n",
        sim.port(),
        dst.port()
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let json = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh", "--json"]);
    let a = sizing_of(&json, "alice@example.com");
    assert_eq!(a["size"]["items"], 6, "{a}");
    assert_eq!(a["size"]["to_move_bytes"], 6 * SIZE, "{a}");
}
