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
