//! The transport under the SOAP client, with the DAV client's conventions (crates/mailshift-dav
//! `dav/client.rs`): rustls on ring with the platform's roots plus the plan's `ca_file`, or no
//! verification only when the plan says `insecure_skip_verify`; URLs checked (https, or http to
//! this machine only; no credentials in them); errors told apart (TLS, network) and shown
//! without credentials.
//!
//! [`Transport`] sends the client's and Autodiscover's requests with the configured
//! authentication: Basic or Bearer through reqwest, or NTLM ([`crate::ntlm`]) over
//! connections it owns. NTLM authenticates a TCP connection, not a request: the three
//! messages must travel on one keep-alive connection, and reqwest's pool gives no such
//! promise (a response's connection goes back to the pool from a background task, so the
//! next request may open another). Each NTLM connection is a hyper HTTP/1.1 connection held
//! by one request at a time, authenticated once and reused while the server keeps it open.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreError;
use reqwest::Url;
use reqwest::header::HeaderMap;

use crate::config::{Auth, AuthScheme, EwsConfig};
use crate::ntlm;

pub fn error(kind: ErrorKind, message: impl Into<String>) -> StoreError {
    StoreError {
        kind,
        message: message.into(),
        retry_after: None,
    }
}

/// The HTTP client for one configuration: its TLS trust, timeouts, no redirects followed
/// (credentials must not follow one to another host).
pub fn http_client(config: &EwsConfig) -> Result<reqwest::Client, StoreError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(config)?)
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(std::time::Duration::from_secs(30)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mailshift/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            error(
                ErrorKind::Config,
                format!("cannot build the HTTP client: {e}"),
            )
        })
}

/// The reason, when a failure comes from TLS (a rustls error somewhere in its sources), so
/// that a certificate problem is told apart from an unreachable host without reading words.
pub fn tls_failure(e: &reqwest::Error) -> Option<String> {
    e.source().and_then(find_rustls)
}

pub fn find_rustls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
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
pub fn chain(e: &reqwest::Error) -> String {
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
pub fn strip_url(e: &reqwest::Error) -> String {
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

/// Checks the caller's URL as the DAV client does: http(s), no credentials in it, plain http
/// only to this machine.
pub fn check_url(text: &str) -> Result<Url, StoreError> {
    mailshift_dav::dav::check_service_url(text, "EWS URL")
}

/// What a server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

/// A request that got no answer: why (without credentials), and the TLS reason when TLS
/// failed.
#[derive(Debug)]
pub struct SendError {
    pub tls: Option<String>,
    pub message: String,
    /// The request never left: the connection was found closed before it was written.
    unsent: bool,
}

impl SendError {
    fn network(message: impl Into<String>) -> SendError {
        SendError {
            tls: None,
            message: message.into(),
            unsent: false,
        }
    }

    fn from_reqwest(e: &reqwest::Error) -> SendError {
        SendError {
            tls: tls_failure(e),
            message: chain(e),
            unsent: false,
        }
    }
}

/// NTLM connections kept open per transport (the store sends one request at a time; a few
/// more let concurrent callers each have their own).
const NTLM_CONNECTIONS: usize = 4;

/// Handshakes tried for one request: a connection lost mid-handshake, or an authenticated
/// connection the server stopped recognising, starts a new one, this many times at most.
const NTLM_HANDSHAKES: u32 = 3;

/// One NTLM connection: hyper's sender, and whether the handshake completed on it.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    authenticated: bool,
    /// `MsvAvChannelBindings` of a TLS connection (the server certificate's end point).
    bindings: Option<[u8; 16]>,
}

/// Sends requests to one server with one configuration's authentication (see the module
/// documentation).
pub struct Transport {
    client: reqwest::Client,
    auth: Auth,
    scheme: AuthScheme,
    /// `auto` switched to NTLM (once, for the rest of the session).
    switched: AtomicBool,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    slots: Vec<tokio::sync::Mutex<Option<Conn>>>,
    next: AtomicUsize,
}

impl Transport {
    pub fn new(config: &EwsConfig) -> Result<Transport, StoreError> {
        if config.auth_scheme == AuthScheme::Ntlm && !matches!(config.auth, Auth::Basic { .. }) {
            return Err(error(
                ErrorKind::Config,
                format!(
                    "`ews.auth: ntlm` for {} needs the account's login and password, not a \
                     token: give the account a password, or drop `ews.auth`",
                    config.mailbox
                ),
            ));
        }
        Ok(Transport {
            client: http_client(config)?,
            auth: config.auth.clone(),
            scheme: config.auth_scheme,
            switched: AtomicBool::new(false),
            tls: Arc::new(tls_config(config)?),
            timeout: config.timeout,
            slots: (0..NTLM_CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// Whether requests now go with NTLM.
    pub fn uses_ntlm(&self) -> bool {
        matches!(self.auth, Auth::Basic { .. })
            && (self.scheme == AuthScheme::Ntlm || self.switched.load(Ordering::Relaxed))
    }

    /// POSTs `body` with these headers and the configured authentication.
    pub async fn post(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<Answer, SendError> {
        let body = Bytes::from(body);
        if self.uses_ntlm() {
            return self.ntlm_post(url, headers, body).await;
        }
        let mut builder = self.client.post(url.clone());
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder = match &self.auth {
            Auth::Basic { login, password } => builder.basic_auth(login, Some(password.expose())),
            Auth::Bearer(token) => builder.bearer_auth(token.expose()),
            Auth::None => builder,
        };
        let response = builder
            .body(body.clone())
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let headers_in = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| SendError::from_reqwest(&e))?;
        let answer = Answer {
            status,
            headers: headers_in,
            text,
        };
        if answer.status == 401
            && self.scheme == AuthScheme::Auto
            && matches!(self.auth, Auth::Basic { .. })
            && offers_ntlm_not_basic(&answer.headers)
        {
            if !self.switched.swap(true, Ordering::Relaxed) {
                tracing::debug!(
                    url = %shown(url),
                    "the server refused Basic and offers NTLM: this session authenticates with NTLM from now on"
                );
            }
            return self.ntlm_post(url, headers, body).await;
        }
        Ok(answer)
    }

    /// A connection of our own for this request (a free one, else wait for one).
    async fn slot(&self) -> tokio::sync::MutexGuard<'_, Option<Conn>> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].lock().await
    }

    async fn ntlm_post(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, SendError> {
        let Auth::Basic { login, password } = &self.auth else {
            return Err(SendError::network("NTLM needs a login and password"));
        };
        let mut slot = self.slot().await;
        let mut handshakes = 0;
        loop {
            if slot.as_ref().is_none_or(|c| c.sender.is_closed()) {
                *slot = Some(self.connect(url).await?);
            }
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            if conn.authenticated {
                match self.send(conn, url, headers, None, body.clone()).await {
                    Ok(answer) if answer.status == 401 && offers_ntlm(&answer.headers) => {
                        // The server no longer knows this connection (a front end moved
                        // it): authenticate it again.
                        conn.authenticated = false;
                        handshakes += 1;
                        if handshakes > NTLM_HANDSHAKES {
                            return Ok(answer);
                        }
                        continue;
                    }
                    Ok(answer) => return Ok(answer),
                    Err(e) if e.unsent && handshakes < NTLM_HANDSHAKES => {
                        // The server closed the idle connection before the request went
                        // out: nothing ran; a new connection, authenticated anew.
                        *slot = None;
                        handshakes += 1;
                        continue;
                    }
                    Err(e) => {
                        // Whether the server ran the request is unknown: the caller's
                        // retries decide, as for any lost connection.
                        *slot = None;
                        return Err(e);
                    }
                }
            }
            // NEGOTIATE, with an empty body: the server answers it with a challenge and
            // runs nothing.
            let negotiate = format!(
                "NTLM {}",
                base64::engine::general_purpose::STANDARD.encode(ntlm::negotiate())
            );
            let challenged = match self
                .send(conn, url, headers, Some(negotiate), Bytes::new())
                .await
            {
                Ok(answer) => answer,
                Err(e) => {
                    // Lost mid-handshake: nothing ran; start again on a new connection.
                    *slot = None;
                    handshakes += 1;
                    if handshakes > NTLM_HANDSHAKES {
                        return Err(e);
                    }
                    continue;
                }
            };
            if closes(&challenged.headers) {
                // The server ends the connection with its challenge, which is worth nothing
                // on another one: start again on a new connection.
                *slot = None;
                handshakes += 1;
                if handshakes > NTLM_HANDSHAKES {
                    return Err(SendError::network(
                        "the server closes the connection after each NTLM challenge (NTLM \
                         needs keep-alive connections; a proxy in between may be the cause)",
                    ));
                }
                continue;
            }
            if challenged.status != 401 {
                // The server wants no authentication on this connection.
                conn.authenticated = true;
                continue;
            }
            let Some((word, challenge)) = ntlm_challenge(&challenged.headers) else {
                // A 401 without an NTLM challenge: the server refuses NTLM itself.
                *slot = None;
                return Ok(challenged);
            };
            let token = ntlm::answer(&challenge, login, password.expose(), conn.bindings.as_ref());
            let authorization = format!(
                "{word} {}",
                base64::engine::general_purpose::STANDARD.encode(token)
            );
            match self
                .send(conn, url, headers, Some(authorization), body.clone())
                .await
            {
                Ok(answer) if answer.status == 401 => {
                    // Wrong credentials: the server drops the half-authenticated
                    // connection; so do we.
                    *slot = None;
                    return Ok(answer);
                }
                Ok(answer) => {
                    conn.authenticated = true;
                    return Ok(answer);
                }
                Err(e) if e.unsent && handshakes < NTLM_HANDSHAKES => {
                    // The server closed the connection after its challenge: nothing ran;
                    // start again on a new connection.
                    *slot = None;
                    handshakes += 1;
                }
                Err(e) => {
                    *slot = None;
                    return Err(e);
                }
            }
        }
    }

    /// A new HTTP/1.1 connection to the URL's host, over TLS for https.
    async fn connect(&self, url: &Url) -> Result<Conn, SendError> {
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .ok_or_else(|| SendError::network("the URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let connect_timeout = self.timeout.min(Duration::from_secs(30));
        let tcp = tokio::time::timeout(
            connect_timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| SendError::network(format!("cannot connect to {host}:{port}: timed out")))?
        .map_err(|e| SendError::network(format!("cannot connect to {host}:{port}: {e}")))?;
        let sender = if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| SendError::network(format!("{host:?} is not a server name: {e}")))?;
            let tls = tokio::time::timeout(
                connect_timeout,
                tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| SendError::network(format!("TLS with {host}:{port} timed out")))?
            .map_err(|e| SendError {
                tls: find_rustls(&e),
                message: format!("TLS with {host}:{port} failed: {e}"),
                unsent: false,
            })?;
            let bindings = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| ntlm::channel_bindings(leaf));
            (handshake(tls).await?, bindings)
        } else {
            (handshake(tcp).await?, None)
        };
        let (sender, bindings) = sender;
        Ok(Conn {
            sender,
            authenticated: false,
            bindings,
        })
    }

    /// One request on one connection, within the configured timeout.
    async fn send(
        &self,
        conn: &mut Conn,
        url: &Url,
        headers: &[(&'static str, String)],
        authorization: Option<String>,
        body: Bytes,
    ) -> Result<Answer, SendError> {
        let host = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = hyper::Request::post(target)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("mailshift/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(value) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| SendError::network(format!("cannot build the request: {e}")))?;
        if conn.sender.ready().await.is_err() {
            return Err(SendError {
                unsent: true,
                ..SendError::network("the server closed the connection")
            });
        }
        let exchange = async {
            let response = conn
                .sender
                .send_request(request)
                .await
                .map_err(|e| (e.is_canceled(), e))?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(|e| (false, e))?.to_bytes();
            Ok::<_, (bool, hyper::Error)>(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SendError::network("no answer within the timeout"))?
            .map_err(|(unsent, e)| {
                let mut message = e.to_string();
                if let Some(source) = e.source() {
                    message.push_str(&format!(": {source}"));
                }
                // Canceled: the connection closed before the request was written.
                SendError {
                    unsent,
                    ..SendError::network(message)
                }
            })
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, SendError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| SendError::network(format!("HTTP handshake failed: {e}")))?;
    // Drives the connection until it closes (it ends with the sender's last clone).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The authentication schemes a 401 offers (lower-cased first words of each challenge in
/// every WWW-Authenticate header).
fn schemes(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.split_whitespace().next())
        // auth-params (`realm="x"`) follow a scheme after a comma; a scheme has no '='.
        .filter(|word| !word.contains('='))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether an answer ends its connection (`Connection: close`).
fn closes(headers: &HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

fn offers_ntlm(headers: &HeaderMap) -> bool {
    schemes(headers)
        .iter()
        .any(|s| s == "ntlm" || s == "negotiate")
}

fn offers_ntlm_not_basic(headers: &HeaderMap) -> bool {
    offers_ntlm(headers) && !schemes(headers).iter().any(|s| s == "basic")
}

/// The CHALLENGE_MESSAGE of a 401 (`WWW-Authenticate: NTLM <base64>`, or `Negotiate` with a
/// raw NTLM token), with the scheme word to answer under.
fn ntlm_challenge(headers: &HeaderMap) -> Option<(&'static str, ntlm::Challenge)> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (word, token) = v.trim().split_once(' ')?;
            let word = match word.to_ascii_lowercase().as_str() {
                "ntlm" => "NTLM",
                "negotiate" => "Negotiate",
                _ => return None,
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .ok()?;
            Some((word, ntlm::Challenge::parse(&bytes)?))
        })
}

/// The DAV client's TLS set-up (rustls with ring, the platform's roots plus the caller's CA
/// file, or no verification at all when asked): EWS trusts servers exactly as DAV does.
fn tls_config(config: &EwsConfig) -> Result<rustls::ClientConfig, StoreError> {
    mailshift_dav::dav::tls_config(&mailshift_dav::dav::DavConfig {
        url: config.url.clone(),
        ca_file: config.ca_file.clone(),
        insecure_skip_verify: config.insecure_skip_verify,
        ..mailshift_dav::dav::DavConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::scripted::{answer, scripted};

    fn config(url: &str, auth: Auth, scheme: AuthScheme) -> EwsConfig {
        EwsConfig {
            url: format!("{url}/EWS/Exchange.asmx"),
            mailbox: "alice@example.com".into(),
            auth,
            auth_scheme: scheme,
            ..EwsConfig::default()
        }
    }

    fn password() -> Auth {
        Auth::Basic {
            login: "alice@example.com".into(),
            password: Secret::new("hunter2"),
        }
    }

    /// A CHALLENGE_MESSAGE with no target info, base64.
    fn challenge_header() -> String {
        let mut c = b"NTLMSSP\0".to_vec();
        c.extend(2u32.to_le_bytes());
        c.extend([0, 0, 0, 0, 48, 0, 0, 0]);
        c.extend(0x0008_8201u32.to_le_bytes());
        c.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        c.extend([0; 8]);
        c.extend([0, 0, 0, 0, 48, 0, 0, 0]);
        format!(
            "WWW-Authenticate: NTLM {}",
            base64::engine::general_purpose::STANDARD.encode(c)
        )
    }

    #[tokio::test]
    async fn a_server_closing_after_each_challenge_is_given_up_after_a_few_handshakes() {
        let header = challenge_header();
        let server = scripted(vec![answer("401 Unauthorized", &[&header], ""); 6]);
        let transport = Transport::new(&config(&server.url, password(), AuthScheme::Ntlm)).unwrap();
        let url = Url::parse(&format!("{}/EWS/Exchange.asmx", server.url)).unwrap();
        let failure = transport.post(&url, &[], "<x/>".into()).await.unwrap_err();
        assert!(failure.message.contains("keep-alive"), "{failure:?}");
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen.len(), 1 + NTLM_HANDSHAKES as usize);
        for request in seen.iter() {
            assert!(
                request.contains("authorization: NTLM TlRMTVNTUAAB"),
                "{request}"
            );
            assert!(!request.to_ascii_lowercase().contains("basic"), "{request}");
            assert!(!request.contains("hunter2"), "{request}");
        }
    }

    #[tokio::test]
    async fn auto_keeps_basic_when_the_server_offers_it() {
        let server = scripted(vec![answer(
            "401 Unauthorized",
            &[
                "WWW-Authenticate: Basic realm=\"ex\"",
                "WWW-Authenticate: NTLM",
            ],
            "",
        )]);
        let transport = Transport::new(&config(&server.url, password(), AuthScheme::Auto)).unwrap();
        let url = Url::parse(&format!("{}/EWS/Exchange.asmx", server.url)).unwrap();
        let answer = transport.post(&url, &[], "<x/>".into()).await.unwrap();
        assert_eq!(answer.status, 401);
        assert!(!transport.uses_ntlm());
        assert_eq!(server.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn ntlm_needs_a_password() {
        let failure = Transport::new(&config(
            "https://ex.example.com",
            Auth::Bearer(Secret::new("tok3n")),
            AuthScheme::Ntlm,
        ))
        .err()
        .unwrap();
        assert_eq!(failure.kind, ErrorKind::Config);
        assert!(failure.message.contains("`ews.auth: ntlm`"), "{failure:?}");
        assert!(!failure.message.contains("tok3n"));
    }

    #[test]
    fn the_offered_schemes_are_read_from_every_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            reqwest::header::WWW_AUTHENTICATE,
            "Negotiate".parse().unwrap(),
        );
        headers.append(
            reqwest::header::WWW_AUTHENTICATE,
            "Bearer realm=\"x\", NTLM".parse().unwrap(),
        );
        assert!(offers_ntlm_not_basic(&headers));
        headers.append(
            reqwest::header::WWW_AUTHENTICATE,
            "basic realm=\"ex\"".parse().unwrap(),
        );
        assert!(offers_ntlm(&headers) && !offers_ntlm_not_basic(&headers));
    }
}
