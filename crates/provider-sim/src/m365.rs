//! Microsoft-365-shaped IMAP server: a proxy in front of a real Dovecot that behaves as
//! Exchange Online does towards an IMAP client (shared/reference/gmail-m365.md, §2):
//!
//! - **Capabilities** are Exchange Online's: `IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR
//!   UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+` (capability strings of
//!   outlook.office365.com in client code), in every CAPABILITY response and response code;
//!   Dovecot's CONDSTORE, MULTIAPPEND, SPECIAL-USE and the rest are gone, special-use
//!   attributes are taken out of LIST, and a command that uses what was taken away (ENABLE,
//!   CONDSTORE, CHANGEDSINCE, MODSEQ, an APPEND of several messages, LIST RETURN) is answered
//!   BAD and counted, so a test can say that the client never tried.
//! - **Throttling** injected per test: `<tag> BAD Request is throttled. Suggested Backoff Time:
//!   N milliseconds` then the connection closed (imapsync FAQ.Office365), `<tag> NO Server
//!   Unavailable. 15` then closed (imapfilter #146), or `<tag> NO [THROTTLED] ...` (the
//!   connection stays), every Nth command or at a seeded rate.
//! - **Token expiry**: the XOAUTH2 token of each session is read at AUTHENTICATE; once it has
//!   expired, the next command is answered `* BYE Session invalidated - AccessTokenExpired` and
//!   the connection closed (aioimaplib #83, imapsync #250). When a token expires is asked of the
//!   test's token issuer through a closure, so the proxy knows nothing of how tokens are made.
//! - **A log** of every command with its arrival time and its user, and of every throttling
//!   reply: a test checks from it that a client kept quiet for the whole suggested backoff.
//!
//! LOGIN and AUTHENTICATE PLAIN go through to Dovecot's passwd-file (mbsync in the benchmark
//! logs in that way). XOAUTH2 goes through too when Dovecot validates tokens itself (its
//! `oauth2` passdb), or is turned into a LOGIN with the user's password when it does not.
//!
//! Commands are read whole (lines and literals, synchronizing ones acknowledged with `+` by the
//! proxy itself) before they are judged, and sent on to Dovecot with LITERAL+ literals.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What Exchange Online says it can do (the reference doc, §2; the same before and after login).
pub const CAPABILITIES: &str = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";

/// SPECIAL-USE attributes (RFC 6154), which Exchange Online does not send.
const SPECIAL_USE: [&str; 8] = [
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
    "\\Important",
];

/// When a token expires, as the token issuer knows it; `None` for a token it never issued.
pub type Expiry = Arc<dyn Fn(&str) -> Option<SystemTime> + Send + Sync>;

/// The password Dovecot knows a user by.
pub type Passwords = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How an XOAUTH2 login reaches Dovecot.
#[derive(Clone)]
pub enum Upstream {
    /// As it came: Dovecot checks the token itself (its `oauth2` passdb).
    Forward,
    /// The proxy checks the token (it must be known to [`Config::token_expiry`] and not expired)
    /// and logs in to Dovecot with the user's password.
    Password(Passwords),
}

/// A throttling reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `<tag> BAD Request is throttled. Suggested Backoff Time: N milliseconds`, then closed.
    Backoff { millis: u64 },
    /// `<tag> NO Server Unavailable. 15`, then closed.
    Unavailable,
    /// `<tag> NO [THROTTLED] Request is throttled.`; the connection stays.
    Throttled,
}

/// When a [`Reply`] replaces the answer to a command (of a logged-in session; LOGOUT never).
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub reply: Reply,
    /// Every Nth command the proxy receives (all connections together).
    pub every: Option<u64>,
    /// Or with this probability per command, drawn from [`Config::seed`].
    pub rate: Option<f64>,
}

pub struct Config {
    pub upstream: SocketAddr,
    pub faults: Vec<Fault>,
    pub seed: u64,
    /// Offer LITERAL+ (Exchange does); without it, `{n+}` literals are refused.
    pub literal_plus: bool,
    /// Token lifetimes: with it, a session whose XOAUTH2 token has expired is ended at its next
    /// command. Without it, tokens are never checked by the proxy.
    pub token_expiry: Option<Expiry>,
    pub xoauth2: Upstream,
}

impl Config {
    /// A proxy in front of `upstream` that injects nothing.
    pub fn new(upstream: SocketAddr) -> Config {
        Config {
            upstream,
            faults: Vec::new(),
            seed: 1,
            literal_plus: true,
            token_expiry: None,
            xoauth2: Upstream::Forward,
        }
    }
}

/// What the log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A command arrived: its verb (`UID FETCH`), and how many earlier commands of the same
    /// connection were still unanswered (more than 0: the client pipelines).
    Command { verb: String, outstanding: usize },
    /// A throttling reply was sent (for [`Reply::Backoff`], the client must keep quiet for it).
    Fault(Reply),
    /// `* BYE Session invalidated - AccessTokenExpired` was sent.
    TokenExpired,
    /// A command using what Exchange does not offer was refused.
    Refused(Trimmed),
}

/// One entry of the log.
#[derive(Debug, Clone)]
pub struct Event {
    /// Since the proxy started.
    pub at: Duration,
    pub conn: u64,
    /// The logged-in user; `None` before login.
    pub user: Option<String>,
    pub what: What,
}

/// What a refused command asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trimmed {
    Condstore,
    Multiappend,
    SpecialUse,
    LiteralPlus,
    /// ENABLE or LIST-EXTENDED without any of the above.
    Other,
}

struct Shared {
    config: Config,
    started: Instant,
    log: Mutex<Vec<Event>>,
    commands: AtomicU64,
    rng: Mutex<u64>,
    next_conn: AtomicU64,
    /// The faults in force: [`Config::faults`] until [`M365::set_faults`].
    faults: Mutex<Vec<Fault>>,
}

impl Shared {
    fn record(&self, conn: u64, user: Option<&str>, what: What) {
        let event = Event {
            at: self.started.elapsed(),
            conn,
            user: user.map(str::to_string),
            what,
        };
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// The fault for the next command, if any.
    fn fault(&self) -> Option<Reply> {
        let n = self.commands.fetch_add(1, Ordering::SeqCst) + 1;
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for f in &faults {
            if f.every
                .is_some_and(|every| every > 0 && n.is_multiple_of(every))
            {
                return Some(f.reply);
            }
            if let Some(rate) = f.rate {
                let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                // xorshift64*: reproducible from the seed, no dependency.
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                let draw =
                    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
                if draw < rate {
                    return Some(f.reply);
                }
            }
        }
        None
    }
}

/// A running proxy. Dropping it stops accepting connections (open ones end with their
/// clients).
pub struct M365 {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl M365 {
    /// Listens on a free loopback port, serving on a thread of its own (tests are mostly
    /// synchronous).
    pub fn start(config: Config) -> io::Result<M365> {
        M365::start_on("127.0.0.1:0".parse().expect("an address"), config)
    }

    pub fn start_on(listen: SocketAddr, config: Config) -> io::Result<M365> {
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let seed = config.seed.max(1);
        let shared = Arc::new(Shared {
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            commands: AtomicU64::new(0),
            rng: Mutex::new(seed),
            next_conn: AtomicU64::new(1),
            faults: Mutex::new(config.faults.clone()),
            config,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = shared.clone();
        std::thread::Builder::new()
            .name("m365-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the proxy");
                rt.block_on(async move {
                    let listener =
                        TcpListener::from_std(std_listener).expect("a listener for the proxy");
                    tokio::select! {
                        _ = accept_loop(listener, serving) => {}
                        _ = stopped => {}
                    }
                });
                // Open sessions end with the runtime.
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(M365 {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replaces the faults in force (none: the proxy only trims and logs).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<Event> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Commands refused for using what Exchange does not offer, by what they asked for.
    pub fn refused(&self) -> HashMap<Trimmed, usize> {
        let mut out = HashMap::new();
        for e in self.log() {
            if let What::Refused(t) = e.what {
                *out.entry(t).or_insert(0) += 1;
            }
        }
        out
    }

    /// Commands of `user` that arrived inside a suggested backoff sent to that user: each as
    /// (when the throttling reply was sent, the backoff, when the command arrived), ignoring
    /// those within `grace` of the reply (already on their way when it left: a client cannot
    /// have heard of it yet).
    pub fn backoff_violations(
        &self,
        user: &str,
        grace: Duration,
    ) -> Vec<(Duration, Duration, Duration, String)> {
        let log = self.log();
        let mut out = Vec::new();
        for t in log.iter().filter(|e| e.user.as_deref() == Some(user)) {
            let What::Fault(Reply::Backoff { millis }) = t.what else {
                continue;
            };
            let backoff = Duration::from_millis(millis);
            for c in log.iter().filter(|e| e.user.as_deref() == Some(user)) {
                if let What::Command { verb, .. } = &c.what
                    && c.at > t.at + grace
                    && c.at < t.at + backoff
                {
                    out.push((t.at, backoff, c.at, verb.clone()));
                }
            }
        }
        out
    }
}

impl Drop for M365 {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
            let _ = serve(client, shared, conn).await;
        });
    }
}

/// What both directions of one connection share.
struct Session {
    /// The writer towards the client: the pump and injected replies take turns.
    client: tokio::sync::Mutex<OwnedWriteHalf>,
    /// Commands sent to Dovecot and not yet answered.
    outstanding: AtomicUsize,
    answered: Notify,
}

impl Session {
    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut w = self.client.lock().await;
        w.write_all(bytes).await?;
        w.flush().await
    }

    /// Waits until Dovecot answered every command sent to it, so an injected reply keeps the
    /// order of the answers.
    async fn settle(&self) {
        loop {
            let notified = self.answered.notified();
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            // A dead upstream never answers: do not wait for ever.
            if tokio::time::timeout(Duration::from_secs(30), notified)
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A command or response as read: its lines (each with its CRLF) and the literal after each.
struct Unit {
    parts: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Unit {
    /// The lines only, joined (what commands are judged by; literals are data).
    fn text(&self) -> String {
        let mut s = String::new();
        for (line, _) in &self.parts {
            s.push_str(&String::from_utf8_lossy(line));
        }
        s
    }

    fn literals(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.parts.iter().filter_map(|(_, l)| l.as_ref())
    }

    /// The bytes for Dovecot: every literal non-synchronizing (Dovecot offers LITERAL+).
    fn upstream_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (line, literal) in &self.parts {
            match (literal, literal_len(line)) {
                (Some(lit), Some((len, plus))) if !plus => {
                    let head = &line[..line.len() - 2];
                    let open = head.iter().rposition(|&b| b == b'{').unwrap_or(0);
                    out.extend_from_slice(&line[..open]);
                    out.extend_from_slice(format!("{{{len}+}}\r\n").as_bytes());
                    out.extend_from_slice(lit);
                }
                (Some(lit), _) => {
                    out.extend_from_slice(line);
                    out.extend_from_slice(lit);
                }
                (None, _) => out.extend_from_slice(line),
            }
        }
        out
    }
}

/// `{n}` or `{n+}` at the end of a line (before its CRLF): the length, and whether it is
/// non-synchronizing.
fn literal_len(line: &[u8]) -> Option<(usize, bool)> {
    let head = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let head = head.strip_suffix(b"}")?;
    let open = head.iter().rposition(|&b| b == b'{')?;
    let inner = &head[open + 1..];
    let (digits, plus) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, plus))
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await?;
    Ok((n > 0).then_some(line))
}

/// Reads a unit; `ack` is told of each synchronizing literal before it is read (the client's
/// side: the proxy says `+` itself).
async fn read_unit<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    ack: Option<&Session>,
) -> io::Result<Option<Unit>> {
    let mut parts = Vec::new();
    let Some(mut line) = read_line(r).await? else {
        return Ok(None);
    };
    loop {
        match literal_len(&line) {
            Some((len, plus)) => {
                if !plus && let Some(s) = ack {
                    s.send(b"+ Ready for additional command text.\r\n").await?;
                }
                let mut lit = vec![0u8; len];
                r.read_exact(&mut lit).await?;
                parts.push((line, Some(lit)));
                line = match read_line(r).await? {
                    Some(l) => l,
                    None => return Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
            None => {
                parts.push((line, None));
                return Ok(Some(Unit { parts }));
            }
        }
    }
}

/// Tag and verb of a command (`UID FETCH` for UID commands), the verb in capitals.
fn tag_and_verb(text: &str) -> (String, String) {
    let mut words = text.split_whitespace();
    let tag = words.next().unwrap_or_default().to_string();
    let mut verb = words.next().unwrap_or_default().to_ascii_uppercase();
    if verb == "UID" {
        verb = format!(
            "UID {}",
            words.next().unwrap_or_default().to_ascii_uppercase()
        );
    }
    (tag, verb)
}

/// What a command uses that Exchange does not offer, if anything.
fn trimmed(verb: &str, text: &str, unit: &Unit, literal_plus: bool) -> Option<Trimmed> {
    let upper = text.to_ascii_uppercase();
    if !literal_plus
        && unit
            .parts
            .iter()
            .any(|(l, _)| literal_len(l).is_some_and(|(_, p)| p))
    {
        return Some(Trimmed::LiteralPlus);
    }
    let condstore = ["CONDSTORE", "QRESYNC", "MODSEQ", "CHANGEDSINCE"]
        .iter()
        .any(|w| upper.contains(w));
    if condstore {
        return Some(Trimmed::Condstore);
    }
    match verb {
        "ENABLE" => Some(Trimmed::Other),
        "APPEND" => {
            // A mailbox name sent as a literal is the literal right after the verb.
            let first = String::from_utf8_lossy(&unit.parts[0].0).to_ascii_uppercase();
            let name_literal = first
                .split_whitespace()
                .nth(2)
                .is_some_and(|w| w.starts_with('{'));
            let messages = unit.literals().count() - usize::from(name_literal);
            (messages > 1).then_some(Trimmed::Multiappend)
        }
        "LIST" | "LSUB" | "CREATE" if upper.contains("SPECIAL-USE") || upper.contains(" USE (") => {
            Some(Trimmed::SpecialUse)
        }
        "LIST" if upper.contains("RETURN") => Some(Trimmed::Other),
        _ => None,
    }
}

/// A response line as Exchange would send it: its capabilities, no special-use attributes.
fn rewrite(line: &[u8], literal_plus: bool) -> Vec<u8> {
    let caps = if literal_plus {
        CAPABILITIES.to_string()
    } else {
        CAPABILITIES.replace(" LITERAL+", "")
    };
    let text = String::from_utf8_lossy(line);
    let upper = text.to_ascii_uppercase();
    if upper.starts_with("* CAPABILITY ") {
        return format!("* CAPABILITY {caps}\r\n").into_bytes();
    }
    if let Some(at) = upper.find("[CAPABILITY ")
        && let Some(end) = text[at..].find(']')
    {
        return format!("{}[CAPABILITY {caps}{}", &text[..at], &text[at + end..]).into_bytes();
    }
    if (upper.starts_with("* LIST (") || upper.starts_with("* LSUB ("))
        && let Some(end) = text.find(')')
    {
        let open = text.find('(').unwrap_or(0);
        let kept: Vec<&str> = text[open + 1..end]
            .split_whitespace()
            .filter(|a| !SPECIAL_USE.iter().any(|s| s.eq_ignore_ascii_case(a)))
            .collect();
        return format!("{}({}{}", &text[..open], kept.join(" "), &text[end..]).into_bytes();
    }
    line.to_vec()
}

/// Dovecot → client: responses rewritten as Exchange's, tagged ones counted as answers.
async fn pump<R: AsyncRead + Unpin>(
    mut upstream: BufReader<R>,
    session: Arc<Session>,
    literal_plus: bool,
) {
    loop {
        let unit = match read_unit(&mut upstream, None).await {
            Ok(Some(u)) => u,
            _ => break,
        };
        let first = &unit.parts[0].0;
        let tagged = !first.starts_with(b"* ") && !first.starts_with(b"+");
        let mut bytes = Vec::new();
        for (i, (line, literal)) in unit.parts.iter().enumerate() {
            if i == 0 {
                bytes.extend(rewrite(line, literal_plus));
            } else {
                bytes.extend_from_slice(line);
            }
            if let Some(l) = literal {
                bytes.extend_from_slice(l);
            }
        }
        if session.send(&bytes).await.is_err() {
            break;
        }
        if tagged {
            let _ = session
                .outstanding
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            session.answered.notify_waiters();
        }
    }
    // Dovecot went away: so does the client.
    let _ = session.client.lock().await.shutdown().await;
    session.outstanding.store(0, Ordering::SeqCst);
    session.answered.notify_waiters();
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `user=...^Aauth=Bearer ...^A^A` → (user, token).
fn xoauth2_fields(raw: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut user = None;
    let mut token = None;
    for field in text.split('\x01') {
        if let Some(u) = field.strip_prefix("user=") {
            user = Some(u.to_string());
        } else if let Some(t) = field.strip_prefix("auth=Bearer ") {
            token = Some(t.to_string());
        }
    }
    Some((user?, token?))
}

/// The user named by a LOGIN command (an atom, a quoted string or a literal).
fn login_user(unit: &Unit) -> Option<String> {
    let first = String::from_utf8_lossy(&unit.parts[0].0).to_string();
    let rest = first.splitn(3, ' ').nth(2)?.trim_end();
    if rest.starts_with('{') {
        return unit.parts[0]
            .1
            .as_ref()
            .map(|l| String::from_utf8_lossy(l).to_string());
    }
    if let Some(q) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        return Some(out);
    }
    rest.split_whitespace().next().map(str::to_string)
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One client connection, until either side closes or the proxy closes it.
async fn serve(client: TcpStream, shared: Arc<Shared>, conn: u64) -> io::Result<()> {
    let upstream = TcpStream::connect(shared.config.upstream).await?;
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, mut uw) = upstream.into_split();
    let session = Arc::new(Session {
        client: tokio::sync::Mutex::new(cw),
        outstanding: AtomicUsize::new(0),
        answered: Notify::new(),
    });
    let pump = tokio::spawn(pump(
        BufReader::new(ur),
        session.clone(),
        shared.config.literal_plus,
    ));
    let mut reader = BufReader::new(cr);
    let mut user: Option<String> = None;
    let mut token: Option<String> = None;
    let config = &shared.config;
    let result = async {
        while let Some(unit) = read_unit(&mut reader, Some(&session)).await? {
            let text = unit.text();
            let (tag, verb) = tag_and_verb(&text);
            if verb.is_empty() {
                // IDLE's DONE, or an empty line: not a command.
                uw.write_all(&unit.upstream_bytes()).await?;
                continue;
            }
            let outstanding = session.outstanding.load(Ordering::SeqCst);
            if user.is_none() {
                let forward = match verb.as_str() {
                    "AUTHENTICATE" => {
                        let words: Vec<&str> = text.split_whitespace().collect();
                        let mech = words.get(2).map(|m| m.to_ascii_uppercase()).unwrap_or_default();
                        let initial = match words.get(3) {
                            Some(ir) => ir.to_string(),
                            None => {
                                session.send(b"+ \r\n").await?;
                                let Some(line) = read_line(&mut reader).await? else {
                                    return Ok(());
                                };
                                String::from_utf8_lossy(&line).trim().to_string()
                            }
                        };
                        let raw = b64_decode(&initial).unwrap_or_default();
                        match mech.as_str() {
                            "XOAUTH2" => {
                                let Some((u, t)) = xoauth2_fields(&raw) else {
                                    session
                                        .send(format!("{tag} NO AUTHENTICATE failed.\r\n").as_bytes())
                                        .await?;
                                    continue;
                                };
                                shared.record(conn, Some(&u), What::Command { verb: verb.clone(), outstanding });
                                let now = SystemTime::now();
                                let valid = match &config.token_expiry {
                                    Some(expiry) => expiry(&t).is_some_and(|at| at > now),
                                    None => true,
                                };
                                let upstream_login = match &config.xoauth2 {
                                    Upstream::Forward => Some(format!("{tag} AUTHENTICATE XOAUTH2 {initial}\r\n")),
                                    Upstream::Password(pw) => pw(&u).map(|p| {
                                        format!("{tag} LOGIN {} {}\r\n", quoted(&u), quoted(&p))
                                    }),
                                };
                                match upstream_login {
                                    Some(cmd) if valid => {
                                        user = Some(u);
                                        token = Some(t);
                                        cmd.into_bytes()
                                    }
                                    _ => {
                                        session
                                            .send(format!("{tag} NO AUTHENTICATE failed.\r\n").as_bytes())
                                            .await?;
                                        continue;
                                    }
                                }
                            }
                            _ => {
                                // PLAIN: authzid NUL authcid NUL password.
                                let fields: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
                                let u = fields
                                    .get(1)
                                    .map(|f| String::from_utf8_lossy(f).to_string())
                                    .unwrap_or_default();
                                shared.record(conn, Some(&u), What::Command { verb: verb.clone(), outstanding });
                                user = Some(u);
                                format!("{tag} AUTHENTICATE {mech} {initial}\r\n").into_bytes()
                            }
                        }
                    }
                    "LOGIN" => {
                        let u = login_user(&unit).unwrap_or_default();
                        shared.record(conn, Some(&u), What::Command { verb: verb.clone(), outstanding });
                        user = Some(u);
                        unit.upstream_bytes()
                    }
                    _ => {
                        shared.record(conn, None, What::Command { verb: verb.clone(), outstanding });
                        unit.upstream_bytes()
                    }
                };
                session.outstanding.fetch_add(1, Ordering::SeqCst);
                uw.write_all(&forward).await?;
                continue;
            }
            let who = user.as_deref();
            shared.record(conn, who, What::Command { verb: verb.clone(), outstanding });
            if let (Some(expiry), Some(t)) = (&config.token_expiry, &token)
                && expiry(t).is_none_or(|at| at <= SystemTime::now())
            {
                session.settle().await;
                shared.record(conn, who, What::TokenExpired);
                session
                    .send(b"* BYE Session invalidated - AccessTokenExpired\r\n")
                    .await?;
                return Ok(());
            }
            if let Some(t) = trimmed(&verb, &text, &unit, config.literal_plus) {
                session.settle().await;
                shared.record(conn, who, What::Refused(t));
                let why = match t {
                    Trimmed::Other | Trimmed::Condstore if verb == "ENABLE" => "Command Error. 10",
                    _ => "Command Argument Error. 11",
                };
                session.send(format!("{tag} BAD {why}\r\n").as_bytes()).await?;
                continue;
            }
            if verb != "LOGOUT"
                && let Some(reply) = shared.fault()
            {
                session.settle().await;
                shared.record(conn, who, What::Fault(reply));
                let (text, close) = match reply {
                    Reply::Backoff { millis } => (
                        format!("{tag} BAD Request is throttled. Suggested Backoff Time: {millis} milliseconds\r\n"),
                        true,
                    ),
                    Reply::Unavailable => (format!("{tag} NO Server Unavailable. 15\r\n"), true),
                    Reply::Throttled => (format!("{tag} NO [THROTTLED] Request is throttled.\r\n"), false),
                };
                session.send(text.as_bytes()).await?;
                if close {
                    // Closed the way a server closes after its last answer: its own side first,
                    // then what the client had already pipelined is read and dropped. Closing
                    // with that data unread would reset the connection, and a reset can destroy
                    // the answer before the client reads it (the suggested backoff with it).
                    let _ = session.client.lock().await.shutdown().await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        tokio::io::copy(&mut reader, &mut tokio::io::sink()),
                    )
                    .await;
                    return Ok(());
                }
                continue;
            }
            session.outstanding.fetch_add(1, Ordering::SeqCst);
            uw.write_all(&unit.upstream_bytes()).await?;
        }
        Ok::<(), io::Error>(())
    }
    .await;
    pump.abort();
    let _ = uw.shutdown().await;
    let _ = session.client.lock().await.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(parts: &[(&str, Option<&str>)]) -> Unit {
        Unit {
            parts: parts
                .iter()
                .map(|(l, lit)| (l.as_bytes().to_vec(), lit.map(|s| s.as_bytes().to_vec())))
                .collect(),
        }
    }

    #[test]
    fn literals_are_found_at_line_ends() {
        assert_eq!(literal_len(b"a APPEND x {12}\r\n"), Some((12, false)));
        assert_eq!(literal_len(b"a APPEND x {12+}\r\n"), Some((12, true)));
        assert_eq!(literal_len(b"a NOOP\r\n"), None);
        assert_eq!(literal_len(b"a X {1a}\r\n"), None);
    }

    #[test]
    fn what_exchange_lacks_is_refused() {
        let one = unit(&[
            ("a APPEND INBOX (\\Seen) {3+}\r\n", Some("abc")),
            ("\r\n", None),
        ]);
        let text = one.text();
        assert_eq!(trimmed("APPEND", &text, &one, true), None);
        assert_eq!(
            trimmed("APPEND", &text, &one, false),
            Some(Trimmed::LiteralPlus)
        );
        let two = unit(&[
            ("a APPEND INBOX {3}\r\n", Some("abc")),
            (" {3}\r\n", Some("def")),
            ("\r\n", None),
        ]);
        assert_eq!(
            trimmed("APPEND", &two.text(), &two, true),
            Some(Trimmed::Multiappend)
        );
        let named = unit(&[
            ("a APPEND {4}\r\n", Some("Sent")),
            (" {3}\r\n", Some("abc")),
            ("\r\n", None),
        ]);
        assert_eq!(trimmed("APPEND", &named.text(), &named, true), None);
        for (verb, cmd, want) in [
            ("ENABLE", "a ENABLE CONDSTORE\r\n", Trimmed::Condstore),
            (
                "SELECT",
                "a SELECT INBOX (CONDSTORE)\r\n",
                Trimmed::Condstore,
            ),
            (
                "UID FETCH",
                "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\r\n",
                Trimmed::Condstore,
            ),
            (
                "STATUS",
                "a STATUS INBOX (UIDNEXT HIGHESTMODSEQ)\r\n",
                Trimmed::Condstore,
            ),
            (
                "LIST",
                "a LIST \"\" \"*\" RETURN (SPECIAL-USE)\r\n",
                Trimmed::SpecialUse,
            ),
            (
                "LIST",
                "a LIST \"\" \"*\" RETURN (STATUS (UIDNEXT))\r\n",
                Trimmed::Other,
            ),
        ] {
            let u = unit(&[(cmd, None)]);
            assert_eq!(trimmed(verb, &u.text(), &u, true), Some(want), "{cmd}");
        }
        let list = unit(&[("a LIST \"\" \"*\"\r\n", None)]);
        assert_eq!(trimmed("LIST", &list.text(), &list, true), None);
    }

    #[test]
    fn responses_say_what_exchange_says() {
        let caps = rewrite(
            b"* CAPABILITY IMAP4rev1 CONDSTORE MULTIAPPEND SPECIAL-USE\r\n",
            true,
        );
        assert_eq!(
            caps,
            format!("* CAPABILITY {CAPABILITIES}\r\n").into_bytes()
        );
        let without = rewrite(b"* CAPABILITY IMAP4rev1 LITERAL+\r\n", false);
        assert!(!String::from_utf8(without).unwrap().contains("LITERAL+"));
        let ok = rewrite(b"a OK [CAPABILITY IMAP4rev1 CONDSTORE] Logged in\r\n", true);
        assert_eq!(
            String::from_utf8(ok).unwrap(),
            format!("a OK [CAPABILITY {CAPABILITIES}] Logged in\r\n")
        );
        let list = rewrite(
            b"* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n",
            true,
        );
        assert_eq!(list, b"* LIST (\\HasNoChildren) \"/\" \"Sent Items\"\r\n");
        assert_eq!(rewrite(b"* 3 EXISTS\r\n", true), b"* 3 EXISTS\r\n");
    }

    #[test]
    fn synchronizing_literals_go_on_as_literal_plus() {
        let u = unit(&[("a LOGIN {5}\r\n", Some("alice")), (" pw\r\n", None)]);
        assert_eq!(u.upstream_bytes(), b"a LOGIN {5+}\r\nalice pw\r\n");
        assert_eq!(login_user(&u).as_deref(), Some("alice"));
        let q = unit(&[("a LOGIN \"al\\\"ice\" pw\r\n", None)]);
        assert_eq!(login_user(&q).as_deref(), Some("al\"ice"));
    }

    #[test]
    fn xoauth2_responses_name_user_and_token() {
        let raw = b64_decode("dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ==").unwrap();
        assert_eq!(
            xoauth2_fields(&raw),
            Some(("alice".to_string(), "tok".to_string()))
        );
    }

    #[test]
    fn every_nth_command_is_throttled() {
        let fault = Fault {
            reply: Reply::Unavailable,
            every: Some(3),
            rate: None,
        };
        let shared = Shared {
            config: Config::new("127.0.0.1:1".parse().unwrap()),
            faults: Mutex::new(vec![fault]),
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            commands: AtomicU64::new(0),
            rng: Mutex::new(1),
            next_conn: AtomicU64::new(1),
        };
        let got: Vec<bool> = (0..6).map(|_| shared.fault().is_some()).collect();
        assert_eq!(got, [false, false, true, false, false, true]);
    }
}
