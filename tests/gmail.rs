//! Gmail's label model, on the Gmail-shaped server (`provider_sim::gmail`: a proxy adding
//! X-GM-EXT-1 in front of a real Dovecot with a virtual All Mail): the server itself behaves
//! as Gmail is documented to; Gmail → Dovecot copies each message once per label and the
//! label-less ones once into the archive folder; Dovecot → Gmail makes one Gmail message per
//! source message, carrying all its labels; a kill -9 mid-copy to Gmail leaves nothing twice.

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;
use provider_sim::gmail::{ALL_MAIL, GmailSim, msgid_of};

const PW: &str = "Gm-Pa55word";

fn gmail_server(user: &str) -> (Dovecot, GmailSim) {
    let users = [(user, PW)];
    let dovecot = Dovecot::start(DovecotConfig {
        users: &users,
        gmail: true,
        ..DovecotConfig::default()
    });
    let sim = dovecot.gmail();
    (dovecot, sim)
}

fn message(n: u32, subject: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: {subject} {n}\r\n\
         Date: Fri, 01 Mar 2024 10:00:{:02} +0000\r\nMessage-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n",
        n % 60
    )
    .into_bytes()
}

fn login(sim: &GmailSim, user: &str) -> ImapClient {
    let mut c = ImapClient::connect(sim.port()).expect("connecting to the Gmail proxy");
    c.login(user, PW).expect("login through the Gmail proxy");
    c
}

/// The (X-GM-MSGID, X-GM-LABELS line) of each message of `folder`, as the proxy answers.
fn gm_fetch(c: &mut ImapClient, folder: &str) -> Vec<String> {
    c.examine(folder).unwrap();
    c.command("UID FETCH 1:* (UID X-GM-MSGID X-GM-LABELS)")
        .unwrap()
        .iter()
        .map(|r| r.line())
        .filter(|l| l.contains("FETCH"))
        .collect()
}

#[test]
fn the_gmail_shaped_server_keeps_one_message_per_message_id_and_reports_its_labels() {
    let (_dovecot, sim) = gmail_server("alice");
    let mut c = login(&sim, "alice");
    let caps = c.capabilities().unwrap();
    assert!(caps.iter().any(|c| c == "X-GM-EXT-1"), "{caps:?}");
    assert!(!caps.iter().any(|c| c == "MULTIAPPEND"), "{caps:?}");
    let list = c.list().unwrap();
    let all = list
        .iter()
        .find(|(_, _, name)| name == ALL_MAIL)
        .unwrap_or_else(|| panic!("no All Mail in {list:?}"));
    assert!(all.0.iter().any(|a| a == "\\All"), "{all:?}");
    assert!(
        list.iter()
            .any(|(a, _, n)| n == "[Gmail]/Sent Mail" && a.iter().any(|a| a == "\\Sent"))
    );
    assert!(
        !list.iter().any(|(_, _, n)| n.contains("_archived")),
        "{list:?}"
    );

    // One message appended into INBOX, then into a label: one Gmail message, two labels.
    c.create("Work").unwrap();
    let first = c
        .append("INBOX", &["\\Seen"], None, &message(1, "hello"))
        .unwrap();
    c.append("Work", &["\\Seen"], None, &message(1, "hello"))
        .unwrap();
    let msgs = sim.messages("alice").unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].labels, ["Work", "\\Inbox"]);
    assert_eq!(msgs[0].msgid, msgid_of("<m1@example.org>"));

    // Appended again into the same label: a new UID, the old one gone, still one message.
    let again = c
        .append("INBOX", &["\\Seen"], None, &message(1, "hello"))
        .unwrap();
    assert_ne!(first, again);
    let inbox = c.uid_fetch_all("INBOX").unwrap();
    assert_eq!(
        inbox.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [again.unwrap()]
    );
    assert_eq!(sim.messages("alice").unwrap().len(), 1);

    // Into All Mail: a known message changes nothing, a new one is archived (no label).
    c.append(ALL_MAIL, &[], None, &message(1, "hello")).unwrap();
    c.append(ALL_MAIL, &[], None, &message(2, "archived"))
        .unwrap();
    let msgs = sim.messages("alice").unwrap();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let archived = msgs
        .iter()
        .find(|m| m.message_id.as_deref() == Some("<m2@example.org>"))
        .unwrap();
    assert!(archived.labels.is_empty(), "{archived:?}");

    // X-GM-MSGID is the same in every folder; All Mail shows each message once.
    let id = msgid_of("<m1@example.org>").to_string();
    for folder in ["INBOX", "Work", ALL_MAIL] {
        let lines = gm_fetch(&mut c, folder);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("X-GM-MSGID {id}"))),
            "{folder}: {lines:?}"
        );
    }
    assert_eq!(gm_fetch(&mut c, ALL_MAIL).len(), 2);

    // Labels added and removed by STORE; starring is \Flagged.
    c.select("INBOX").unwrap();
    c.command(&format!(
        "UID STORE {} +X-GM-LABELS (Travel \\Starred)",
        again.unwrap()
    ))
    .unwrap();
    c.command(&format!("UID STORE {} -X-GM-LABELS (Work)", again.unwrap()))
        .unwrap();
    let m1 = sim
        .messages("alice")
        .unwrap()
        .into_iter()
        .find(|m| m.msgid == msgid_of("<m1@example.org>"))
        .unwrap();
    assert_eq!(m1.labels, ["Travel", "\\Inbox", "\\Starred"], "{m1:?}");
    assert_eq!(m1.copies, 2);

    // Over the set volume, APPEND and FETCH get Gmail's OVERQUOTA; below it they work again.
    sim.set_quota(Some(sim.volume()));
    let refused = c.command("UID FETCH 1:* (UID BODY.PEEK[])");
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("[OVERQUOTA]")),
        "{refused:?}"
    );
    sim.set_quota(None);
    c.command("UID FETCH 1:* (UID BODY.PEEK[])").unwrap();
    let log = sim.commands();
    assert!(
        log.iter().any(|l| l.line.contains("+X-GM-LABELS")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.line.contains(PW)),
        "password in the log"
    );
}

const SRC_PW: &str = "Src-Pa55word";

fn write_plan(dir: &std::path::Path, from: (&str, u16), to: (&str, u16), extra: &str) {
    let plan = format!(
        "version: 1
platforms:
  old: {{type: {}, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
  new: {{type: {}, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
accounts:
  - address: alice@example.com
    from: old
    to: new
    source: {{login: alice, password: {{env: SRC_PW}}}}
    destination: {{login: alice, password: {{env: DST_PW}}}}
{extra}",
        from.0, from.1, to.0, to.1
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

fn run(dir: &std::path::Path, args: &[&str], src_pw: &str, dst_pw: &str) -> crate::common::Output {
    crate::common::mailshift_env(dir, args, &[("SRC_PW", src_pw), ("DST_PW", dst_pw)])
}

/// The Message-ID of a raw message.
fn mid_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Every folder of a plain Dovecot: folder → (Message-ID, flagged), sorted.
fn dovecot_contents(
    server: &Dovecot,
    pw: &str,
) -> std::collections::BTreeMap<String, Vec<(String, bool)>> {
    let mut c = server.login("alice", pw);
    let mut out = std::collections::BTreeMap::new();
    for (attrs, _, name) in c.list().unwrap() {
        if attrs.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect")) {
            continue;
        }
        let mut msgs: Vec<(String, bool)> = c
            .uid_fetch_all(&name)
            .unwrap()
            .iter()
            .map(|m| (mid_of(&m.bytes), m.flags.iter().any(|f| f == "\\Flagged")))
            .collect();
        msgs.sort();
        if !msgs.is_empty() {
            out.insert(name, msgs);
        }
    }
    out
}

/// 60 Gmail messages: 30 % with two or three labels, 10 % archived (no label; one of them
/// only `\Important`, which is no folder), every seventh starred.
fn gmail_mailbox() -> Vec<provider_sim::gmail::Seed> {
    (1..=60u32)
        .map(|n| {
            let labels: &[&str] = match n % 10 {
                0 => &[],
                1 => &["\\Important"],
                2 => &["\\Inbox", "Work"],
                3 => &["\\Inbox", "Travel/2024", "\\Important"],
                4 => &["Work", "Family", "\\Sent"],
                5 | 6 => &["\\Inbox"],
                7 => &["\\Sent"],
                8 => &["Work"],
                _ => &["Travel/2024"],
            };
            provider_sim::gmail::Seed {
                raw: message(n, "gmail"),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                flags: if n % 7 == 0 {
                    vec!["\\Seen".into(), "\\Flagged".into()]
                } else {
                    vec!["\\Seen".into()]
                },
                internal_date: Some(format!("0{}-Mar-2024 10:00:00 +0000", 1 + n % 9)),
            }
        })
        .collect()
}

#[test]
fn from_gmail_each_label_once_and_archived_mail_once_into_the_archive_folder() {
    let (_gm_dovecot, sim) = gmail_server("alice");
    let seeds = gmail_mailbox();
    sim.seed("alice", &seeds).unwrap();
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", SRC_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), ("gmail", sim.port()), ("imap", dst.port()), "");
    let first = run(dir.path(), &["apply", "plan.yaml"], PW, SRC_PW);
    assert_eq!(first.code, 0, "{}", first.transcript());

    // What each destination folder must hold: the messages with that label, once each;
    // Archive the label-less (and only-Important) ones.
    fn folder_of(label: &str) -> Option<&str> {
        match label {
            "\\Inbox" => Some("INBOX"),
            "\\Sent" => Some("Sent"),
            "\\Important" => None,
            other => Some(other),
        }
    }
    let mut want: std::collections::BTreeMap<String, Vec<(String, bool)>> = Default::default();
    for s in &seeds {
        let flagged = s.flags.iter().any(|f| f == "\\Flagged");
        let folders: Vec<&str> = s.labels.iter().filter_map(|l| folder_of(l)).collect();
        let folders = if folders.is_empty() {
            vec!["Archive"]
        } else {
            folders
        };
        for f in folders {
            want.entry(f.to_string())
                .or_default()
                .push((mid_of(&s.raw), flagged));
        }
    }
    for v in want.values_mut() {
        v.sort();
    }
    assert_eq!(want.get("Archive").map(Vec::len), Some(12));
    let have = dovecot_contents(&dst, SRC_PW);
    assert_eq!(have, want, "{}", first.transcript());
    let text = first.transcript();
    assert!(text.contains("All Mail"), "{text}");

    // A second apply writes nothing; verify compares the same folders and passes.
    let before = dst.stored_messages("alice");
    let appends_before = sim.commands().len();
    let second = run(dir.path(), &["apply", "plan.yaml"], PW, SRC_PW);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert_eq!(dst.stored_messages("alice"), before);
    assert_eq!(dovecot_contents(&dst, SRC_PW), want);
    assert!(
        !sim.commands()[appends_before..]
            .iter()
            .any(|l| l.line.contains("BODY.PEEK[]") || l.line.contains("BODY[]")),
        "the second apply fetched bodies again"
    );
    let verify = run(dir.path(), &["verify", "plan.yaml", "--json"], PW, SRC_PW);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    let json: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let folders = &json["accounts"][0]["folders"];
    let archive = folders
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "Archive")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(archive["sources"], serde_json::json!([ALL_MAIL]));
    assert_eq!(archive["source_messages"], 12);
    assert!(
        !folders
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["folder"].as_str().unwrap().contains("[Gmail]")),
        "{json}"
    );
}

/// A Dovecot with folders INBOX, Work, Travel, Sent and Archive: 40 messages, a third of
/// them in two folders (the same bytes: a message with two labels once it is in Gmail), a
/// pair of identical messages in Work (Gmail keeps one), the Archive ones in no other folder.
fn imap_mailbox(
    server: &Dovecot,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut c = server.login("alice", SRC_PW);
    for f in ["Work", "Travel", "Sent", "Archive"] {
        c.create(f).unwrap();
    }
    // Message-ID → its labels once in Gmail.
    let mut want: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for n in 1..=40u32 {
        let folders: &[(&str, &str)] = match n % 6 {
            0 => &[("INBOX", "\\Inbox"), ("Work", "Work")],
            1 => &[("Travel", "Travel"), ("Sent", "\\Sent")],
            2 => &[("Archive", "")],
            3 => &[("Work", "Work")],
            _ => &[("INBOX", "\\Inbox")],
        };
        let flags: &[&str] = if n % 5 == 0 {
            &["\\Seen", "\\Flagged"]
        } else {
            &["\\Seen"]
        };
        let bytes = message(n, "imap");
        let labels = want.entry(mid_of(&bytes)).or_default();
        for (folder, label) in folders {
            c.append(folder, flags, Some("02-Mar-2024 09:00:00 +0000"), &bytes)
                .unwrap();
            if !label.is_empty() {
                labels.insert(label.to_string());
            }
        }
        if flags.contains(&"\\Flagged") {
            labels.insert("\\Starred".to_string());
        }
    }
    let twin = message(3, "imap");
    c.append(
        "Work",
        &["\\Seen"],
        Some("02-Mar-2024 09:00:00 +0000"),
        &twin,
    )
    .unwrap();
    want
}

/// Gmail's messages as Message-ID → labels, each checked to be once in each label folder.
fn gmail_contents(
    sim: &GmailSim,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let msgs = sim.messages("alice").unwrap();
    let mut out = std::collections::BTreeMap::new();
    for m in msgs {
        let folders = m.labels.iter().filter(|l| *l != "\\Starred").count();
        assert_eq!(
            m.copies,
            folders.max(1),
            "{m:?}: a label folder holds it twice (or it is lost)"
        );
        let id = m
            .message_id
            .clone()
            .expect("test messages have Message-IDs");
        assert!(out.insert(id, m.labels.into_iter().collect()).is_none());
    }
    out
}

#[test]
fn to_gmail_each_message_once_with_all_its_labels() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", SRC_PW)],
        ..DovecotConfig::default()
    });
    let want = imap_mailbox(&src);
    let (_gm_dovecot, sim) = gmail_server("alice");
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), ("imap", src.port()), ("gmail", sim.port()), "");
    let first = run(dir.path(), &["apply", "plan.yaml"], SRC_PW, PW);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert_eq!(gmail_contents(&sim), want, "{}", first.transcript());

    let seen = sim.commands().len();
    let second = run(dir.path(), &["apply", "plan.yaml"], SRC_PW, PW);
    assert_eq!(second.code, 0, "{}", second.transcript());
    let later = &sim.commands()[seen..];
    assert!(
        !later.iter().any(|l| {
            let verb = l
                .line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_ascii_uppercase();
            ["APPEND", "STORE", "COPY", "MOVE", "EXPUNGE", "CREATE"].contains(&verb.as_str())
        }),
        "the second apply wrote: {later:?}"
    );
    assert_eq!(gmail_contents(&sim), want);
    let verify = run(dir.path(), &["verify", "plan.yaml", "--json"], SRC_PW, PW);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    let json: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let work = json["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "Work")
        .unwrap_or_else(|| panic!("{json}"))
        .clone();
    assert_eq!(work["merged"], 1, "{work}");
    assert_eq!(work["missing"]["count"], 0, "{work}");
}

#[test]
fn kill_9_during_a_copy_to_gmail_then_apply_leaves_every_message_once() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", SRC_PW)],
        ..DovecotConfig::default()
    });
    let mut c = src.login("alice", SRC_PW);
    c.create("Work").unwrap();
    let mut want: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for n in 1..=240u32 {
        let mut bytes = message(n, "kill");
        // Some bulk, so a run is cut mid-way.
        bytes.extend(std::iter::repeat_n(b'x', 4_000 + (n as usize * 97) % 8_000));
        bytes.extend_from_slice(b"\r\n");
        let labels = want.entry(mid_of(&bytes)).or_default();
        let folders: &[(&str, &str)] = if n % 3 == 0 {
            &[("INBOX", "\\Inbox"), ("Work", "Work")]
        } else {
            &[("INBOX", "\\Inbox")]
        };
        for (folder, label) in folders {
            c.append(folder, &["\\Seen"], None, &bytes).unwrap();
            labels.insert(label.to_string());
        }
    }
    c.logout().unwrap();
    let (_gm_dovecot, sim) = gmail_server("alice");
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), ("imap", src.port()), ("gmail", sim.port()), "");
    let mut kills = 0;
    let mut seed: u64 = 0x9a11_5eed;
    for round in 0..5 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["apply", "plan.yaml"])
            .current_dir(dir.path())
            .env("SRC_PW", SRC_PW)
            .env("DST_PW", PW)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once some APPENDs went through (the first round), then at random moments.
        let appends = |sim: &GmailSim| {
            sim.commands()
                .iter()
                .filter(|l| l.line.contains(" APPEND "))
                .count()
        };
        let start = appends(&sim);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let wanted = if round == 0 {
            20
        } else {
            1 + (seed >> 33) as usize % 60
        };
        while appends(&sim) < start + wanted
            && std::time::Instant::now() < deadline
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no run was killed: the test did not test anything"
    );
    let last = run(dir.path(), &["apply", "plan.yaml"], SRC_PW, PW);
    assert_eq!(last.code, 0, "{}", last.transcript());
    // Counted by X-GM-MSGID: one Gmail message per source message, one copy per label.
    assert_eq!(gmail_contents(&sim), want, "after {kills} kills");
    let verify = run(dir.path(), &["verify", "plan.yaml"], SRC_PW, PW);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
}
