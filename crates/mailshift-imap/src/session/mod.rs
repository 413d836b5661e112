//! One IMAP connection: connect (TLS, STARTTLS or plain), log in, and the few commands the
//! copy needs, each under a timeout.
//!
//! Built on async-imap, with a raw path for APPEND: async-imap's own APPEND sends one message
//! per command and drops the tagged response code, while we want MULTIAPPEND batches, LITERAL+
//! (no round trip per literal) and the APPENDUID that UIDPLUS servers return, which is what
//! makes a crash after an APPEND recoverable without duplicates.
//!
//! Every command that carries a mailbox name (LIST, STATUS, SELECT, EXAMINE, CREATE, APPEND)
//! is sent raw too, through `Imap::run` with `Arg::Mailbox`, and so through the one encoder,
//! [`crate::names::encode`]: async-imap quotes names itself and cannot send one as a literal, and
//! its parsed LIST/STATUS names cannot be trusted (see [`crate::names`]). A UID COPY/MOVE target
//! added later goes the same way.
//!
//! Here: the connection (connect, log in, capabilities) and the commands the copy uses. Beside
//! it: `tls` (the stream and the rustls configuration), `append` (the hand-written APPEND),
//! `wire` (the raw command path, response decoding, UID sets) and `error` (what a failure is).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use async_imap::{Client, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ErrorKind;
use crate::folders::RemoteFolder;

mod append;
mod error;
mod fetch;
mod gate;
mod gmail;
pub(crate) mod tls;
mod wire;

pub use append::{Appended, Body, Outgoing};
pub use error::ImapError;
pub use gate::Gate;
pub use gmail::GmailMeta;
pub use tls::Conn;
pub use wire::uid_set;

pub(crate) use error::refusal_kind as error_kind_of;
use error::{imap_error, login_error};
use tls::{TlsConfig, tls_wrap};
use wire::{Arg, Untagged, canonical, list_entries, shown, status_entries};

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The server a connection talks to, as errors name it, with how long one of its commands may
/// take before the connection is declared dead (the endpoint's `timeout:`).
#[derive(Debug, Clone)]
struct Peer {
    name: String,
    timeout: Duration,
    /// The account's pause on this server, held when the server suggests one.
    gate: Gate,
}

impl Peer {
    /// Every error from the server passes here: a suggested backoff pauses the whole account.
    fn heard(&self, e: ImapError) -> ImapError {
        if e.throttled
            && let Some(backoff) = crate::error::suggested_backoff(&e.message)
        {
            self.gate.hold(backoff);
        }
        e
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl std::ops::Deref for Peer {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS from the first byte.
    Tls,
    /// Plain first, then STARTTLS, required: never downgraded.
    Starttls,
    /// No TLS at all (the caller decided the network is trusted).
    None,
}

/// A server to connect to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or IP address; also the TLS server name.
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// A PEM file of extra CA certificates to trust, as a path the process can open.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate (the caller was told explicitly).
    pub insecure_skip_verify: bool,
    /// How long one command may go without an answer before the connection is declared dead.
    pub timeout: Duration,
}

/// A password or token, already read from wherever the caller keeps it. Never shown: its
/// `Debug` is redacted, and errors name the login and the server, never this.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How to log in.
#[derive(Clone, Debug)]
pub enum Auth {
    Password {
        login: String,
        password: Secret,
    },
    /// SASL XOAUTH2 with an access token from `tokens`, asked for at every login so a
    /// reconnect after expiry gets a fresh one.
    XOAuth2 {
        login: String,
        tokens: Tokens,
    },
}

/// Why no access token could be had. `kind` is `Auth` when a person must act (a refresh token
/// revoked or expired: `mailshift auth login` again; a client secret refused), `Network` or
/// `Throttled` when the token endpoint could not be reached or asked to wait (worth a retry).
/// The message never holds a secret.
#[derive(Debug, Clone)]
pub struct TokenError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Where OAuth2 access tokens come from: the product's token cache, which refreshes or
/// re-signs them before they expire, or a fixed token. The engine asks for one at each login
/// and tells the source when the server refused or ended a session over one, so the next ask
/// does not hand the same token back.
pub trait TokenSource: Send + Sync {
    /// A token the server should accept now (valid for a few minutes at least).
    fn token(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Secret, TokenError>> + Send + '_>>;
    /// The server refused `token` at login or ended a session because it expired
    /// (`BYE ... AccessTokenExpired`): drop it from any cache.
    fn expired(&self, token: &Secret);
}

/// A shared [`TokenSource`].
#[derive(Clone)]
pub struct Tokens(pub std::sync::Arc<dyn TokenSource>);

impl Tokens {
    /// A token given as is (the plan's `oauth2_token`): it is never refreshed.
    pub fn fixed(token: Secret) -> Tokens {
        Tokens(std::sync::Arc::new(Fixed(token)))
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens(<source>)")
    }
}

struct Fixed(Secret);

impl TokenSource for Fixed {
    fn token(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Secret, TokenError>> + Send + '_>>
    {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn expired(&self, _token: &Secret) {}
}

impl Auth {
    pub fn login(&self) -> &str {
        match self {
            Auth::Password { login, .. } | Auth::XOAuth2 { login, .. } => login,
        }
    }
}

/// Everything needed to open a connection; cheap to clone for more connections.
#[derive(Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub auth: Auth,
    /// Built by the first TLS connection, shared by the next ones (and by clones).
    tls: TlsConfig,
    /// The account's pause on this server, shared by every connection (and by clones).
    gate: Gate,
}

impl Target {
    pub fn new(endpoint: Endpoint, auth: Auth) -> Target {
        Target {
            endpoint,
            auth,
            tls: TlsConfig::default(),
            gate: Gate::default(),
        }
    }

    /// The pause a throttling server asked this account to keep (see [`Gate`]).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    pub fn describe(&self) -> String {
        format!(
            "{} at {}:{}",
            self.auth.login(),
            self.endpoint.host,
            self.endpoint.port
        )
    }
}

/// What the server can do that changes how we talk to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub uidplus: bool,
    pub multiappend: bool,
    pub literal_plus: bool,
    pub condstore: bool,
    /// RFC 6851 `UID MOVE`.
    pub moves: bool,
    /// RFC 5819: LIST can return every folder's STATUS in the same exchange.
    pub list_status: bool,
    /// Gmail's X-GM-EXT-1: X-GM-MSGID and X-GM-LABELS (see `gmail`).
    pub gmail: bool,
    /// RFC 9208 (formerly 2087) QUOTA: GETQUOTAROOT says what a folder's quota allows.
    pub quota: bool,
}

/// What SELECT/EXAMINE and STATUS report about a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderInfo {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub exists: u32,
    pub highest_modseq: Option<u64>,
    /// Flags that can be stored permanently; `allows_keywords` when `\*` is among them.
    pub permanent_flags: Vec<String>,
    pub allows_keywords: bool,
}

/// Per-message metadata from a FETCH.
#[derive(Debug, Clone)]
pub struct MessageMeta {
    pub uid: u32,
    pub size: u32,
    pub flags: Vec<String>,
    /// IMAP date-time text, e.g. `01-Feb-2024 10:00:00 +0000`.
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
}

/// What a FETCH of bodies brought: the bodies that arrived whole, and why it stopped early.
pub struct Fetched {
    pub bodies: Vec<(u32, Vec<u8>)>,
    pub error: Option<ImapError>,
}

pub struct Imap {
    session: Session<Conn>,
    pub caps: Caps,
    host: Peer,
    next_tag: u32,
    selected: Option<String>,
    /// The XOAUTH2 token this session logged in with, and where it came from.
    token: Option<(Tokens, Secret)>,
    /// The text of a BYE the server sent, if it sent one.
    bye: Option<String>,
}

async fn read_greeting(client: &mut Client<Conn>, host: &str) -> Result<(), ImapError> {
    let greeting = tokio::time::timeout(CONNECT_TIMEOUT, client.read_response())
        .await
        .map_err(|_| ImapError::transient(format!("{host} sent no IMAP greeting")))?
        .map_err(|e| ImapError::transient(format!("reading the greeting of {host}: {e}")))?;
    match greeting.as_ref().map(|g| g.parsed()) {
        Some(Response::Data {
            status: Status::Ok, ..
        }) => Ok(()),
        Some(Response::Data {
            status: Status::Bye,
            outcome,
        }) => Err(ImapError::new(
            ErrorKind::Throttled,
            format!(
                "{host} refused the connection: {}",
                outcome.information.as_deref().unwrap_or("BYE")
            ),
        )),
        // Not an IMAP server: the plan points at the wrong port.
        Some(other) => Err(ImapError::new(
            ErrorKind::Config,
            format!("{host} sent an unexpected greeting: {other:?}"),
        )),
        None => Err(ImapError::transient(format!(
            "{host} closed the connection before its greeting"
        ))),
    }
}

struct XOAuth2<'a> {
    user: &'a str,
    token: &'a str,
    sent: bool,
}

impl async_imap::Authenticator for XOAuth2<'_> {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        // A second challenge is the server's error report (base64 JSON): the client answers
        // it with an empty line, never with the token again (Google's XOAUTH2 protocol page).
        if std::mem::replace(&mut self.sent, true) {
            return String::new();
        }
        format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token)
    }
}

/// SASL XOAUTH2 with a token from `tokens`. A refused token may have expired or been revoked
/// since the source handed it out (its clock, a revocation): the source is told, and one more
/// attempt on the same connection is made with the token it gives next, unless that is the
/// same one (a fixed token). A second refusal is final. Returns the session and the token it
/// logged in with (told expired if the server later ends the session over it).
async fn xoauth2_login(
    mut client: Client<Conn>,
    target: &Target,
    peer: &Peer,
    login: &str,
    tokens: &Tokens,
) -> Result<(Session<Conn>, Secret), ImapError> {
    let no_token = |e: TokenError| {
        ImapError::new(
            e.kind,
            format!("no OAuth2 token for {}: {}", target.describe(), e.message),
        )
    };
    let mut token = tokens.0.token().await.map_err(no_token)?;
    let mut retried = false;
    loop {
        let auth = XOAuth2 {
            user: login,
            token: token.expose(),
            sent: false,
        };
        let answer = tokio::time::timeout(peer.timeout, client.authenticate("XOAUTH2", auth))
            .await
            .map_err(|_| {
                ImapError::transient(format!("login to {} timed out", target.describe()))
            })?;
        let (e, back) = match answer {
            Ok(session) => return Ok((session, token)),
            Err(failed) => failed,
        };
        let err = peer.heard(login_error(target, e));
        if err.kind != ErrorKind::Auth || retried {
            return Err(err);
        }
        tokens.0.expired(&token);
        let fresh = tokens.0.token().await.map_err(no_token)?;
        if fresh.expose() == token.expose() {
            return Err(err);
        }
        token = fresh;
        client = back;
        retried = true;
    }
}

impl Imap {
    /// Connects and logs in. Errors name the server and login, never the secret.
    pub async fn connect(target: &Target) -> Result<Imap, ImapError> {
        // A session can end over its token's expiry before it is even ready (its first
        // command waited out another connection's backoff): then a fresh token, again.
        let mut ended = 0;
        loop {
            let mut token_expired = false;
            match Imap::connect_once(target, &mut token_expired).await {
                Err(_) if token_expired && ended < 3 => ended += 1,
                other => return other,
            }
        }
    }

    async fn connect_once(target: &Target, token_expired: &mut bool) -> Result<Imap, ImapError> {
        let ep = &target.endpoint;
        let peer = Peer {
            name: ep.host.clone(),
            timeout: ep.timeout,
            gate: target.gate.clone(),
        };
        // Not even a connection while the account is told to keep quiet.
        peer.gate.pass().await;
        let addr = format!("{}:{}", ep.host, ep.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| {
                ImapError::transient(format!("cannot connect to IMAP server {addr}: timed out"))
            })?
            .map_err(|e| {
                ImapError::transient(format!("cannot connect to IMAP server {addr}: {e}"))
            })?;
        let _ = tcp.set_nodelay(true);
        let conn = match ep.security {
            Security::None => Conn::Plain(tcp),
            Security::Tls => tls_wrap(tcp, target).await?,
            Security::Starttls => {
                let mut client = Client::new(Conn::Plain(tcp));
                read_greeting(&mut client, &ep.host).await?;
                let mut plain = client;
                // A refused STARTTLS ends here: never fall back to sending the password in clear.
                if let Err(e) = timed(
                    &peer,
                    "STARTTLS",
                    plain.run_command_and_check_ok("STARTTLS", None),
                )
                .await
                {
                    return Err(ImapError::new(
                        ErrorKind::Tls,
                        format!(
                            "IMAP server {addr} does not offer STARTTLS ({}): refusing to send the password in clear \
                             (use `security: tls` if it has an implicit-TLS port, or `security: none` on a trusted network)",
                            e.message
                        ),
                    ));
                }
                let Conn::Plain(tcp) = plain.into_inner() else {
                    unreachable!("STARTTLS runs on a plain connection")
                };
                tls_wrap(tcp, target).await?
            }
        };
        let mut client = Client::new(conn);
        if ep.security != Security::Starttls {
            read_greeting(&mut client, &ep.host).await?;
        }
        // Another connection may have been told to back off while this one was connecting
        // (a slow TLS handshake): the login is the first thing this one asks of the server.
        peer.gate.pass().await;
        // Servers that say their capabilities in the login's answer (most do) save us the
        // CAPABILITY round trip: a no-op run is mostly round trips.
        let mut token_used = None;
        let (session, said) = match &target.auth {
            Auth::Password { login, password } => tokio::time::timeout(
                peer.timeout,
                client.login_with_capabilities(login, password.expose()),
            )
            .await
            .map_err(|_| ImapError::transient(format!("login to {} timed out", target.describe())))?
            .map_err(|(e, _)| peer.heard(login_error(target, e)))?,
            Auth::XOAuth2 { login, tokens } => {
                let (session, token) = xoauth2_login(client, target, &peer, login, tokens).await?;
                token_used = Some((tokens.clone(), token));
                (session, None)
            }
        };
        let mut imap = Imap {
            session,
            caps: Caps::default(),
            host: peer,
            next_tag: 0,
            selected: None,
            token: token_used,
            bye: None,
        };
        // Read by hand when the login did not say them: async-imap's CAPABILITY ignores a NO
        // or BAD (Exchange's throttling) and answers "no capabilities" instead.
        let has: Box<dyn Fn(&str) -> bool + Send> = match said {
            Some(caps) => Box::new(move |c: &str| caps.has_str(c)),
            None => {
                let answer = match imap.run("CAPABILITY", &[Arg::Text("CAPABILITY")]).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        *token_expired = imap.ended_by_token_expiry(&e.message);
                        return Err(e);
                    }
                };
                let names: Vec<String> = answer
                    .into_iter()
                    .filter_map(|u| match u {
                        Untagged::Capabilities(names) => Some(names),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                Box::new(move |c: &str| names.iter().any(|n| n.eq_ignore_ascii_case(c)))
            }
        };
        imap.caps = Caps {
            uidplus: has("UIDPLUS"),
            multiappend: has("MULTIAPPEND"),
            literal_plus: has("LITERAL+"),
            condstore: has("CONDSTORE"),
            moves: has("MOVE"),
            list_status: has("LIST-STATUS"),
            gmail: has("X-GM-EXT-1"),
            quota: has("QUOTA"),
        };
        Ok(imap)
    }

    /// Lists every folder with its attributes.
    pub async fn list(&mut self) -> Result<Vec<RemoteFolder>, ImapError> {
        let responses = self.run("LIST", &[Arg::Text("LIST \"\" \"*\"")]).await?;
        list_entries(&self.host, &responses)
    }

    /// Lists every folder and, where the server offers LIST-STATUS (RFC 5819), the status of
    /// each selectable one in the same exchange; the map is empty on other servers.
    pub async fn list_with_status(
        &mut self,
    ) -> Result<(Vec<RemoteFolder>, HashMap<String, FolderInfo>), ImapError> {
        if !self.caps.list_status {
            return Ok((self.list().await?, HashMap::new()));
        }
        let cmd = format!("LIST \"\" \"*\" RETURN (STATUS {})", self.status_items());
        let responses = self.run("LIST", &[Arg::Text(&cmd)]).await?;
        let folders = list_entries(&self.host, &responses)?;
        Ok((folders, status_entries(&self.host, &responses)?))
    }

    /// STATUS of many folders in few round trips: the commands are written in windows and
    /// their answers read after each window. Folders the server refuses (gone, not
    /// selectable) are absent from the map; a [`Imap::status`] of them tells why.
    pub async fn statuses(
        &mut self,
        folders: &[String],
    ) -> Result<HashMap<String, FolderInfo>, ImapError> {
        // A window bounds what each side buffers: both write before reading, so an unbounded
        // pipeline over thousands of folders could fill both sockets and stall.
        const WINDOW: usize = 128;
        let host = self.host.clone();
        let items = self.status_items();
        let mut out = HashMap::new();
        for window in folders.chunks(WINDOW) {
            self.ready().await;
            let tags: Vec<String> = window.iter().map(|_| self.new_tag()).collect();
            let fut = async {
                let mut seen = Vec::new();
                for (tag, folder) in tags.iter().zip(window) {
                    let args = [Arg::Text("STATUS"), Arg::Mailbox(folder), Arg::Text(items)];
                    self.write_command(tag, &args, &mut seen).await?;
                }
                self.session.get_mut().flush().await?;
                self.finish(&tags, seen).await
            };
            let (untagged, done) = tokio::time::timeout(host.timeout, fut)
                .await
                .map_err(|_| ImapError::transient(format!("STATUS on {host} timed out")))?
                .map_err(|e| e.into_error(&host, "STATUS"))?;
            // A folder refused is left out; the server asking us to slow down is not a refusal.
            if let Some(text) = done.values().find_map(|r| {
                r.as_ref()
                    .err()
                    .filter(|t| error::refusal_kind(t) == ErrorKind::Throttled)
            }) {
                return Err(host.heard(error::refusal(
                    format!("STATUS on {host}: server said {text}"),
                    text,
                )));
            }
            out.extend(status_entries(&host, &untagged)?);
        }
        Ok(out)
    }

    fn status_items(&self) -> &'static str {
        if self.caps.condstore {
            "(UIDNEXT UIDVALIDITY MESSAGES HIGHESTMODSEQ)"
        } else {
            "(UIDNEXT UIDVALIDITY MESSAGES)"
        }
    }

    pub async fn create(&mut self, folder: &str) -> Result<(), ImapError> {
        match self
            .run("CREATE", &[Arg::Text("CREATE"), Arg::Mailbox(folder)])
            .await
        {
            Ok(_) => Ok(()),
            // Another connection (or an earlier, interrupted run) created it meanwhile.
            Err(e)
                if e.message.contains("ALREADYEXISTS")
                    || e.message.to_lowercase().contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(ImapError {
                message: format!("cannot create folder {}: {}", shown(folder), e.message),
                ..e
            }),
        }
    }

    /// SELECT (read-write) or EXAMINE (read-only: the source is never modified).
    pub async fn open(&mut self, folder: &str, write: bool) -> Result<FolderInfo, ImapError> {
        let verb = if write { "SELECT" } else { "EXAMINE" };
        // CONDSTORE so HIGHESTMODSEQ is reported.
        let condstore = if self.caps.condstore {
            "(CONDSTORE)"
        } else {
            ""
        };
        self.selected = None;
        let responses = self
            .run(
                verb,
                &[Arg::Text(verb), Arg::Mailbox(folder), Arg::Text(condstore)],
            )
            .await
            .map_err(|e| ImapError {
                message: format!("{} ({})", e.message, shown(folder)),
                ..e
            })?;
        self.selected = Some(folder.to_string());
        let mut info = FolderInfo::default();
        for r in responses {
            match r {
                Untagged::Exists(n) => info.exists = n,
                Untagged::UidValidity(v) => info.uidvalidity = v,
                Untagged::UidNext(v) => info.uidnext = v,
                Untagged::HighestModSeq(v) => info.highest_modseq = Some(v),
                Untagged::PermanentFlags(flags) => {
                    info.allows_keywords = flags.iter().any(|f| f == "\\*");
                    info.permanent_flags = flags;
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// STATUS: the cheap question a no-op run asks of a folder.
    pub async fn status(&mut self, folder: &str) -> Result<FolderInfo, ImapError> {
        let items = self.status_items();
        let responses = self
            .run(
                "STATUS",
                &[Arg::Text("STATUS"), Arg::Mailbox(folder), Arg::Text(items)],
            )
            .await
            .map_err(|e| ImapError {
                message: format!("{} ({})", e.message, shown(folder)),
                ..e
            })?;
        let mut found = status_entries(&self.host, &responses)?;
        Ok(found
            .remove(canonical(folder).as_ref())
            .or_else(|| found.into_values().next())
            .unwrap_or_default())
    }

    /// GETQUOTAROOT (RFC 9208) of a folder: the STORAGE of its quota roots in bytes, (used,
    /// limit), the root with the least room left when there are several. `None` when the
    /// server has no QUOTA extension or no root limits storage.
    pub async fn storage_quota(&mut self, folder: &str) -> Result<Option<(u64, u64)>, ImapError> {
        if !self.caps.quota {
            return Ok(None);
        }
        let responses = self
            .run(
                "GETQUOTAROOT",
                &[Arg::Text("GETQUOTAROOT"), Arg::Mailbox(folder)],
            )
            .await?;
        Ok(responses
            .iter()
            .filter_map(|r| match r {
                // The protocol counts storage in units of 1024 octets.
                Untagged::StorageQuota(used, limit) => {
                    Some((used.saturating_mul(1024), limit.saturating_mul(1024)))
                }
                _ => None,
            })
            .min_by_key(|(used, limit)| limit.saturating_sub(*used)))
    }

    /// UID, size, flags and internal date of the messages in a UID range of the open folder.
    pub async fn fetch_meta(
        &mut self,
        uid_set: &str,
        changed_since: Option<u64>,
    ) -> Result<Vec<MessageMeta>, ImapError> {
        let query = match changed_since {
            Some(m) => format!("(UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ) (CHANGEDSINCE {m})"),
            None => "(UID RFC822.SIZE FLAGS INTERNALDATE)".to_string(),
        };
        let mut out: Vec<MessageMeta> = Vec::new();
        self.uid_fetch_raw(uid_set, &query, |f| {
            if let Some(uid) = f.uid {
                out.push(MessageMeta {
                    uid,
                    size: f.size.unwrap_or(0),
                    flags: f.flags,
                    internal_date: f.internal_date,
                    modseq: f.modseq,
                });
            }
        })
        .await?;
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    /// Full bodies of the given UIDs, in UID order. Messages that vanished are simply absent.
    pub async fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
        let fetched = self.fetch_bodies_partial(uids).await;
        match fetched.error {
            Some(e) => Err(e),
            None => Ok(fetched.bodies),
        }
    }

    /// [`Imap::fetch_bodies`] that keeps what arrived when the connection fails halfway: every
    /// body the server finished sending before a cut or a timeout is returned with the error,
    /// so a link that drops every few hundred KB still moves messages forward.
    pub async fn fetch_bodies_partial(&mut self, uids: &[u32]) -> Fetched {
        let mut bodies: Vec<(u32, Vec<u8>)> = Vec::new();
        if uids.is_empty() {
            return Fetched {
                bodies,
                error: None,
            };
        }
        let set = uid_set(uids);
        // A response is handed over only once complete: a body here arrived whole.
        let error = self
            .uid_fetch_raw(&set, "(UID BODY.PEEK[])", |f| {
                if let (Some(uid), Some(body)) = (f.uid, f.body) {
                    bodies.push((uid, body));
                }
            })
            .await
            .err();
        bodies.sort_by_key(|(u, _)| *u);
        bodies.dedup_by_key(|(u, _)| *u);
        Fetched { bodies, error }
    }

    /// One slice of a message (`BODY.PEEK[]<offset.len>`), for messages too large to hold
    /// whole. `None` when the message is gone.
    pub async fn fetch_part(
        &mut self,
        uid: u32,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, ImapError> {
        let query = format!("(UID BODY.PEEK[]<{offset}.{len}>)");
        let mut part = None;
        self.uid_fetch_raw(&uid.to_string(), &query, |f| {
            if f.uid == Some(uid) {
                part = Some(f.body.unwrap_or_default());
            }
        })
        .await?;
        Ok(part)
    }

    /// Some header fields (`BODY.PEEK[HEADER.FIELDS (fields)]`) of the given UIDs, in UID
    /// order: a few hundred bytes per message, to name messages in a report.
    pub async fn fetch_header_fields(
        &mut self,
        uids: &[u32],
        fields: &str,
    ) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let query = format!("(UID BODY.PEEK[HEADER.FIELDS ({fields})])");
        let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
        self.uid_fetch_raw(&set, &query, |f| {
            if let Some(uid) = f.uid {
                out.push((uid, f.body.unwrap_or_default()));
            }
        })
        .await?;
        out.sort_by_key(|(u, _)| *u);
        out.dedup_by_key(|(u, _)| *u);
        Ok(out)
    }

    /// Deletes exactly these messages of the open folder (UIDPLUS `UID EXPUNGE`, so no other
    /// message flagged `\Deleted` by someone else is touched).
    pub async fn expunge_uids(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        if !self.caps.uidplus {
            return Err(ImapError::fatal("removing single messages needs UIDPLUS"));
        }
        let host = self.host.clone();
        let set = uid_set(uids);
        self.ready().await;
        let store = format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)");
        timed(
            &host,
            "STORE",
            self.session.run_command_and_check_ok(&store),
        )
        .await?;
        self.ready().await;
        let expunge = format!("UID EXPUNGE {set}");
        timed(
            &host,
            "EXPUNGE",
            self.session.run_command_and_check_ok(&expunge),
        )
        .await
    }

    /// Replaces a message's flags (destination side; used to carry flag changes).
    pub async fn store_flags(&mut self, uid: u32, flags: &[String]) -> Result<(), ImapError> {
        self.ready().await;
        let host = self.host.clone();
        let cmd = format!("UID STORE {uid} FLAGS.SILENT ({})", flags.join(" "));
        timed(&host, "STORE", self.session.run_command_and_check_ok(&cmd)).await
    }

    /// Header fingerprints (Message-ID, Date, size, internal date) of a UID range of the open
    /// folder, without bodies: what adoption compares first.
    pub async fn fetch_fingerprints(
        &mut self,
        uid_set: &str,
    ) -> Result<Vec<(u32, super::adopt::Fingerprint)>, ImapError> {
        let query = "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)])";
        let mut out: Vec<(u32, super::adopt::Fingerprint)> = Vec::new();
        self.uid_fetch_raw(uid_set, query, |f| {
            let fp = super::adopt::Fingerprint::from_header(
                f.body.as_deref().unwrap_or_default(),
                f.size.unwrap_or(0),
                f.timestamp(),
            );
            if let Some(uid) = f.uid {
                out.push((uid, fp));
            }
        })
        .await?;
        out.sort_by_key(|(u, _)| *u);
        out.dedup_by_key(|(u, _)| *u);
        Ok(out)
    }

    /// Moves messages of the open folder to `to` on the same server: `UID MOVE` (RFC 6851)
    /// where offered, else `UID COPY` then removing exactly these UIDs (UIDPLUS). Returns the
    /// (old UID, new UID) pairs the server reported (COPYUID), which may be fewer than asked or
    /// none at all; messages already gone are simply not moved.
    pub async fn move_uids(
        &mut self,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        if !self.caps.moves && !self.caps.uidplus {
            return Err(ImapError::fatal(format!(
                "{} offers neither MOVE nor UIDPLUS, so messages cannot be moved between its \
                 folders without touching others",
                self.host
            )));
        }
        let set = uid_set(uids);
        let verb = if self.caps.moves { "MOVE" } else { "COPY" };
        let command = format!("UID {verb} {set}");
        let responses = self
            .run(verb, &[Arg::Text(&command), Arg::Mailbox(to)])
            .await?;
        let pairs: Vec<(u32, u32)> = responses
            .into_iter()
            .filter_map(|u| match u {
                Untagged::CopyUid(p) => Some(p),
                _ => None,
            })
            .flatten()
            .collect();
        if verb == "COPY" {
            let copied: Vec<u32> = pairs.iter().map(|(from, _)| *from).collect();
            self.expunge_uids(&copied).await?;
        }
        Ok(pairs)
    }

    /// Before each command: the account's pause, if a server suggested one, has passed; and
    /// the responses async-imap set aside (EXISTS and the like, which nothing here reads) are
    /// cleared, keeping a BYE, so its channel never fills up and drops one.
    async fn ready(&mut self) {
        self.host.gate.pass().await;
        self.drain_unsolicited();
    }

    fn drain_unsolicited(&mut self) {
        use async_imap::types::UnsolicitedResponse;
        while let Ok(u) = self.session.unsolicited_responses.try_recv() {
            if let UnsolicitedResponse::Other(r) = u
                && let Some(text) = wire::bye_text(r.parsed())
            {
                self.bye = Some(text);
            }
        }
    }

    /// Whether `error` on this connection means the server ended the session because its
    /// XOAUTH2 token expired: Exchange Online's `* BYE Session invalidated -
    /// AccessTokenExpired`, or a NO/BAD saying so or saying "User is authenticated but not
    /// connected". If so the token source is told (so the next login gets a fresh token) and
    /// the caller reconnects as a matter of routine.
    pub fn ended_by_token_expiry(&mut self, error: &str) -> bool {
        if self.token.is_none() {
            return false;
        }
        self.drain_unsolicited();
        let said = |t: &str| {
            let t = t.to_ascii_lowercase();
            t.contains("accesstokenexpired") || t.contains("authenticated but not connected")
        };
        let expired = said(error) || self.bye.as_deref().is_some_and(said);
        if expired && let Some((tokens, token)) = &self.token {
            tokens.0.expired(token);
        }
        expired
    }

    /// Which folder is open on this connection, if any.
    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    /// Says LOGOUT, then waits (briefly) for the server to close the connection: a server
    /// counts a connection until it has closed it, and the caller gives its budget slot back
    /// when this returns, so the next connection must not overlap this one on the server's side
    /// (Dovecot's per-user limit refuses it; a shared budget would be overspent).
    pub async fn logout(mut self) {
        self.ready().await;
        let said = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
        if matches!(said, Ok(Ok(()))) {
            let closed = async {
                let mut buf = [0u8; 256];
                while matches!(self.session.get_mut().read(&mut buf).await, Ok(n) if n > 0) {}
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), closed).await;
        }
    }
}

/// Runs one async-imap command under the timeout, mapping its error with context.
async fn timed<T>(
    host: &Peer,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(host.timeout, fut).await {
        Err(_) => Err(ImapError::transient(format!("{what} on {host} timed out"))),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(host.heard(imap_error(host, what, e))),
    }
}
