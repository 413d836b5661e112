//! Sieve on a real server (`transfer::imap::sieve`) against Debian's `dovecot-managesieved`:
//! rules written as a script, stored and activated over ManageSieve (STARTTLS with the
//! certificate checked against the instance's private CA), read back into the same rules;
//! a bad script refused by CHECKSCRIPT with the server's own words; and a message delivered by
//! `dovecot-lda` actually filed, flagged and marked read by the script into a folder whose
//! name is not ASCII and holds quotes.

use std::time::Duration;

use mailshift::rules::sieve::{from_sieve, to_sieve};
use mailshift::rules::{Action, Condition, Rule};
use mailshift::transfer::imap::ErrorKind;
use mailshift::transfer::imap::mutf7;
use mailshift::transfer::imap::session::{Auth, Endpoint, Secret, Security, Target};
use mailshift::transfer::imap::sieve::ManageSieve;

use crate::support::dovecot::{Dovecot, DovecotConfig};

const USER: &str = "sifter";
const PW: &str = "Sieve-Pa55word";
/// Non-ASCII, a quote and a backslash-free hierarchy: Sieve takes it as UTF-8, IMAP as
/// modified UTF-7.
const FOLDER: &str = "Comptabilité/Factures \"été\"";

fn server() -> Dovecot {
    let users = [(USER, PW)];
    Dovecot::start(DovecotConfig {
        users: &users,
        tls: true,
        managesieve: true,
        ..Default::default()
    })
}

fn target(dovecot: &Dovecot, security: Security, password: &str) -> Target {
    Target::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port: dovecot.managesieve_port(),
            security,
            ca_file: Some(dovecot.ca_pem_path()),
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

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "Factures → compta".into(),
            enabled: true,
            conditions: vec![
                Condition::From("billing@example.com".into()),
                Condition::SubjectContains("facture".into()),
            ],
            match_all: true,
            actions: vec![
                Action::MarkRead,
                Action::Flag,
                Action::MoveTo(FOLDER.into()),
                Action::Stop,
            ],
        },
        Rule {
            name: "Big or listed".into(),
            enabled: true,
            conditions: vec![
                Condition::SizeOver(5 << 20),
                Condition::HeaderContains {
                    header: "List-Id".into(),
                    value: "dev.lists".into(),
                },
            ],
            match_all: false,
            actions: vec![Action::Redirect("me@elsewhere.example".into())],
        },
    ]
}

#[test]
fn rules_round_trip_through_managesieve_and_file_a_delivered_message() {
    let dovecot = server();
    let (script, left) = to_sieve(&rules());
    assert_eq!(left, vec![]);
    runtime().block_on(async {
        let mut sieve = ManageSieve::connect(&target(&dovecot, Security::Starttls, PW))
            .await
            .unwrap();
        assert!(
            sieve.caps.extensions.iter().any(|e| e == "imap4flags"),
            "{:?}",
            sieve.caps
        );
        assert_eq!(sieve.check_script(&script).await.unwrap(), None);
        sieve.put_script("mailshift rules", &script).await.unwrap();
        sieve.put_script("spare", "keep;\n").await.unwrap();
        sieve.set_active(Some("mailshift rules")).await.unwrap();
        let listed = sieve.list_scripts().await.unwrap();
        assert!(
            listed
                .iter()
                .any(|s| s.name == "mailshift rules" && s.active),
            "{listed:?}"
        );
        assert!(
            listed.iter().any(|s| s.name == "spare" && !s.active),
            "{listed:?}"
        );
        let back = sieve.get_script("mailshift rules").await.unwrap();
        assert_eq!(back, script);
        let translated = from_sieve(&back);
        assert_eq!(translated.untranslatable, vec![]);
        assert_eq!(translated.rules, rules());

        // The active script cannot be deleted; another one can.
        let e = sieve.delete_script("mailshift rules").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Refused, "{e:?}");
        sieve.delete_script("spare").await.unwrap();
        assert_eq!(sieve.list_scripts().await.unwrap().len(), 1);
        sieve.logout().await;
    });

    // fileinto does not create folders (no `mailbox` extension asked for): the destination
    // exists, as it would after the mail copy.
    let mut imap = dovecot.login(USER, PW);
    imap.create(&mutf7::encode(FOLDER)).unwrap();
    dovecot.deliver(
        USER,
        b"From: Billing <billing@example.com>\r\nTo: sifter@example.org\r\nSubject: Votre facture\r\nMessage-ID: <f1@example.com>\r\n\r\nhello\r\n",
    );
    dovecot.deliver(
        USER,
        b"From: someone@example.net\r\nTo: sifter@example.org\r\nSubject: facture too\r\nMessage-ID: <f2@example.net>\r\n\r\nhello\r\n",
    );
    let filed = imap.uid_fetch_all(&mutf7::encode(FOLDER)).unwrap();
    assert_eq!(filed.len(), 1, "one message filed by the rule");
    assert!(
        String::from_utf8_lossy(&filed[0].bytes).contains("<f1@example.com>"),
        "the billing message is the one filed"
    );
    assert_eq!(filed[0].flags, ["\\Flagged", "\\Seen"]);
    let inbox = imap.uid_fetch_all("INBOX").unwrap();
    assert_eq!(inbox.len(), 1);
    assert!(String::from_utf8_lossy(&inbox[0].bytes).contains("<f2@example.net>"));
    imap.logout().unwrap();
}

#[test]
fn checkscript_gives_the_servers_error_and_bad_logins_are_refused() {
    let dovecot = server();
    runtime().block_on(async {
        let mut sieve = ManageSieve::connect(&target(&dovecot, Security::Starttls, PW))
            .await
            .unwrap();
        // `fileinto` used without being required: Pigeonhole names the command and the line.
        let e = sieve
            .check_script("if true {\n  fileinto \"X\";\n}\n")
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Refused, "{e:?}");
        assert!(
            e.message.contains("CHECKSCRIPT") && e.message.contains("fileinto"),
            "{}",
            e.message
        );
        // PUTSCRIPT refuses the same script and stores nothing.
        let e = sieve
            .put_script("bad", "if true { fileinto \"X\"; }")
            .await
            .unwrap_err();
        assert!(e.message.contains("fileinto"), "{}", e.message);
        assert_eq!(sieve.list_scripts().await.unwrap(), vec![]);
        sieve.logout().await;

        let e = match ManageSieve::connect(&target(&dovecot, Security::Starttls, "wrong")).await {
            Ok(_) => panic!("a wrong password was accepted"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ErrorKind::Auth, "{e:?}");
        assert!(!e.message.contains("wrong"), "{}", e.message);
    });
}

#[test]
fn an_unverifiable_certificate_is_refused() {
    let dovecot = server();
    let mut t = target(&dovecot, Security::Starttls, PW);
    t.endpoint.ca_file = None;
    let e = match runtime().block_on(ManageSieve::connect(&t)) {
        Ok(_) => panic!("an untrusted certificate was accepted"),
        Err(e) => e,
    };
    assert_eq!(e.kind, ErrorKind::Tls, "{e:?}");
}

#[test]
fn no_starttls_means_no_login_in_clear() {
    let users = [(USER, PW)];
    let dovecot = Dovecot::start(DovecotConfig {
        users: &users,
        managesieve: true,
        ..Default::default()
    });
    let t = |security| {
        Target::new(
            Endpoint {
                host: "127.0.0.1".into(),
                port: dovecot.managesieve_port(),
                security,
                ca_file: None,
                insecure_skip_verify: false,
                timeout: Duration::from_secs(30),
            },
            Auth::Password {
                login: USER.into(),
                password: Secret::new(PW),
            },
        )
    };
    runtime().block_on(async {
        let e = match ManageSieve::connect(&t(Security::Starttls)).await {
            Ok(_) => panic!("logged in without STARTTLS"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ErrorKind::Tls, "{e:?}");
        assert!(e.message.contains("STARTTLS"), "{}", e.message);
        // The same server on a network the caller says is trusted.
        let sieve = ManageSieve::connect(&t(Security::None)).await.unwrap();
        assert!(!sieve.caps.starttls);
        sieve.logout().await;
    });
}

#[test]
fn xoauth2_logs_in_with_a_token_the_server_vouches_for() {
    use provider_sim::oauth::{Client, OAuthConfig, OAuthServer};
    use std::io::{Read, Write};

    const ADDRESS: &str = "sifter@example.test";
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
        managesieve: true,
        oauth2: Some(&introspection),
        ..Default::default()
    });

    // An app-only token, asked for by hand (client credentials), as tests/pop3.rs does.
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
    let mut t = target(&dovecot, Security::Starttls, PW);
    t.auth = Auth::XOAuth2 {
        login: ADDRESS.into(),
        tokens: mailshift::transfer::imap::session::Tokens::fixed(Secret::new(token.clone())),
    };
    rt.block_on(async {
        let mut sieve = ManageSieve::connect(&t)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));
        assert_eq!(sieve.list_scripts().await.unwrap(), vec![]);
        sieve.logout().await;
    });
    // Once the server no longer vouches for it, the login is refused (after Dovecot's error
    // challenge, answered with an empty response) and the token is never shown.
    oauth.expire_access_tokens();
    let e = rt.block_on(ManageSieve::connect(&t)).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.message.contains(&token), "{e}");
}
