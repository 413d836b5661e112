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
    assert!(!list.iter().any(|(_, _, n)| n.contains("_archived")), "{list:?}");

    // One message appended into INBOX, then into a label: one Gmail message, two labels.
    c.create("Work").unwrap();
    let first = c.append("INBOX", &["\\Seen"], None, &message(1, "hello")).unwrap();
    c.append("Work", &["\\Seen"], None, &message(1, "hello"))
        .unwrap();
    let msgs = sim.messages("alice").unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].labels, ["Work", "\\Inbox"]);
    assert_eq!(msgs[0].msgid, msgid_of("<m1@example.org>"));

    // Appended again into the same label: a new UID, the old one gone, still one message.
    let again = c.append("INBOX", &["\\Seen"], None, &message(1, "hello")).unwrap();
    assert_ne!(first, again);
    let inbox = c.uid_fetch_all("INBOX").unwrap();
    assert_eq!(inbox.iter().map(|m| m.uid).collect::<Vec<_>>(), [again.unwrap()]);
    assert_eq!(sim.messages("alice").unwrap().len(), 1);

    // Into All Mail: a known message changes nothing, a new one is archived (no label).
    c.append(ALL_MAIL, &[], None, &message(1, "hello")).unwrap();
    c.append(ALL_MAIL, &[], None, &message(2, "archived")).unwrap();
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
            lines.iter().any(|l| l.contains(&format!("X-GM-MSGID {id}"))),
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
    assert!(!log.iter().any(|l| l.line.contains(PW)), "password in the log");
}
