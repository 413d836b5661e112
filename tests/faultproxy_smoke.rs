//! The fault proxy and the TLS Dovecot: harness pieces that later tests of mailshift's
//! retries, timeouts and certificate checks rely on. Each fault must really happen (and be
//! logged) and each TLS check must be able to fail, or those later tests prove nothing.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::faultproxy::{Direction, Fault, FaultProxy};
use crate::support::imap::ImapClient;

/// ~1 MB of base64-looking lines: many proxy chunks, nothing a pattern could match by luck.
fn big_message() -> Vec<u8> {
    let mut m =
        b"From: big@example.org\r\nSubject: big\r\nMessage-ID: <big@example.org>\r\n\r\n".to_vec();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u32 = 0x9e37_79b9;
    while m.len() < 1024 * 1024 {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.push(alphabet[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// A server with one big message in alice's INBOX, seeded directly (not through a proxy).
fn seeded_server() -> Dovecot {
    let server = Dovecot::start(DovecotConfig {
        users: &[("alice", "pw")],
        ..Default::default()
    });
    let mut c = server.login("alice", "pw");
    c.append("INBOX", &["\\Seen"], None, &big_message())
        .unwrap();
    c.logout().unwrap();
    server
}

fn login_via(proxy: &FaultProxy) -> Result<ImapClient, String> {
    let mut c = ImapClient::connect(proxy.port())?;
    c.login("alice", "pw")?;
    Ok(c)
}

/// A one-connection server that sends `pieces` (pausing `ms` before each, so the proxy reads
/// them as separate chunks) and then keeps the connection open: any EOF the client sees is
/// the proxy's doing.
fn scripted_server(pieces: Vec<(u64, Vec<u8>)>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        for (ms, piece) in pieces {
            std::thread::sleep(Duration::from_millis(ms));
            if s.write_all(&piece).is_err() {
                return;
            }
        }
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    });
    (addr, handle)
}

/// Everything until EOF or a reset; panics on a timeout (a stream that never ends).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading through the proxy: {e} after {} bytes", got.len()),
        }
    }
}

/// Waits until exactly `n` connections are being forwarded: a session's end reaches the
/// proxy a moment after the client has its last response.
fn wait_live(proxy: &FaultProxy, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.live() != n {
        assert!(
            Instant::now() < deadline,
            "{} live connections, want {n}",
            proxy.live()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn faultproxy_forwards_a_big_fetch_untouched() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    let mut c = login_via(&proxy).unwrap();
    let got = c.uid_fetch_all("INBOX").unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].bytes == big_message(), "body changed in transit");
    c.logout().unwrap();
    assert_eq!(proxy.connections(), 1);
    assert!(proxy.fired().is_empty(), "{:?}", proxy.fired());
}

#[test]
fn faultproxy_cut_inside_a_fetch_literal_then_once_lets_a_retry_through() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    let mut c = login_via(&proxy).unwrap();
    proxy.set(Fault::CutOnPattern {
        direction: Direction::ToClient,
        pattern: b"BODY[] {".to_vec(),
        extra_bytes: 100_000,
        once: true,
    });
    let err = c.uid_fetch_all("INBOX").unwrap_err();
    assert!(err.contains("literal"), "not cut inside the literal: {err}");
    let fired = proxy.fired();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].starts_with("conn 1: CutOnPattern"), "{fired:?}");
    assert!(proxy.armed().is_empty(), "once rule still armed");
    assert!(c.select("INBOX").is_err(), "cut session still answers");

    let mut retry = login_via(&proxy).unwrap();
    let got = retry.uid_fetch_all("INBOX").unwrap();
    assert!(got[0].bytes == big_message());
    retry.logout().unwrap();
    assert_eq!(proxy.fired().len(), 1);
    assert_eq!(proxy.connections(), 2);
}

#[test]
fn faultproxy_cut_mid_append_literal_stores_nothing_and_repeats_unless_once() {
    let server = Dovecot::start(DovecotConfig {
        users: &[("alice", "pw")],
        ..Default::default()
    });
    let proxy = FaultProxy::to_port(server.port());
    proxy.set(Fault::CutAfterBytes {
        direction: Direction::ToServer,
        bytes: 64 * 1024,
        once: false,
    });
    for attempt in 1..=2 {
        let mut c = login_via(&proxy).unwrap();
        let err = c
            .append("INBOX", &[], None, &big_message())
            .expect_err("APPEND through a cut link succeeded");
        assert!(!err.is_empty());
        assert_eq!(proxy.fired().len(), attempt, "{:?}", proxy.fired());
    }
    assert!(proxy.fired()[1].starts_with("conn 2: CutAfterBytes"));
    let mut direct = server.login("alice", "pw");
    assert_eq!(direct.examine("INBOX").unwrap().exists, 0);
}

#[test]
fn faultproxy_cuts_at_the_exact_byte() {
    // The pattern straddles two reads; the cut lands `extra_bytes` after its end.
    let (addr, server) = scripted_server(vec![
        (0, b"* 1 FETCH (BODY[".to_vec()),
        (100, b"] {10}\r\n0123456789)\r\n".to_vec()),
    ]);
    let proxy = FaultProxy::start(addr);
    proxy.set(Fault::CutOnPattern {
        direction: Direction::ToClient,
        pattern: b"BODY[] {".to_vec(),
        extra_bytes: 7,
        once: false,
    });
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    let got = read_until_closed(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "* 1 FETCH (BODY[] {10}\r\n01"
    );
    server.join().unwrap();

    let (addr, server) = scripted_server(vec![(0, vec![b'x'; 700]), (50, vec![b'y'; 700])]);
    let proxy = FaultProxy::start(addr);
    proxy.set(Fault::CutAfterBytes {
        direction: Direction::ToClient,
        bytes: 1000,
        once: true,
    });
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    let got = read_until_closed(&mut s);
    assert_eq!(got.len(), 1000);
    assert!(proxy.fired()[0].contains("after 1000 bytes ToClient"));
    server.join().unwrap();
}

#[test]
fn faultproxy_refuses_exactly_n_connections() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    proxy.set(Fault::Refuse { times: 2 });
    for _ in 0..2 {
        let err = ImapClient::connect(proxy.port())
            .err()
            .expect("a refused connection greeted");
        assert!(err.contains("closed"), "{err}");
    }
    login_via(&proxy).unwrap().logout().unwrap();
    assert_eq!(proxy.connections(), 3);
    let fired = proxy.fired();
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert!(fired[1].starts_with("conn 2: Refuse (0 more"), "{fired:?}");
    assert!(proxy.armed().is_empty());
}

#[test]
fn faultproxy_cut_all_kills_a_live_session() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    let mut c = login_via(&proxy).unwrap();
    c.select("INBOX").unwrap();
    assert_eq!(proxy.live(), 1);
    assert_eq!(proxy.cut_all(), 1);
    let err = c.select("INBOX").unwrap_err();
    assert!(
        ["closed", "reset", "Broken pipe"]
            .iter()
            .any(|w| err.contains(w)),
        "{err}"
    );
    assert_eq!(proxy.live(), 0);
    assert_eq!(proxy.fired(), ["cut_all: connections [1]"]);
    login_via(&proxy).unwrap().logout().unwrap();
}

#[test]
fn faultproxy_stall_keeps_the_connection_open_and_silent() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    proxy.set(Fault::Stall {
        direction: Direction::ToClient,
        after_bytes: 0,
        once: true,
    });
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = s
        .read(&mut [0u8; 64])
        .expect_err("a stalled link delivered data or EOF");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(proxy.fired()[0].starts_with("conn 1: Stall"));
    // Spent: the next connection gets its greeting (a raw read with a short timeout, so a
    // rule that failed to disarm fails the test quickly instead of hanging a login).
    let mut next = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greeting = [0u8; 4];
    next.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"* OK");
    drop(next);
    wait_live(&proxy, 1);
    assert_eq!(proxy.cut_all(), 1);
    assert!(read_until_closed(&mut s).is_empty());
}

#[test]
fn faultproxy_delay_slows_every_chunk() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    proxy.set(Fault::Delay { per_chunk_ms: 150 });
    let start = Instant::now();
    // Greeting, LOGIN, its response: at least three delayed chunks.
    login_via(&proxy).unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(450), "{took:?}");
}

#[test]
fn faultproxy_drop_ends_connections_and_threads_promptly() {
    let server = seeded_server();
    let proxy = FaultProxy::to_port(server.port());
    let port = proxy.port();
    let mut busy = login_via(&proxy).unwrap();
    proxy.set(Fault::Stall {
        direction: Direction::ToClient,
        after_bytes: 0,
        once: false,
    });
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The stalled connection must really be proxied, not just queued.
    wait_live(&proxy, 2);
    let start = Instant::now();
    drop(proxy);
    // Drop joins every thread it started: returning at all means none is left.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(read_until_closed(&mut stalled).is_empty());
    assert!(busy.select("INBOX").is_err());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
}

/// Runs `openssl s_client` with `args`, sending a LOGOUT once connected; (success, all
/// output). Killed after 10 s so a hung handshake fails the test instead of hanging it.
fn s_client(args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        // Keep going after stdin's EOF, until the server closes after LOGOUT.
        .arg("-ign_eof")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a1 LOGOUT\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn dovecot_tls_serves_a_certificate_its_ca_verifies() {
    let server = Dovecot::start(DovecotConfig {
        users: &[("alice", "pw")],
        tls: true,
        ..Default::default()
    });
    let ca = server.ca_pem_path();
    let ca = ca.to_str().unwrap();
    let imaps = format!("127.0.0.1:{}", server.tls_port());
    let plain = format!("127.0.0.1:{}", server.port());
    let verify = ["-verify_return_error", "-CAfile", ca];

    for extra in [
        &["-connect", &imaps, "-verify_ip", "127.0.0.1"][..],
        &["-connect", &imaps, "-verify_hostname", "localhost"],
        &[
            "-connect",
            &plain,
            "-starttls",
            "imap",
            "-verify_ip",
            "127.0.0.1",
        ],
    ] {
        let (ok, out) = s_client(&[&verify[..], extra].concat());
        assert!(
            ok && out.contains("Verify return code: 0 (ok)") && out.contains("* BYE"),
            "{extra:?}:\n{out}\n{}",
            server.log()
        );
    }

    // Without the CA there is nothing to verify against (nor any system store to fall back
    // on), and a name the certificate does not carry fails even with it.
    let no_ca = [
        "-verify_return_error",
        "-no-CAfile",
        "-no-CApath",
        "-no-CAstore",
    ];
    for args in [
        [&no_ca[..], &["-connect", &imaps]].concat(),
        [&no_ca[..], &["-connect", &plain, "-starttls", "imap"]].concat(),
        [
            &verify[..],
            &["-connect", &imaps, "-verify_hostname", "example.org"],
        ]
        .concat(),
    ] {
        let (ok, out) = s_client(&args);
        assert!(
            !ok && out.contains("verify error") && !out.contains("* BYE"),
            "{args:?} verified:\n{out}"
        );
    }
}

#[test]
fn dovecot_tls_offers_starttls_and_keeps_plain_login_while_the_default_offers_none() {
    let tls = Dovecot::start(DovecotConfig {
        users: &[("alice", "pw")],
        tls: true,
        ..Default::default()
    });
    let c = tls.login("alice", "pw");
    assert!(c.greeting.contains("STARTTLS"), "{}", c.greeting);
    c.logout().unwrap();

    let plain = Dovecot::start(DovecotConfig {
        users: &[("alice", "pw")],
        ..Default::default()
    });
    let mut c = plain.login("alice", "pw");
    assert!(!c.greeting.contains("STARTTLS"), "{}", c.greeting);
    assert!(
        !c.capabilities()
            .unwrap()
            .iter()
            .any(|cap| cap == "STARTTLS")
    );
    c.logout().unwrap();
}
