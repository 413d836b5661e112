//! The POP3 client against scripted server bytes: what it sends, how it reads multi-line
//! answers and dot-stuffing, and how each refusal is classified.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::*;

/// A server that says `script` whatever it is sent, and keeps what it was sent.
struct Script {
    input: io::Cursor<Vec<u8>>,
    sent: Vec<u8>,
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = io::Read::read(&mut self.input, buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sent.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn session(server: &str) -> Result<Pop3<Script>, ImapError> {
    let script = Script {
        input: io::Cursor::new(server.as_bytes().to_vec()),
        sent: Vec::new(),
    };
    Pop3::greeted(script, "pop.example:995", Duration::from_secs(60)).await
}

fn sent(pop: &Pop3<Script>) -> String {
    String::from_utf8(pop.io.get_ref().sent.clone()).unwrap()
}

fn password(pw: &str) -> Auth {
    Auth::Password {
        login: "bob".into(),
        password: Secret::new(pw),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_whole_session_reads_the_maildrop_and_never_deletes() {
    block_on(async {
        let mut pop = session(concat!(
            "+OK Dovecot ready.\r\n",
            "+OK\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\n.\r\n",
            "+OK\r\n+OK Logged in.\r\n",
            "+OK 2 40\r\n",
            "+OK\r\n1 00000001a\r\n2 00000002a\r\n.\r\n",
            "+OK 2 messages:\r\n1 14\r\n2 26\r\n.\r\n",
            "+OK 26 octets\r\nSubject: x\r\n\r\n..dot\r\n...\r\n.\r\n",
            "+OK Logging out.\r\n",
        ))
        .await
        .unwrap();
        pop.caps = pop.capa().await.unwrap();
        assert!(pop.caps.uidl && pop.caps.user && pop.caps.top && !pop.caps.stls);
        pop.login(&password("s3cret")).await.unwrap();
        assert_eq!(pop.stat().await.unwrap(), (2, 40));
        assert_eq!(
            pop.listing().await.unwrap(),
            vec![
                Listed {
                    number: 1,
                    uidl: "00000001a".into(),
                    size: 14
                },
                Listed {
                    number: 2,
                    uidl: "00000002a".into(),
                    size: 26
                },
            ]
        );
        // Dot-unstuffed: `..dot` was `.dot`, `...` was `..`; the lone dot ends it.
        assert_eq!(
            pop.retr(2).await.unwrap(),
            b"Subject: x\r\n\r\n.dot\r\n..\r\n".to_vec()
        );
        let io = pop.io.get_ref().sent.clone();
        pop.quit().await;
        assert_eq!(
            String::from_utf8(io).unwrap(),
            "CAPA\r\nUSER bob\r\nPASS s3cret\r\nSTAT\r\nUIDL\r\nLIST\r\nRETR 2\r\n"
        );
    });
}

#[test]
fn top_reads_a_header_whatever_its_line_lengths() {
    block_on(async {
        // A folded header line longer than a listing line may be (a long `References:`).
        let long = "x".repeat(2 * MAX_LISTING_LINE as usize);
        let server = format!(
            "+OK ready\r\n+OK\r\nDate: Fri, 05 Jan 2024 10:00:00 +0000\r\nReferences: {long}\r\n\r\n.\r\n"
        );
        let mut pop = session(&server).await.unwrap();
        let head = pop.top(7).await.unwrap();
        assert_eq!(sent(&pop), "TOP 7 0\r\n");
        assert!(head.starts_with(b"Date: Fri, 05 Jan 2024"));
        assert!(head.ends_with(b"\r\n\r\n"));
    });
}

#[test]
fn fetches_are_pipelined_where_allowed_and_keep_what_came_before_a_failure() {
    block_on(async {
        let mut pop = session(concat!(
            "+OK ready\r\n",
            "+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n",
            "+OK\r\none\r\n.\r\n",
            "+OK\r\n..two\r\n.\r\n",
            "-ERR no such message\r\n",
        ))
        .await
        .unwrap();
        pop.caps = pop.capa().await.unwrap();
        assert!(pop.caps.pipelining);
        let (got, err) = pop.fetch_each(&[1, 2, 9], false).await;
        // All three sent in one go, before any answer was read.
        assert_eq!(sent(&pop), "CAPA\r\nRETR 1\r\nRETR 2\r\nRETR 9\r\n");
        assert_eq!(got, vec![b"one\r\n".to_vec(), b".two\r\n".to_vec()]);
        assert!(err.unwrap().message.contains("no such message"));
    });
}

#[test]
fn without_pipelining_each_fetch_waits_for_its_answer() {
    block_on(async {
        // The server goes silent after CAPA: a client that waits for each answer has sent only
        // the first command when it finds the stream closed (a pipelining one sends both).
        let mut pop = session(concat!("+OK ready\r\n", "+OK\r\nTOP\r\nUIDL\r\n.\r\n"))
            .await
            .unwrap();
        pop.caps = pop.capa().await.unwrap();
        let (got, err) = pop.fetch_each(&[4, 5], true).await;
        assert!(got.is_empty());
        assert!(err.unwrap().transient);
        assert_eq!(sent(&pop), "CAPA\r\nTOP 4 0\r\n");
    });
}

#[test]
fn sasl_plain_is_used_where_offered() {
    block_on(async {
        let mut pop = session(concat!(
            "+OK ready\r\n",
            "+OK\r\nSASL PLAIN LOGIN\r\nUSER\r\n.\r\n",
            "+ \r\n+OK Logged in.\r\n",
        ))
        .await
        .unwrap();
        pop.caps = pop.capa().await.unwrap();
        pop.login(&password("pw")).await.unwrap();
        // base64("\0bob\0pw")
        assert_eq!(sent(&pop), "CAPA\r\nAUTH PLAIN\r\nAGJvYgBwdw==\r\n");
    });
}

/// Hands out `tokens` in turn and records the ones said to be expired.
struct Turns {
    tokens: Mutex<Vec<&'static str>>,
    expired: Mutex<Vec<String>>,
}

impl crate::session::TokenSource for Turns {
    fn token(
        &self,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Secret, TokenError>> + Send + '_>> {
        let next = self.tokens.lock().unwrap().remove(0);
        Box::pin(async move { Ok(Secret::new(next)) })
    }
    fn expired(&self, token: &Secret) {
        self.expired
            .lock()
            .unwrap()
            .push(token.expose().to_string());
    }
}

#[test]
fn xoauth2_answers_the_error_challenge_empty_and_retries_once_with_a_fresh_token() {
    block_on(async {
        let mut pop = session(concat!(
            "+OK ready\r\n",
            "+OK\r\nSASL XOAUTH2\r\n.\r\n",
            // First token: the error challenge, then the refusal.
            "+ \r\n+ eyJzdGF0dXMiOiI0MDEifQ==\r\n-ERR [AUTH] Authentication failed.\r\n",
            // The fresh one is accepted.
            "+ \r\n+OK Logged in.\r\n",
        ))
        .await
        .unwrap();
        pop.caps = pop.capa().await.unwrap();
        let turns = std::sync::Arc::new(Turns {
            tokens: Mutex::new(vec!["old", "new"]),
            expired: Mutex::new(Vec::new()),
        });
        let auth = Auth::XOAuth2 {
            login: "bob@example.com".into(),
            tokens: Tokens(turns.clone()),
        };
        pop.login(&auth).await.unwrap();
        assert_eq!(*turns.expired.lock().unwrap(), vec!["old".to_string()]);
        let b64 = |t: &str| {
            base64::engine::general_purpose::STANDARD
                .encode(format!("user=bob@example.com\x01auth=Bearer {t}\x01\x01"))
        };
        assert_eq!(
            sent(&pop),
            format!(
                "CAPA\r\nAUTH XOAUTH2\r\n{}\r\n\r\nAUTH XOAUTH2\r\n{}\r\n",
                b64("old"),
                b64("new")
            )
        );
    });
}

#[test]
fn a_fixed_token_refused_is_final_and_not_shown() {
    block_on(async {
        let mut pop = session(concat!(
            "+OK ready\r\n",
            "+ \r\n-ERR [AUTH] Invalid credentials\r\n",
        ))
        .await
        .unwrap();
        let auth = Auth::XOAuth2 {
            login: "bob".into(),
            tokens: Tokens::fixed(Secret::new("tok-SECRET")),
        };
        let e = pop.login(&auth).await.unwrap_err();
        assert_eq!((e.kind, e.transient), (ErrorKind::Auth, false));
        assert_eq!(
            e.message,
            "login as bob on POP3 server pop.example:995 was refused: [AUTH] Invalid credentials"
        );
    });
}

#[test]
fn refused_logins_are_auth_unless_the_server_is_busy() {
    for (answer, kind) in [
        ("-ERR [AUTH] Authentication failed.", ErrorKind::Auth),
        ("-ERR Authentication failed.", ErrorKind::Auth),
        ("-ERR [IN-USE] Mailbox is locked", ErrorKind::Throttled),
        ("-ERR [LOGIN-DELAY] Wait a minute", ErrorKind::Throttled),
        ("-ERR [SYS/TEMP] Try again later", ErrorKind::Network),
    ] {
        let e = block_on(async {
            let mut pop = session(&format!("+OK ready\r\n+OK\r\n{answer}\r\n"))
                .await
                .unwrap();
            pop.login(&password("hunter2")).await.unwrap_err()
        });
        assert_eq!(e.kind, kind, "{answer}");
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }
}

#[test]
fn greetings_tell_a_busy_server_from_a_wrong_port() {
    let busy = block_on(session("-ERR [SYS/TEMP] too many connections\r\n"))
        .err()
        .unwrap();
    assert_eq!(busy.kind, ErrorKind::Throttled);
    let imap = block_on(session("* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"))
        .err()
        .unwrap();
    assert_eq!(imap.kind, ErrorKind::Config);
    assert!(
        imap.message.contains("is not a POP3 server"),
        "{}",
        imap.message
    );
    let silent = block_on(session("")).err().unwrap();
    assert_eq!(silent.kind, ErrorKind::Network);
}

#[test]
fn a_connection_cut_in_the_middle_of_a_message_is_transient() {
    let e = block_on(async {
        let mut pop = session("+OK ready\r\n+OK 100 octets\r\nSubject: x\r\n\r\nhalf a bo")
            .await
            .unwrap();
        pop.retr(1).await.unwrap_err()
    });
    assert_eq!((e.kind, e.transient), (ErrorKind::Network, true));
    assert!(e.message.contains("in the middle of RETR"), "{}", e.message);
}

#[test]
fn a_message_gone_since_the_listing_is_refused() {
    let e = block_on(async {
        let mut pop = session("+OK ready\r\n-ERR There's no message 3.\r\n")
            .await
            .unwrap();
        pop.retr(3).await.unwrap_err()
    });
    assert_eq!(e.kind, ErrorKind::Refused);
    assert_eq!(
        e.message,
        "RETR on POP3 server pop.example:995: server said There's no message 3."
    );
}

#[test]
fn a_maildrop_without_usable_uidls_is_refused_with_the_reason() {
    let none = block_on(async {
        let mut pop = session("+OK ready\r\n-ERR Unknown command\r\n")
            .await
            .unwrap();
        pop.listing().await.unwrap_err()
    });
    assert_eq!(none.kind, ErrorKind::Config);
    assert!(
        none.message.contains("does not support UIDL"),
        "{}",
        none.message
    );
    let twice = block_on(async {
        let mut pop =
            session("+OK ready\r\n+OK\r\n1 same\r\n2 same\r\n.\r\n+OK\r\n1 5\r\n2 6\r\n.\r\n")
                .await
                .unwrap();
        pop.listing().await.unwrap_err()
    });
    assert_eq!(twice.kind, ErrorKind::Refused);
    let bad = block_on(async {
        let mut pop = session("+OK ready\r\n+OK\r\n1\r\n.\r\n").await.unwrap();
        pop.uidl().await.unwrap_err()
    });
    assert!(bad.transient, "{}", bad.message);
}

#[test]
fn a_refused_stls_never_falls_back_to_clear_text() {
    let e = block_on(async {
        let pop = session("+OK ready\r\n-ERR Unknown command\r\n")
            .await
            .unwrap();
        pop.stls().await.err().unwrap()
    });
    assert_eq!(e.kind, ErrorKind::Tls);
    assert!(e.message.contains("refusing to send the password in clear"));
}

#[test]
fn bytes_injected_after_stls_are_refused() {
    let e = block_on(async {
        let pop = session("+OK ready\r\n+OK Begin TLS negotiation\r\n+OK injected\r\n")
            .await
            .unwrap();
        pop.stls().await.err().unwrap()
    });
    assert_eq!(e.kind, ErrorKind::Tls);
    assert!(
        e.message.contains("after agreeing to STLS"),
        "{}",
        e.message
    );
    let clean = block_on(async {
        let pop = session("+OK ready\r\n+OK Begin TLS negotiation\r\n")
            .await
            .unwrap();
        pop.stls().await.map(|s| String::from_utf8(s.sent).unwrap())
    });
    assert_eq!(clean.unwrap(), "STLS\r\n");
}

#[test]
fn a_line_break_in_the_login_is_refused_before_anything_is_sent() {
    let (e, sent_bytes) = block_on(async {
        let mut pop = session("+OK ready\r\n").await.unwrap();
        let auth = Auth::Password {
            login: "bob\r\nDELE 1".into(),
            password: Secret::new("pw"),
        };
        let e = pop.login(&auth).await.unwrap_err();
        (e, sent(&pop))
    });
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(sent_bytes.is_empty());
}
