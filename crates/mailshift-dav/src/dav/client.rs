//! The HTTP side of the DAV client: one origin, its credentials and TLS trust, the DAV methods,
//! retries of transient failures and the mapping of failures onto [`ErrorKind`].
//!
//! Requests are addressed by href (a percent-decoded absolute path, as every href in
//! [`crate::store`] is) and encoded here, so the rest of the client compares hrefs as text.
//! Redirects are never followed by reqwest: only discovery follows them, by hand, keeping the
//! method and body (a PROPFIND turned into a GET by a 302 would be meaningless) and never to
//! another origin (the credentials would follow).

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::config::{Auth, DavConfig};
use crate::error::ErrorKind;
use crate::store::StoreError;

/// Characters escaped in a path: everything that is not a path character of RFC 3986 (and `%`,
/// since hrefs are kept decoded).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The longest Retry-After the client waits out itself; a longer one ends the call with
/// Throttled and the wait, for the caller to schedule.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(120);

/// The most redirects discovery follows.
const MAX_REDIRECTS: usize = 5;

/// How much of an answer's body an error message quotes.
const EXCERPT: usize = 300;

/// A DAV method reqwest has no constant for (PROPFIND, REPORT, MKCOL, MKCALENDAR, PROPPATCH).
pub fn dav_method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("DAV method names are valid tokens")
}

/// A request, addressed by href.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub href: String,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
    /// Statuses returned at once rather than retried (a 500 that a server gives for a
    /// request it cannot handle, when the caller has another way).
    pub no_retry: &'static [u16],
}

impl Request {
    pub fn new(method: Method, href: &str) -> Request {
        Request {
            method,
            href: href.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            no_retry: &[],
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub fn depth(self, depth: &str) -> Request {
        self.header(HeaderName::from_static("depth"), depth)
    }

    /// An XML body.
    pub fn xml(mut self, body: String) -> Request {
        self.headers.push((
            reqwest::header::CONTENT_TYPE,
            "application/xml; charset=utf-8".into(),
        ));
        self.body = body.into_bytes();
        self
    }
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The URL that answered (after redirects), to resolve relative hrefs against.
    pub url: Url,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header that may repeat (`DAV`), joined by commas.
    pub fn header_all(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The start of the body as text, for error messages.
    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }
}

/// The body's first words, on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

pub fn error(kind: ErrorKind, message: impl Into<String>) -> StoreError {
    StoreError {
        kind,
        message: message.into(),
        retry_after: None,
    }
}

/// The HTTP client of one store: one origin, one set of credentials.
pub struct Client {
    http: reqwest::Client,
    /// The URL the caller gave, without credentials (for messages and discovery).
    url: Url,
    auth: Auth,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("auth", &self.auth)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl Client {
    pub fn new(config: &DavConfig) -> Result<Client, StoreError> {
        let url = check_url(&config.url)?;
        let tls = tls_config(config)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                error(
                    ErrorKind::Config,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Client {
            http,
            url,
            auth: config.auth.clone(),
            attempts: config.attempts.max(1),
            backoff: config.backoff,
        })
    }

    /// The URL the store was given.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The login, for messages.
    pub fn login(&self) -> Option<&str> {
        match &self.auth {
            Auth::Basic { login, .. } => Some(login),
            _ => None,
        }
    }

    /// The full URL of an href on this origin.
    pub fn url_of(&self, href: &str) -> Url {
        let mut url = self.url.clone();
        url.set_path(&encode_path(href));
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    /// Sends a request, retrying transient failures; any answer that is not transient is
    /// returned as is (the caller decides what a 404 or a 412 means).
    pub async fn send(&self, request: &Request) -> Result<Response, StoreError> {
        let url = self.url_of(&request.href);
        self.send_to(request, url).await
    }

    /// Like [`Client::send`], following redirects on the same origin with the same method and
    /// body (discovery's well-known URIs answer with one).
    pub async fn send_following(&self, request: &Request) -> Result<Response, StoreError> {
        let mut url = self.url_of(&request.href);
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send_to(request, url.clone()).await?;
            if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Ok(response);
            };
            let next = url.join(location).map_err(|e| {
                error(
                    ErrorKind::Config,
                    format!("{url} redirects to an invalid URL {location:?}: {e}"),
                )
            })?;
            if next.origin() != self.url.origin() {
                return Err(error(
                    ErrorKind::Config,
                    format!(
                        "{url} redirects to another server, {}: set the platform's `dav.url` \
                         to {}",
                        shown(&next),
                        shown(&next)
                    ),
                ));
            }
            url = next;
        }
        Err(error(
            ErrorKind::Config,
            format!(
                "{} redirects more than {MAX_REDIRECTS} times: set the platform's `dav.url` \
                 to the CardDAV/CalDAV service itself",
                shown(&self.url_of(&request.href))
            ),
        ))
    }

    async fn send_to(&self, request: &Request, url: Url) -> Result<Response, StoreError> {
        let what = format!("{} {}", request.method, shown(&url));
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(request, url.clone()).await;
            let (failure, retry_after) = match outcome {
                Ok(response) => match transient_status(&response) {
                    _ if request.no_retry.contains(&response.status) => return Ok(response),
                    None => return Ok(response),
                    Some(retry_after) => (
                        Failure::Status(response.status, response.excerpt()),
                        retry_after,
                    ),
                },
                Err(e) => {
                    if let Some(reason) = tls_failure(&e) {
                        return Err(error(
                            ErrorKind::Tls,
                            format!(
                                "{what}: TLS failed: {reason} (trust the server's CA with \
                                 `ca_file`, or, only on a trusted network, \
                                 `insecure_skip_verify`)"
                            ),
                        ));
                    }
                    if !(e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()) {
                        return Err(error(ErrorKind::Network, format!("{what}: {}", chain(&e))));
                    }
                    (Failure::Transport(chain(&e)), None)
                }
            };
            let wait = retry_after.unwrap_or_else(|| self.delay(attempt));
            if attempt >= self.attempts || wait > MAX_INLINE_WAIT {
                return Err(give_up(&what, failure, retry_after, attempt));
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn delay(&self, failed_attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1));
        self.backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(30))
    }

    async fn attempt(&self, request: &Request, url: Url) -> Result<Response, reqwest::Error> {
        let mut builder = self
            .http
            .request(request.method.clone(), url.clone())
            .body(request.body.clone());
        for (name, value) in &request.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                builder = builder.header(name, value);
            }
        }
        builder = match &self.auth {
            Auth::Basic { login, password } => builder.basic_auth(login, Some(password.expose())),
            Auth::Bearer(token) => builder.bearer_auth(token.expose()),
            Auth::None => builder,
        };
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Response {
            status,
            headers,
            body,
            url,
        })
    }
}

enum Failure {
    Status(u16, String),
    Transport(String),
}

fn give_up(
    what: &str,
    failure: Failure,
    retry_after: Option<Duration>,
    attempts: u32,
) -> StoreError {
    let tries = if attempts == 1 {
        String::new()
    } else {
        format!(" (after {attempts} attempts)")
    };
    match failure {
        Failure::Status(status, body) => {
            let throttled = status == 429 || retry_after.is_some();
            let mut message = format!("{what}: the server answered {status}{tries}");
            if !body.is_empty() {
                message.push_str(&format!(": {body}"));
            }
            StoreError {
                kind: if throttled {
                    ErrorKind::Throttled
                } else {
                    ErrorKind::Network
                },
                message,
                retry_after,
            }
        }
        Failure::Transport(reason) => error(ErrorKind::Network, format!("{what}: {reason}{tries}")),
    }
}

/// `Some(retry_after)` when the answer is worth another attempt: 5xx that may pass (not 501,
/// 505, 507, 508) and 429.
fn transient_status(response: &Response) -> Option<Option<Duration>> {
    match response.status {
        429 | 500 | 502 | 503 | 504 => Some(
            response
                .header("retry-after")
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        ),
        _ => None,
    }
}

/// Retry-After: seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The reason, when a failure comes from TLS (a rustls error somewhere in its sources), so
/// that a certificate problem is told apart from an unreachable host without reading words.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    e.source().and_then(find_rustls)
}

fn find_rustls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    // hyper-util and tokio-rustls wrap it in io::Errors, whose `source()` skips the wrapped
    // error itself: look inside them too.
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(found) = find_rustls(inner)
    {
        return Some(found);
    }
    e.source().and_then(find_rustls)
}

/// An error and its sources on one line (reqwest's own message is only the outer layer).
fn chain(e: &reqwest::Error) -> String {
    let mut message = strip_url(e);
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// reqwest's message without the URL (the caller's message names it already).
fn strip_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(url) => text
            .replace(&format!(" ({url})"), "")
            .replace(&format!(" for url ({url})"), ""),
        None => text,
    }
}

/// A URL as shown in messages: never its credentials.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// An href made into a path for the wire.
pub fn encode_path(href: &str) -> String {
    let path = if href.starts_with('/') {
        href.to_string()
    } else {
        format!("/{href}")
    };
    utf8_percent_encode(&path, PATH).to_string()
}

/// Checks the caller's URL: http(s), no credentials in it, plain http only to this machine.
fn check_url(text: &str) -> Result<Url, StoreError> {
    check_service_url(text, "DAV URL")
}

/// Checks a service's URL the same way for every HTTP end (DAV, EWS, Graph): https, no
/// credentials in it, plain http only to this machine. `what` names it in errors
/// (`DAV URL`, `EWS URL`, ...).
pub fn check_service_url(text: &str, what: &str) -> Result<Url, StoreError> {
    let url = Url::parse(text.trim()).map_err(|e| {
        error(
            ErrorKind::Config,
            format!("the {what} {text:?} is not a valid URL: {e}"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(
            ErrorKind::Config,
            format!(
                "the {what} {} carries credentials: give them in the plan's \
                 credentials instead",
                shown(&url)
            ),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(error(
                ErrorKind::Config,
                format!(
                    "the {what} {} is plain http to another machine: credentials and data \
                     would cross the network in clear; use https://",
                    shown(&url)
                ),
            ));
        }
        other => {
            return Err(error(
                ErrorKind::Config,
                format!(
                    "the {what} {} has scheme {other:?}: expected https://",
                    shown(&url)
                ),
            ));
        }
    }
    if url.host().is_none() {
        return Err(error(
            ErrorKind::Config,
            format!("the {what} {} names no host", shown(&url)),
        ));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// rustls with ring, the platform's roots plus the caller's CA file, or no verification at
/// all when asked.
pub fn tls_config(config: &DavConfig) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let setup = |e: rustls::Error| error(ErrorKind::Config, format!("TLS setup failed: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .dangerous();
    let builder = if config.insecure_skip_verify {
        builder.with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
    } else {
        let verifier = match &config.ca_file {
            None => rustls_platform_verifier::Verifier::new(provider),
            Some(path) => {
                rustls_platform_verifier::Verifier::new_with_extra_roots(read_ca(path)?, provider)
            }
        }
        .map_err(setup)?;
        builder.with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut tls = builder.with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

fn read_ca(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail = |why: String| {
        error(
            ErrorKind::Config,
            format!("cannot use the CA file {}: {why}", path.display()),
        )
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The verifier of `insecure_skip_verify`: any certificate, any name. Signatures are still
/// checked so that the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
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

/// True when a status is "the server refused this request" rather than a failure of the
/// server: 4xx but not 401 (credentials) or 429 (throttling).
pub fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 401 && status != 429
}

/// The StoreError for an answer the caller did not expect, by its status.
pub fn unexpected(what: &str, response: &Response) -> StoreError {
    let kind = match response.status {
        401 => ErrorKind::Auth,
        507 => ErrorKind::Quota,
        429 => ErrorKind::Throttled,
        s if (500..600).contains(&s) => ErrorKind::Network,
        _ => ErrorKind::Refused,
    };
    let mut message = format!(
        "{what} {}: the server answered {}",
        shown(&response.url),
        response.status
    );
    if let Some(reason) = StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        message.push_str(&format!(" {reason}"));
    }
    let body = response.excerpt();
    if !body.is_empty() {
        message.push_str(&format!(": {body}"));
    }
    error(kind, message)
}

#[cfg(test)]
mod tests {
    use super::super::scripted::{answer, scripted};
    use super::*;

    fn client(url: &str, auth: Auth) -> Client {
        Client::new(&DavConfig {
            url: url.into(),
            auth,
            attempts: 3,
            backoff: Duration::from_millis(1),
            ..DavConfig::default()
        })
        .unwrap()
    }

    fn propfind() -> Request {
        Request::new(dav_method("PROPFIND"), "/a b/")
            .depth("0")
            .xml("<x/>".into())
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_then_answered() {
        let server = scripted(vec![
            answer("503 Busy", &["Retry-After: 0"], ""),
            answer("500 Oops", &[], ""),
            answer("207 Multi-Status", &[], "<ok/>"),
        ]);
        let response = client(&server.url, Auth::None)
            .send(&propfind())
            .await
            .unwrap();
        assert_eq!(response.status, 207);
        assert_eq!(response.body, b"<ok/>");
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter().all(|r| r.starts_with("PROPFIND /a%20b/ ")),
            "{seen:?}"
        );
        assert!(seen.iter().all(|r| r.ends_with("<x/>")), "{seen:?}");
    }

    #[tokio::test]
    async fn throttling_that_lasts_is_a_throttled_error_with_its_wait() {
        let busy = answer("429 Too Many Requests", &["Retry-After: 0"], "slow down");
        let server = scripted(vec![busy.clone(), busy.clone(), busy]);
        let err = client(&server.url, Auth::None)
            .send(&propfind())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled, "{err:?}");
        assert_eq!(err.retry_after, Some(Duration::ZERO));
        assert!(err.message.contains("after 3 attempts"), "{}", err.message);
        assert!(err.message.contains("slow down"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_long_retry_after_is_left_to_the_caller() {
        let server = scripted(vec![answer("503 Busy", &["Retry-After: 3600"], "")]);
        let err = client(&server.url, Auth::None)
            .send(&propfind())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled, "{err:?}");
        assert_eq!(err.retry_after, Some(Duration::from_secs(3600)));
        assert_eq!(server.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn server_errors_that_last_are_network_errors() {
        let oops = answer("502 Bad Gateway", &[], "");
        let server = scripted(vec![oops.clone(), oops.clone(), oops]);
        let err = client(&server.url, Auth::None)
            .send(&propfind())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Network, "{err:?}");
        assert_eq!(err.retry_after, None);
    }

    #[tokio::test]
    async fn refusals_are_answers_not_retried() {
        let server = scripted(vec![answer("412 Precondition Failed", &[], "")]);
        let response = client(&server.url, Auth::None)
            .send(&propfind())
            .await
            .unwrap();
        assert_eq!(response.status, 412);
        assert_eq!(server.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn redirects_keep_the_method_and_body_on_the_same_origin() {
        let server = scripted(vec![
            answer("301 Moved", &["Location: /dav/"], ""),
            answer("307 Moved", &["Location: principals/"], ""),
            answer("207 Multi-Status", &[], "<ok/>"),
        ]);
        let response = client(&server.url, Auth::None)
            .send_following(&propfind())
            .await
            .unwrap();
        assert_eq!(response.status, 207);
        assert_eq!(response.url.path(), "/dav/principals/");
        let seen = server.seen.lock().unwrap();
        assert!(seen[1].starts_with("PROPFIND /dav/ "), "{seen:?}");
        assert!(
            seen[2].starts_with("PROPFIND /dav/principals/ "),
            "{seen:?}"
        );
        assert!(seen[2].ends_with("<x/>"), "{seen:?}");
    }

    #[tokio::test]
    async fn a_redirect_to_another_server_is_not_followed() {
        let server = scripted(vec![answer(
            "301 Moved",
            &["Location: https://dav.example.com/dav/"],
            "",
        )]);
        let err = client(&server.url, Auth::None)
            .send_following(&propfind())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
        assert!(
            err.message.contains("https://dav.example.com/dav/"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn credentials_go_in_the_authorization_header() {
        let server = scripted(vec![answer("200 OK", &[], ""), answer("200 OK", &[], "")]);
        let basic = Auth::Basic {
            login: "alice".into(),
            password: "x".into(),
        };
        client(&server.url, basic).send(&propfind()).await.unwrap();
        client(&server.url, Auth::Bearer("t0k".into()))
            .send(&propfind())
            .await
            .unwrap();
        let seen = server.seen.lock().unwrap();
        assert!(
            seen[0].contains("authorization: Basic YWxpY2U6eA=="),
            "{}",
            seen[0]
        );
        assert!(seen[1].contains("authorization: Bearer t0k"), "{}", seen[1]);
    }

    #[test]
    fn paths_are_encoded_once() {
        assert_eq!(
            encode_path("/a b/Jérôme.vcf"),
            "/a%20b/J%C3%A9r%C3%B4me.vcf"
        );
        assert_eq!(encode_path("/100%/x?y#z"), "/100%25/x%3Fy%23z");
        assert_eq!(encode_path("/a@b:c/"), "/a@b:c/");
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://127.0.0.1:5232",
            "http://localhost/dav",
            "http://[::1]:80/",
            "https://dav.example.com",
        ] {
            check_url(ok).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        }
        let err = check_url("http://dav.example.com").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("https://"), "{}", err.message);
        assert_eq!(check_url("ftp://x").unwrap_err().kind, ErrorKind::Config);
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_shown() {
        let err = check_url("https://alice:hunter2@dav.example.com/").unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[test]
    fn retry_after_as_seconds_or_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_missing_ca_file_is_a_config_error() {
        let config = DavConfig {
            url: "https://dav.example.com".into(),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..DavConfig::default()
        };
        let err = Client::new(&config).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message.contains("/nonexistent/ca.pem"),
            "{}",
            err.message
        );
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(b"a\n  b\r\nc"), "a b c");
        assert_eq!(
            excerpt("é".repeat(1000).as_bytes()).chars().count(),
            EXCERPT + 1
        );
    }
}
