//! TLS for a connection: the stream type serving every `security` setting, and the rustls
//! client configuration (platform roots plus the endpoint's CA file, or no verification when
//! the caller said so), built once per [`Target`] and shared by its connections.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{CONNECT_TIMEOUT, Endpoint, ImapError, Target};
use crate::error::ErrorKind;

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

pub(super) fn tls_config(ep: &Endpoint) -> Result<Arc<rustls::ClientConfig>, ImapError> {
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
pub(super) struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

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

/// The rustls configuration of one endpoint, built once for all its connections rather than
/// for each (reading the CA file, loading the platform's roots). A failure is not kept: the
/// next connection tries again and says why again.
#[derive(Clone, Default)]
pub(super) struct TlsConfig(Arc<std::sync::Mutex<Option<Arc<rustls::ClientConfig>>>>);

impl TlsConfig {
    fn get(&self, ep: &Endpoint) -> Result<Arc<rustls::ClientConfig>, ImapError> {
        let mut built = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(config) = &*built {
            return Ok(config.clone());
        }
        let config = tls_config(ep)?;
        *built = Some(config.clone());
        Ok(config)
    }
}

pub(crate) async fn tls_wrap(tcp: TcpStream, target: &Target) -> Result<Conn, ImapError> {
    let ep = &target.endpoint;
    let config = target.tls.get(ep)?;
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
        let certificate = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| {
                matches!(
                    r,
                    rustls::Error::InvalidCertificate(_)
                        | rustls::Error::NoCertificatesPresented
                        | rustls::Error::InvalidCertRevocationList(_)
                )
            });
        if certificate {
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

/// Bytes a server sent after agreeing to start TLS and before our TLS hello were sent in answer
/// to nothing: an injection (CVE-2011-0411 and kin), never to be read as if it came over TLS.
/// `server` names it in the error, e.g. "POP3 server host:995"; `command` is STLS or STARTTLS.
pub(crate) fn refuse_injected(
    buffered: &[u8],
    server: &str,
    command: &str,
) -> Result<(), crate::session::ImapError> {
    if buffered.is_empty() {
        return Ok(());
    }
    Err(crate::session::ImapError::new(
        crate::error::ErrorKind::Tls,
        format!(
            "{server} sent data after agreeing to {command}: refusing to go on (a man in the middle?)"
        ),
    ))
}
