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
//! [`names::encode`]: async-imap quotes names itself and cannot send one as a literal, and
//! its parsed LIST/STATUS names cannot be trusted (see [`names`]). A UID COPY/MOVE target
//! added later goes the same way.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{MailboxDatum, Response, ResponseCode, Status};
use async_imap::types::Flag;
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::error::ErrorKind;
use crate::transfer::imap::folders::RemoteFolder;
use crate::transfer::imap::names::{self, Encoded};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A failure on an IMAP connection, classified here where the reply is understood. `transient`
/// ones (network, timeouts, throttling) are worth a reconnect and retry; the others (bad
/// login, refused TLS) are not. `transient` and `throttled` follow from `kind`.
#[derive(Debug, Clone)]
pub struct ImapError {
    pub message: String,
    pub transient: bool,
    /// The server asked us to slow down (`[THROTTLED]`, "Suggested Backoff Time").
    pub throttled: bool,
    pub kind: ErrorKind,
}

impl ImapError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ImapError {
            message: message.into(),
            transient: kind.is_transient(),
            throttled: kind == ErrorKind::Throttled,
            kind,
        }
    }

    /// The server refused what it was asked, and asking again will not change its mind.
    fn fatal(message: impl Into<String>) -> Self {
        ImapError::new(ErrorKind::Refused, message)
    }

    fn transient(message: impl Into<String>) -> Self {
        ImapError::new(ErrorKind::Network, message)
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImapError {}

/// The server a connection talks to, as errors name it, with how long one of its commands may
/// take before the connection is declared dead (the endpoint's `timeout:`).
#[derive(Debug, Clone)]
struct Peer {
    name: String,
    timeout: Duration,
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

/// A plain or TLS TCP stream, so one session type serves every `security` setting.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conn::Plain(_) => f.write_str("Conn::Plain"),
            Conn::Tls(_) => f.write_str("Conn::Tls"),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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
    Password { login: String, password: Secret },
    XOAuth2 { login: String, token: Secret },
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
}

impl Target {
    pub fn new(endpoint: Endpoint, auth: Auth) -> Target {
        Target { endpoint, auth }
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

/// One message to APPEND.
pub struct Outgoing<'a> {
    pub flags: &'a [String],
    pub internal_date: Option<&'a str>,
    pub body: Body<'a>,
}

/// A message's bytes: in memory, or spooled to a file (large messages, so memory stays bounded).
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Mem(&'a [u8]),
    File { path: &'a std::path::Path, len: u64 },
}

impl Body<'_> {
    pub fn len(&self) -> u64 {
        match self {
            Body::Mem(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a FETCH of bodies brought: the bodies that arrived whole, and why it stopped early.
pub struct Fetched {
    pub bodies: Vec<(u32, Vec<u8>)>,
    pub error: Option<ImapError>,
}

/// How the destination answered an APPEND it read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored; the new UIDs in order when the server says them (UIDPLUS).
    Stored(Option<Vec<u32>>),
    /// The server said NO to the message itself (too large, a line too long, bad content):
    /// its words. A NO to a MULTIAPPEND refuses every message of the command (RFC 3502).
    Refused(String),
}

/// How much of a spooled message is read into memory at a time while sending it.
const SEND_CHUNK: usize = 1024 * 1024;

pub struct Imap {
    session: Session<Conn>,
    pub caps: Caps,
    host: Peer,
    next_tag: u32,
    selected: Option<String>,
}

fn tls_config(ep: &Endpoint) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))?;
    let config = if ep.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut extra = Vec::new();
        if let Some(path) = &ep.ca_file {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                ImapError::new(
                    ErrorKind::Config,
                    format!("cannot read CA file {}: {e}", path.display()),
                )
            })?;
            for c in certs {
                extra.push(c.map_err(|e| {
                    ImapError::new(
                        ErrorKind::Config,
                        format!("bad certificate in CA file {}: {e}", path.display()),
                    )
                })?);
            }
            if extra.is_empty() {
                return Err(ImapError::new(
                    ErrorKind::Config,
                    format!("CA file {} holds no PEM certificate", path.display()),
                ));
            }
        }
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
            .map_err(|e| ImapError::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `insecure_skip_verify: true`: the plan said so explicitly, and validation warned about it.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn tls_wrap(tcp: TcpStream, ep: &Endpoint) -> Result<Conn, ImapError> {
    let config = tls_config(ep)?;
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone()).map_err(|_| {
        ImapError::new(
            ErrorKind::Config,
            format!("`{}` is not a valid TLS server name", ep.host),
        )
    })?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| ImapError::transient(format!("TLS handshake with {} timed out", ep.host)))?
    .map_err(|e| {
        let msg = format!("TLS handshake with {}:{} failed: {e}", ep.host, ep.port);
        // A certificate problem does not fix itself by retrying.
        if e.to_string().contains("certificate") {
            ImapError::new(
                ErrorKind::Tls,
                format!("{msg} (to trust a private CA, set `ca_file:` on this endpoint)"),
            )
        } else {
            ImapError::transient(msg)
        }
    })?;
    Ok(Conn::Tls(Box::new(tls)))
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
}

impl async_imap::Authenticator for XOAuth2<'_> {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token)
    }
}

impl Imap {
    /// Connects and logs in. Errors name the server and login, never the secret.
    pub async fn connect(target: &Target) -> Result<Imap, ImapError> {
        let ep = &target.endpoint;
        let peer = Peer {
            name: ep.host.clone(),
            timeout: ep.timeout,
        };
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
            Security::Tls => tls_wrap(tcp, ep).await?,
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
                tls_wrap(tcp, ep).await?
            }
        };
        let mut client = Client::new(conn);
        if ep.security != Security::Starttls {
            read_greeting(&mut client, &ep.host).await?;
        }
        // Servers that say their capabilities in the login's answer (most do) save us the
        // CAPABILITY round trip: a no-op run is mostly round trips.
        let (session, said) = match &target.auth {
            Auth::Password { login, password } => tokio::time::timeout(
                peer.timeout,
                client.login_with_capabilities(login, password.expose()),
            )
            .await
            .map_err(|_| ImapError::transient(format!("login to {} timed out", target.describe())))?
            .map_err(|(e, _)| login_error(target, e))?,
            Auth::XOAuth2 { login, token } => {
                let auth = XOAuth2 {
                    user: login,
                    token: token.expose(),
                };
                let session =
                    tokio::time::timeout(peer.timeout, client.authenticate("XOAUTH2", auth))
                        .await
                        .map_err(|_| {
                            ImapError::transient(format!(
                                "login to {} timed out",
                                target.describe()
                            ))
                        })?
                        .map_err(|(e, _)| login_error(target, e))?;
                (session, None)
            }
        };
        let mut imap = Imap {
            session,
            caps: Caps::default(),
            host: peer,
            next_tag: 0,
            selected: None,
        };
        let caps = match said {
            Some(caps) => caps,
            None => timed(&imap.host, "CAPABILITY", imap.session.capabilities()).await?,
        };
        imap.caps = Caps {
            uidplus: caps.has_str("UIDPLUS"),
            multiappend: caps.has_str("MULTIAPPEND"),
            literal_plus: caps.has_str("LITERAL+"),
            condstore: caps.has_str("CONDSTORE"),
            moves: caps.has_str("MOVE"),
            list_status: caps.has_str("LIST-STATUS"),
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
            let (untagged, _) = tokio::time::timeout(host.timeout, fut)
                .await
                .map_err(|_| ImapError::transient(format!("STATUS on {host} timed out")))?
                .map_err(|e| e.into_error(&host, "STATUS"))?;
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

    fn new_tag(&mut self) -> String {
        self.next_tag += 1;
        format!("MS{}", self.next_tag)
    }

    /// Sends one command ourselves (rather than through async-imap, which cannot send a name
    /// as a literal) and returns its untagged responses; a NO or BAD is an error in the
    /// server's words.
    async fn run(&mut self, what: &str, args: &[Arg<'_>]) -> Result<Vec<Untagged>, ImapError> {
        let host = self.host.clone();
        let tag = self.new_tag();
        let fut = async {
            let mut seen = Vec::new();
            self.write_command(&tag, args, &mut seen).await?;
            self.session.get_mut().flush().await?;
            self.finish(std::slice::from_ref(&tag), seen).await
        };
        let (untagged, mut done) = tokio::time::timeout(host.timeout, fut)
            .await
            .map_err(|_| ImapError::transient(format!("{what} on {host} timed out")))?
            .map_err(|e| e.into_error(&host, what))?;
        match done.remove(&tag) {
            Some(Ok(())) => Ok(untagged),
            Some(Err(text)) => {
                let text: String = text;
                Err(refusal(
                    format!("{what} on {host}: server said {text}"),
                    &text,
                ))
            }
            None => Err(RawIo::Closed.into_error(&host, what)),
        }
    }

    /// Writes one command, not flushing its end. Each mailbox name goes through
    /// [`names::encode`]; a literal without LITERAL+ waits for the server's `+` (responses
    /// read meanwhile go to `seen`). Stops early if the server ends the command first.
    async fn write_command(
        &mut self,
        tag: &str,
        args: &[Arg<'_>],
        seen: &mut Vec<Reply>,
    ) -> Result<(), RawIo> {
        let literal_plus = self.caps.literal_plus;
        let mut line = tag.as_bytes().to_vec();
        for arg in args {
            match arg {
                Arg::Text("") => continue,
                Arg::Text(t) => {
                    line.push(b' ');
                    line.extend_from_slice(t.as_bytes());
                }
                Arg::Mailbox(m) => {
                    line.push(b' ');
                    match names::encode(m.as_bytes()) {
                        Encoded::Quoted(q) => line.extend_from_slice(&q),
                        Encoded::Literal(bytes) => {
                            line.extend(names::literal_head(bytes.len(), literal_plus));
                            let stream = self.session.get_mut();
                            stream.write_all(&line).await?;
                            line.clear();
                            if !literal_plus {
                                stream.flush().await?;
                                if !self.wait_continuation_raw(tag, seen).await? {
                                    return Ok(());
                                }
                            }
                            line.extend_from_slice(&bytes);
                        }
                    }
                }
            }
        }
        line.extend_from_slice(b"\r\n");
        self.session.get_mut().write_all(&line).await?;
        Ok(())
    }

    /// Reads until `+` (true) or until the server ends `tag` (false: it refused the literal).
    async fn wait_continuation_raw(
        &mut self,
        tag: &str,
        seen: &mut Vec<Reply>,
    ) -> Result<bool, RawIo> {
        loop {
            let reply = self.read_reply().await?;
            if matches!(reply, Reply::Continue) {
                return Ok(true);
            }
            let ours = matches!(&reply, Reply::Done { tag: t, .. } if t == tag);
            seen.push(reply);
            if ours {
                return Ok(false);
            }
        }
    }

    /// The next response, classified and owned.
    async fn read_reply(&mut self) -> Result<Reply, RawIo> {
        let resp = self.session.read_response().await?.ok_or(RawIo::Closed)?;
        Ok(reply(resp.parsed(), resp.borrow_owner()))
    }

    /// Reads until every tag is done: the untagged responses, and each tag's outcome (Err
    /// with the server's text for NO/BAD).
    #[allow(clippy::type_complexity)]
    async fn finish(
        &mut self,
        tags: &[String],
        seen: Vec<Reply>,
    ) -> Result<(Vec<Untagged>, HashMap<String, Result<(), String>>), RawIo> {
        let mut untagged = Vec::new();
        let mut done = HashMap::new();
        let mut seen = seen.into_iter();
        while done.len() < tags.len() {
            let reply = match seen.next() {
                Some(r) => r,
                None => self.read_reply().await?,
            };
            match reply {
                Reply::Done {
                    tag,
                    outcome,
                    copied,
                } if tags.contains(&tag) => {
                    if !copied.is_empty() {
                        untagged.push(Untagged::CopyUid(copied));
                    }
                    done.insert(tag, outcome);
                }
                // A stray `+` (never expected here) or another command's end: not ours.
                Reply::Continue | Reply::Done { .. } => {}
                Reply::Untagged(u) => untagged.push(u),
            }
        }
        Ok((untagged, done))
    }

    /// UID, size, flags and internal date of the messages in a UID range of the open folder.
    pub async fn fetch_meta(
        &mut self,
        uid_set: &str,
        changed_since: Option<u64>,
    ) -> Result<Vec<MessageMeta>, ImapError> {
        let host = self.host.clone();
        let query = match changed_since {
            Some(m) => format!("(UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ) (CHANGEDSINCE {m})"),
            None => "(UID RFC822.SIZE FLAGS INTERNALDATE)".to_string(),
        };
        let fut = async {
            let stream = self.session.uid_fetch(uid_set, &query).await?;
            let fetches: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches)
        };
        let fetches = timed(&host, "FETCH", fut).await?;
        let mut out: Vec<MessageMeta> = fetches
            .iter()
            .filter_map(|f| {
                Some(MessageMeta {
                    uid: f.uid?,
                    size: f.size.unwrap_or(0),
                    flags: f.flags().map(|fl| flag_text(&fl)).collect(),
                    internal_date: f
                        .internal_date()
                        .map(|d| d.format("%d-%b-%Y %H:%M:%S %z").to_string()),
                    modseq: f.modseq,
                })
            })
            .collect();
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
        let host = self.host.clone();
        let set = uid_set(uids);
        let fut = async {
            use futures_util::StreamExt;
            let mut stream = self.session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            while let Some(f) = stream.next().await {
                // A response is parsed only once complete: a body here arrived whole. Each is
                // dropped as soon as its body is copied out.
                let f = f?;
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    bodies.push((uid, body.to_vec()));
                }
            }
            Ok::<_, async_imap::error::Error>(())
        };
        let error = timed(&host, "FETCH", fut).await.err();
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
        let host = self.host.clone();
        let query = format!("(UID BODY.PEEK[]<{offset}.{len}>)");
        let fut = async {
            let stream = self.session.uid_fetch(uid.to_string(), &query).await?;
            let fetches: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches)
        };
        let fetches = timed(&host, "FETCH", fut).await?;
        Ok(fetches
            .iter()
            .find(|f| f.uid == Some(uid))
            .map(|f| f.body().unwrap_or_default().to_vec()))
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
        let host = self.host.clone();
        let set = uid_set(uids);
        let query = format!("(UID BODY.PEEK[HEADER.FIELDS ({fields})])");
        let fut = async {
            let stream = self.session.uid_fetch(&set, &query).await?;
            let fetches: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches)
        };
        let fetches = timed(&host, "FETCH", fut).await?;
        let mut out: Vec<(u32, Vec<u8>)> = fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.header().unwrap_or_default().to_vec())))
            .collect();
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
        let store = format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)");
        timed(
            &host,
            "STORE",
            self.session.run_command_and_check_ok(&store),
        )
        .await?;
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
        let host = self.host.clone();
        let query = "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)])";
        let fut = async {
            let stream = self.session.uid_fetch(uid_set, query).await?;
            let fetches: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches)
        };
        let fetches = timed(&host, "FETCH", fut).await?;
        let mut out: Vec<(u32, super::adopt::Fingerprint)> = fetches
            .iter()
            .filter_map(|f| {
                let fp = super::adopt::Fingerprint::from_header(
                    f.header().unwrap_or_default(),
                    f.size.unwrap_or(0),
                    f.internal_date().map(|d| d.timestamp()),
                );
                Some((f.uid?, fp))
            })
            .collect();
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

    /// Appends messages to `folder`: one command with MULTIAPPEND (all stored or none), else
    /// one per message, stopping at the first refusal. A NO that is about the account rather
    /// than the messages (throttling, quota) is an error, not a refusal.
    pub async fn append(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<Appended, ImapError> {
        if msgs.is_empty() {
            return Ok(Appended::Stored(Some(Vec::new())));
        }
        if self.caps.multiappend || msgs.len() == 1 {
            return self.append_command(folder, msgs).await;
        }
        let mut uids = Some(Vec::with_capacity(msgs.len()));
        for m in msgs {
            let got = match self.append_command(folder, std::slice::from_ref(m)).await? {
                Appended::Stored(got) => got,
                refused => return Ok(refused),
            };
            uids = match (uids, got) {
                (Some(mut all), Some(one)) => {
                    all.extend(one);
                    Some(all)
                }
                _ => None,
            };
        }
        Ok(Appended::Stored(uids))
    }

    async fn append_command(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<Appended, ImapError> {
        self.next_tag += 1;
        let tag = format!("MS{}", self.next_tag);
        let literal_plus = self.caps.literal_plus;
        let host = self.host.clone();
        let total: u64 = msgs.iter().map(|m| m.body.len()).sum();
        // A generous allowance: 1 MB/s at worst on top of the base timeout.
        let budget = host.timeout + Duration::from_secs(total / 1_000_000);
        let fut = async {
            let mut head = format!("{tag} APPEND ").into_bytes();
            match names::encode(folder.as_bytes()) {
                Encoded::Quoted(q) => head.extend_from_slice(&q),
                Encoded::Literal(bytes) => {
                    head.extend(names::literal_head(bytes.len(), literal_plus));
                    let stream = self.session.get_mut();
                    stream.write_all(&head).await?;
                    if !literal_plus {
                        stream.flush().await?;
                        self.wait_continuation(&tag).await?;
                    }
                    head = bytes;
                }
            }
            for (i, m) in msgs.iter().enumerate() {
                let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
                head.extend_from_slice(format!(" ({})", flags.join(" ")).as_bytes());
                if let Some(d) = m.internal_date {
                    head.extend_from_slice(format!(" \"{d}\"").as_bytes());
                }
                head.extend_from_slice(
                    format!(
                        " {{{}{}}}\r\n",
                        m.body.len(),
                        if literal_plus { "+" } else { "" }
                    )
                    .as_bytes(),
                );
                let stream = self.session.get_mut();
                stream.write_all(&head).await?;
                head.clear();
                if !literal_plus {
                    stream.flush().await?;
                    self.wait_continuation(&tag).await?;
                }
                let stream = self.session.get_mut();
                match m.body {
                    Body::Mem(bytes) => stream.write_all(bytes).await?,
                    Body::File { path, len } => {
                        use tokio::io::AsyncReadExt;
                        let mut file = tokio::fs::File::open(path).await?;
                        let mut buf = vec![0u8; SEND_CHUNK];
                        let mut left = len;
                        while left > 0 {
                            let want = (left as usize).min(SEND_CHUNK);
                            file.read_exact(&mut buf[..want]).await?;
                            stream.write_all(&buf[..want]).await?;
                            left -= want as u64;
                        }
                    }
                }
                if i + 1 == msgs.len() {
                    stream.write_all(b"\r\n").await?;
                }
            }
            self.session.get_mut().flush().await?;
            self.read_tagged(&tag).await
        };
        let answer = tokio::time::timeout(budget, fut)
            .await
            .map_err(|_| ImapError::transient(format!("APPEND to {host} timed out")))?;
        let (ok, code, info) = match answer {
            Ok(a) => a,
            Err(AppendIo::Refused(text)) => (false, None, Some(text)),
            Err(e) => return Err(e.into_error(&host)),
        };
        if ok {
            return Ok(Appended::Stored(match code {
                Some(OwnedCode::AppendUid(uids)) if uids.len() == msgs.len() => Some(uids),
                _ => None,
            }));
        }
        let text = info.unwrap_or_default();
        // `[LIMIT]` on APPEND is about this message (too large for the server): a refusal to
        // skip. Throttling and what refuses the whole folder are errors.
        if refusal_kind(&text) == ErrorKind::Throttled || refuses_folder(&text) {
            return Err(refusal(
                format!("server {host} refused APPEND to {folder:?}: {text}"),
                &text,
            ));
        }
        Ok(Appended::Refused(text))
    }

    async fn wait_continuation(&mut self, tag: &str) -> Result<(), AppendIo> {
        loop {
            let resp = self
                .session
                .read_response()
                .await?
                .ok_or(AppendIo::Closed)?;
            match resp.parsed() {
                Response::Continue { .. } => return Ok(()),
                Response::Done {
                    tag: t,
                    status,
                    outcome,
                } if t.0 == tag => {
                    return Err(AppendIo::Refused(format!(
                        "{status:?} {}",
                        outcome.information.as_deref().unwrap_or("")
                    )));
                }
                _ => continue,
            }
        }
    }

    async fn read_tagged(
        &mut self,
        tag: &str,
    ) -> Result<(bool, Option<OwnedCode>, Option<String>), AppendIo> {
        loop {
            let resp = self
                .session
                .read_response()
                .await?
                .ok_or(AppendIo::Closed)?;
            if let Response::Done {
                tag: t,
                status,
                outcome,
            } = resp.parsed()
                && t.0 == tag
            {
                let information = &outcome.information;
                let code = match &outcome.code {
                    Some(ResponseCode::AppendUid(_, set)) => {
                        Some(OwnedCode::AppendUid(expand_uid_set(set)))
                    }
                    _ => None,
                };
                return Ok((
                    matches!(status, Status::Ok),
                    code,
                    information.as_ref().map(|s| s.to_string()),
                ));
            }
        }
    }

    /// Which folder is open on this connection, if any.
    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

enum OwnedCode {
    AppendUid(Vec<u32>),
}

/// Errors inside the raw APPEND path before they get the server's name.
enum AppendIo {
    Io(io::Error),
    Closed,
    Refused(String),
}

impl From<io::Error> for AppendIo {
    fn from(e: io::Error) -> Self {
        AppendIo::Io(e)
    }
}

impl AppendIo {
    fn into_error(self, host: &str) -> ImapError {
        match self {
            AppendIo::Io(e) => {
                ImapError::transient(format!("connection to {host} failed during APPEND: {e}"))
            }
            AppendIo::Closed => {
                ImapError::transient(format!("{host} closed the connection during APPEND"))
            }
            AppendIo::Refused(t) => refusal(format!("{host} refused APPEND: {t}"), &t),
        }
    }
}

fn expand_uid_set(set: &[UidSetMember]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in set {
        match m {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) => out.extend(r.clone()),
        }
    }
    out
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
        Ok(Err(e)) => Err(imap_error(host, what, e)),
    }
}

fn imap_error(host: &str, what: &str, e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error as E;
    match e {
        E::No(text) | E::Bad(text) => {
            let text = server_text(&text);
            refusal(format!("{what} on {host}: server said {text}"), &text)
        }
        other => ImapError::transient(format!("{what} on {host} failed: {other}")),
    }
}

fn login_error(target: &Target, e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error as E;
    match e {
        E::No(text) | E::Bad(text) => {
            let text = server_text(&text);
            // A NO to LOGIN is a refused password unless the server says it is only busy.
            let kind = match refusal_kind(&text) {
                ErrorKind::Throttled => ErrorKind::Throttled,
                _ => ErrorKind::Auth,
            };
            ImapError::new(
                kind,
                format!(
                    "login as {} on {}:{} was refused: {text}",
                    target.auth.login(),
                    target.endpoint.host,
                    target.endpoint.port
                ),
            )
        }
        other => ImapError::transient(format!("login to {} failed: {other}", target.describe())),
    }
}

/// The server's own words from async-imap's refusal text, which arrives as the debug form of
/// its response: `code: None, info: Some("[AUTHENTICATIONFAILED] ...")` from some commands,
/// `outcome: Outcome { code: None, information: Some("...") }` from others. People read it.
fn server_text(text: &str) -> String {
    for key in ["information: Some(\"", "info: Some(\""] {
        if let Some(start) = text.find(key) {
            return debug_str(&text[start + key.len()..]);
        }
    }
    // No text: the response code is all there is (`code: Some(TryCreate)`).
    if let Some(start) = text.find("code: Some(") {
        let rest = &text[start + "code: Some(".len()..];
        let code = rest.split([')', '(', ',']).next().unwrap_or_default();
        return format!("[{}]", code.to_ascii_uppercase());
    }
    if text.contains("code: None") {
        return "no reason given".to_string();
    }
    text.to_string()
}

/// The contents of a Rust debug string literal, up to its closing quote, unescaped.
fn debug_str(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some('u') => {
                    // `\u{1b}`
                    let hex: String = chars
                        .by_ref()
                        .skip_while(|&c| c == '{')
                        .take_while(|&c| c != '}')
                        .collect();
                    if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        out.push(c);
                    }
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// A NO about the folder or the account rather than the message (RFC 5530 codes): a full
/// mailbox, a folder we may not write to or that is gone refuses every message alike, so it
/// fails the folder instead of skipping each message as refused.
fn refuses_folder(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "[overquota]",
        "quota exceeded",
        "[noperm]",
        "[trycreate]",
        "[nonexistent]",
        "[serverbug]",
        "[inuse]",
    ]
    .iter()
    .any(|code| t.contains(code))
}

/// A NO or BAD reply, `message` for people, classified by the server's `text`.
fn refusal(message: String, text: &str) -> ImapError {
    ImapError::new(refusal_kind(text), message)
}

/// What a NO or BAD reply means, from its response code (RFC 5530) or, for servers that put
/// none, the words they are known to use.
fn refusal_kind(text: &str) -> ErrorKind {
    let t = text.to_ascii_lowercase();
    // Exchange Online says `[THROTTLED]`, and "Server Unavailable" when it sheds load; others
    // "Suggested Backoff Time" or `[UNAVAILABLE]`.
    if t.contains("[throttled]")
        || t.contains("suggested backoff")
        || t.contains("[unavailable]")
        || t.contains("server unavailable")
        || t.contains("too many")
    {
        ErrorKind::Throttled
    } else if t.contains("[overquota]")
        || t.contains("[limit]")
        || t.contains("quota")
        || t.contains("mailbox is full")
        || t.contains("mailbox full")
    {
        ErrorKind::Quota
    } else if t.contains("[authenticationfailed]")
        || t.contains("[authorizationfailed]")
        || t.contains("[expired]")
    {
        ErrorKind::Auth
    } else {
        ErrorKind::Refused
    }
}

fn flag_text(f: &Flag<'_>) -> String {
    match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(c) => c.to_string(),
    }
}

/// One argument of a command we send ourselves.
enum Arg<'a> {
    /// Sent as it is (empty: left out).
    Text(&'a str),
    /// A mailbox name: through [`names::encode`], the one encoder of names.
    Mailbox(&'a str),
}

/// One response to a command we sent ourselves, owned (async-imap's response type cannot
/// be named outside it).
enum Reply {
    Continue,
    Done {
        tag: String,
        /// Err with the server's text for NO and BAD.
        outcome: Result<(), String>,
        /// COPYUID pairs of the tagged OK, if any.
        copied: Vec<(u32, u32)>,
    },
    Untagged(Untagged),
}

/// What we use of an untagged response. LIST and STATUS keep their raw bytes: the names in
/// them are read by [`names`], never from imap-proto's parse.
enum Untagged {
    List(Vec<u8>),
    Status(Vec<u8>),
    Exists(u32),
    UidValidity(u32),
    UidNext(u32),
    HighestModSeq(u64),
    PermanentFlags(Vec<String>),
    /// COPYUID (RFC 4315) of a COPY or MOVE: (old UID, new UID) pairs.
    CopyUid(Vec<(u32, u32)>),
    Other,
}

fn reply(parsed: &Response<'_>, raw: &[u8]) -> Reply {
    use async_imap::imap_proto::Outcome;
    let u = match parsed {
        Response::Continue { .. } => return Reply::Continue,
        Response::Done {
            tag,
            status,
            outcome,
        } => {
            let outcome = match status {
                Status::Ok => Ok(()),
                other => Err(outcome
                    .information
                    .as_deref()
                    .map_or_else(|| format!("{other:?}"), str::to_string)),
            };
            let copied = match &outcome {
                Ok(()) => match &parsed_code(parsed) {
                    Some(ResponseCode::CopyUid(_, from, into)) => copy_pairs(from, into),
                    _ => Vec::new(),
                },
                Err(_) => Vec::new(),
            };
            return Reply::Done {
                tag: tag.0.to_string(),
                outcome,
                copied,
            };
        }
        Response::MailboxData(MailboxDatum::List(_)) => Untagged::List(raw.to_vec()),
        Response::MailboxData(MailboxDatum::Status { .. }) => Untagged::Status(raw.to_vec()),
        Response::MailboxData(MailboxDatum::Exists(n)) => Untagged::Exists(*n),
        Response::Data {
            status: Status::Ok,
            outcome: Outcome {
                code: Some(code), ..
            },
        } => match code {
            ResponseCode::UidValidity(v) => Untagged::UidValidity(*v),
            ResponseCode::UidNext(v) => Untagged::UidNext(*v),
            ResponseCode::HighestModSeq(v) => Untagged::HighestModSeq(*v),
            ResponseCode::PermanentFlags(flags) => {
                Untagged::PermanentFlags(flags.iter().map(|f| f.to_string()).collect())
            }
            ResponseCode::CopyUid(_, from, into) => Untagged::CopyUid(copy_pairs(from, into)),
            _ => Untagged::Other,
        },
        _ => Untagged::Other,
    };
    Reply::Untagged(u)
}

fn parsed_code<'a>(parsed: &'a Response<'a>) -> Option<&'a ResponseCode<'a>> {
    match parsed {
        Response::Done { outcome, .. } | Response::Data { outcome, .. } => outcome.code.as_ref(),
        _ => None,
    }
}

fn copy_pairs(from: &[UidSetMember], into: &[UidSetMember]) -> Vec<(u32, u32)> {
    expand_uid_set(from)
        .into_iter()
        .zip(expand_uid_set(into))
        .collect()
}

/// A raw exchange that broke before the server answered.
enum RawIo {
    Io(io::Error),
    Closed,
}

impl From<io::Error> for RawIo {
    fn from(e: io::Error) -> Self {
        RawIo::Io(e)
    }
}

impl From<async_imap::error::Error> for RawIo {
    fn from(e: async_imap::error::Error) -> Self {
        RawIo::Io(io::Error::other(e))
    }
}

impl RawIo {
    fn into_error(self, host: &str, what: &str) -> ImapError {
        match self {
            RawIo::Io(e) => ImapError::transient(format!("{what} on {host} failed: {e}")),
            RawIo::Closed => {
                ImapError::transient(format!("{host} closed the connection during {what}"))
            }
        }
    }
}

/// INBOX is case-insensitive (RFC 3501 §5.1): every spelling is `INBOX` to us.
fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        name.into()
    }
}

/// A name's bytes as our `String`. Servers send modified UTF-7 or UTF-8; anything else
/// cannot be sent back byte for byte from a `String`: it is kept (lossily, so that folder
/// fails alone when opened, in the server's words) and said in the log.
fn name_text(host: &str, bytes: Vec<u8>) -> String {
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            tracing::warn!(
                host,
                folder = %lossy,
                "a folder name is neither modified UTF-7 nor UTF-8: rename it on the server to copy it"
            );
            lossy
        }
    };
    canonical(&text).into_owned()
}

/// The folders in LIST responses, read from their raw bytes (see [`names`] for why).
fn list_entries(host: &str, responses: &[Untagged]) -> Result<Vec<RemoteFolder>, ImapError> {
    let mut out = Vec::new();
    for r in responses {
        let Untagged::List(raw) = r else { continue };
        let entry = names::parse_list(raw).map_err(|e| {
            ImapError::fatal(format!(
                "cannot read a LIST response of {host} ({e}): {}",
                String::from_utf8_lossy(raw).trim_end()
            ))
        })?;
        out.push(RemoteFolder {
            name: name_text(host, entry.name),
            delimiter: entry.delimiter,
            attributes: entry.attributes,
        });
    }
    Ok(out)
}

/// Folder → status from STATUS responses, read from their raw bytes.
fn status_entries(
    host: &str,
    responses: &[Untagged],
) -> Result<HashMap<String, FolderInfo>, ImapError> {
    let mut out = HashMap::new();
    for r in responses {
        let Untagged::Status(raw) = r else { continue };
        let entry = names::parse_status(raw).map_err(|e| {
            ImapError::fatal(format!(
                "cannot read a STATUS response of {host} ({e}): {}",
                String::from_utf8_lossy(raw).trim_end()
            ))
        })?;
        let mut info = FolderInfo::default();
        for (item, value) in entry.items {
            let small = u32::try_from(value).unwrap_or(u32::MAX);
            match item.as_str() {
                "MESSAGES" => info.exists = small,
                "UIDNEXT" => info.uidnext = small,
                "UIDVALIDITY" => info.uidvalidity = small,
                "HIGHESTMODSEQ" => info.highest_modseq = Some(value),
                _ => {}
            }
        }
        out.insert(name_text(host, entry.name), info);
    }
    Ok(out)
}

/// A folder name in a message: between backticks, control characters escaped.
fn shown(name: &str) -> String {
    let mut out = String::from("`");
    for c in name.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

/// A compact UID set: `1:5,8,10:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_the_server_wrote_them() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(server_text("plain words"), "plain words");
        assert_eq!(
            server_text(
                r#"outcome: Outcome { code: None, information: Some("Mailbox doesn't exist: Back\\\\slash \"q\" \u{1b}") }"#
            ),
            "Mailbox doesn't exist: Back\\\\slash \"q\" \u{1b}"
        );
        assert_eq!(
            server_text("outcome: Outcome { code: Some(TryCreate), information: None }"),
            "[TRYCREATE]"
        );
        assert_eq!(server_text("code: None, info: None"), "no reason given");
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 8, 10, 11, 12, 3]), "1:3,5,8,10:12");
        assert_eq!(uid_set(&[7]), "7");
    }

    #[test]
    fn refusals_are_classified_by_their_codes_and_known_words() {
        for (text, kind) in [
            (
                "[THROTTLED] Suggested Backoff Time: 500 milliseconds",
                ErrorKind::Throttled,
            ),
            ("[UNAVAILABLE] Try again later", ErrorKind::Throttled),
            ("Server Unavailable. 15", ErrorKind::Throttled),
            ("[OVERQUOTA] Quota exceeded", ErrorKind::Quota),
            ("[LIMIT] Too large", ErrorKind::Quota),
            ("Mailbox is full", ErrorKind::Quota),
            (
                "[AUTHENTICATIONFAILED] Authentication failed.",
                ErrorKind::Auth,
            ),
            ("[NONEXISTENT] Mailbox doesn't exist", ErrorKind::Refused),
            ("Message too large", ErrorKind::Refused),
        ] {
            assert_eq!(refusal_kind(text), kind, "{text}");
        }
        let e = refusal("APPEND on h: server said x".into(), "[OVERQUOTA] full");
        assert_eq!(
            (e.kind, e.transient, e.throttled),
            (ErrorKind::Quota, false, false)
        );
        let e = refusal("x".into(), "[THROTTLED] slow down");
        assert_eq!(
            (e.kind, e.transient, e.throttled),
            (ErrorKind::Throttled, true, true)
        );
    }

    fn target() -> Target {
        Target {
            endpoint: Endpoint {
                host: "h".into(),
                port: 143,
                security: Security::None,
                ca_file: None,
                insecure_skip_verify: false,
                timeout: Duration::from_secs(120),
            },
            auth: Auth::Password {
                login: "bob".into(),
                password: Secret::new("pw"),
            },
        }
    }

    #[test]
    fn a_refused_login_is_auth_unless_the_server_is_only_busy() {
        use async_imap::error::Error as E;
        let refused = login_error(
            &target(),
            E::No(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#.into(),
            ),
        );
        assert_eq!(refused.kind, ErrorKind::Auth);
        assert!(!refused.transient);
        assert_eq!(
            refused.message,
            "login as bob on h:143 was refused: [AUTHENTICATIONFAILED] Authentication failed."
        );
        let plain_no = login_error(&target(), E::No("Login failed".into()));
        assert_eq!(plain_no.kind, ErrorKind::Auth);
        let busy = login_error(
            &target(),
            E::No("[UNAVAILABLE] Server Unavailable. 15".into()),
        );
        assert_eq!(busy.kind, ErrorKind::Throttled);
        let dropped = login_error(
            &target(),
            E::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        );
        assert_eq!(dropped.kind, ErrorKind::Network);
        assert!(dropped.transient);
    }

    #[test]
    fn command_refusals_and_dropped_connections_keep_their_kinds() {
        use async_imap::error::Error as E;
        let gone = imap_error("h", "SELECT", E::No("[NONEXISTENT] Unknown Mailbox".into()));
        assert_eq!((gone.kind, gone.transient), (ErrorKind::Refused, false));
        let full = imap_error("h", "APPEND", E::No("[OVERQUOTA] Quota exceeded".into()));
        assert_eq!(full.kind, ErrorKind::Quota);
        let cut = imap_error(
            "h",
            "FETCH",
            E::Io(io::Error::new(io::ErrorKind::BrokenPipe, "pipe")),
        );
        assert_eq!((cut.kind, cut.transient), (ErrorKind::Network, true));
    }

    #[test]
    fn refusals_of_the_folder_are_told_from_refusals_of_a_message() {
        assert!(refuses_folder(
            "[OVERQUOTA] Quota exceeded (mailbox for user is full)"
        ));
        assert!(refuses_folder("[NOPERM] Permission denied"));
        assert!(!refuses_folder(
            "[LIMIT] Mail size is larger than the maximum size allowed by server configuration"
        ));
        assert!(!refuses_folder("Message contains invalid header"));
    }
}
