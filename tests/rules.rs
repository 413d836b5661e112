//! Inbox rules through `mailshift apply` between two Dovecot servers' `managesieved`
//! (`content: [rules]`): the source's active Sieve script lands on the destination as the
//! script `mailshift`, made active, and a message delivered afterwards is filed as the rule
//! says; a second apply writes nothing and a changed source rewrites; a destination's own
//! active script keeps running beside the source's rules (a combined script with `include`);
//! and a part of the source's script outside the rule model is shown with its text, the step
//! failing as a conflict rather than dropping it until `mailshift ack` says it was carried by
//! hand. And the Graph message rules `rules::graph` writes, posted to the Graph simulator,
//! follow Microsoft's published metadata and read back as the same rules.
//!
//! Exchange (the EWS simulator) and Microsoft 365 (the Graph simulator) as ends: Exchange →
//! Sieve and Sieve → Exchange (the destination's own rule kept first, the folder a rule files
//! into created, what the other side cannot hold a manual step, a second apply and one after
//! the state was deleted writing nothing, a rule the source dropped removed), Microsoft 365 →
//! Exchange, Exchange → Microsoft 365 and Sieve → Microsoft 365 (folders created by path),
//! folder paths in the Sieve server's own separator, kill -9 while rules are written; neither
//! simulator sees a request outside its published definitions.
//!
//! Legacy MX Plan filters (the OVHcloud simulator) as an end: MX Plan → Sieve (a filter the
//! model cannot hold shown as a manual step, the rest delivering as it did) and Sieve → MX
//! Plan (after the destination's own filter, a rule filters cannot hold shown); a second
//! apply writes nothing (the simulator's request log), and no call is outside the schema.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailshift::transfer::imap::session::{Auth, Endpoint, Secret, Security, Target};
use mailshift::transfer::imap::sieve::ManageSieve;

use crate::support::dovecot::{Dovecot, DovecotConfig};

const USER: &str = "alice";
const PW_OLD: &str = "old-Sieve-Pa55";
const PW_NEW: &str = "new-Sieve-Pa55";

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
}

fn mailshift(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("PW_OLD", PW_OLD)
        .env("PW_NEW", PW_NEW)
        .output()
        .expect("run mailshift");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn server(pw: &str) -> Dovecot {
    Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[(USER, pw)],
        tls: true,
        managesieve: true,
        ..DovecotConfig::default()
    })
}

fn platform(d: &Dovecot) -> String {
    // `sieve:` names only its port: the host and the CA file are the IMAP endpoint's,
    // STARTTLS is the default.
    format!(
        "{{type: imap, imap: {{host: 127.0.0.1, port: {}, security: starttls, ca_file: {:?}}}, sieve: {{port: {}}}}}",
        d.port(),
        d.ca_pem_path().display().to_string(),
        d.managesieve_port()
    )
}

fn write_plan(dir: &Path, old: &Dovecot, new: &Dovecot) {
    let plan = format!(
        "version: 1\nplatforms:\n  old: {}\n  new: {}\naccounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    content: [rules]\n    source: {{login: alice, password: {{env: PW_OLD}}}}\n    destination: {{login: alice, password: {{env: PW_NEW}}}}\n",
        platform(old),
        platform(new)
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

fn target(d: &Dovecot, pw: &str) -> Target {
    Target::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port: d.managesieve_port(),
            security: Security::Starttls,
            ca_file: Some(d.ca_pem_path()),
            insecure_skip_verify: false,
            timeout: Duration::from_secs(30),
        },
        Auth::Password {
            login: USER.into(),
            password: Secret::new(pw),
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Stores `script` as `name` and makes it the active one.
fn activate(d: &Dovecot, pw: &str, name: &str, script: &str) {
    runtime().block_on(async {
        let mut s = ManageSieve::connect(&target(d, pw)).await.unwrap();
        s.put_script(name, script).await.unwrap();
        s.set_active(Some(name)).await.unwrap();
        s.logout().await;
    });
}

/// Every script (name, active, text).
fn scripts(d: &Dovecot, pw: &str) -> Vec<(String, bool, String)> {
    runtime().block_on(async {
        let mut s = ManageSieve::connect(&target(d, pw)).await.unwrap();
        let mut out = Vec::new();
        for l in s.list_scripts().await.unwrap() {
            let text = s.get_script(&l.name).await.unwrap();
            out.push((l.name, l.active, text));
        }
        out.sort();
        s.logout().await;
        out
    })
}

fn mail(subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Billing <billing@example.com>\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{id}@example.com>\r\n\r\nhello\r\n"
    )
    .into_bytes()
}

/// The Message-IDs in a folder.
fn ids(d: &Dovecot, pw: &str, folder: &str) -> Vec<String> {
    let mut imap = d.login(USER, pw);
    let out = imap
        .uid_fetch_all(folder)
        .unwrap()
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(&m.bytes).into_owned();
            let at = text.find("Message-ID: <")? + "Message-ID: <".len();
            Some(text[at..at + text[at..].find('@')?].to_string())
        })
        .collect();
    imap.logout().unwrap();
    out
}

const SOURCE: &str = "require [\"fileinto\", \"imap4flags\"];\n\
    # rule: Invoices\n\
    if header :contains \"subject\" \"invoice\" {\n  addflag \"\\\\Seen\";\n  fileinto \"Compta/Factures\";\n  stop;\n}\n";

#[test]
fn rules_land_active_file_new_mail_and_a_second_apply_writes_nothing() {
    let (old, new) = (server(PW_OLD), server(PW_NEW));
    activate(&old, PW_OLD, "roundcube", SOURCE);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &old, &new);

    // `plan` reads the source's rules to say what the step will write.
    let run = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh"]);
    assert!(
        run.stdout.contains("account/alice@example.com/rules")
            && run
                .stdout
                .contains("1 rule on the source to write as the destination's Sieve script"),
        "{}",
        run.text()
    );

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("1 rule written"), "{}", run.text());
    let on_new = scripts(&new, PW_NEW);
    assert_eq!(on_new.len(), 1, "{on_new:?}");
    let (name, active, text) = &on_new[0];
    assert_eq!((name.as_str(), *active), ("mailshift", true));
    assert!(text.contains("# rule: Invoices\n"), "{text}");

    // The destination files what it receives now as the source did.
    let mut imap = new.login(USER, PW_NEW);
    imap.create("Compta/Factures").unwrap();
    imap.logout().unwrap();
    new.deliver(USER, &mail("Your invoice", "inv1"));
    new.deliver(USER, &mail("Hello", "hello1"));
    assert_eq!(ids(&new, PW_NEW, "Compta/Factures"), ["inv1"]);
    assert_eq!(ids(&new, PW_NEW, "INBOX"), ["hello1"]);

    // Again: nothing to write.
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("1 rule already on the destination"),
        "{}",
        run.text()
    );
    assert_eq!(scripts(&new, PW_NEW), on_new);

    let run = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout
            .contains("ok       alice@example.com rules: 1 on the source"),
        "{}",
        run.text()
    );

    // A changed source: `verify` sees it, the next apply carries it.
    activate(
        &old,
        PW_OLD,
        "roundcube",
        &SOURCE.replace("\"invoice\"", "\"facture\""),
    );
    let run = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("MISMATCH alice@example.com rules")
            && run.stdout.contains(
                "missing on the destination: rule \"Invoices\": if subject contains \"facture\""
            )
            && run.stdout.contains(
                "only on the destination: rule \"Invoices\": if subject contains \"invoice\""
            ),
        "{}",
        run.text()
    );
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let after = scripts(&new, PW_NEW);
    assert!(
        after[0].2.contains("\"facture\""),
        "{after:?}\n{}",
        run.text()
    );
}

#[test]
fn the_destinations_own_rules_keep_running_and_what_cannot_be_carried_is_shown() {
    let (old, new) = (server(PW_OLD), server(PW_NEW));
    let vacation = "vacation :days 3 \"I am away\";";
    activate(
        &old,
        PW_OLD,
        "main",
        &format!(
            "require [\"vacation\", \"fileinto\", \"imap4flags\"];\n{vacation}\n{}",
            &SOURCE[SOURCE.find('\n').unwrap() + 1..]
        ),
    );
    let own = "require [\"fileinto\"];\nif header :contains \"subject\" \"news\" { fileinto \"News\"; }\n";
    activate(&new, PW_NEW, "own", own);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &old, &new);

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_ne!(run.code, 0, "{}", run.text());
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains(vacation),
        "the rule's text is shown: {}",
        run.text()
    );
    assert!(
        all.contains("a top-level `vacation` outside any rule"),
        "with the reason: {}",
        run.text()
    );
    assert!(
        all.contains("mailshift ack PLAN account/alice@example.com/rules"),
        "with what to do once it is done: {}",
        run.text()
    );
    // Until a person says it is done, every apply shows it again.
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_ne!(run.code, 0, "{}", run.text());
    let run = mailshift(
        dir.path(),
        &["ack", "plan.yaml", "account/alice@example.com/rules"],
    );
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains(vacation), "{}", run.text());
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("1 rule carried by hand (acknowledged)"),
        "{}",
        run.text()
    );

    let on_new = scripts(&new, PW_NEW);
    let names: Vec<(&str, bool)> = on_new.iter().map(|(n, a, _)| (n.as_str(), *a)).collect();
    assert_eq!(
        names,
        [
            ("mailshift", false),
            ("mailshift-combined", true),
            ("own", false)
        ],
        "{on_new:?}"
    );
    assert_eq!(on_new[2].2, own, "the destination's script is untouched");

    let mut imap = new.login(USER, PW_NEW);
    imap.create("Compta/Factures").unwrap();
    imap.create("News").unwrap();
    imap.logout().unwrap();
    new.deliver(USER, &mail("Your invoice", "inv1"));
    new.deliver(USER, &mail("Weekly news", "news1"));
    assert_eq!(ids(&new, PW_NEW, "Compta/Factures"), ["inv1"]);
    assert_eq!(ids(&new, PW_NEW, "News"), ["news1"]);
}

#[test]
fn graph_message_rules_follow_the_published_metadata_and_read_back() {
    use mailshift::rules::graph::{from_graph, to_graph};
    use mailshift::rules::{Action, Condition, Importance, Rule};

    const MB: &str = "ada@example.com";
    const TOKEN: &str = "token-ada";
    let rules = vec![
        Rule {
            name: "Factures".into(),
            enabled: true,
            conditions: vec![
                Condition::HeadersContain("X-Spam: yes".into()),
                Condition::RecipientContains("compta".into()),
                Condition::From("billing@".into()),
                Condition::SubjectContains("facture".into()),
                Condition::FromAddress("boss@example.com".into()),
                Condition::SentTo("team@example.com".into()),
                Condition::SizeOver(2048),
                Condition::SizeUnder(1 << 20),
            ],
            match_all: true,
            actions: vec![
                Action::MarkRead,
                Action::MarkImportance(Importance::High),
                Action::MoveTo("Archive".into()),
                Action::Redirect("a@example.net".into()),
                Action::Forward("b@example.net".into()),
                Action::Stop,
            ],
        },
        Rule {
            name: "Any of two".into(),
            enabled: false,
            conditions: vec![
                Condition::SubjectContains("x".into()),
                Condition::SubjectContains("y".into()),
            ],
            match_all: false,
            actions: vec![Action::Delete, Action::Discard],
        },
    ];
    runtime().block_on(async {
        let sim = graph_sim::GraphSim::start().await.unwrap();
        sim.add_mailbox(MB, TOKEN);
        let (values, left) = to_graph(&rules, &|path| {
            (path == "Archive").then(|| "AQMkArchive".to_string())
        });
        assert_eq!(left, vec![]);
        // Plain HTTP to loopback: the TLS set-up is never used, but reqwest wants one.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap();
        let url = format!("{}/users/{MB}/mailFolders/inbox/messageRules", sim.url());
        for v in &values {
            let r = client
                .post(&url)
                .bearer_auth(TOKEN)
                .json(v)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert_eq!(status, 201, "{}", r.text().await.unwrap());
        }
        let listed: serde_json::Value = client
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(sim.violations(), vec![]);
        let back = from_graph(listed["value"].as_array().unwrap(), &|id| {
            (id == "AQMkArchive").then(|| "Archive".to_string())
        });
        assert_eq!(back.untranslatable, vec![]);
        assert_eq!(back.rules, rules);
    });
}

// ---- Exchange (EWS simulator) and Microsoft 365 (Graph simulator) ends ----

mod groupware {
    use std::path::Path;

    use ews_sim::EwsSim;
    use mailshift::rules::ews::{FolderRef, from_ews, to_ews, update_inbox_rules};
    use mailshift::rules::sieve::from_sieve;
    use mailshift::rules::{Action, Condition, Importance, Rule};
    use mailshift_ews::{Auth, EwsConfig, EwsStore, Secret};
    use serde_json::json;

    use super::{PW_NEW, PW_OLD, USER, activate, mailshift, platform, runtime, scripts, server};

    const ALICE: &str = "alice@example.com";

    fn rule(name: &str, conditions: Vec<Condition>, actions: Vec<Action>) -> Rule {
        Rule {
            name: name.into(),
            enabled: true,
            conditions,
            match_all: true,
            actions,
        }
    }

    fn exchange(name: &str, sim: &EwsSim) -> String {
        format!(
            "  {name}: {{type: exchange, imap: {{host: 127.0.0.1, security: none}}, ews: {{url: \"{}\"}}}}\n",
            sim.url()
        )
    }

    fn write_plan(dir: &Path, platforms: &str, source: &str, destination: &str) {
        std::fs::write(
            dir.join("plan.yaml"),
            format!(
                "version: 1\nplatforms:\n{platforms}accounts:\n  - address: {ALICE}\n    from: old\n    to: new\n    content: [rules]\n    source: {source}\n    destination: {destination}\n"
            ),
        )
        .unwrap();
    }

    /// Writes `rules` into an Exchange mailbox as Outlook would have (one UpdateInboxRules),
    /// `folders` giving the id of each folder a rule files into.
    fn seed(sim: &EwsSim, password: &str, rules: &[Rule], folders: &[(&str, String)]) {
        let (xml, left) = to_ews(rules, &|p| {
            folders
                .iter()
                .find(|(path, _)| *path == p)
                .map(|(_, id)| FolderRef::Id(id.clone()))
        });
        assert_eq!(left, vec![]);
        runtime().block_on(async {
            let store = EwsStore::connect(EwsConfig::new(
                sim.url(),
                ALICE,
                Auth::Basic {
                    login: ALICE.into(),
                    password: Secret::new(password),
                },
            ))
            .await
            .unwrap();
            store
                .update_inbox_rules(&update_inbox_rules(&[], &xml).unwrap())
                .await
                .unwrap();
        });
    }

    /// The mailbox's rules in the order they run, folder ids read as names.
    fn exchange_rules(sim: &EwsSim) -> Vec<Rule> {
        let folders = sim.folders(ALICE);
        let read = from_ews(&sim.rules(ALICE).join(""), &|r| match r {
            FolderRef::Id(id) => folders
                .iter()
                .find(|(i, _, _)| i == id)
                .map(|(_, name, _)| name.clone()),
            FolderRef::Distinguished(d) => Some(d.clone()),
        });
        assert_eq!(read.untranslatable, vec![]);
        read.rules
    }

    fn clean(sim: &EwsSim) {
        assert_eq!(sim.violations(), Vec::<String>::new());
    }

    #[test]
    fn exchange_rules_land_as_sieve_and_what_sieve_cannot_hold_is_a_manual_step() {
        let sim = EwsSim::spawn().unwrap();
        sim.add_mailbox(ALICE, PW_OLD);
        let archive = sim
            .create_folder(ALICE, "msgfolderroot", "Archive", "IPF.Note")
            .unwrap();
        let source = vec![
            rule(
                "Bills",
                vec![
                    Condition::From("billing@".into()),
                    Condition::SubjectContains("invoice".into()),
                ],
                vec![
                    Action::MarkRead,
                    Action::MoveTo("Archive".into()),
                    Action::Stop,
                ],
            ),
            rule(
                "Big",
                vec![Condition::SizeOver(1 << 20)],
                vec![Action::Redirect("big@example.net".into())],
            ),
            rule(
                "All",
                vec![Condition::SentTo("all@example.com".into())],
                vec![Action::Discard],
            ),
            rule(
                "Spam",
                vec![Condition::HeadersContain("X-Spam: yes".into())],
                vec![Action::Delete],
            ),
            rule(
                "Team",
                vec![Condition::RecipientContains("team@".into())],
                vec![Action::Forward("team@example.net".into())],
            ),
        ];
        seed(&sim, PW_OLD, &source, &[("Archive", archive)]);
        let new = server(PW_NEW);
        let dir = tempfile::tempdir().unwrap();
        write_plan(
            dir.path(),
            &format!("{}  new: {}\n", exchange("old", &sim), platform(&new)),
            "{password: {env: PW_OLD}}",
            "{login: alice, password: {env: PW_NEW}}",
        );

        let run = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh"]);
        assert!(
            run.stdout
                .contains("3 rules on the source to write as the destination's Sieve script"),
            "{}",
            run.text()
        );
        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert_ne!(run.code, 0, "{}", run.text());
        let all = format!("{}{}", run.stdout, run.stderr);
        for shown in ["rule \"Spam\"", "rule \"Team\"", "mailshift ack PLAN"] {
            assert!(all.contains(shown), "{shown}: {}", run.text());
        }
        let on_new = scripts(&new, PW_NEW);
        assert_eq!(on_new.len(), 1, "{on_new:?}");
        assert!(on_new[0].1, "the script runs");
        let names: Vec<String> = from_sieve(&on_new[0].2)
            .rules
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["Bills", "Big", "All"]);
        assert_eq!(from_sieve(&on_new[0].2).rules[..3], source[..3]);

        let run = mailshift(
            dir.path(),
            &["ack", "plan.yaml", "account/alice@example.com/rules"],
        );
        assert_eq!(run.code, 0, "{}", run.text());
        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());
        assert!(
            run.stdout.contains("3 rules already on the destination"),
            "{}",
            run.text()
        );
        assert_eq!(
            scripts(&new, PW_NEW),
            on_new,
            "a second apply writes nothing"
        );
        let run = mailshift(dir.path(), &["verify", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());
        assert_eq!(sim.request_count("UpdateInboxRules"), 1, "only the seeding");
        clean(&sim);
        let _ = USER;
    }

    #[test]
    fn sieve_rules_land_on_exchange_after_its_own_once_even_without_a_state() {
        let old = server(PW_OLD);
        activate(
            &old,
            PW_OLD,
            "main",
            "require [\"fileinto\", \"imap4flags\", \"copy\"];\n\
             # rule: Invoices\n\
             if header :contains \"subject\" \"invoice\" {\n  addflag \"\\\\Seen\";\n  fileinto \"Factures\";\n  stop;\n}\n\
             # rule: Boss\n\
             if address :all :is \"from\" \"boss@example.com\" {\n  redirect :copy \"me@example.net\";\n}\n\
             # rule: Big\n\
             if size :over 1048576 {\n  discard;\n}\n\
             # rule: Starred\n\
             if address :all :contains \"to\" \"vip@\" {\n  addflag \"\\\\Flagged\";\n}\n",
        );
        let sim = EwsSim::spawn().unwrap();
        sim.add_mailbox(ALICE, PW_NEW);
        let own = rule(
            "Own",
            vec![Condition::SubjectContains("news".into())],
            vec![Action::MarkImportance(Importance::Low)],
        );
        seed(&sim, PW_NEW, std::slice::from_ref(&own), &[]);
        let dir = tempfile::tempdir().unwrap();
        write_plan(
            dir.path(),
            &format!("  old: {}\n{}", platform(&old), exchange("new", &sim)),
            "{login: alice, password: {env: PW_OLD}}",
            "{password: {env: PW_NEW}}",
        );

        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert_ne!(
            run.code,
            0,
            "the flag rule is a manual step: {}",
            run.text()
        );
        assert!(
            format!("{}{}", run.stdout, run.stderr).contains("rule \"Starred\""),
            "{}",
            run.text()
        );
        let held = exchange_rules(&sim);
        let names: Vec<&str> = held.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Own", "Invoices", "Boss", "Big"], "{held:?}");
        assert_eq!(held[0], own);
        assert_eq!(
            held[1].actions,
            [
                Action::MarkRead,
                Action::MoveTo("Factures".into()),
                Action::Stop
            ]
        );
        assert!(
            sim.folders(ALICE).iter().any(|(_, n, _)| n == "Factures"),
            "the folder a rule files into is created"
        );
        assert_eq!(sim.request_count("UpdateInboxRules"), 2);

        let run = mailshift(
            dir.path(),
            &["ack", "plan.yaml", "account/alice@example.com/rules"],
        );
        assert_eq!(run.code, 0, "{}", run.text());
        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());
        assert_eq!(
            sim.request_count("UpdateInboxRules"),
            2,
            "a second apply writes nothing"
        );
        let run = mailshift(dir.path(), &["verify", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());

        // The state gone: the rules there are found equal, none is added again.
        std::fs::remove_file(dir.path().join(".mailshift/state.redb")).unwrap();
        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert!(
            run.stdout.contains("3 rules already on the destination"),
            "{}",
            run.text()
        );
        assert_eq!(sim.request_count("UpdateInboxRules"), 2, "{}", run.text());
        assert_eq!(exchange_rules(&sim).len(), 4);

        // A rule the source drops is removed; the destination's own stays first.
        activate(
            &old,
            PW_OLD,
            "main",
            "require [\"fileinto\", \"imap4flags\"];\n\
             # rule: Invoices\n\
             if header :contains \"subject\" \"invoice\" {\n  addflag \"\\\\Seen\";\n  fileinto \"Factures\";\n  stop;\n}\n",
        );
        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());
        let names: Vec<String> = exchange_rules(&sim).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["Own", "Invoices"]);
        clean(&sim);
    }

    #[test]
    fn microsoft_365_message_rules_land_on_exchange_once() {
        const TOKEN: &str = "graph-t0ken";
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let graph = rt.block_on(graph_sim::GraphSim::start()).unwrap();
        graph.add_mailbox(ALICE, TOKEN);
        for rule in [
            json!({"displayName": "Newsletters", "sequence": 1, "isEnabled": true,
                   "conditions": {"subjectContains": ["newsletter"]},
                   "actions": {"markAsRead": true, "stopProcessingRules": true}}),
            json!({"displayName": "Boss", "sequence": 2, "isEnabled": false,
                   "conditions": {"fromAddresses": [{"emailAddress": {"address": "boss@example.com"}}]},
                   "actions": {"markImportance": "high"}}),
        ] {
            graph
                .insert(ALICE, graph_sim::Collection::Rules, rule)
                .unwrap();
        }
        let sim = EwsSim::spawn().unwrap();
        sim.add_mailbox(ALICE, PW_NEW);
        // The mailbox was used with Outlook: Exchange takes rules only once that blob is gone.
        sim.set_outlook_rule_blob(ALICE, true);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("plan.yaml"),
            format!(
                "version: 1\nplatforms:\n  old: {{type: microsoft-365, graph: {{url: \"{}\"}}}}\n{}accounts:\n  - address: {ALICE}\n    from: old\n    to: new\n    content: [rules]\n    source: {{oauth2_token: {{env: GRAPH_TOKEN}}}}\n    destination: {{password: {{env: PW_NEW}}}}\n",
                graph.url(),
                exchange("new", &sim)
            ),
        )
        .unwrap();
        let run = |args: &[&str]| {
            crate::common::mailshift_env(
                dir.path(),
                args,
                &[("GRAPH_TOKEN", TOKEN), ("PW_NEW", PW_NEW)],
            )
        };
        let first = run(&["apply", "plan.yaml"]);
        assert_eq!(first.code, 0, "{}", first.transcript());
        assert!(
            first
                .stdout
                .contains("Exchange removed the mailbox's Outlook client-side rules"),
            "people are told: {}",
            first.transcript()
        );
        let held = exchange_rules(&sim);
        let names: Vec<(&str, bool)> = held.iter().map(|r| (r.name.as_str(), r.enabled)).collect();
        assert_eq!(names, [("Newsletters", true), ("Boss", false)]);
        assert_eq!(
            held[1].conditions,
            [Condition::FromAddress("boss@example.com".into())]
        );
        let second = run(&["apply", "plan.yaml"]);
        assert_eq!(second.code, 0, "{}", second.transcript());
        assert_eq!(
            sim.request_count("UpdateInboxRules"),
            1,
            "a second apply writes nothing"
        );
        let verify = run(&["verify", "plan.yaml"]);
        assert_eq!(verify.code, 0, "{}", verify.transcript());
        assert_eq!(graph.violations(), vec![]);
        assert_eq!(graph.requests_without_immutable_ids(), Vec::<String>::new());
        clean(&sim);
    }
    #[test]
    fn exchange_rules_land_on_microsoft_365_after_its_own_once() {
        const TOKEN: &str = "graph-t0ken";
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let graph = rt.block_on(graph_sim::GraphSim::start()).unwrap();
        graph.add_mailbox(ALICE, TOKEN);
        graph
            .insert(
                ALICE,
                graph_sim::Collection::Rules,
                json!({"displayName": "Own", "sequence": 1, "isEnabled": true,
                       "conditions": {"subjectContains": ["news"]},
                       "actions": {"markImportance": "low"}}),
            )
            .unwrap();
        let sim = EwsSim::spawn().unwrap();
        sim.add_mailbox(ALICE, PW_OLD);
        let source = vec![
            rule(
                "Bills",
                vec![
                    Condition::From("billing@".into()),
                    Condition::SubjectContains("invoice".into()),
                ],
                vec![Action::MarkRead, Action::Stop],
            ),
            rule(
                "Big",
                vec![Condition::SizeOver(1 << 20)],
                vec![Action::Redirect("big@example.net".into())],
            ),
            rule(
                "Spam",
                vec![Condition::HeadersContain("X-Spam: yes".into())],
                vec![Action::Delete],
            ),
        ];
        seed(&sim, PW_OLD, &source, &[]);
        let dir = tempfile::tempdir().unwrap();
        write_plan(
            dir.path(),
            &format!(
                "{}  new: {{type: microsoft-365, graph: {{url: \"{}\"}}}}\n",
                exchange("old", &sim),
                graph.url()
            ),
            "{password: {env: PW_OLD}}",
            "{oauth2_token: {env: GRAPH_TOKEN}}",
        );
        let run = |args: &[&str]| {
            crate::common::mailshift_env(
                dir.path(),
                args,
                &[("GRAPH_TOKEN", TOKEN), ("PW_OLD", PW_OLD)],
            )
        };
        let names = || {
            let mut rules = graph.list(ALICE, graph_sim::Collection::Rules).unwrap();
            rules.sort_by_key(|r| r["sequence"].as_i64());
            rules
                .iter()
                .map(|r| r["displayName"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let rule_writes = || {
            graph
                .requests()
                .iter()
                .filter(|r| r.is_write() && r.path.contains("messageRules"))
                .count()
        };
        let first = run(&["apply", "plan.yaml"]);
        assert_eq!(first.code, 0, "{}", first.transcript());
        assert_eq!(names(), ["Own", "Bills", "Big", "Spam"]);
        assert_eq!(rule_writes(), 3);

        let second = run(&["apply", "plan.yaml"]);
        assert_eq!(second.code, 0, "{}", second.transcript());
        std::fs::remove_file(dir.path().join(".mailshift/state.redb")).unwrap();
        let third = run(&["apply", "plan.yaml"]);
        assert_eq!(third.code, 0, "{}", third.transcript());
        assert_eq!(
            rule_writes(),
            3,
            "nothing written again, with or without the state"
        );
        let verify = run(&["verify", "plan.yaml"]);
        assert_eq!(verify.code, 0, "{}", verify.transcript());
        assert_eq!(names(), ["Own", "Bills", "Big", "Spam"]);
        assert_eq!(graph.violations(), vec![]);
        assert_eq!(graph.requests_without_immutable_ids(), Vec::<String>::new());
        clean(&sim);
    }
    #[test]
    fn exchange_folders_become_the_sieve_servers_mailbox_names() {
        let sim = EwsSim::spawn().unwrap();
        sim.add_mailbox(ALICE, PW_OLD);
        let inbox = sim
            .folders(ALICE)
            .into_iter()
            .find(|(_, name, _)| name == "Inbox")
            .unwrap()
            .0;
        let bills = sim
            .create_folder(ALICE, &inbox, "Bills", "IPF.Note")
            .unwrap();
        seed(
            &sim,
            PW_OLD,
            &[rule(
                "Bills",
                vec![Condition::From("billing@".into())],
                vec![Action::MoveTo("INBOX/Bills".into())],
            )],
            &[("INBOX/Bills", bills)],
        );
        // A server whose hierarchy separator is `.`, as many Dovecot set-ups have.
        let new = crate::support::dovecot::Dovecot::start(crate::support::dovecot::DovecotConfig {
            separator: '.',
            users: &[(USER, PW_NEW)],
            tls: true,
            managesieve: true,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        write_plan(
            dir.path(),
            &format!("{}  new: {}\n", exchange("old", &sim), platform(&new)),
            "{password: {env: PW_OLD}}",
            "{login: alice, password: {env: PW_NEW}}",
        );
        let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());
        let on_new = scripts(&new, PW_NEW);
        assert!(
            on_new[0].2.contains("fileinto \"INBOX.Bills\""),
            "{on_new:?}"
        );
        let run = mailshift(dir.path(), &["verify", "plan.yaml"]);
        assert_eq!(run.code, 0, "{}", run.text());
        clean(&sim);
    }
    #[test]
    fn kill_9_while_rules_are_written_to_microsoft_365_leaves_each_once() {
        const TOKEN: &str = "graph-t0ken";
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let graph = rt.block_on(graph_sim::GraphSim::start()).unwrap();
        graph.add_mailbox(ALICE, TOKEN);
        let sim = EwsSim::spawn().unwrap();
        sim.add_mailbox(ALICE, PW_OLD);
        // Graph takes one request per rule: enough of them that a run is cut in the middle.
        let source: Vec<Rule> = (0..40)
            .map(|n| {
                rule(
                    &format!("R{n:02}"),
                    vec![Condition::SubjectContains(format!("s{n}"))],
                    vec![Action::MarkRead],
                )
            })
            .collect();
        seed(&sim, PW_OLD, &source, &[]);
        let dir = tempfile::tempdir().unwrap();
        write_plan(
            dir.path(),
            &format!(
                "{}  new: {{type: microsoft-365, graph: {{url: \"{}\"}}}}\n",
                exchange("old", &sim),
                graph.url()
            ),
            "{password: {env: PW_OLD}}",
            "{oauth2_token: {env: GRAPH_TOKEN}}",
        );
        let posts = || {
            graph
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.contains("messageRules"))
                .count()
        };
        let mut kills = 0;
        for step in [3, 11, 7] {
            // Killed once the run has created `step` rules more: in the middle of the
            // writes whatever this machine's speed, never by the clock.
            let target = posts() + step;
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
                .args(["apply", "plan.yaml"])
                .current_dir(dir.path())
                .env("PW_OLD", PW_OLD)
                .env("GRAPH_TOKEN", TOKEN)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            while child.try_wait().unwrap().is_none() {
                if posts() >= target {
                    child.kill().unwrap(); // SIGKILL
                    kills += 1;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            child.wait().unwrap();
        }
        assert!(
            kills > 0,
            "no run was killed: the test did not test anything"
        );
        let last = crate::common::mailshift_env(
            dir.path(),
            &["apply", "plan.yaml"],
            &[("GRAPH_TOKEN", TOKEN), ("PW_OLD", PW_OLD)],
        );
        assert_eq!(last.code, 0, "{}", last.transcript());
        let mut rules = graph.list(ALICE, graph_sim::Collection::Rules).unwrap();
        rules.sort_by_key(|r| r["sequence"].as_i64());
        let names: Vec<String> = rules
            .iter()
            .map(|r| r["displayName"].as_str().unwrap().to_string())
            .collect();
        let expected: Vec<String> = source.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, expected, "after {kills} kills");
        let before = posts();
        let again = crate::common::mailshift_env(
            dir.path(),
            &["apply", "plan.yaml"],
            &[("GRAPH_TOKEN", TOKEN), ("PW_OLD", PW_OLD)],
        );
        assert_eq!(again.code, 0, "{}", again.transcript());
        assert_eq!(posts(), before, "a second apply writes nothing");
        assert_eq!(graph.violations(), vec![]);
        clean(&sim);
    }
    #[test]
    fn sieve_rules_land_on_microsoft_365_with_the_folders_they_file_into() {
        const TOKEN: &str = "graph-t0ken";
        let old = server(PW_OLD);
        activate(
            &old,
            PW_OLD,
            "main",
            "require [\"fileinto\", \"imap4flags\"];\n\
             # rule: Invoices\n\
             if header :contains \"subject\" \"invoice\" {\n  addflag \"\\\\Seen\";\n  fileinto \"Compta/Factures\";\n  stop;\n}\n\
             # rule: Lists\n\
             if header :contains \"subject\" \"[list]\" {\n  fileinto \"INBOX/Lists\";\n}\n",
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let graph = rt.block_on(graph_sim::GraphSim::start()).unwrap();
        graph.add_mailbox(ALICE, TOKEN);
        let dir = tempfile::tempdir().unwrap();
        write_plan(
            dir.path(),
            &format!(
                "  old: {}\n  new: {{type: microsoft-365, graph: {{url: \"{}\"}}}}\n",
                platform(&old),
                graph.url()
            ),
            "{login: alice, password: {env: PW_OLD}}",
            "{oauth2_token: {env: GRAPH_TOKEN}}",
        );
        let run = |args: &[&str]| {
            crate::common::mailshift_env(
                dir.path(),
                args,
                &[("GRAPH_TOKEN", TOKEN), ("PW_OLD", PW_OLD)],
            )
        };
        let first = run(&["apply", "plan.yaml"]);
        assert_eq!(first.code, 0, "{}", first.transcript());
        let folders = graph.mail_folders(ALICE);
        let id_of = |path: &str| {
            folders
                .iter()
                .find(|(_, p)| p == path)
                .map(|(id, _)| id.clone())
                .unwrap_or_else(|| panic!("no folder {path}: {folders:?}"))
        };
        let mut rules = graph.list(ALICE, graph_sim::Collection::Rules).unwrap();
        rules.sort_by_key(|r| r["sequence"].as_i64());
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(
            rules[0]["actions"]["moveToFolder"].as_str(),
            Some(id_of("Compta/Factures").as_str())
        );
        assert_eq!(
            rules[1]["actions"]["moveToFolder"].as_str(),
            Some(id_of("Inbox/Lists").as_str()),
            "INBOX/ on the Sieve side is the inbox's folder"
        );
        let writes = || graph.requests().iter().filter(|r| r.is_write()).count();
        let before = writes();
        let second = run(&["apply", "plan.yaml"]);
        assert_eq!(second.code, 0, "{}", second.transcript());
        assert_eq!(writes(), before, "a second apply writes nothing");
        let verify = run(&["verify", "plan.yaml"]);
        assert_eq!(verify.code, 0, "{}", verify.transcript());
        assert_eq!(graph.violations(), vec![]);
        assert_eq!(graph.requests_without_immutable_ids(), Vec::<String>::new());
    }
}

// ---------------------------------------------------------------------------------------
// Legacy MX Plan filters (the OVHcloud simulator) ↔ Sieve (Dovecot's managesieved).

const MX_AK: &str = "rulesApplicationKey";
const MX_AS: &str = "rulesApplicationSecret0123456789";
const MX_CK: &str = "rulesConsumerKey0123456789abcdef";

/// A simulator with the legacy MX Plan domain `legacy.example`, account `gina` holding
/// `filters` (YAML list), and `hank`; their logins on `backend` when given (a destination's
/// password is checked by logging in).
fn mx_sim(filters: &str, backend: Option<&Dovecot>) -> ovh_sim::SimHandle {
    let dovecot = backend
        .map(|d| {
            format!(
                "    dovecot: {{users_file: {}/users, mail_root: {}/mail}}\n",
                d.dir().display(),
                d.dir().display()
            )
        })
        .unwrap_or_default();
    let world = format!(
        "applications: [{{key: {MX_AK}, secret: {MX_AS}}}]\n\
         consumer_keys: [{{key: {MX_CK}, application: {MX_AK}}}]\n\
         task_delay_ms: 20\n\
         legacy_domains:\n  - domain: legacy.example\n    accounts:\n      - {{account_name: gina, password: pw, filters: {filters}}}\n      - {{account_name: hank, password: pw}}\n{dovecot}"
    );
    ovh_sim::SimHandle::spawn(ovh_sim::World::from_yaml(&world).unwrap()).unwrap()
}

/// A plan moving gina's rules between the MX Plan and the Dovecot `d` (alice there), in the
/// direction `from_mx` says; the API keys are files beside it.
fn write_mx_plan(
    dir: &Path,
    sim: &ovh_sim::SimHandle,
    d: &Dovecot,
    from_mx: bool,
    mx_imap: Option<&Dovecot>,
) {
    for (file, value) in [("ak", MX_AK), ("as", MX_AS), ("ck", MX_CK), ("pw", "pw")] {
        std::fs::write(dir.join(file), value).unwrap();
    }
    let imap = mx_imap
        .map(|m| {
            let p = platform(m);
            p[p.find("imap: ").unwrap()..p.find(", sieve:").unwrap()].to_string()
        })
        .map(|i| format!(", {i}"))
        .unwrap_or_default();
    let mx = format!(
        "{{type: ovh-mx-plan, provider: ovh, service: legacy.example, mx_plan_api: legacy{imap}}}"
    );
    let (from, to, source, dest) = if from_mx {
        (
            "mx",
            "dove",
            "{password: {file: pw}}",
            "{login: alice, password: {env: PW_NEW}}",
        )
    } else {
        (
            "dove",
            "mx",
            "{login: alice, password: {env: PW_OLD}}",
            "{password: {file: pw}}",
        )
    };
    let plan = format!(
        "version: 1\nproviders:\n  ovh: {{type: ovh, endpoint: \"{}\", application_key: {{file: ak}}, \
         application_secret: {{file: as}}, consumer_key: {{file: ck}}, poll_interval: 20ms}}\n\
         platforms:\n  mx: {mx}\n  dove: {}\naccounts:\n  - address: gina@legacy.example\n    from: {from}\n    to: {to}\n    content: [rules]\n    source: {source}\n    destination: {dest}\n",
        sim.base_url(),
        platform(d),
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

#[test]
fn mx_plan_filters_land_in_sieve_and_what_sieve_cannot_take_is_shown() {
    let sim = mx_sim(
        "[{name: Spam, priority: 1, action: delete, rules: [{header: Subject, value: \"[SPAM]\"}]}, \
          {name: Boss, priority: 2, action: redirect, action_param: me@elsewhere.example, rules: [{header: From, operand: noContains, value: boss@}]}]",
        None,
    );
    let new = server(PW_NEW);
    let dir = tempfile::tempdir().unwrap();
    write_mx_plan(dir.path(), &sim, &new, true, None);

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    let all = format!("{}{}", run.stdout, run.stderr);
    // The filter the model cannot hold is a manual step, with its text and reason.
    assert_ne!(run.code, 0, "{}", run.text());
    assert!(
        all.contains("filter \\\"Boss\\\"") || all.contains("filter \"Boss\""),
        "{}",
        run.text()
    );
    assert!(all.contains("negative test"), "{}", run.text());
    let on_new = scripts(&new, PW_NEW);
    assert_eq!(on_new.len(), 1, "{on_new:?}");
    assert!(on_new[0].2.contains("# rule: Spam"), "{on_new:?}");

    // It runs: a spam message is gone, another one stays.
    new.deliver(USER, &mail("[SPAM] cheap", "spam1"));
    new.deliver(USER, &mail("Hello", "hello1"));
    assert_eq!(ids(&new, PW_NEW, "INBOX"), ["hello1"]);

    let writes = sim.writes().len();
    let run = mailshift(
        dir.path(),
        &["ack", "plan.yaml", "account/gina@legacy.example/rules"],
    );
    assert_eq!(run.code, 0, "{}", run.text());
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("1 rule already on the destination"),
        "{}",
        run.text()
    );
    assert_eq!(scripts(&new, PW_NEW), on_new);
    assert_eq!(sim.writes().len(), writes, "reading filters writes nothing");
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

#[test]
fn sieve_rules_become_mx_plan_filters_once() {
    let old = server(PW_OLD);
    let mxd = server("unused");
    let sim = mx_sim(
        "[{name: Own, priority: 4, action: accept, rules: [{header: To, value: orders@}]}]",
        Some(&mxd),
    );
    activate(
        &old,
        PW_OLD,
        "main",
        "require [\"fileinto\", \"copy\"];\n\
         # rule: Spam\nif header :contains \"subject\" \"[SPAM]\" {\n  discard;\n  stop;\n}\n\
         # rule: Away\nif address :contains \"from\" \"boss@\" {\n  redirect :copy \"me@elsewhere.example\";\n  discard;\n  stop;\n}\n\
         # rule: Invoices\nif header :contains \"subject\" \"invoice\" {\n  fileinto \"Compta\";\n}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    write_mx_plan(dir.path(), &sim, &old, false, Some(&mxd));

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert_ne!(run.code, 0, "{}", run.text());
    assert!(
        all.contains("Invoices") && all.contains("file into a folder"),
        "{}",
        run.text()
    );
    let world = sim.world();
    let gina = &world.legacy_domains[0].accounts[0];
    let filters: Vec<(&str, i64, &str)> = gina
        .filters
        .iter()
        .map(|f| (f.name.as_str(), f.priority, f.action.as_str()))
        .collect();
    // The destination's own filter first, then the source's, in order.
    assert_eq!(
        filters,
        [
            ("Own", 4, "accept"),
            ("Spam", 5, "delete"),
            ("Away", 6, "redirect")
        ],
        "{gina:#?}"
    );

    let writes = sim.writes().len();
    let run = mailshift(
        dir.path(),
        &["ack", "plan.yaml", "account/gina@legacy.example/rules"],
    );
    assert_eq!(run.code, 0, "{}", run.text());
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(sim.writes().len(), writes, "a second apply writes nothing");
    let run = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

/// A run killed after creating a filter with its first rule, before its second: the next
/// apply completes that filter (no conflict with it as if it were the account's own, no
/// second one), and the one after writes nothing.
#[test]
fn a_filter_cut_short_by_a_kill_is_completed_by_the_next_apply() {
    let old = server(PW_OLD);
    let mxd = server("unused");
    let sim = mx_sim(
        "[{name: Away, priority: 9, action: redirect, action_param: me@elsewhere.example, rules: [{header: From, value: boss@}]}]",
        Some(&mxd),
    );
    activate(
        &old,
        PW_OLD,
        "main",
        "require [\"copy\"];\n\
         # rule: Away\nif allof (address :contains \"from\" \"boss@\", header :contains \"subject\" \"urgent\") {\n  redirect :copy \"me@elsewhere.example\";\n  discard;\n  stop;\n}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    write_mx_plan(dir.path(), &sim, &old, false, Some(&mxd));

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let world = sim.world();
    let filters = &world.legacy_domains[0].accounts[0].filters;
    assert_eq!(filters.len(), 1, "{filters:#?}");
    let rules: Vec<(&str, &str)> = filters[0]
        .rules
        .iter()
        .map(|r| (r.header.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(rules, [("From", "boss@"), ("Subject", "urgent")]);
    assert_eq!(filters[0].priority, 1);

    let writes = sim.writes().len();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(sim.writes().len(), writes, "a second apply writes nothing");
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}
