//! A proxy standing in for Gmail's daily IMAP upload limit in front of a real server: it
//! forwards everything, counts the bytes of the APPEND literals it lets through, and once
//! `volume` bytes have gone through, answers every further APPEND itself with Gmail's words
//! (`NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)`, as Gmail says it
//! to FETCH and APPEND: ha-email-sensor#16), without forwarding it: nothing of a refused
//! APPEND reaches the server, as with Gmail.
//!
//! Written for the quota tests while the Gmail-shaped proxy of `provider-sim` had no volume
//! switch yet. It reads the client's commands line by line and needs synchronizing literals
//! (`{N}`): put it in front of a server that does not offer LITERAL+ (Gmail offers LITERAL-
//! and no MULTIAPPEND), so that a refused APPEND's literal is never sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Gmail's answer once the account's bandwidth is used up.
pub const GMAIL_OVERQUOTA: &str =
    "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)";

pub struct QuotaProxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    target: SocketAddr,
    /// APPEND literal bytes let through before refusing; `u64::MAX`: never refuse.
    volume: AtomicU64,
    appended: AtomicU64,
    refused: AtomicU64,
    closed: AtomicBool,
}

impl QuotaProxy {
    pub fn start(target_port: u16, volume: u64) -> QuotaProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, target_port)),
            volume: AtomicU64::new(volume),
            appended: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.closed.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, client);
                });
            }
        });
        QuotaProxy { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The limit is lifted (the next day): every APPEND goes through.
    pub fn lift(&self) {
        self.shared.volume.store(u64::MAX, Ordering::Relaxed);
    }

    /// APPEND literal bytes forwarded to the server.
    pub fn appended(&self) -> u64 {
        self.shared.appended.load(Ordering::Relaxed)
    }

    /// APPENDs answered with [`GMAIL_OVERQUOTA`].
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for QuotaProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees `closed`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// `{N}` or `{N+}` at the end of a command line: the literal's length.
fn literal(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let inner = text.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

fn serve(s: &Shared, client: TcpStream) -> std::io::Result<()> {
    let server = TcpStream::connect(s.target)?;
    let to_client = Arc::new(Mutex::new(client.try_clone()?));
    let mut from_server = server.try_clone()?;
    let pump = {
        let to_client = to_client.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from_server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to_client.lock().unwrap().write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to_client.lock().unwrap().shutdown(Shutdown::Both);
        })
    };
    let mut to_server = server;
    let mut from_client = BufReader::new(client);
    let mut line = Vec::new();
    loop {
        line.clear();
        if from_client.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line).to_string();
        let mut words = text.split_whitespace();
        let tag = words.next().unwrap_or("*").to_string();
        let appending = words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("APPEND"));
        if appending && s.appended.load(Ordering::Relaxed) >= s.volume.load(Ordering::Relaxed) {
            // Refused before its literal: the client waits for a continuation and gets this.
            s.refused.fetch_add(1, Ordering::Relaxed);
            to_client
                .lock()
                .unwrap()
                .write_all(format!("{tag} {GMAIL_OVERQUOTA}\r\n").as_bytes())?;
            continue;
        }
        to_server.write_all(&line)?;
        let mut next = literal(&line);
        while let Some(n) = next {
            // The literal (its continuation comes from the server, through the pump), then
            // the rest of the command.
            let mut body = vec![0u8; n as usize];
            from_client.read_exact(&mut body)?;
            to_server.write_all(&body)?;
            if appending {
                s.appended.fetch_add(n, Ordering::Relaxed);
            }
            line.clear();
            if from_client.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            to_server.write_all(&line)?;
            next = literal(&line);
        }
    }
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = pump.join();
    Ok(())
}
