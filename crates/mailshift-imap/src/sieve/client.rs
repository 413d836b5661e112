//! One ManageSieve connection (RFC 5804): connect (implicit TLS, STARTTLS that is never
//! downgraded, or plain when the caller says the network is trusted), log in (SASL PLAIN or
//! XOAUTH2, the initial response sent with the command), then the script commands. Scripts
//! travel as literals both ways (`{n+}` from us, `{n}` from the server); errors carry the
//! server's own words and name the server, never the secret.
//!
//! The response reader is a free function over any buffered byte stream so the unit tests
//! below feed it server bytes; [`ManageSieve::connect`] is the one place that opens sockets.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

use crate::error::ErrorKind;
use crate::session::tls::tls_wrap;
use crate::session::{Auth, CONNECT_TIMEOUT, Conn, ImapError, Security, Target, TokenError};

/// A response line (without its literals) longer than this is not a ManageSieve server.
const MAX_LINE: u64 = 64 * 1024;
/// A literal larger than this is not a script (Dovecot's default `sieve_max_script_size` is
/// 1 MB; servers that allow more are rare).
const MAX_LITERAL: usize = 16 * 1024 * 1024;

/// What the server says it can do (its capability lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveCaps {
    pub implementation: String,
    /// Sieve extensions the server's interpreter knows (`fileinto`, `imap4flags`, ...).
    pub extensions: Vec<String>,
    /// SASL mechanisms, upper-cased.
    pub sasl: Vec<String>,
    pub starttls: bool,
}

impl SieveCaps {
    fn parse(lines: &[Vec<Item>]) -> SieveCaps {
        let mut caps = SieveCaps::default();
        for line in lines {
            let (Some(Item::Str(name)), value) = (line.first(), line.get(1)) else {
                continue;
            };
            let value = match value {
                Some(Item::Str(v)) => String::from_utf8_lossy(v).into_owned(),
                _ => String::new(),
            };
            match String::from_utf8_lossy(name).to_ascii_uppercase().as_str() {
                "IMPLEMENTATION" => caps.implementation = value,
                "SIEVE" => caps.extensions = value.split_whitespace().map(str::to_string).collect(),
                "SASL" => {
                    caps.sasl = value
                        .split_whitespace()
                        .map(str::to_ascii_uppercase)
                        .collect()
                }
                "STARTTLS" => caps.starttls = true,
                _ => {}
            }
        }
        caps
    }
}

/// One element of a response line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// A response code, `(QUOTA/MAXSIZE)`, without its parentheses.
    Code(String),
}

/// How a command ended: `OK`, `NO` or `BYE`, with its code and human text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: String,
    code: Option<String>,
    text: String,
}

/// Reads one response line, with the literals it announces.
async fn read_items<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    loop {
        let mut line = Vec::new();
        (&mut *r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        if line.is_empty() {
            return Err("the server closed the connection".into());
        }
        if !line.ends_with(b"\n") {
            return Err("a response line without its end (or longer than 64 KB)".into());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        match parse_items(&line, &mut items)? {
            None => return Ok(items),
            Some(n) => {
                if n > MAX_LITERAL {
                    return Err(format!("a literal of {n} bytes, more than a script can be"));
                }
                let mut buf = vec![0; n];
                r.read_exact(&mut buf)
                    .await
                    .map_err(|e| format!("connection lost inside a literal: {e}"))?;
                items.push(Item::Str(buf));
            }
        }
    }
}

/// Parses a line's items into `items`; `Some(n)` when the line ends announcing an n-byte
/// literal.
fn parse_items(line: &[u8], items: &mut Vec<Item>) -> Result<Option<usize>, String> {
    let shown = || String::from_utf8_lossy(line).into_owned();
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' => i += 1,
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(format!("an unclosed quoted string in {:?}", shown())),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            s.push(
                                *line
                                    .get(i + 1)
                                    .ok_or_else(|| format!("a bad escape in {:?}", shown()))?,
                            );
                            i += 2;
                        }
                        Some(&b) => {
                            s.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
                items.push(Item::Str(s));
            }
            b'{' => {
                let close = line[i..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or_else(|| format!("a bad literal in {:?}", shown()))?;
                if i + close + 1 != line.len() {
                    return Err(format!("a literal not at the end of {:?}", shown()));
                }
                let digits = std::str::from_utf8(&line[i + 1..i + close])
                    .unwrap_or("")
                    .trim_end_matches('+');
                return digits
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("a bad literal length in {:?}", shown()));
            }
            b'(' => {
                let mut depth_quote = false;
                let start = i + 1;
                let mut j = start;
                while j < line.len() && (depth_quote || line[j] != b')') {
                    if line[j] == b'"' {
                        depth_quote = !depth_quote;
                    }
                    j += 1;
                }
                if j == line.len() {
                    return Err(format!("an unclosed response code in {:?}", shown()));
                }
                items.push(Item::Code(
                    String::from_utf8_lossy(&line[start..j]).into_owned(),
                ));
                i = j + 1;
            }
            _ => {
                let end = line[i..]
                    .iter()
                    .position(|&b| b == b' ')
                    .map_or(line.len(), |p| i + p);
                items.push(Item::Atom(
                    String::from_utf8_lossy(&line[i..end]).into_owned(),
                ));
                i = end;
            }
        }
    }
    Ok(None)
}

/// Reads data lines up to the line that ends the command.
async fn read_response<R: AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<(Vec<Vec<Item>>, Outcome), String> {
    let mut data = Vec::new();
    loop {
        let items = read_items(r).await?;
        if let Some(outcome) = outcome_of(&items) {
            return Ok((data, outcome));
        }
        data.push(items);
    }
}

fn outcome_of(items: &[Item]) -> Option<Outcome> {
    let Some(Item::Atom(status)) = items.first() else {
        return None;
    };
    let status = status.to_ascii_uppercase();
    if !matches!(status.as_str(), "OK" | "NO" | "BYE") {
        return None;
    }
    let mut outcome = Outcome {
        status,
        code: None,
        text: String::new(),
    };
    for item in &items[1..] {
        match item {
            Item::Code(c) => outcome.code = Some(c.clone()),
            Item::Str(s) => outcome.text = String::from_utf8_lossy(s).trim().to_string(),
            Item::Atom(_) => {}
        }
    }
    Some(outcome)
}

/// A name as a quoted string, or a literal when it holds what a quoted string cannot.
fn string_arg(s: &str) -> String {
    if s.contains(['\r', '\n', '\0']) || s.len() > 1024 {
        format!("{{{}+}}\r\n{s}", s.len())
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// One script as LISTSCRIPTS names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedScript {
    pub name: String,
    pub active: bool,
}

/// A logged-in ManageSieve session.
pub struct ManageSieve<S = Conn> {
    io: BufReader<S>,
    /// `host:port`, as errors name the server.
    peer: String,
    timeout: Duration,
    pub caps: SieveCaps,
}

impl ManageSieve<Conn> {
    /// Connects and logs in. Errors name the server and the login, never the secret.
    pub async fn connect(target: &Target) -> Result<ManageSieve<Conn>, ImapError> {
        let ep = &target.endpoint;
        target.gate().pass().await;
        let addr = format!("{}:{}", ep.host, ep.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| {
                ImapError::transient(format!(
                    "cannot connect to ManageSieve server {addr}: timed out"
                ))
            })?
            .map_err(|e| {
                ImapError::transient(format!("cannot connect to ManageSieve server {addr}: {e}"))
            })?;
        let _ = tcp.set_nodelay(true);
        let mut sieve = match ep.security {
            Security::None => ManageSieve::greeted(Conn::Plain(tcp), &addr, ep.timeout).await?,
            Security::Tls => {
                ManageSieve::greeted(tls_wrap(tcp, target).await?, &addr, ep.timeout).await?
            }
            Security::Starttls => {
                let plain = ManageSieve::greeted(Conn::Plain(tcp), &addr, ep.timeout).await?;
                let Conn::Plain(tcp) = plain.starttls().await? else {
                    unreachable!("STARTTLS runs on a plain connection")
                };
                // After the handshake the server states its capabilities again (RFC 5804 2.2),
                // and only those count: the plain ones could have been forged.
                ManageSieve::greeted(tls_wrap(tcp, target).await?, &addr, ep.timeout).await?
            }
        };
        sieve.login(&target.auth).await?;
        sieve.caps = sieve.capability().await?;
        Ok(sieve)
    }
}

impl<S: tokio::io::AsyncRead + AsyncWrite + Unpin> ManageSieve<S> {
    /// A session over `stream`, after reading the capabilities the server greets with.
    pub async fn greeted(
        stream: S,
        peer: &str,
        timeout: Duration,
    ) -> Result<ManageSieve<S>, ImapError> {
        let mut s = ManageSieve {
            io: BufReader::new(stream),
            peer: peer.to_string(),
            timeout,
            caps: SieveCaps::default(),
        };
        let (data, outcome) = tokio::time::timeout(CONNECT_TIMEOUT, read_response(&mut s.io))
            .await
            .map_err(|_| ImapError::transient(format!("{peer} sent no ManageSieve greeting")))?
            .map_err(|e| {
                ImapError::new(
                    ErrorKind::Config,
                    format!("{peer} is not a ManageSieve server ({e}): check the port (4190 is ManageSieve's)"),
                )
            })?;
        if outcome.status != "OK" {
            return Err(ImapError::new(
                ErrorKind::Throttled,
                format!(
                    "ManageSieve server {peer} refused the connection: {}",
                    outcome.text
                ),
            ));
        }
        s.caps = SieveCaps::parse(&data);
        Ok(s)
    }

    /// STARTTLS on a plain session: the stream to wrap in TLS. A server without it ends
    /// here: the password is never sent in clear instead.
    async fn starttls(mut self) -> Result<S, ImapError> {
        if !self.caps.starttls {
            return Err(ImapError::new(
                ErrorKind::Tls,
                format!(
                    "ManageSieve server {} does not offer STARTTLS: refusing to send the password in clear \
                     (use `security: tls` if it has an implicit-TLS port, or `security: none` on a trusted network)",
                    self.peer
                ),
            ));
        }
        let (_, outcome) = self.command("STARTTLS", "STARTTLS").await?;
        if outcome.status != "OK" {
            return Err(ImapError::new(
                ErrorKind::Tls,
                format!(
                    "ManageSieve server {} refused STARTTLS: {}",
                    self.peer, outcome.text
                ),
            ));
        }
        crate::session::tls::refuse_injected(
            self.io.buffer(),
            &format!("ManageSieve server {}", self.peer),
            "STARTTLS",
        )?;
        Ok(self.io.into_inner())
    }

    /// Sends `line` and reads the response, within the endpoint's timeout.
    async fn command(
        &mut self,
        what: &str,
        line: &str,
    ) -> Result<(Vec<Vec<Item>>, Outcome), ImapError> {
        let peer = self.peer.clone();
        let io = &mut self.io;
        let exchange = async {
            io.get_mut().write_all(line.as_bytes()).await?;
            io.get_mut().write_all(b"\r\n").await?;
            io.get_mut().flush().await?;
            Ok::<_, std::io::Error>(())
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                ImapError::transient(format!(
                    "ManageSieve server {peer} did not answer {what} in time"
                ))
            })?
            .map_err(|e| {
                ImapError::transient(format!("ManageSieve server {peer}: sending {what}: {e}"))
            })?;
        let (data, outcome) = tokio::time::timeout(self.timeout, read_response(&mut self.io))
            .await
            .map_err(|_| {
                ImapError::transient(format!(
                    "ManageSieve server {peer} did not answer {what} in time"
                ))
            })?
            .map_err(|e| ImapError::transient(format!("ManageSieve server {peer}, {what}: {e}")))?;
        if outcome.status == "BYE" {
            return Err(ImapError::transient(format!(
                "ManageSieve server {peer} closed the connection during {what}: {}",
                outcome.text
            )));
        }
        Ok((data, outcome))
    }

    /// A command that must end in OK; its data lines and the OK's text.
    async fn ok(&mut self, what: &str, line: &str) -> Result<(Vec<Vec<Item>>, Outcome), ImapError> {
        let (data, outcome) = self.command(what, line).await?;
        if outcome.status == "OK" {
            return Ok((data, outcome));
        }
        let code = outcome.code.as_deref().unwrap_or("").to_ascii_uppercase();
        let kind = if code.starts_with("QUOTA") {
            ErrorKind::Quota
        } else if code == "TRYLATER" {
            ErrorKind::Throttled
        } else {
            ErrorKind::Refused
        };
        let text = if outcome.text.is_empty() {
            "no reason given"
        } else {
            &outcome.text
        };
        Err(ImapError::new(
            kind,
            format!("ManageSieve server {} refused {what}: {text}", self.peer),
        ))
    }

    /// Logs in: XOAUTH2 with a token from the caller's source, a password by SASL PLAIN.
    pub async fn login(&mut self, auth: &Auth) -> Result<(), ImapError> {
        // A NUL would split SASL PLAIN's fields elsewhere than meant.
        if auth.login().contains('\0') {
            return Err(ImapError::new(
                ErrorKind::Config,
                format!("the ManageSieve login {:?} holds a NUL", auth.login()),
            ));
        }
        match auth {
            Auth::Password { login, password } => {
                let response = format!("\0{login}\0{}", password.expose());
                self.authenticate("PLAIN", &response, login).await
            }
            Auth::XOAuth2 { login, tokens } => {
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
                    let response =
                        format!("user={login}\x01auth=Bearer {}\x01\x01", token.expose());
                    let err = match self.authenticate("XOAUTH2", &response, login).await {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    };
                    // A refused token may only have expired: one more try with the next one,
                    // unless the source has no other (a fixed token).
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
        }
    }

    /// AUTHENTICATE with the initial response sent along (RFC 5804 2.1).
    async fn authenticate(
        &mut self,
        mechanism: &str,
        response: &str,
        login: &str,
    ) -> Result<(), ImapError> {
        if !self.caps.sasl.iter().any(|m| m == mechanism) {
            return Err(ImapError::new(
                ErrorKind::Config,
                format!(
                    "ManageSieve server {} does not offer SASL {mechanism} (it offers: {})",
                    self.peer,
                    self.caps.sasl.join(" ")
                ),
            ));
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(response);
        let line = format!("AUTHENTICATE \"{mechanism}\" \"{b64}\"");
        let peer = self.peer.clone();
        let io = &mut self.io;
        let exchange = async {
            io.get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            io.get_mut().flush().await.map_err(|e| e.to_string())?;
            loop {
                let items = read_items(io).await?;
                if let Some(outcome) = outcome_of(&items) {
                    return Ok::<Outcome, String>(outcome);
                }
                // A challenge: XOAUTH2's error report, answered with an empty response (never
                // the token again); anything else is cancelled with "*" (RFC 5804 2.1).
                let answer: &[u8] = if mechanism == "XOAUTH2" {
                    b"\"\"\r\n"
                } else {
                    b"\"*\"\r\n"
                };
                io.get_mut()
                    .write_all(answer)
                    .await
                    .map_err(|e| e.to_string())?;
                io.get_mut().flush().await.map_err(|e| e.to_string())?;
            }
        };
        let outcome = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                ImapError::transient(format!(
                    "ManageSieve server {peer} did not answer the login in time"
                ))
            })?
            .map_err(|e| ImapError::transient(format!("ManageSieve server {peer}, login: {e}")))?;
        if outcome.status == "OK" {
            return Ok(());
        }
        Err(ImapError::new(
            ErrorKind::Auth,
            format!(
                "ManageSieve server {peer} refused the login of {login} ({mechanism}): {}",
                outcome.text
            ),
        ))
    }

    /// CAPABILITY: what the server offers now (after login it may offer more).
    pub async fn capability(&mut self) -> Result<SieveCaps, ImapError> {
        let (data, _) = self.ok("CAPABILITY", "CAPABILITY").await?;
        Ok(SieveCaps::parse(&data))
    }

    /// LISTSCRIPTS: every script, and which one is active.
    pub async fn list_scripts(&mut self) -> Result<Vec<ListedScript>, ImapError> {
        let (data, _) = self.ok("LISTSCRIPTS", "LISTSCRIPTS").await?;
        Ok(data
            .iter()
            .filter_map(|line| match line.first() {
                Some(Item::Str(name)) => Some(ListedScript {
                    name: String::from_utf8_lossy(name).into_owned(),
                    active: matches!(line.get(1), Some(Item::Atom(a)) if a.eq_ignore_ascii_case("ACTIVE")),
                }),
                _ => None,
            })
            .collect())
    }

    /// GETSCRIPT: a script's text (UTF-8, as RFC 5804 requires).
    pub async fn get_script(&mut self, name: &str) -> Result<String, ImapError> {
        let what = format!("GETSCRIPT of {name:?}");
        let (data, _) = self
            .ok(&what, &format!("GETSCRIPT {}", string_arg(name)))
            .await?;
        match data.first().and_then(|l| l.first()) {
            Some(Item::Str(bytes)) => String::from_utf8(bytes.clone()).map_err(|_| {
                ImapError::new(
                    ErrorKind::Refused,
                    format!(
                        "ManageSieve server {}: script {name:?} is not UTF-8",
                        self.peer
                    ),
                )
            }),
            _ => Err(ImapError::new(
                ErrorKind::Refused,
                format!(
                    "ManageSieve server {} sent no script text for {what}",
                    self.peer
                ),
            )),
        }
    }

    /// PUTSCRIPT: stores (or replaces) a script. The server checks it first and refuses a bad
    /// one with its own error text. Returns the server's warnings, if any.
    pub async fn put_script(
        &mut self,
        name: &str,
        script: &str,
    ) -> Result<Option<String>, ImapError> {
        let line = format!(
            "PUTSCRIPT {} {{{}+}}\r\n{script}",
            string_arg(name),
            script.len()
        );
        let (_, outcome) = self.ok(&format!("PUTSCRIPT of {name:?}"), &line).await?;
        Ok(warnings(&outcome))
    }

    /// CHECKSCRIPT: whether the server would take this script; a bad one is an error of kind
    /// `Refused` with the server's words. Returns the server's warnings, if any.
    pub async fn check_script(&mut self, script: &str) -> Result<Option<String>, ImapError> {
        let line = format!("CHECKSCRIPT {{{}+}}\r\n{script}", script.len());
        let (_, outcome) = self.ok("CHECKSCRIPT", &line).await?;
        Ok(warnings(&outcome))
    }

    /// SETACTIVE: makes `name` the active script; `None` deactivates every script.
    pub async fn set_active(&mut self, name: Option<&str>) -> Result<(), ImapError> {
        let arg = string_arg(name.unwrap_or(""));
        self.ok(
            &format!("SETACTIVE of {:?}", name.unwrap_or("")),
            &format!("SETACTIVE {arg}"),
        )
        .await
        .map(drop)
    }

    /// DELETESCRIPT (the server refuses to delete the active script).
    pub async fn delete_script(&mut self, name: &str) -> Result<(), ImapError> {
        self.ok(
            &format!("DELETESCRIPT of {name:?}"),
            &format!("DELETESCRIPT {}", string_arg(name)),
        )
        .await
        .map(drop)
    }

    /// LOGOUT; a failure here changes nothing, so it is not reported.
    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT", "LOGOUT").await;
    }
}

fn warnings(outcome: &Outcome) -> Option<String> {
    outcome
        .code
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("WARNINGS"))
        .then(|| outcome.text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<(Vec<Vec<Item>>, Outcome), String> {
        let mut r = bytes;
        read_response(&mut r).await
    }

    #[tokio::test]
    async fn greeting_capabilities() {
        let (data, outcome) = parse(
            b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\"SIEVE\" \"fileinto copy imap4flags\"\r\n\
              \"STARTTLS\"\r\n\"SASL\" \"plain xoauth2\"\r\nOK \"Ready.\"\r\n",
        )
        .await
        .unwrap();
        assert_eq!(outcome.status, "OK");
        let caps = SieveCaps::parse(&data);
        assert!(caps.starttls);
        assert_eq!(caps.sasl, ["PLAIN", "XOAUTH2"]);
        assert_eq!(caps.extensions, ["fileinto", "copy", "imap4flags"]);
    }

    #[tokio::test]
    async fn literals_codes_and_escapes() {
        let (data, outcome) = parse(b"{12}\r\nif true {\r\n}\r\nOK\r\n").await.unwrap();
        assert_eq!(data, vec![vec![Item::Str(b"if true {\r\n}".to_vec())]]);
        assert_eq!(outcome.text, "");
        let (_, outcome) = parse(b"NO (QUOTA/MAXSIZE) {9}\r\ntoo \"big\r\n")
            .await
            .unwrap();
        assert_eq!(outcome.code.as_deref(), Some("QUOTA/MAXSIZE"));
        assert_eq!(outcome.text, "too \"big");
        let (_, outcome) = parse(b"NO \"line 1: \\\"x\\\" \\\\ bad\"\r\n")
            .await
            .unwrap();
        assert_eq!(outcome.text, "line 1: \"x\" \\ bad");
    }

    #[tokio::test]
    async fn truncated_answers_are_errors() {
        assert!(parse(b"OK \"Rea").await.is_err());
        assert!(parse(b"{20}\r\nshort").await.is_err());
        assert!(parse(b"").await.is_err());
    }

    /// A server that answers STARTTLS and, in the same packet, sends more: bytes an attacker
    /// injected before the handshake. They must end the session, never be read as TLS data.
    #[tokio::test]
    async fn data_after_starttls_ok_is_refused() {
        let (client, mut server) = tokio::io::duplex(4096);
        server
            .write_all(b"\"STARTTLS\"\r\n\"SASL\" \"PLAIN\"\r\nOK \"hi\"\r\nOK \"Begin TLS\"\r\nOK \"injected\"\r\n")
            .await
            .unwrap();
        let sieve = ManageSieve::greeted(client, "test:4190", Duration::from_secs(5))
            .await
            .unwrap();
        assert!(sieve.caps.starttls);
        let e = match sieve.starttls().await {
            Ok(_) => panic!("the injected bytes were kept"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ErrorKind::Tls);
        assert!(
            e.message.contains("after agreeing to STARTTLS"),
            "{}",
            e.message
        );
        let mut sent = vec![0; 64];
        let n = tokio::io::AsyncReadExt::read(&mut server, &mut sent)
            .await
            .unwrap();
        assert_eq!(&sent[..n], b"STARTTLS\r\n");
    }

    #[test]
    fn names_are_quoted_or_literal() {
        assert_eq!(string_arg("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(string_arg("été"), "\"été\"");
        assert_eq!(string_arg("a\nb"), "{3+}\r\na\nb");
    }
}
