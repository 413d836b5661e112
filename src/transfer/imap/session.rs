//! One IMAP connection: connect (TLS, STARTTLS or plain), log in, and the few commands the
//! copy needs, each under a timeout.
//!
//! Built on async-imap, with a raw path for APPEND: async-imap's own APPEND sends one message
//! per command and drops the tagged response code, while we want MULTIAPPEND batches, LITERAL+
//! (no round trip per literal) and the APPENDUID that UIDPLUS servers return, which is what
//! makes a crash after an APPEND recoverable without duplicates.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use async_imap::types::{Flag, NameAttribute};
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::plan::model::{ImapEndpoint, Security};
use crate::plan::secret::Secret;
use crate::transfer::imap::folders::RemoteFolder;

/// How long one command may take before the connection is declared dead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A failure on an IMAP connection. `transient` ones (network, timeouts, throttling) are worth
/// a reconnect and retry; the others (bad login, refused TLS) are not.
#[derive(Debug, Clone)]
pub struct ImapError {
    pub message: String,
    pub transient: bool,
    /// The server asked us to slow down (`[THROTTLED]`, "Suggested Backoff Time").
    pub throttled: bool,
}

impl ImapError {
    fn fatal(message: impl Into<String>) -> Self {
        ImapError {
            message: message.into(),
            transient: false,
            throttled: false,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        ImapError {
            message: message.into(),
            transient: true,
            throttled: false,
        }
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImapError {}

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

/// How to log in.
#[derive(Clone)]
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
    pub endpoint: ImapEndpoint,
    pub auth: Auth,
    /// Directory relative CA file paths are resolved against.
    pub base_dir: std::path::PathBuf,
}

impl Target {
    pub fn describe(&self) -> String {
        format!(
            "{} at {}:{}",
            self.auth.login(),
            self.endpoint.host,
            self.endpoint.effective_port()
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
}

/// What SELECT/EXAMINE and STATUS report about a folder.
#[derive(Debug, Clone, Default)]
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

/// How much of a spooled message is read into memory at a time while sending it.
const SEND_CHUNK: usize = 1024 * 1024;

pub struct Imap {
    session: Session<Conn>,
    pub caps: Caps,
    host: String,
    next_tag: u32,
    selected: Option<String>,
}

fn tls_config(
    ep: &ImapEndpoint,
    base_dir: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::fatal(format!("TLS setup failed: {e}")))?;
    let config = if ep.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut extra = Vec::new();
        if let Some(ca) = &ep.ca_file {
            use rustls::pki_types::pem::PemObject;
            let path = base_dir.join(ca);
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path).map_err(|e| {
                ImapError::fatal(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            for c in certs {
                extra.push(c.map_err(|e| {
                    ImapError::fatal(format!(
                        "bad certificate in CA file {}: {e}",
                        path.display()
                    ))
                })?);
            }
            if extra.is_empty() {
                return Err(ImapError::fatal(format!(
                    "CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
            .map_err(|e| ImapError::fatal(format!("TLS setup failed: {e}")))?;
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

async fn tls_wrap(
    tcp: TcpStream,
    ep: &ImapEndpoint,
    base_dir: &std::path::Path,
) -> Result<Conn, ImapError> {
    let config = tls_config(ep, base_dir)?;
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|_| ImapError::fatal(format!("`{}` is not a valid TLS server name", ep.host)))?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| ImapError::transient(format!("TLS handshake with {} timed out", ep.host)))?
    .map_err(|e| {
        let msg = format!(
            "TLS handshake with {}:{} failed: {e}",
            ep.host,
            ep.effective_port()
        );
        // A certificate problem does not fix itself by retrying.
        if e.to_string().contains("certificate") {
            ImapError::fatal(format!(
                "{msg} (to trust a private CA, set `ca_file:` on this endpoint)"
            ))
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
        }) => Err(ImapError {
            message: format!(
                "{host} refused the connection: {}",
                outcome.information.as_deref().unwrap_or("BYE")
            ),
            transient: true,
            throttled: true,
        }),
        Some(other) => Err(ImapError::fatal(format!(
            "{host} sent an unexpected greeting: {other:?}"
        ))),
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
        let addr = format!("{}:{}", ep.host, ep.effective_port());
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
            Security::Tls => tls_wrap(tcp, ep, &target.base_dir).await?,
            Security::Starttls => {
                let mut client = Client::new(Conn::Plain(tcp));
                read_greeting(&mut client, &ep.host).await?;
                let mut plain = client;
                // A refused STARTTLS ends here: never fall back to sending the password in clear.
                if let Err(e) = timed(
                    &ep.host,
                    "STARTTLS",
                    plain.run_command_and_check_ok("STARTTLS", None),
                )
                .await
                {
                    return Err(ImapError::fatal(format!(
                        "IMAP server {addr} does not offer STARTTLS ({}): refusing to send the password in clear \
                         (use `security: tls` if it has an implicit-TLS port, or `security: none` on a trusted network)",
                        e.message
                    )));
                }
                let Conn::Plain(tcp) = plain.into_inner() else {
                    unreachable!("STARTTLS runs on a plain connection")
                };
                tls_wrap(tcp, ep, &target.base_dir).await?
            }
        };
        let mut client = Client::new(conn);
        if ep.security != Security::Starttls {
            read_greeting(&mut client, &ep.host).await?;
        }
        let session = match &target.auth {
            Auth::Password { login, password } => {
                tokio::time::timeout(COMMAND_TIMEOUT, client.login(login, password.expose()))
                    .await
                    .map_err(|_| {
                        ImapError::transient(format!("login to {} timed out", target.describe()))
                    })?
                    .map_err(|(e, _)| login_error(target, e))?
            }
            Auth::XOAuth2 { login, token } => {
                let auth = XOAuth2 {
                    user: login,
                    token: token.expose(),
                };
                tokio::time::timeout(COMMAND_TIMEOUT, client.authenticate("XOAUTH2", auth))
                    .await
                    .map_err(|_| {
                        ImapError::transient(format!("login to {} timed out", target.describe()))
                    })?
                    .map_err(|(e, _)| login_error(target, e))?
            }
        };
        let mut imap = Imap {
            session,
            caps: Caps::default(),
            host: ep.host.clone(),
            next_tag: 0,
            selected: None,
        };
        let caps = timed(&imap.host, "CAPABILITY", imap.session.capabilities()).await?;
        imap.caps = Caps {
            uidplus: caps.has_str("UIDPLUS"),
            multiappend: caps.has_str("MULTIAPPEND"),
            literal_plus: caps.has_str("LITERAL+"),
            condstore: caps.has_str("CONDSTORE"),
        };
        Ok(imap)
    }

    /// Lists every folder with its attributes.
    pub async fn list(&mut self) -> Result<Vec<RemoteFolder>, ImapError> {
        let host = self.host.clone();
        let fut = async {
            let stream = self.session.list(Some(""), Some("*")).await?;
            let names: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(names)
        };
        let names = timed(&host, "LIST", fut).await?;
        Ok(names
            .iter()
            .map(|n| RemoteFolder {
                name: n.name().to_string(),
                delimiter: n.delimiter().and_then(|d| d.chars().next()),
                attributes: n.attributes().iter().map(attribute_text).collect(),
            })
            .collect())
    }

    pub async fn create(&mut self, folder: &str) -> Result<(), ImapError> {
        let host = self.host.clone();
        match timed(&host, "CREATE", self.session.create(folder)).await {
            Ok(()) => Ok(()),
            // Another connection (or an earlier, interrupted run) created it meanwhile.
            Err(e)
                if e.message.contains("ALREADYEXISTS")
                    || e.message.to_lowercase().contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(ImapError {
                message: format!("cannot create folder {folder:?}: {}", e.message),
                ..e
            }),
        }
    }

    /// SELECT (read-write) or EXAMINE (read-only: the source is never modified).
    pub async fn open(&mut self, folder: &str, write: bool) -> Result<FolderInfo, ImapError> {
        let host = self.host.clone();
        let condstore = self.caps.condstore;
        let mbox = if write {
            if condstore {
                timed(&host, "SELECT", self.session.select_condstore(folder)).await?
            } else {
                timed(&host, "SELECT", self.session.select(folder)).await?
            }
        } else if condstore {
            // EXAMINE with CONDSTORE so HIGHESTMODSEQ is reported.
            let cmd = format!("EXAMINE {} (CONDSTORE)", quote(folder));
            timed(
                &host,
                "EXAMINE",
                self.session.run_command_and_check_ok(&cmd),
            )
            .await?;
            let status = timed(
                &host,
                "STATUS",
                self.session
                    .status(folder, "(UIDNEXT UIDVALIDITY MESSAGES HIGHESTMODSEQ)"),
            )
            .await?;
            self.selected = Some(folder.to_string());
            return Ok(FolderInfo {
                uidvalidity: status.uid_validity.unwrap_or(0),
                uidnext: status.uid_next.unwrap_or(0),
                exists: status.exists,
                highest_modseq: status.highest_modseq,
                permanent_flags: Vec::new(),
                allows_keywords: false,
            });
        } else {
            timed(&host, "EXAMINE", self.session.examine(folder)).await?
        };
        self.selected = Some(folder.to_string());
        let permanent: Vec<String> = mbox.permanent_flags.iter().map(flag_text).collect();
        Ok(FolderInfo {
            uidvalidity: mbox.uid_validity.unwrap_or(0),
            uidnext: mbox.uid_next.unwrap_or(0),
            exists: mbox.exists,
            highest_modseq: mbox.highest_modseq,
            allows_keywords: permanent.iter().any(|f| f == "\\*"),
            permanent_flags: permanent,
        })
    }

    /// STATUS: the cheap question a no-op run asks of every folder.
    pub async fn status(&mut self, folder: &str) -> Result<FolderInfo, ImapError> {
        let host = self.host.clone();
        let items = if self.caps.condstore {
            "(UIDNEXT UIDVALIDITY MESSAGES HIGHESTMODSEQ)"
        } else {
            "(UIDNEXT UIDVALIDITY MESSAGES)"
        };
        let s = timed(&host, "STATUS", self.session.status(folder, items)).await?;
        Ok(FolderInfo {
            uidvalidity: s.uid_validity.unwrap_or(0),
            uidnext: s.uid_next.unwrap_or(0),
            exists: s.exists,
            highest_modseq: s.highest_modseq,
            permanent_flags: Vec::new(),
            allows_keywords: false,
        })
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
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let host = self.host.clone();
        let set = uid_set(uids);
        let fut = async {
            let stream = self.session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            let fetches: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches)
        };
        let fetches = timed(&host, "FETCH", fut).await?;
        // Each response is dropped as soon as its body is copied out: at most one message is
        // held twice at a time.
        let mut out: Vec<(u32, Vec<u8>)> = fetches
            .into_iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect();
        out.sort_by_key(|(u, _)| *u);
        out.dedup_by_key(|(u, _)| *u);
        Ok(out)
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

    /// Appends messages to `folder`. Returns the destination UIDs in order when the server
    /// says them (UIDPLUS), `None` otherwise. One command with MULTIAPPEND, else one per message.
    pub async fn append(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<Option<Vec<u32>>, ImapError> {
        if msgs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        if self.caps.multiappend || msgs.len() == 1 {
            return self.append_command(folder, msgs).await;
        }
        let mut uids = Some(Vec::with_capacity(msgs.len()));
        for m in msgs {
            let got = self.append_command(folder, std::slice::from_ref(m)).await?;
            uids = match (uids, got) {
                (Some(mut all), Some(one)) => {
                    all.extend(one);
                    Some(all)
                }
                _ => None,
            };
        }
        Ok(uids)
    }

    async fn append_command(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<Option<Vec<u32>>, ImapError> {
        self.next_tag += 1;
        let tag = format!("MS{}", self.next_tag);
        let literal_plus = self.caps.literal_plus;
        let host = self.host.clone();
        let total: u64 = msgs.iter().map(|m| m.body.len()).sum();
        // A generous allowance: 1 MB/s at worst on top of the base timeout.
        let budget = COMMAND_TIMEOUT + Duration::from_secs(total / 1_000_000);
        let fut = async {
            let mut head = format!("{tag} APPEND {}", quote(folder)).into_bytes();
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
        let (ok, code, info) = tokio::time::timeout(budget, fut)
            .await
            .map_err(|_| ImapError::transient(format!("APPEND to {host} timed out")))?
            .map_err(|e: AppendIo| e.into_error(&host))?;
        match ok {
            true => Ok(match code {
                Some(OwnedCode::AppendUid(uids)) if uids.len() == msgs.len() => Some(uids),
                _ => None,
            }),
            false => {
                let text = info.unwrap_or_default();
                let throttled = is_throttle(&text);
                Err(ImapError {
                    message: format!("server {host} refused APPEND to {folder:?}: {text}"),
                    transient: throttled,
                    throttled,
                })
            }
        }
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
            AppendIo::Refused(t) => {
                let throttled = is_throttle(&t);
                ImapError {
                    message: format!("{host} refused APPEND: {t}"),
                    transient: throttled,
                    throttled,
                }
            }
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
    host: &str,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
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
            let throttled = is_throttle(&text);
            ImapError {
                message: format!("{what} on {host}: server said {text}"),
                transient: throttled,
                throttled,
            }
        }
        other => ImapError::transient(format!("{what} on {host} failed: {other}")),
    }
}

fn login_error(target: &Target, e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error as E;
    match e {
        E::No(text) | E::Bad(text) => {
            let text = server_text(&text);
            let throttled = is_throttle(&text) || text.contains("[UNAVAILABLE]");
            ImapError {
                message: format!(
                    "login as {} on {}:{} was refused: {text}",
                    target.auth.login(),
                    target.endpoint.host,
                    target.endpoint.effective_port()
                ),
                transient: throttled,
                throttled,
            }
        }
        other => ImapError::transient(format!("login to {} failed: {other}", target.describe())),
    }
}

/// The server's own words from async-imap's refusal text, which arrives as the debug form of
/// its response (`code: None, info: Some("[AUTHENTICATIONFAILED] ...")`): people read it.
fn server_text(text: &str) -> String {
    let Some(start) = text.find("info: Some(\"") else {
        return text.to_string();
    };
    let rest = &text[start + "info: Some(\"".len()..];
    let info = rest.rfind("\")").map_or(rest, |end| &rest[..end]);
    info.replace("\\\"", "\"")
}

/// Exchange Online says `[THROTTLED]`, others "Suggested Backoff Time" or `[UNAVAILABLE]`.
fn is_throttle(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("[throttled]")
        || t.contains("suggested backoff")
        || t.contains("[unavailable]")
        || t.contains("too many")
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

fn attribute_text(a: &NameAttribute<'_>) -> String {
    match a {
        NameAttribute::NoInferiors => "\\Noinferiors".into(),
        NameAttribute::NoSelect => "\\Noselect".into(),
        NameAttribute::Marked => "\\Marked".into(),
        NameAttribute::Unmarked => "\\Unmarked".into(),
        NameAttribute::All => "\\All".into(),
        NameAttribute::Archive => "\\Archive".into(),
        NameAttribute::Drafts => "\\Drafts".into(),
        NameAttribute::Flagged => "\\Flagged".into(),
        NameAttribute::Junk => "\\Junk".into(),
        NameAttribute::Sent => "\\Sent".into(),
        NameAttribute::Trash => "\\Trash".into(),
        NameAttribute::Extension(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// An IMAP quoted string (folder names are ASCII after modified UTF-7 encoding).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
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
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 8, 10, 11, 12, 3]), "1:3,5,8,10:12");
        assert_eq!(uid_set(&[7]), "7");
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn throttle_replies_are_recognised() {
        assert!(is_throttle(
            "[THROTTLED] Suggested Backoff Time: 500 milliseconds"
        ));
        assert!(!is_throttle(
            "[AUTHENTICATIONFAILED] Authentication failed."
        ));
    }
}
