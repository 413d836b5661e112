//! One POP3 connection (RFC 1939), read-only: connect (implicit TLS, or STLS that is never
//! downgraded, or plain when the plan says the network is trusted), log in (USER/PASS, SASL
//! PLAIN, SASL XOAUTH2), then CAPA, STAT, UIDL, LIST, RETR, TOP and QUIT, the fetches
//! pipelined where the server allows it (RFC 2449). DELE is never sent: a POP3 source is only
//! ever read, and QUIT (which commits deletions) has none to commit.
//!
//! Our own client rather than a crate (as of 2026-11, see the reference notes on POP3
//! sources): `async-pop` defaults to async-std and does its TLS through async-native-tls or an
//! old async-rustls, with no STLS; `pop3` is blocking on openssl 0.9 and unmaintained;
//! `pop3-client` has its TLS behind a cfg that is never set, so it is plaintext only; `mailme`
//! is on tokio 0.3. POP3 is a small line protocol, and a client of our own shares the IMAP
//! session's TLS set-up ([`crate::session::tls`]: certificate verified against the platform's
//! roots plus the endpoint's `ca_file`), its [`Target`] (endpoint and login, secrets already
//! read), its [`TokenSource`](crate::session::TokenSource) for XOAUTH2 and its error kinds.
//!
//! The protocol logic is generic over the byte stream so the unit tests below drive it with
//! scripted server bytes; [`Pop3::connect`] is the one place that opens sockets.

use std::time::Duration;

pub mod copy;
pub mod triage;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::ErrorKind;
use crate::session::tls::tls_wrap;
use crate::session::{
    Auth, CONNECT_TIMEOUT, Conn, ImapError, Secret, Security, Target, TokenError, Tokens,
};

/// A status line longer than this is not a POP3 server talking (RFC 2449 allows 512 octets).
const MAX_STATUS_LINE: u64 = 8 * 1024;

/// Commands sent at once to a server that allows PIPELINING: one round trip per group of
/// messages rather than per message, and the group's command bytes (under 1 KB) fit any
/// socket buffer, so the server never waits for us to read while we are still writing.
const PIPELINE: usize = 50;

/// A UIDL or LIST line longer than this is not a listing (RFC 1939: a UIDL is at most 70
/// characters; some servers send more, never this much).
const MAX_LISTING_LINE: u64 = 4 * 1024;

/// What the server said it can do (RFC 2449 CAPA). Empty when it does not know CAPA (an
/// RFC 1939-only server): then UIDL is tried anyway, and USER/PASS is the login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pop3Caps {
    pub stls: bool,
    /// TOP (optional in RFC 1939): a message's header without its body.
    pub top: bool,
    /// PIPELINING (RFC 2449): commands may be sent without waiting for each answer.
    pub pipelining: bool,
    pub uidl: bool,
    pub user: bool,
    /// SASL mechanisms, upper-cased.
    pub sasl: Vec<String>,
}

impl Pop3Caps {
    fn parse(text: &[u8]) -> Pop3Caps {
        let mut caps = Pop3Caps::default();
        for line in String::from_utf8_lossy(text).lines() {
            let mut words = line.split_ascii_whitespace();
            match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STLS") => caps.stls = true,
                Some("TOP") => caps.top = true,
                Some("PIPELINING") => caps.pipelining = true,
                Some("UIDL") => caps.uidl = true,
                Some("USER") => caps.user = true,
                Some("SASL") => caps.sasl = words.map(str::to_ascii_uppercase).collect(),
                _ => {}
            }
        }
        caps
    }

    fn sasl(&self, mechanism: &str) -> bool {
        self.sasl.iter().any(|m| m == mechanism)
    }
}

/// One message of the maildrop: its number in this session, its UIDL (the identity that
/// lasts across sessions) and its size in octets as the server counts it (CRLF line ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub number: u32,
    pub uidl: String,
    pub size: u64,
}

/// A POP3 session in the TRANSACTION state (logged in).
pub struct Pop3<S = Conn> {
    io: BufReader<S>,
    /// `host:port`, as errors name the server.
    peer: String,
    /// How long one command may go without an answer (the endpoint's `timeout:`).
    timeout: Duration,
    pub caps: Pop3Caps,
}

impl Pop3<Conn> {
    /// Connects and logs in. Errors name the server and the login, never the secret.
    pub async fn connect(target: &Target) -> Result<Pop3<Conn>, ImapError> {
        let ep = &target.endpoint;
        // Not even a connection while the account is told to keep quiet.
        target.gate().pass().await;
        let addr = format!("{}:{}", ep.host, ep.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| {
                ImapError::transient(format!("cannot connect to POP3 server {addr}: timed out"))
            })?
            .map_err(|e| {
                ImapError::transient(format!("cannot connect to POP3 server {addr}: {e}"))
            })?;
        let _ = tcp.set_nodelay(true);
        let mut pop = match ep.security {
            Security::None => Pop3::greeted(Conn::Plain(tcp), &addr, ep.timeout).await?,
            Security::Tls => Pop3::greeted(tls_wrap(tcp, target).await?, &addr, ep.timeout).await?,
            Security::Starttls => {
                let plain = Pop3::greeted(Conn::Plain(tcp), &addr, ep.timeout).await?;
                let Conn::Plain(tcp) = plain.stls().await? else {
                    unreachable!("STLS runs on a plain connection")
                };
                Pop3::greeted_after_stls(tls_wrap(tcp, target).await?, &addr, ep.timeout)
            }
        };
        pop.caps = pop.capa().await?;
        pop.login(&target.auth).await?;
        Ok(pop)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Pop3<S> {
    /// STLS (RFC 2595) on a plain session: the stream to wrap in TLS. A refusal ends
    /// here: the password is never sent in clear instead.
    async fn stls(mut self) -> Result<S, ImapError> {
        if let Err(e) = self.simple("STLS", "STLS").await {
            // A dropped connection is only that; an -ERR is a server without STLS.
            if e.kind != ErrorKind::Refused {
                return Err(e);
            }
            return Err(ImapError::new(
                ErrorKind::Tls,
                format!(
                    "POP3 server {} does not offer STLS ({}): refusing to send the password in clear \
                     (use `security: tls` if it has an implicit-TLS port, usually 995, or `security: none` \
                     on a trusted network)",
                    self.peer, e.message
                ),
            ));
        }
        crate::session::tls::refuse_injected(
            self.io.buffer(),
            &format!("POP3 server {}", self.peer),
            "STLS",
        )?;
        Ok(self.io.into_inner())
    }

    /// A session over `stream`, after reading the server's greeting.
    pub async fn greeted(stream: S, peer: &str, timeout: Duration) -> Result<Pop3<S>, ImapError> {
        let mut pop = Pop3 {
            io: BufReader::new(stream),
            peer: peer.to_string(),
            timeout,
            caps: Pop3Caps::default(),
        };
        let line = tokio::time::timeout(CONNECT_TIMEOUT, pop.line(MAX_STATUS_LINE))
            .await
            .map_err(|_| ImapError::transient(format!("{peer} sent no POP3 greeting")))??;
        match status(&line) {
            Some(Ok(_)) => Ok(pop),
            // A busy server turns connections away with -ERR (RFC 1939 allows it).
            Some(Err(text)) => Err(ImapError::new(
                ErrorKind::Throttled,
                format!("POP3 server {peer} refused the connection: {text}"),
            )),
            // Not a POP3 server: the plan points at the wrong port (an IMAP one, often).
            None => Err(ImapError::new(
                ErrorKind::Config,
                format!(
                    "{peer} is not a POP3 server: it greeted with {:?} (check the port: 995 for POP3 over TLS, 110 for STLS)",
                    shown(&line)
                ),
            )),
        }
    }

    /// After STLS the TLS session starts with no greeting of its own.
    fn greeted_after_stls(stream: S, peer: &str, timeout: Duration) -> Pop3<S> {
        Pop3 {
            io: BufReader::new(stream),
            peer: peer.to_string(),
            timeout,
            caps: Pop3Caps::default(),
        }
    }

    /// CAPA (RFC 2449). A server that does not know it (an -ERR) can do none of its extensions.
    pub async fn capa(&mut self) -> Result<Pop3Caps, ImapError> {
        match self.multi("CAPA", "CAPA").await {
            Ok(text) => Ok(Pop3Caps::parse(&text)),
            Err(e) if e.kind == ErrorKind::Refused => Ok(Pop3Caps::default()),
            Err(e) => Err(e),
        }
    }

    /// Logs in as `auth` says: XOAUTH2 with a token from its source; a password by SASL PLAIN
    /// where offered (one exchange, and the server's own choice of mechanism), else USER/PASS.
    pub async fn login(&mut self, auth: &Auth) -> Result<(), ImapError> {
        // A line break in the login would end our command early and start another.
        if auth.login().contains(['\r', '\n', '\0']) {
            return Err(ImapError::new(
                ErrorKind::Config,
                format!(
                    "the POP3 login {:?} holds a line break or NUL",
                    auth.login()
                ),
            ));
        }
        match auth {
            Auth::Password { login, password } => {
                if self.caps.sasl("PLAIN") {
                    let plain = format!("\0{login}\0{}", password.expose());
                    self.sasl(login, "PLAIN", &plain).await
                } else {
                    self.user_pass(login, password).await
                }
            }
            Auth::XOAuth2 { login, tokens } => self.xoauth2(login, tokens).await,
        }
    }

    async fn user_pass(&mut self, login: &str, password: &Secret) -> Result<(), ImapError> {
        let t = self.timeout;
        let answer = tokio::time::timeout(t, async {
            self.send(&format!("USER {login}")).await?;
            if let Err(text) = self.answer().await? {
                return Ok(Err(text));
            }
            self.send(&format!("PASS {}", password.expose())).await?;
            self.answer().await
        })
        .await
        .map_err(|_| self.timed_out("login"))??;
        answer
            .map(drop)
            .map_err(|text| self.login_refused(login, &text))
    }

    /// SASL (RFC 5034) without an initial response, so a long XOAUTH2 token is not held to the
    /// 255-octet limit of one: `AUTH MECH`, the server's `+`, then our answer.
    async fn sasl(&mut self, login: &str, mechanism: &str, answer: &str) -> Result<(), ImapError> {
        let t = self.timeout;
        let outcome = tokio::time::timeout(t, async {
            self.send(&format!("AUTH {mechanism}")).await?;
            let line = self.line(MAX_STATUS_LINE).await?;
            if let Some(Err(text)) = status(&line) {
                return Ok(Err(text));
            }
            if !line.starts_with(b"+") {
                return Err(self.garbled("AUTH", &line));
            }
            self.send(&base64::engine::general_purpose::STANDARD.encode(answer))
                .await?;
            let line = self.line(MAX_STATUS_LINE).await?;
            match status(&line) {
                Some(result) => Ok(result),
                // A second challenge is the server's error report (XOAUTH2's base64 JSON): it
                // is answered with an empty line, never with the token again, and the -ERR
                // that follows is the refusal.
                None if line.starts_with(b"+") => {
                    self.send("").await?;
                    match self.answer().await? {
                        Ok(_) => Ok(Ok(String::new())),
                        Err(text) => Ok(Err(text)),
                    }
                }
                None => Err(self.garbled("AUTH", &line)),
            }
        })
        .await
        .map_err(|_| self.timed_out("login"))??;
        outcome
            .map(drop)
            .map_err(|text| self.login_refused(login, &text))
    }

    /// XOAUTH2 with a token from `tokens`; a refused token is reported expired and one more
    /// attempt is made with the next one, unless that is the same (a fixed token).
    async fn xoauth2(&mut self, login: &str, tokens: &Tokens) -> Result<(), ImapError> {
        let peer = self.peer.clone();
        let no_token = |e: TokenError| {
            ImapError::new(
                e.kind,
                format!("no OAuth2 token for {login} at {peer}: {}", e.message),
            )
        };
        let mut token = tokens.0.token().await.map_err(no_token)?;
        let mut retried = false;
        loop {
            let answer = format!("user={login}\x01auth=Bearer {}\x01\x01", token.expose());
            let err = match self.sasl(login, "XOAUTH2", &answer).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if err.kind != ErrorKind::Auth || retried {
                return Err(err);
            }
            tokens.0.expired(&token);
            let fresh = tokens.0.token().await.map_err(no_token)?;
            if fresh.expose() == token.expose() {
                return Err(err);
            }
            token = fresh;
            retried = true;
        }
    }

    /// STAT: how many messages, and their octets.
    pub async fn stat(&mut self) -> Result<(u32, u64), ImapError> {
        let text = self.simple("STAT", "STAT").await?;
        let mut words = text.split_ascii_whitespace();
        match (
            words.next().and_then(|w| w.parse().ok()),
            words.next().and_then(|w| w.parse().ok()),
        ) {
            (Some(count), Some(octets)) => Ok((count, octets)),
            _ => Err(self.garbled("STAT", text.as_bytes())),
        }
    }

    /// UIDL of every message: `(number, uidl)`. A server without UIDL cannot be a source
    /// (nothing would tell a message already copied from a new one).
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>, ImapError> {
        let text = match self.multi("UIDL", "UIDL").await {
            Ok(text) => text,
            Err(e) if e.kind == ErrorKind::Refused => {
                return Err(ImapError::new(
                    ErrorKind::Config,
                    format!(
                        "POP3 server {} does not support UIDL ({}): without it mailshift cannot tell a message \
                         it copied from a new one, so it cannot copy this mailbox exactly once",
                        self.peer, e.message
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let line = trim_eol(line);
            if line.is_empty() {
                continue;
            }
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let number = words
                .next()
                .and_then(parse_u64)
                .and_then(|n| u32::try_from(n).ok());
            let uidl = words
                .next()
                .filter(|u| u.iter().all(|&b| (0x21..=0x7e).contains(&b)));
            match (number, uidl) {
                (Some(n), Some(u)) => out.push((n, String::from_utf8_lossy(u).into_owned())),
                _ => return Err(self.garbled("UIDL", line)),
            }
        }
        Ok(out)
    }

    /// LIST of every message: `(number, octets)`.
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>, ImapError> {
        let text = self.multi("LIST", "LIST").await?;
        let mut out = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let line = trim_eol(line);
            if line.is_empty() {
                continue;
            }
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let number = words
                .next()
                .and_then(parse_u64)
                .and_then(|n| u32::try_from(n).ok());
            match (number, words.next().and_then(parse_u64)) {
                (Some(n), Some(size)) => out.push((n, size)),
                _ => return Err(self.garbled("LIST", line)),
            }
        }
        Ok(out)
    }

    /// The maildrop: UIDL and LIST joined, in message order. Every message must have a UIDL,
    /// and no two the same one: otherwise identity is lost and the copy refuses to start.
    pub async fn listing(&mut self) -> Result<Vec<Listed>, ImapError> {
        let uidls = self.uidl().await?;
        let sizes: std::collections::HashMap<u32, u64> = self.list().await?.into_iter().collect();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(uidls.len());
        for (number, uidl) in uidls {
            if !seen.insert(uidl.clone()) {
                return Err(ImapError::new(
                    ErrorKind::Refused,
                    format!(
                        "POP3 server {} gives two messages the same UIDL {uidl:?}: mailshift cannot tell them apart",
                        self.peer
                    ),
                ));
            }
            let Some(&size) = sizes.get(&number) else {
                return Err(ImapError::transient(format!(
                    "POP3 server {}: message {number} is in UIDL but not in LIST",
                    self.peer
                )));
            };
            out.push(Listed { number, uidl, size });
        }
        Ok(out)
    }

    /// RETR: the message as stored, dot-unstuffed, with its line ends as sent (CRLF).
    pub async fn retr(&mut self, number: u32) -> Result<Vec<u8>, ImapError> {
        self.multi("RETR", &format!("RETR {number}")).await
    }

    /// TOP with no body lines: the message's header and the empty line after it, for what a
    /// header says (its date) without fetching the rest. Only where CAPA lists TOP.
    pub async fn top(&mut self, number: u32) -> Result<Vec<u8>, ImapError> {
        self.multi("TOP", &format!("TOP {number} 0")).await
    }

    /// Each of `numbers` read whole with RETR (or, `header_only`, its header with `TOP n 0`),
    /// in order, the commands sent in groups where the server allows PIPELINING. What was read
    /// before a failure comes back with it; after a failure the session is out of step and is
    /// not to be used again.
    pub async fn fetch_each(
        &mut self,
        numbers: &[u32],
        header_only: bool,
    ) -> (Vec<Vec<u8>>, Option<ImapError>) {
        let what = if header_only { "TOP" } else { "RETR" };
        let group = if self.caps.pipelining { PIPELINE } else { 1 };
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(group) {
            let commands: Vec<String> = chunk
                .iter()
                .map(|n| match header_only {
                    true => format!("TOP {n} 0"),
                    false => format!("RETR {n}"),
                })
                .collect();
            if let Err(e) = self.send(&commands.join("\r\n")).await {
                return (out, Some(e));
            }
            for _ in chunk {
                let read = match self.answer().await {
                    Ok(Ok(_)) => self.data(what).await,
                    Ok(Err(text)) => Err(self.refused(what, &text)),
                    Err(e) => Err(e),
                };
                match read {
                    Ok(message) => out.push(message),
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    /// QUIT, ending the session politely. Nothing is deleted: no DELE was ever sent. A failure
    /// here changes nothing already read, so it is not reported.
    pub async fn quit(mut self) {
        let t = self.timeout;
        let _ = tokio::time::timeout(t, async {
            self.send("QUIT").await?;
            self.answer().await
        })
        .await;
        let _ = self.io.get_mut().shutdown().await;
    }

    /// A one-line command: the text after `+OK`.
    async fn simple(&mut self, what: &str, command: &str) -> Result<String, ImapError> {
        let t = self.timeout;
        let answer = tokio::time::timeout(t, async {
            self.send(command).await?;
            self.answer().await
        })
        .await
        .map_err(|_| self.timed_out(what))??;
        answer.map_err(|text| self.refused(what, &text))
    }

    /// A multi-line command: its data, dot-unstuffed, without the terminating `.` line.
    ///
    /// No timeout on the whole: a large message on a slow link may take longer than the
    /// endpoint's `timeout:`, which bounds each wait for more bytes instead (in `send`, `line`
    /// and `data`), as it bounds one IMAP command's silence.
    async fn multi(&mut self, what: &str, command: &str) -> Result<Vec<u8>, ImapError> {
        self.send(command).await?;
        match self.answer().await? {
            Ok(_) => self.data(what).await,
            Err(text) => Err(self.refused(what, &text)),
        }
    }

    /// The lines of a multi-line answer up to the lone `.`, each dot-unstuffed (RFC 1939 §3).
    async fn data(&mut self, what: &str) -> Result<Vec<u8>, ImapError> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = tokio::time::timeout(self.timeout, self.io.read_until(b'\n', &mut out))
                .await
                .map_err(|_| self.timed_out(what))?
                .map_err(|e| self.dropped(what, &e))?;
            let line = &out[start..];
            if n == 0 || !line.ends_with(b"\n") {
                return Err(ImapError::transient(format!(
                    "POP3 server {} closed the connection in the middle of {what}",
                    self.peer
                )));
            }
            if line.first() == Some(&b'.') {
                if trim_eol(line) == b"." {
                    out.truncate(start);
                    return Ok(out);
                }
                out.remove(start);
            }
            // A message's lines (RETR, TOP) may be long; a listing's may not.
            if !matches!(what, "RETR" | "TOP") && out.len() - start > MAX_LISTING_LINE as usize {
                return Err(self.garbled(what, &out[start..start + 80]));
            }
        }
    }

    /// A status line: `Ok(text)` after `+OK`, `Err(text)` after `-ERR`.
    async fn answer(&mut self) -> Result<Result<String, String>, ImapError> {
        let line = self.line(MAX_STATUS_LINE).await?;
        status(&line).ok_or_else(|| self.garbled("a command", &line))
    }

    async fn send(&mut self, line: &str) -> Result<(), ImapError> {
        let io = self.io.get_mut();
        let sent = tokio::time::timeout(self.timeout, async {
            io.write_all(line.as_bytes()).await?;
            io.write_all(b"\r\n").await?;
            io.flush().await
        })
        .await;
        match sent {
            Err(_) => Err(self.timed_out("sending a command")),
            Ok(sent) => sent.map_err(|e| self.dropped("sending a command", &e)),
        }
    }

    async fn line(&mut self, max: u64) -> Result<Vec<u8>, ImapError> {
        let mut line = Vec::new();
        let timeout = self.timeout;
        let mut limited = (&mut self.io).take(max);
        let read = tokio::time::timeout(timeout, limited.read_until(b'\n', &mut line)).await;
        let n = read
            .map_err(|_| self.timed_out("waiting for an answer"))?
            .map_err(|e| self.dropped("reading", &e))?;
        if n == 0 {
            return Err(ImapError::transient(format!(
                "POP3 server {} closed the connection",
                self.peer
            )));
        }
        if !line.ends_with(b"\n") {
            return Err(self.garbled("a command", &line[..line.len().min(80)]));
        }
        Ok(line)
    }

    fn refused(&self, what: &str, text: &str) -> ImapError {
        ImapError::new(
            refusal_kind(text),
            format!("{what} on POP3 server {}: server said {text}", self.peer),
        )
    }

    fn login_refused(&self, login: &str, text: &str) -> ImapError {
        // A refused login is a wrong password unless the server says it is only busy.
        let kind = match refusal_kind(text) {
            k @ (ErrorKind::Throttled | ErrorKind::DailyLimit | ErrorKind::Network) => k,
            _ => ErrorKind::Auth,
        };
        ImapError::new(
            kind,
            format!(
                "login as {login} on POP3 server {} was refused: {text}",
                self.peer
            ),
        )
    }

    fn dropped(&self, what: &str, e: &std::io::Error) -> ImapError {
        ImapError::transient(format!("{what} on POP3 server {} failed: {e}", self.peer))
    }

    fn timed_out(&self, what: &str) -> ImapError {
        ImapError::transient(format!(
            "{what} on POP3 server {} timed out after {:?}",
            self.peer, self.timeout
        ))
    }

    /// An answer that is not POP3: the stream is out of step, so the connection is dropped
    /// and a new one tried.
    fn garbled(&self, what: &str, line: &[u8]) -> ImapError {
        ImapError::transient(format!(
            "POP3 server {} answered {what} with {:?}, which is not POP3",
            self.peer,
            shown(line)
        ))
    }
}

/// What an -ERR means, from its RFC 2449/3206 response code or, failing one, the words the
/// IMAP side knows ([`crate::session`]'s classification).
fn refusal_kind(text: &str) -> ErrorKind {
    let t = text.to_ascii_uppercase();
    // Another session holds the maildrop's lock, or the server wants logins spaced out: both
    // pass by themselves.
    if t.starts_with("[IN-USE]") || t.starts_with("[LOGIN-DELAY]") {
        ErrorKind::Throttled
    } else if t.starts_with("[SYS/TEMP]") {
        ErrorKind::Network
    } else if t.starts_with("[AUTH]") {
        ErrorKind::Auth
    } else {
        crate::session::error_kind_of(text)
    }
}

/// `Some(Ok(text))` for `+OK text`, `Some(Err(text))` for `-ERR text`, `None` otherwise.
fn status(line: &[u8]) -> Option<Result<String, String>> {
    let text = |rest: &[u8]| String::from_utf8_lossy(trim_eol(rest)).trim().to_string();
    if let Some(rest) = line.strip_prefix(b"+OK") {
        Some(Ok(text(rest)))
    } else {
        line.strip_prefix(b"-ERR").map(|rest| Err(text(rest)))
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_u64(word: &[u8]) -> Option<u64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// A server's line as people read it in an error.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(trim_eol(line));
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests;
