//! The POP3 client (`transfer::imap::pop3`) against Debian's real `dovecot-pop3d`: it reads
//! the UIDLs, sizes and messages of a seeded mailbox over implicit TLS, STLS and plain, with
//! the certificate verified against the instance's private CA, and refuses a server whose
//! certificate it cannot verify or a wrong password. Nothing is ever deleted.

use std::time::Duration;

use mailshift::transfer::imap::ErrorKind;
use mailshift::transfer::imap::pop3::Pop3;
use mailshift::transfer::imap::session::{Auth, Endpoint, Secret, Security, Target};

use crate::support::dovecot::{Dovecot, DovecotConfig};

const USER: &str = "popper";
const PW: &str = "Pop-Pa55word";

fn message(i: usize) -> Vec<u8> {
    // A body line starting with a dot: the server stuffs it, the client must unstuff it.
    format!(
        "From: a@example.org\r\nTo: popper@example.org\r\nSubject: pop {i}\r\nMessage-ID: <pop-{i}@example.org>\r\n\r\nline one\r\n.leading dot {i}\r\n..two dots\r\n.\r\n"
    )
    .into_bytes()
}

fn server() -> Dovecot {
    let users = [(USER, PW)];
    let dovecot = Dovecot::start(DovecotConfig {
        users: &users,
        tls: true,
        pop3: true,
        ..Default::default()
    });
    let mut imap = dovecot.login(USER, PW);
    for i in 0..3 {
        imap.append("INBOX", &[], None, &message(i)).unwrap();
    }
    imap.logout().unwrap();
    dovecot
}

fn target(dovecot: &Dovecot, port: u16, security: Security, password: &str) -> Target {
    Target::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            security,
            ca_file: (security != Security::None).then(|| dovecot.ca_pem_path()),
            insecure_skip_verify: false,
            timeout: Duration::from_secs(30),
        },
        Auth::Password {
            login: USER.into(),
            password: Secret::new(password),
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn reads_uidls_sizes_and_messages_over_tls_stls_and_plain() {
    let dovecot = server();
    let rt = runtime();
    for (port, security) in [
        (dovecot.pop3s_port(), Security::Tls),
        (dovecot.pop3_port(), Security::Starttls),
        (dovecot.pop3_port(), Security::None),
    ] {
        rt.block_on(async {
            let t = target(&dovecot, port, security, PW);
            let mut pop = Pop3::connect(&t)
                .await
                .unwrap_or_else(|e| panic!("{security:?}: {e}\n{}", dovecot.log()));
            assert!(pop.caps.uidl, "{:?}", pop.caps);
            let (count, octets) = pop.stat().await.unwrap();
            assert_eq!(count, 3);
            let listing = pop.listing().await.unwrap();
            assert_eq!(listing.len(), 3);
            assert_eq!(listing.iter().map(|l| l.size).sum::<u64>(), octets);
            // Dovecot's default UIDL: UID then UIDVALIDITY, 8 hex digits each.
            assert!(
                listing
                    .iter()
                    .all(|l| l.uidl.len() == 16 && l.uidl.bytes().all(|b| b.is_ascii_hexdigit())),
                "{listing:?}"
            );
            for (i, listed) in listing.iter().enumerate() {
                let body = pop.retr(listed.number).await.unwrap();
                assert_eq!(body, message(i), "{security:?} message {i}");
                assert_eq!(body.len() as u64, listed.size);
            }
            // Dovecot allows pipelining, so the copy's fetches are sent in groups: the same
            // messages come back, in order, and their headers alone with TOP.
            assert!(pop.caps.pipelining && pop.caps.top, "{:?}", pop.caps);
            let numbers: Vec<u32> = listing.iter().map(|l| l.number).collect();
            let (bodies, err) = pop.fetch_each(&numbers, false).await;
            assert!(err.is_none(), "{err:?}");
            assert_eq!(bodies, (0..3).map(message).collect::<Vec<_>>());
            let (heads, err) = pop.fetch_each(&numbers, true).await;
            assert!(err.is_none(), "{err:?}");
            for (i, head) in heads.iter().enumerate() {
                let whole = message(i);
                assert!(
                    whole.starts_with(head) && head.ends_with(b"\r\n\r\n"),
                    "{i}"
                );
            }
            pop.quit().await;
        });
    }
    // The same UIDLs at the next session, and nothing deleted.
    rt.block_on(async {
        let t = target(&dovecot, dovecot.pop3s_port(), Security::Tls, PW);
        let mut a = Pop3::connect(&t).await.unwrap();
        let first = a.listing().await.unwrap();
        a.quit().await;
        let mut b = Pop3::connect(&t).await.unwrap();
        assert_eq!(b.listing().await.unwrap(), first);
        b.quit().await;
    });
    assert_eq!(dovecot.stored_messages(USER), 3);
}

#[test]
fn an_unknown_certificate_and_a_wrong_password_are_refused_for_good() {
    let dovecot = server();
    let rt = runtime();
    rt.block_on(async {
        let mut untrusted = target(&dovecot, dovecot.pop3s_port(), Security::Tls, PW);
        untrusted.endpoint.ca_file = None;
        let e = Pop3::connect(&untrusted).await.err().unwrap();
        assert_eq!((e.kind, e.transient), (ErrorKind::Tls, false), "{e}");
        assert!(e.message.contains("ca_file"), "{e}");

        let mut stls_untrusted = target(&dovecot, dovecot.pop3_port(), Security::Starttls, PW);
        stls_untrusted.endpoint.ca_file = None;
        let e = Pop3::connect(&stls_untrusted).await.err().unwrap();
        assert_eq!(e.kind, ErrorKind::Tls, "{e}");

        let wrong = target(&dovecot, dovecot.pop3s_port(), Security::Tls, "nope-SECRET");
        let e = Pop3::connect(&wrong).await.err().unwrap();
        assert_eq!((e.kind, e.transient), (ErrorKind::Auth, false), "{e}");
        assert!(!e.message.contains("nope-SECRET"), "{e}");

        // The IMAP port is not a POP3 server: a configuration error, not a retry.
        let imap_port = target(&dovecot, dovecot.port(), Security::None, PW);
        let e = Pop3::connect(&imap_port).await.err().unwrap();
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
    });
}

mod copy {
    //! The POP3 copy (`pop3::copy`) from one Dovecot's POP3 into another's IMAP, on the
    //! state file's journal: exactly once, incremental, and not fooled by renumbered UIDLs.

    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use mailshift::apply::journal::StoreJournal;
    use mailshift::state::StateStore;
    use mailshift::transfer::imap::copy::{CopyOptions, CopyReport, Progress};
    use mailshift::transfer::imap::folders::FolderRules;
    use mailshift::transfer::imap::pop3::Pop3;
    use mailshift::transfer::imap::pop3::copy::{Pop3Job, copy_maildrop};
    use mailshift::transfer::imap::session::{Auth, Endpoint, Secret, Security, Target};

    use super::{PW, USER, message, server, target};
    use crate::support::dovecot::{Dovecot, DovecotConfig};

    struct Quiet;
    impl Progress for Quiet {}

    fn destination() -> Dovecot {
        let users = [("dest", "Dest-Pa55word")];
        Dovecot::start(DovecotConfig {
            users: &users,
            ..Default::default()
        })
    }

    fn run(src: &Dovecot, dst: &Dovecot, store: &Arc<StateStore>) -> CopyReport {
        let job = Arc::new(Pop3Job {
            resource_id: "mail.popper".into(),
            account: USER.into(),
            source: target(src, src.pop3s_port(), Security::Tls, PW),
            dest: Target::new(
                Endpoint {
                    host: "127.0.0.1".into(),
                    port: dst.port(),
                    security: Security::None,
                    ca_file: None,
                    insecure_skip_verify: false,
                    timeout: Duration::from_secs(30),
                },
                Auth::Password {
                    login: "dest".into(),
                    password: Secret::new("Dest-Pa55word"),
                },
            ),
            rules: FolderRules::default(),
            options: CopyOptions::default(),
            sync_point: 1,
            login_grace: Duration::ZERO,
        });
        let journal = Arc::new(StoreJournal::new(store.clone(), "mail.popper"));
        super::runtime()
            .block_on(copy_maildrop(
                job,
                journal,
                Arc::new(Quiet),
                Arc::new(AtomicBool::new(false)),
            ))
            .unwrap_or_else(|e| panic!("{e:?}\n{}\n{}", src.log(), dst.log()))
    }

    fn uidls(src: &Dovecot) -> Vec<String> {
        super::runtime().block_on(async {
            let t = target(src, src.pop3s_port(), Security::Tls, PW);
            let mut pop = Pop3::connect(&t).await.unwrap();
            let uidls = pop.uidl().await.unwrap();
            pop.quit().await;
            uidls.into_iter().map(|(_, u)| u).collect()
        })
    }

    fn inbox(dst: &Dovecot) -> Vec<Vec<u8>> {
        let mut imap = dst.login("dest", "Dest-Pa55word");
        let mut bodies: Vec<Vec<u8>> = imap
            .uid_fetch_all("INBOX")
            .unwrap()
            .into_iter()
            .map(|m| m.bytes)
            .collect();
        bodies.sort();
        bodies
    }

    #[test]
    fn copies_once_then_only_new_mail_then_nothing_after_a_uidl_renumbering() {
        let src = server();
        let dst = destination();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());

        let first = run(&src, &dst, &store);
        assert_eq!(first.folders[0].copied, 3);
        let mut want: Vec<Vec<u8>> = (0..3).map(message).collect();
        want.sort();
        assert_eq!(inbox(&dst), want);

        // Nothing new: nothing fetched, nothing copied.
        let again = run(&src, &dst, &store);
        assert_eq!(
            (again.folders[0].copied, again.folders[0].rematched),
            (0, 0)
        );

        // New mail: only it is copied.
        let mut imap = src.login(USER, PW);
        imap.append("INBOX", &[], None, &message(3)).unwrap();
        imap.logout().unwrap();
        let more = run(&src, &dst, &store);
        assert_eq!(more.folders[0].copied, 1);

        // Every UIDL changes (Dovecot's UIDL holds the UIDVALIDITY): the maildrop rebuilt
        // with the same messages and one new. Re-matched by content; only the new one copied.
        let before = uidls(&src);
        // UIDVALIDITY is the creation time in seconds: a second later it is sure to differ.
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::remove_dir_all(src.dir().join("mail").join(USER).join("Maildir")).unwrap();
        let mut imap = src.login(USER, PW);
        for i in [0, 1, 2, 3, 4] {
            imap.append("INBOX", &[], None, &message(i)).unwrap();
        }
        imap.logout().unwrap();
        let after = uidls(&src);
        assert!(
            before.iter().all(|u| !after.contains(u)),
            "{before:?} {after:?}"
        );
        let renumbered = run(&src, &dst, &store);
        assert_eq!(
            (
                renumbered.folders[0].copied,
                renumbered.folders[0].rematched
            ),
            (1, 4),
            "{renumbered:?}"
        );
        let mut want: Vec<Vec<u8>> = (0..5).map(message).collect();
        want.sort();
        assert_eq!(inbox(&dst), want);
        // The POP3 side still holds everything: nothing is ever deleted there.
        assert_eq!(src.stored_messages(USER), 5);

        // The state lost: what the destination holds is matched, not copied again.
        let fresh = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&fresh.path().join("state.db")).unwrap());
        let lost = run(&src, &dst, &store);
        assert_eq!(
            (lost.folders[0].copied, lost.folders[0].adopted),
            (0, 5),
            "{lost:?}"
        );
        assert_eq!(inbox(&dst), want);
        // And recorded: the next run fetches nothing.
        let after = run(&src, &dst, &store);
        assert_eq!((after.folders[0].copied, after.folders[0].adopted), (0, 0));
    }
}

mod apply {
    //! `mailshift apply` with a `pop3:` source: the plan's way in, and kill -9 at random
    //! moments losing and duplicating nothing.

    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::{PW, USER};
    use crate::common::{Output, mailshift_env};
    use crate::support::dovecot::{Dovecot, DovecotConfig};
    use crate::support::faultproxy::{Direction, Fault, FaultProxy};

    const DEST_PW: &str = "Dest-Pa55word";

    fn write_plan(dir: &Path, src: &Dovecot, dst: &Dovecot) {
        write_plan_with(dir, &tls_endpoint(src, src.pop3s_port()), dst, "");
    }

    /// The plan with `pop3` as the source platform's endpoint and `extra` (lines of the
    /// account, indented by four) added to the account.
    fn write_plan_with(dir: &Path, pop3: &str, dst: &Dovecot, extra: &str) {
        let plan = format!(
            "version: 1\nplatforms:\n  old: {{type: imap, pop3: {pop3}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\naccounts:\n  - address: popper@example.com\n    from: old\n    to: new\n    content: [mail]\n    source: {{login: {USER}, password: {{env: POP_PW}}}}\n    destination: {{login: dest, password: {{env: DEST_PW}}}}\n{extra}",
            dst.port()
        );
        std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    }

    /// POP3 over implicit TLS on `port`, the certificate verified against the instance's CA.
    fn tls_endpoint(src: &Dovecot, port: u16) -> String {
        format!(
            "{{host: 127.0.0.1, port: {port}, security: tls, ca_file: {}}}",
            src.ca_pem_path().display()
        )
    }

    /// `mailshift ARGS` in `dir`, with the plan's secrets.
    fn run(dir: &Path, args: &[&str]) -> Output {
        mailshift_env(dir, args, &[("POP_PW", PW), ("DEST_PW", DEST_PW)])
    }

    /// A POP3 source holding messages `0..count` and an empty IMAP destination.
    fn servers(count: usize) -> (Dovecot, Dovecot) {
        let users = [(USER, PW)];
        let src = Dovecot::start(DovecotConfig {
            users: &users,
            tls: true,
            pop3: true,
            ..Default::default()
        });
        let dst_users = [("dest", DEST_PW)];
        let dst = Dovecot::start(DovecotConfig {
            users: &dst_users,
            ..Default::default()
        });
        add_messages(&src, 0..count);
        (src, dst)
    }

    fn add_messages(src: &Dovecot, range: std::ops::Range<usize>) {
        let mut imap = src.login(USER, PW);
        for n in range {
            imap.append("INBOX", &[], None, &message(n)).unwrap();
        }
        imap.logout().unwrap();
    }

    /// Messages `range`, sorted as [`bodies`] sorts them.
    fn want(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
        let mut want: Vec<Vec<u8>> = range.map(message).collect();
        want.sort();
        want
    }

    fn verify_json(dir: &Path) -> (Output, serde_json::Value) {
        let out = run(dir, &["verify", "plan.yaml", "--json"]);
        let doc = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}\n{}", out.transcript()));
        (out, doc)
    }

    fn mailshift(dir: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailshift"));
        c.args(["apply", "plan.yaml"])
            .current_dir(dir)
            .env("POP_PW", PW)
            .env("DEST_PW", DEST_PW);
        c
    }

    fn message(n: usize) -> Vec<u8> {
        let mut m = format!(
            "From: a@example.org\r\nTo: popper@example.org\r\nSubject: m{n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
        );
        while m.len() < 4_000 {
            m.push_str(&format!("line of message {n}\r\n"));
        }
        m.into_bytes()
    }

    fn bodies(dst: &Dovecot) -> Vec<Vec<u8>> {
        bodies_in(dst, "INBOX")
    }

    fn bodies_in(dst: &Dovecot, folder: &str) -> Vec<Vec<u8>> {
        let mut imap = dst.login("dest", DEST_PW);
        let mut b: Vec<Vec<u8>> = imap
            .uid_fetch_all(folder)
            .unwrap()
            .into_iter()
            .map(|m| m.bytes)
            .collect();
        b.sort();
        b
    }

    /// `import omm-csv` turns an OVH Mail Migrator `POP` row into a plan that runs as it is:
    /// the import's secrets file gives the passwords, and the test servers' CAs are trusted
    /// the way a user trusts a private CA system-wide (`SSL_CERT_FILE`), so the imported plan
    /// is not edited. Both servers are reached over TLS, certificates verified.
    #[test]
    fn an_omm_pop_row_imports_into_a_plan_that_applies() {
        let users = [(USER, PW)];
        let src = Dovecot::start(DovecotConfig {
            users: &users,
            tls: true,
            pop3: true,
            ..Default::default()
        });
        let dst_users = [("popper@example.com", DEST_PW)];
        let dst = Dovecot::start(DovecotConfig {
            users: &dst_users,
            tls: true,
            ..Default::default()
        });
        add_messages(&src, 0..3);
        let dir = tempfile::tempdir().unwrap();
        let csv = format!(
            "\"Source Type(IMAP/Exchange/POP)\";Source Server url;Source Login/Mail;Source Password;Destination Type;\"Destination Url(can be leaved empty if hosted by OVH)\";Destination Mail;Destination Password;Source admin mail (delegation);Destination Admin Mail (delegation)\n\
             POP;pop3s://127.0.0.1:{};{USER};{PW};IMAP;imaps://127.0.0.1:{};popper@example.com;{DEST_PW};\"\";\"\"\n",
            src.pop3s_port(),
            dst.tls_port()
        );
        std::fs::write(dir.path().join("omm.csv"), csv).unwrap();
        let import = mailshift_env(
            dir.path(),
            &[
                "import",
                "omm-csv",
                "omm.csv",
                "--secrets-file",
                "secrets.env",
            ],
            &[],
        );
        assert_eq!(import.code, 0, "{}", import.transcript());
        assert!(import.stdout.contains("pop3:"), "{}", import.stdout);
        std::fs::write(dir.path().join("plan.yaml"), &import.stdout).unwrap();
        let secrets = std::fs::read_to_string(dir.path().join("secrets.env")).unwrap();
        let vars: Vec<(String, String)> = secrets
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('\'').to_string())
            })
            .collect();
        assert_eq!(vars.len(), 2, "{secrets}");
        let mut cas = std::fs::read_to_string(src.ca_pem_path()).unwrap();
        cas.push_str(&std::fs::read_to_string(dst.ca_pem_path()).unwrap());
        let ca_file = dir.path().join("cas.pem");
        std::fs::write(&ca_file, cas).unwrap();
        let ca = ca_file.display().to_string();
        let mut env: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("SSL_CERT_FILE", &ca));

        let first = mailshift_env(dir.path(), &["apply", "plan.yaml"], &env);
        assert_eq!(first.code, 0, "{}", first.transcript());
        let mut imap = dst.login("popper@example.com", DEST_PW);
        let mut got: Vec<Vec<u8>> = imap
            .uid_fetch_all("INBOX")
            .unwrap()
            .into_iter()
            .map(|m| m.bytes)
            .collect();
        got.sort();
        assert_eq!(got, want(0..3));
        let verify = mailshift_env(dir.path(), &["verify", "plan.yaml"], &env);
        assert_eq!(verify.code, 0, "{}", verify.transcript());
        // Without the CA, the same plan is refused: certificates are verified.
        let untrusted = mailshift_env(dir.path(), &["apply", "plan.yaml"], &env[..env.len() - 1]);
        assert_ne!(untrusted.code, 0, "{}", untrusted.transcript());
        assert!(
            untrusted.transcript().contains("certificate"),
            "{}",
            untrusted.transcript()
        );
    }

    #[test]
    fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
        let users = [(USER, PW)];
        let src = Dovecot::start(DovecotConfig {
            users: &users,
            tls: true,
            pop3: true,
            ..Default::default()
        });
        let dst_users = [("dest", DEST_PW)];
        let dst = Dovecot::start(DovecotConfig {
            users: &dst_users,
            ..Default::default()
        });
        let mut imap = src.login(USER, PW);
        let count = 300;
        for n in 0..count {
            imap.append("INBOX", &[], None, &message(n)).unwrap();
        }
        imap.logout().unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_plan(dir.path(), &src, &dst);

        let mut seed: u64 = 0x9095_5eed;
        let mut kills = 0;
        for run in 0..6 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let after = Duration::from_millis(40 + (seed >> 33) % 600);
            let mut child = mailshift(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if run == 0 {
                // Killed once its first messages are on the server: a fixed delay may outlast
                // the whole copy on a fast machine.
                let deadline = Instant::now() + Duration::from_secs(60);
                while dst.stored_messages("dest") == 0
                    && Instant::now() < deadline
                    && child.try_wait().unwrap().is_none()
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            } else {
                std::thread::sleep(after);
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
        let out = mailshift(dir.path()).output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        let mut want: Vec<Vec<u8>> = (0..count).map(message).collect();
        want.sort();
        let got = bodies(&dst);
        assert_eq!(got.len(), want.len(), "after {kills} kills\n{text}");
        assert!(got == want, "after {kills} kills: contents differ\n{text}");
        // Nothing was deleted from the POP3 server.
        assert_eq!(src.stored_messages(USER), count);
        // And a run after that copies nothing.
        let again = mailshift(dir.path()).output().unwrap();
        assert!(again.status.success());
        assert_eq!(bodies(&dst).len(), count);
    }

    #[test]
    fn verify_compares_the_maildrop_with_the_destination() {
        let (src, dst) = servers(5);
        let dir = tempfile::tempdir().unwrap();
        write_plan(dir.path(), &src, &dst);
        let applied = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(applied.code, 0, "{}", applied.transcript());

        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert_eq!(doc["ok"], true, "{doc}");
        let inbox = &doc["accounts"][0]["folders"][0];
        assert_eq!(
            (
                &inbox["folder"],
                &inbox["source_messages"],
                &inbox["dest_messages"]
            ),
            (
                &serde_json::json!("INBOX"),
                &serde_json::json!(5),
                &serde_json::json!(5)
            ),
            "{doc}"
        );

        // Read on the destination (\Seen): POP3 has no flags, so that is no difference.
        let mut imap = dst.login("dest", DEST_PW);
        imap.select("INBOX").unwrap();
        imap.command("UID STORE 1:* +FLAGS.SILENT (\\Seen)")
            .unwrap();
        // One copy deleted on the destination, another one duplicated there.
        imap.command("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
            .unwrap();
        imap.command("UID EXPUNGE 3").unwrap();
        imap.append("INBOX", &[], None, &message(0)).unwrap();
        imap.logout().unwrap();

        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 1, "{}", out.transcript());
        let inbox = &doc["accounts"][0]["folders"][0];
        assert_eq!(inbox["missing"]["count"], 1, "{doc}");
        let missing = &inbox["missing"]["listed"][0];
        assert_eq!(missing["message_id"], "<m2@example.org>", "{doc}");
        assert_eq!(missing["subject"], "m2", "{doc}");
        assert_eq!(inbox["extra"]["count"], 1, "{doc}");
        assert_eq!(
            inbox["extra"]["listed"][0]["message_id"],
            "<m0@example.org>"
        );
        assert_eq!(inbox["flags"]["count"], 0, "{doc}");
        // The text view names it as well.
        let text = run(dir.path(), &["verify", "plan.yaml"]);
        assert_eq!(text.code, 1);
        assert!(
            text.stdout
                .contains("missing  INBOX UID 3  <m2@example.org>"),
            "{}",
            text.transcript()
        );

        // Put back as it was (the duplicate removed, the deleted one appended): ok again.
        let mut imap = dst.login("dest", DEST_PW);
        imap.select("INBOX").unwrap();
        imap.command("UID STORE 6 +FLAGS.SILENT (\\Deleted)")
            .unwrap();
        imap.command("UID EXPUNGE 6").unwrap();
        imap.append("INBOX", &[], None, &message(2)).unwrap();
        imap.logout().unwrap();
        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 0, "{}\n{doc}", out.transcript());
        // The source is only read.
        assert_eq!(src.stored_messages(USER), 5);
    }

    #[test]
    fn a_link_cut_every_few_hundred_kb_still_copies_everything_once_in_one_apply() {
        let count = 320;
        let (src, dst) = servers(count);
        let proxy = FaultProxy::to_port(src.pop3s_port());
        proxy.set(Fault::CutRandom {
            direction: Direction::ToClient,
            min_bytes: 150_000,
            max_bytes: 400_000,
            seed: 0x90b3,
        });
        let dir = tempfile::tempdir().unwrap();
        write_plan_with(dir.path(), &tls_endpoint(&src, proxy.port()), &dst, "");
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        // The faults really fired: several connections were cut mid-copy, and the copy
        // itself reconnected (not the apply retrying the step).
        assert!(proxy.fired().len() >= 3, "{:?}", proxy.fired());
        assert!(
            out.stderr.contains("(reconnecting)"),
            "{}",
            out.transcript()
        );
        assert!(
            out.stderr.contains("320/320 messages"),
            "{}",
            out.transcript()
        );
        let got = bodies(&dst);
        assert_eq!(got.len(), count, "{}", out.transcript());
        assert!(
            got == want(0..count),
            "contents differ\n{}",
            out.transcript()
        );
        // Nothing left to do.
        proxy.clear();
        let again = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(again.code, 0, "{}", again.transcript());
        assert_eq!(bodies(&dst).len(), count);
    }

    /// Message `n`, with a `Date` header when `date` is given, padded to about `size` bytes.
    fn dated(n: usize, date: Option<&str>, size: usize) -> Vec<u8> {
        let date = date.map_or(String::new(), |d| format!("Date: {d}\r\n"));
        let mut m = format!(
            "From: a@example.org\r\nTo: popper@example.org\r\n{date}Subject: d{n}\r\nMessage-ID: <d{n}@example.org>\r\n\r\n"
        );
        while m.len() < size {
            m.push_str(&format!("line of dated message {n}\r\n"));
        }
        m.into_bytes()
    }

    fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        v.sort();
        v
    }

    #[test]
    fn the_accounts_options_apply_by_date_header_size_and_maildrop_order() {
        let (src, dst) = servers(0);
        let msgs = [
            dated(0, Some("Mon, 07 Jan 2019 10:00:00 +0000"), 2_000),
            dated(1, Some("Wed, 01 Mar 2023 10:00:00 +0100"), 2_000),
            dated(2, Some("Thu, 02 Mar 2023 10:00:00 +0000"), 60_000),
            dated(3, Some("Fri, 05 Jan 2024 10:00:00 +0000"), 2_000),
            dated(4, None, 2_000),
            dated(5, Some("Sat, 06 Jan 2024 10:00:00 +0000"), 2_000),
        ];
        let mut imap = src.login(USER, PW);
        for m in &msgs {
            imap.append("INBOX", &[], None, m).unwrap();
        }
        imap.logout().unwrap();

        // A date window (by the Date header; none: copied) and a size cap (by LIST).
        let dir = tempfile::tempdir().unwrap();
        let endpoint = tls_endpoint(&src, src.pop3s_port());
        write_plan_with(
            dir.path(),
            &endpoint,
            &dst,
            "    options: {since: 2022-01-01, before: 2025-01-01, max_message_size: 20KB}\n",
        );
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        let kept = |i: &[usize]| sorted(i.iter().map(|&i| msgs[i].clone()).collect());
        assert!(bodies(&dst) == kept(&[1, 3, 4, 5]), "{}", out.transcript());
        // verify applies the same filters to the maildrop, and the dates agree.
        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 0, "{}\n{doc}", out.transcript());
        assert_eq!(doc["accounts"][0]["folders"][0]["source_messages"], 4);
        // A second run reads only the header of the one message outside the window (TOP),
        // fetches nothing whole and copies nothing: Dovecot's logout line counts them.
        let again = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(again.code, 0, "{}", again.transcript());
        assert_eq!(bodies(&dst).len(), 4);
        let log = src.log();
        let sessions: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("pop3(popper)") && l.contains("Logged out"))
            .collect();
        let last = sessions.last().unwrap_or_else(|| panic!("{log}"));
        assert!(
            last.contains("top=1/") && last.contains("retr=0/0"),
            "{log}"
        );
        // And the first apply fetched whole only the four it copied.
        assert!(sessions[0].contains("retr=4/"), "{log}");

        // `newest_first` with `max_items`: the last messages listed, up to the cap.
        let other = Dovecot::start(DovecotConfig {
            users: &[("dest", DEST_PW)],
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        write_plan_with(
            dir.path(),
            &endpoint,
            &other,
            "    options: {max_items: 2, newest_first: true}\n",
        );
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert!(bodies(&other) == kept(&[4, 5]), "{}", out.transcript());
        // The cap holds across runs: it counts what the records hold.
        let again = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(again.code, 0, "{}", again.transcript());
        assert_eq!(bodies(&other).len(), 2);
    }

    #[test]
    fn a_message_the_destination_refuses_is_recorded_and_verify_names_it_skipped() {
        let users = [(USER, PW)];
        let src = Dovecot::start(DovecotConfig {
            users: &users,
            tls: true,
            pop3: true,
            ..Default::default()
        });
        // A destination that refuses any message over 100 KB (the quota plugin's `[LIMIT]`).
        let dst_users = [("dest", DEST_PW)];
        let dst = Dovecot::start(DovecotConfig {
            users: &dst_users,
            extra: "mail_plugins = $mail_plugins quota\nplugin {\n  quota = count:User quota\n  quota_vsizes = yes\n  quota_rule = *:storage=1G\n  quota_max_mail_size = 100k\n}\n",
            ..Default::default()
        });
        let big = dated(9, None, 300_000);
        let mut imap = src.login(USER, PW);
        imap.append("INBOX", &[], None, &message(0)).unwrap();
        imap.append("INBOX", &[], None, &big).unwrap();
        imap.append("INBOX", &[], None, &message(1)).unwrap();
        imap.logout().unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_plan(dir.path(), &src, &dst);
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert!(bodies(&dst) == want(0..2), "{}", out.transcript());

        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 1, "{}", out.transcript());
        let inbox = &doc["accounts"][0]["folders"][0];
        assert_eq!(inbox["missing"]["count"], 0, "{doc}");
        assert_eq!(inbox["skipped"]["count"], 1, "{doc}");
        let skipped = &inbox["skipped"]["listed"][0];
        assert_eq!(skipped["source"]["message_id"], "<d9@example.org>", "{doc}");
        assert_eq!(skipped["source"]["uid"], 2, "{doc}");
        assert!(
            !skipped["reason"].as_str().unwrap_or_default().is_empty(),
            "{doc}"
        );
    }

    #[test]
    fn stls_on_port_110_verifies_the_certificate() {
        let (src, dst) = servers(3);
        let dir = tempfile::tempdir().unwrap();
        // No CA given: the instance's private CA is not trusted, so STLS is refused.
        let untrusted = format!(
            "{{host: 127.0.0.1, port: {}, security: starttls}}",
            src.pop3_port()
        );
        write_plan_with(dir.path(), &untrusted, &dst, "");
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_ne!(out.code, 0, "{}", out.transcript());
        let text = out.transcript();
        assert!(text.contains("certificate"), "{text}");
        assert!(!text.contains(PW), "{text}");
        assert_eq!(dst.stored_messages("dest"), 0);

        let trusted = format!(
            "{{host: 127.0.0.1, port: {}, security: starttls, ca_file: {}}}",
            src.pop3_port(),
            src.ca_pem_path().display()
        );
        write_plan_with(dir.path(), &trusted, &dst, "");
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert!(bodies(&dst) == want(0..3));
    }

    #[test]
    fn a_folder_map_of_inbox_puts_the_mail_there() {
        let (src, dst) = servers(3);
        let dir = tempfile::tempdir().unwrap();
        write_plan_with(
            dir.path(),
            &tls_endpoint(&src, src.pop3s_port()),
            &dst,
            "    folders: {map: {INBOX: \"Old POP\"}}\n",
        );
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert!(bodies_in(&dst, "Old POP") == want(0..3));
        assert!(bodies(&dst).is_empty());
        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 0, "{}\n{doc}", out.transcript());
        assert_eq!(doc["accounts"][0]["folders"][0]["folder"], "Old POP");
    }

    #[test]
    fn rollback_since_a_sync_point_removes_its_copies_and_apply_copies_them_once_more() {
        let (src, dst) = servers(3);
        let dir = tempfile::tempdir().unwrap();
        write_plan(dir.path(), &src, &dst);
        let first = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(first.code, 0, "{}", first.transcript());
        add_messages(&src, 3..5);
        let second = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(second.code, 0, "{}", second.transcript());
        assert!(bodies(&dst) == want(0..5));

        let rollback = run(
            dir.path(),
            &["rollback", "plan.yaml", "--since", "2", "--yes"],
        );
        assert_eq!(rollback.code, 0, "{}", rollback.transcript());
        assert!(
            bodies(&dst) == want(0..3),
            "exactly sync point 2's copies removed\n{}",
            rollback.transcript()
        );
        // The POP3 server is untouched.
        assert_eq!(src.stored_messages(USER), 5);

        let again = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(again.code, 0, "{}", again.transcript());
        assert!(bodies(&dst) == want(0..5), "{}", again.transcript());
        let (out, doc) = verify_json(dir.path());
        assert_eq!(out.code, 0, "{}\n{doc}", out.transcript());
        // And once only: a further apply copies nothing.
        let idle = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(idle.code, 0, "{}", idle.transcript());
        assert_eq!(bodies(&dst).len(), 5);
    }
}

#[test]
fn xoauth2_logs_in_with_a_token_the_server_vouches_for() {
    use provider_sim::oauth::{Client, OAuthConfig, OAuthServer};
    use std::io::{Read, Write};

    const ADDRESS: &str = "popper@example.test";
    let oauth = OAuthServer::start(OAuthConfig {
        clients: vec![Client::app_only("app", "app-secret-1234", "example.test")],
        users: vec![ADDRESS.to_string()],
        ..OAuthConfig::default()
    })
    .unwrap();
    let introspection = oauth.introspection_url();
    let users = [(ADDRESS, PW)];
    let dovecot = Dovecot::start(DovecotConfig {
        users: &users,
        tls: true,
        pop3: true,
        oauth2: Some(&introspection),
        ..Default::default()
    });
    let mut imap = dovecot.login(ADDRESS, PW);
    imap.append("INBOX", &[], None, &message(0)).unwrap();
    imap.logout().unwrap();

    // An app-only token, asked for by hand (client credentials).
    let body = "grant_type=client_credentials&client_id=app&client_secret=app-secret-1234\
                &scope=https%3A%2F%2Foutlook.office365.com%2F.default";
    let mut http = std::net::TcpStream::connect(oauth.addr()).unwrap();
    let path = oauth.token_url();
    let path = &path[path.find("/token").unwrap()..];
    write!(
        http,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"));
    let token = json["access_token"].as_str().unwrap().to_string();

    let rt = runtime();
    let mut t = target(&dovecot, dovecot.pop3s_port(), Security::Tls, PW);
    t.auth = Auth::XOAuth2 {
        login: ADDRESS.into(),
        tokens: mailshift::transfer::imap::session::Tokens::fixed(Secret::new(token.clone())),
    };
    rt.block_on(async {
        let mut pop = Pop3::connect(&t)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));
        assert_eq!(pop.stat().await.unwrap().0, 1);
        pop.quit().await;
    });
    // Once the server no longer vouches for it, the login is refused for good.
    oauth.expire_access_tokens();
    let e = rt.block_on(Pop3::connect(&t)).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.message.contains(&token), "{e}");
}
