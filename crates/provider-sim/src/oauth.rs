//! A local OAuth2 authorization server standing in for the Microsoft identity platform and
//! Google's token service in tests, the demo and the benchmarks: the real ones cannot be
//! reached from them, and a mock that accepts any token would prove nothing.
//!
//! It issues short-lived opaque access tokens (the lifetime is configurable so that expiry
//! happens during a test) and answers an RFC 7662 introspection endpoint that Dovecot's
//! `oauth2` passdb asks at every XOAUTH2 login, so a real IMAP server accepts a token only
//! while this server says it is active. Grants, as the vendors document them:
//! - `client_credentials` (RFC 6749 §4.4; Microsoft's app-only `IMAP.AccessAsApp`): the
//!   token names no user; with `FullAccess` granted, the app may open every mailbox of its
//!   tenant, so the subject is the XOAUTH2 user named at login, checked against the tenant's
//!   domain (see [`OAuthServer::introspection_url`]). Microsoft requires a `.default` scope.
//! - `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628): `authorization_pending`
//!   until a test approves the user code ([`OAuthServer::approve_device`]), `slow_down` when
//!   polled faster than the interval (which then grows by 5 s, §3.5), `expired_token` after
//!   the code's lifetime, `access_denied` once denied.
//! - `refresh_token` (§6): rotated as Microsoft does, a new refresh token each time (the old
//!   one stays valid unless [`OAuthConfig::strict_rotation`]); revoked ones are refused with
//!   `invalid_grant`.
//! - `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523; Google's service account with
//!   domain-wide delegation): the RS256 signature is checked against the registered public
//!   key, `aud` must be the token URL, `exp` at most an hour after `iat` and not past, `sub`
//!   the mailbox impersonated. No refresh token: the client signs a new assertion.
//! - `authorization_code` with PKCE S256 (RFC 7636; Google's installed-app loopback flow):
//!   the authorize endpoint answers at once with a redirect to the loopback `redirect_uri`
//!   carrying a code, as a browser whose user consents would.
//!
//! Errors carry Microsoft's `AADSTS` numbers in `error_description` where Microsoft documents
//! one for the case, so the client's messages for them can be tested.
//!
//! Start it with [`OAuthServer::start`] (its own thread and runtime, for tests) or
//! [`OAuthServer::start_on`] (the `provider-sim oauth` subcommand). Everything it issued is
//! in [`OAuthServer::issued`]; it keeps tokens in memory only. Test-only RSA keys are in
//! `fixtures/` ([`TEST_SERVICE_ACCOUNT_KEY`], [`TEST_SERVICE_ACCOUNT_PUBLIC_KEY`],
//! [`TEST_OTHER_KEY`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// The registered service account's private key (PKCS#8 PEM). TEST ONLY: it protects nothing.
pub const TEST_SERVICE_ACCOUNT_KEY: &str = include_str!("../fixtures/service-account.key.pem");
/// Its public key (PKCS#1 PEM), to register in [`OAuthConfig::service_accounts`].
pub const TEST_SERVICE_ACCOUNT_PUBLIC_KEY: &str =
    include_str!("../fixtures/service-account.pub.pem");
/// A private key the server does not know, for the "wrong key" case. TEST ONLY.
pub const TEST_OTHER_KEY: &str = include_str!("../fixtures/other.key.pem");

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";

/// What the server knows and how it behaves.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// How long an access token is active (Microsoft: 60–90 min; tests: seconds).
    pub token_lifetime: Duration,
    /// How long a device code may be polled before `expired_token` (Microsoft: 15 min).
    pub device_code_lifetime: Duration,
    /// The polling interval announced with a device code (RFC 8628's default is 5 s).
    pub device_poll_interval: Duration,
    /// Each refresh invalidates the refresh token it used (some servers rotate so; Microsoft
    /// keeps the old one valid until it expires). On, a client that loses the newest refresh
    /// token cannot refresh again.
    pub strict_rotation: bool,
    pub clients: Vec<Client>,
    pub service_accounts: Vec<ServiceAccount>,
    /// The mailboxes that exist: delegated tokens and impersonation are for these only.
    pub users: Vec<String>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            token_lifetime: Duration::from_secs(3600),
            device_code_lifetime: Duration::from_secs(900),
            device_poll_interval: Duration::from_secs(1),
            strict_rotation: false,
            clients: Vec::new(),
            service_accounts: Vec::new(),
            users: Vec::new(),
        }
    }
}

/// A registered application (an Azure app registration, a Google OAuth client).
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// A confidential client's secret; `None` for a public client (device code, loopback),
    /// which must not authenticate.
    pub secret: Option<String>,
    /// The tenant's mail domain for app-only tokens (`client_credentials`): the app may log
    /// in to every mailbox of that domain (`IMAP.AccessAsApp` + FullAccess). `None`: the
    /// client may not use client credentials.
    pub app_tenant: Option<String>,
}

impl Client {
    pub fn public(id: &str) -> Client {
        Client {
            id: id.to_string(),
            secret: None,
            app_tenant: None,
        }
    }

    pub fn confidential(id: &str, secret: &str) -> Client {
        Client {
            id: id.to_string(),
            secret: Some(secret.to_string()),
            app_tenant: None,
        }
    }

    /// A confidential client allowed app-only tokens for the mailboxes of `domain`.
    pub fn app_only(id: &str, secret: &str, domain: &str) -> Client {
        Client {
            app_tenant: Some(domain.to_ascii_lowercase()),
            ..Client::confidential(id, secret)
        }
    }
}

/// A Google service account with domain-wide delegation: its `client_email` is the JWT's
/// `iss`, its public key checks the signature.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// The RSA public key, as PKCS#1 `RSAPublicKey` DER.
    pub public_key_der: Vec<u8>,
}

impl ServiceAccount {
    /// From a PEM public key: `RSA PUBLIC KEY` (PKCS#1) or `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(client_email: &str, pem: &str) -> Result<ServiceAccount, String> {
        let (label, der) = pem_decode(pem)?;
        let public_key_der = match label.as_str() {
            "RSA PUBLIC KEY" => der,
            "PUBLIC KEY" => spki_to_pkcs1(&der)?,
            other => return Err(format!("not a public key PEM: {other}")),
        };
        Ok(ServiceAccount {
            client_email: client_email.to_string(),
            public_key_der,
        })
    }
}

/// One token response the server gave.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The `grant_type` asked for.
    pub grant: String,
    pub client_id: String,
    /// The mailbox the token is for; `None` for an app-only token.
    pub user: Option<String>,
    pub scope: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub at: SystemTime,
    pub expires_at: SystemTime,
}

/// A token request the server refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub grant: String,
    pub client_id: String,
    /// The OAuth2 `error` code (`invalid_grant`, `authorization_pending`, …).
    pub error: String,
    pub at: SystemTime,
}

/// One introspection call (Dovecot's at each XOAUTH2 login).
#[derive(Debug, Clone)]
pub struct Introspection {
    pub active: bool,
    pub user: Option<String>,
    pub at: SystemTime,
}

#[derive(Debug, Clone)]
struct AccessToken {
    client_id: String,
    user: Option<String>,
    app_tenant: Option<String>,
    scope: String,
    expires_at: SystemTime,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    client_id: String,
    user: String,
    scope: String,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct Device {
    client_id: String,
    user_code: String,
    scope: String,
    expires_at: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    approved: Option<String>,
    denied: bool,
    used: bool,
}

#[derive(Debug, Clone)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    user: String,
    scope: String,
    used: bool,
}

struct Inner {
    config: OAuthConfig,
    base_url: String,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    devices: HashMap<String, Device>,
    codes: HashMap<String, AuthCode>,
    issued: Vec<Issued>,
    refusals: Vec<Refusal>,
    introspections: Vec<Introspection>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A panicking handler must not take the whole test down with a poisoned lock.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server. Dropping it stops it.
pub struct OAuthServer {
    shared: Shared,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OAuthServer {
    /// Starts a server on a free loopback port, on its own thread and runtime.
    pub fn start(config: OAuthConfig) -> Result<OAuthServer, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("oauth-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot start a runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match launch(config, SocketAddr::from(([127, 0, 0, 1], 0))).await {
                        Ok((shared, addr, stop_server)) => {
                            let (stop, stopped) = oneshot::channel::<()>();
                            let _ = tx.send(Ok((shared, addr, stop)));
                            let _ = stopped.await;
                            let _ = stop_server.send(());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let (shared, addr, stop) = rx
            .recv()
            .map_err(|_| "the OAuth2 server thread ended before starting".to_string())??;
        Ok(OAuthServer {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Starts a server on `addr`, on the current tokio runtime.
    pub async fn start_on(config: OAuthConfig, addr: SocketAddr) -> Result<OAuthServer, String> {
        let (shared, addr, stop) = launch(config, addr).await?;
        Ok(OAuthServer {
            shared,
            addr,
            stop: Some(stop),
            thread: None,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token endpoint (also the `aud` a JWT assertion must name).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The RFC 8628 device authorization endpoint.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/devicecode", self.url())
    }

    /// The authorization endpoint of the code flow: it redirects at once to `redirect_uri`
    /// as if the user (`login_hint`, else the only configured user) had consented.
    pub fn authorization_url(&self) -> String {
        format!("{}/authorize", self.url())
    }

    /// The RFC 7662 introspection endpoint (POST `token=…`). An active delegated token
    /// answers `{active: true, username, exp, scope, client_id}`; an app-only one
    /// `{active: true, app_tenant: "app@DOMAIN", …}` so that a second Dovecot passdb with
    /// `username_attribute = app_tenant` and `username_format = %Ld` accepts it for any
    /// mailbox of the tenant. Every answer carries both attributes (empty or not matching
    /// when they do not apply), and an inactive known token still names its user: then
    /// Dovecot fails the login as an authentication failure (`NO [AUTHENTICATIONFAILED]`,
    /// as Microsoft answers an expired token) rather than a temporary one, which a missing
    /// username attribute would cause (db-oauth2.c: "No username returned" is an internal
    /// failure).
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.url())
    }

    /// Approves a pending device code, as `user` entering it in a browser would. Errors when
    /// no pending device authorization has that user code.
    pub fn approve_device(&self, user_code: &str, user: &str) -> Result<(), String> {
        let mut inner = lock(&self.shared);
        if !inner
            .config
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(user))
        {
            return Err(format!("unknown user {user}"));
        }
        let device = inner
            .devices
            .values_mut()
            .find(|d| d.user_code == user_code && !d.used)
            .ok_or_else(|| format!("no pending device authorization with code {user_code}"))?;
        device.approved = Some(user.to_string());
        Ok(())
    }

    /// Refuses a pending device code, as a user declining consent would.
    pub fn deny_device(&self, user_code: &str) -> Result<(), String> {
        let mut inner = lock(&self.shared);
        let device = inner
            .devices
            .values_mut()
            .find(|d| d.user_code == user_code && !d.used)
            .ok_or_else(|| format!("no pending device authorization with code {user_code}"))?;
        device.denied = true;
        Ok(())
    }

    /// The user codes of device authorizations not yet approved, oldest first.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let inner = lock(&self.shared);
        let mut pending: Vec<&Device> = inner
            .devices
            .values()
            .filter(|d| d.approved.is_none() && !d.denied && !d.used)
            .collect();
        pending.sort_by_key(|d| d.expires_at);
        pending.iter().map(|d| d.user_code.clone()).collect()
    }

    /// Revokes every refresh token of `user` (an admin's "revoke sessions", a password
    /// change): the next refresh gets `invalid_grant`. Access tokens stay active until they
    /// expire, as Microsoft's do. Returns how many were revoked.
    pub fn revoke_refresh_tokens(&self, user: &str) -> usize {
        let mut inner = lock(&self.shared);
        let mut n = 0;
        for rt in inner.refresh.values_mut() {
            if rt.user.eq_ignore_ascii_case(user) && !rt.revoked {
                rt.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// Ends every access token now (as if their lifetime had passed).
    pub fn expire_access_tokens(&self) {
        let mut inner = lock(&self.shared);
        let now = SystemTime::now();
        for at in inner.access.values_mut() {
            at.expires_at = at.expires_at.min(now);
        }
    }

    /// Every token response given so far, oldest first.
    pub fn issued(&self) -> Vec<Issued> {
        lock(&self.shared).issued.clone()
    }

    /// Every token request refused so far, oldest first (device-code polls included).
    pub fn refusals(&self) -> Vec<Refusal> {
        lock(&self.shared).refusals.clone()
    }

    /// Every introspection call so far, oldest first.
    pub fn introspections(&self) -> Vec<Introspection> {
        lock(&self.shared).introspections.clone()
    }

    /// When an access token this server issued expires; `None` for a token it never issued.
    pub fn expires_at(&self, access_token: &str) -> Option<SystemTime> {
        lock(&self.shared)
            .access
            .get(access_token)
            .map(|t| t.expires_at)
    }

    /// The mailbox a delegated or impersonating access token is for; `None` for an app-only
    /// token (its user is the one named at login) or an unknown one.
    pub fn user_of(&self, access_token: &str) -> Option<String> {
        lock(&self.shared)
            .access
            .get(access_token)
            .and_then(|t| t.user.clone())
    }

    /// Whether an access token is known and not expired.
    pub fn is_active(&self, access_token: &str) -> bool {
        self.expires_at(access_token)
            .is_some_and(|e| e > SystemTime::now())
    }

    /// Stops the server (also done on drop).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn launch(
    config: OAuthConfig,
    addr: SocketAddr,
) -> Result<(Shared, SocketAddr, oneshot::Sender<()>), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let shared: Shared = Arc::new(Mutex::new(Inner {
        config,
        base_url: format!("http://{addr}"),
        access: HashMap::new(),
        refresh: HashMap::new(),
        devices: HashMap::new(),
        codes: HashMap::new(),
        issued: Vec::new(),
        refusals: Vec::new(),
        introspections: Vec::new(),
    }));
    let app = Router::new()
        .route("/token", post(token))
        .route("/devicecode", post(devicecode))
        .route("/authorize", get(authorize))
        .route("/introspect", post(introspect))
        .route("/device", get(device_page))
        .with_state(shared.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            eprintln!("OAuth2 server: {e}");
        }
    });
    Ok((shared, addr, stop))
}

type Params = HashMap<String, String>;

/// An OAuth2 error answer (RFC 6749 §5.2), with Microsoft's AADSTS number where it has one.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
}

fn now_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_token(prefix: &str) -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 24];
    // SystemRandom fails only without an OS RNG; a test double may then stop.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn user_code() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    // RFC 8628 §6.1: letters without vowels and lookalikes are easy to type.
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator");
    let s: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &s[..4], &s[4..])
}

/// The client named by Basic auth or the form, authenticated as its registration requires.
fn authenticate_client(
    inner: &Inner,
    headers: &HeaderMap,
    form: &Params,
) -> Result<Client, OAuthError> {
    let mut id = form.get("client_id").cloned();
    let mut secret = form.get("client_secret").cloned();
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OAuthError::new("invalid_client", "malformed Basic credentials"))?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::new("invalid_client", "malformed Basic credentials"))?;
        id = Some(form_decode(u));
        secret = Some(form_decode(p));
    }
    let id = id.ok_or_else(|| OAuthError::new("invalid_request", "client_id is missing"))?;
    let client = inner
        .config
        .clients
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .ok_or_else(|| {
            OAuthError::new(
                "unauthorized_client",
                format!(
                    "AADSTS700016: Application with identifier '{id}' was not found in the directory."
                ),
            )
        })?;
    match (&client.secret, &secret) {
        (Some(expected), Some(given)) if expected == given => Ok(client),
        (Some(_), Some(_)) => Err(OAuthError::new(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        )),
        (Some(_), None) => Err(OAuthError::new(
            "invalid_client",
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
        (None, _) => Ok(client),
    }
}

fn form_decode(s: &str) -> String {
    // Basic credentials of OAuth2 clients are form-encoded first (RFC 6749 §2.3.1).
    form_urlencoded_decode(s)
}

fn form_urlencoded_decode(s: &str) -> String {
    let bytes = s.replace('+', " ");
    let mut out = Vec::with_capacity(bytes.len());
    let b = bytes.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&bytes[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Params>,
) -> Response {
    let mut inner = lock(&shared);
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let result = grant_token(&mut inner, &headers, &form, &grant);
    match result {
        Ok(issued) => {
            let body = json!({
                "token_type": "Bearer",
                "access_token": issued.access_token,
                "expires_in": issued.expires_at.duration_since(issued.at).map(|d| d.as_secs()).unwrap_or(0),
                "scope": issued.scope,
            });
            let mut body = body;
            if let Some(rt) = &issued.refresh_token {
                body["refresh_token"] = json!(rt);
            }
            inner.issued.push(issued);
            json_response(StatusCode::OK, body)
        }
        Err(e) => {
            let client_id = form.get("client_id").cloned().unwrap_or_default();
            inner.refusals.push(Refusal {
                grant,
                client_id,
                error: e.error.to_string(),
                at: SystemTime::now(),
            });
            json_response(
                e.status,
                json!({"error": e.error, "error_description": e.description}),
            )
        }
    }
}

fn grant_token(
    inner: &mut Inner,
    headers: &HeaderMap,
    form: &Params,
    grant: &str,
) -> Result<Issued, OAuthError> {
    match grant {
        GRANT_CLIENT_CREDENTIALS => {
            let client = authenticate_client(inner, headers, form)?;
            if client.secret.is_none() {
                return Err(OAuthError::new(
                    "invalid_client",
                    "AADSTS7000218: a public client cannot use client credentials",
                ));
            }
            let tenant = client.app_tenant.clone().ok_or_else(|| {
                OAuthError::new(
                    "unauthorized_client",
                    "AADSTS700016: the application has no app-only permission (IMAP.AccessAsApp) in this tenant",
                )
            })?;
            let scope = form.get("scope").cloned().unwrap_or_default();
            // Microsoft: app-only tokens are asked for with RESOURCE/.default.
            if !scope.split(' ').any(|s| s.ends_with("/.default")) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!(
                        "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."
                    ),
                ));
            }
            Ok(issue(
                inner,
                grant,
                &client.id,
                None,
                Some(tenant),
                &scope,
                false,
            ))
        }
        GRANT_DEVICE_CODE => {
            let client = authenticate_client(inner, headers, form)?;
            let code = form
                .get("device_code")
                .ok_or_else(|| OAuthError::new("invalid_request", "device_code is missing"))?;
            let now = Instant::now();
            let device = inner
                .devices
                .get_mut(code)
                .filter(|d| d.client_id == client.id)
                .ok_or_else(|| {
                    OAuthError::new("invalid_grant", "AADSTS70000: unknown device code")
                })?;
            if device.used {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "AADSTS54005: the device code was already redeemed",
                ));
            }
            if now >= device.expires_at {
                return Err(OAuthError::new(
                    "expired_token",
                    "AADSTS70019: Verification code expired.",
                ));
            }
            if device.denied {
                return Err(OAuthError::new(
                    "access_denied",
                    "AADSTS70020: the user declined the authorization",
                ));
            }
            // RFC 8628 §3.5: polled sooner than the interval, answer slow_down and make the
            // interval 5 seconds longer for every later poll.
            let too_soon = device
                .last_poll
                .is_some_and(|last| now.duration_since(last) < device.interval);
            device.last_poll = Some(now);
            if too_soon {
                device.interval += Duration::from_secs(5);
                return Err(OAuthError::new(
                    "slow_down",
                    "polled sooner than the interval; it is now 5 seconds longer",
                ));
            }
            let Some(user) = device.approved.clone() else {
                return Err(OAuthError::new(
                    "authorization_pending",
                    "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ));
            };
            device.used = true;
            let scope = device.scope.clone();
            Ok(issue(
                inner,
                grant,
                &client.id,
                Some(user),
                None,
                &scope,
                true,
            ))
        }
        GRANT_REFRESH_TOKEN => {
            let client = authenticate_client(inner, headers, form)?;
            let rt = form
                .get("refresh_token")
                .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
            let known = inner
                .refresh
                .get(rt)
                .filter(|r| r.client_id == client.id)
                .cloned()
                .ok_or_else(|| {
                    OAuthError::new(
                        "invalid_grant",
                        "AADSTS9002313: Invalid request. The refresh token is malformed or not valid.",
                    )
                })?;
            if known.revoked {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                ));
            }
            if inner.config.strict_rotation
                && let Some(r) = inner.refresh.get_mut(rt)
            {
                r.revoked = true;
            }
            let scope = form.get("scope").cloned().unwrap_or(known.scope);
            Ok(issue(
                inner,
                grant,
                &client.id,
                Some(known.user),
                None,
                &scope,
                true,
            ))
        }
        GRANT_JWT_BEARER => {
            let assertion = form
                .get("assertion")
                .ok_or_else(|| OAuthError::new("invalid_request", "assertion is missing"))?;
            let claims = check_assertion(inner, assertion)?;
            Ok(issue(
                inner,
                grant,
                &claims.iss,
                Some(claims.sub),
                None,
                &claims.scope,
                false,
            ))
        }
        GRANT_AUTHORIZATION_CODE => {
            let client = authenticate_client(inner, headers, form)?;
            let code = form
                .get("code")
                .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
            let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let entry = inner
                .codes
                .get_mut(code)
                .filter(|c| c.client_id == client.id && !c.used)
                .ok_or_else(|| OAuthError::new("invalid_grant", "Malformed auth code."))?;
            // One attempt per code, whatever its outcome (RFC 6749 §4.1.2).
            entry.used = true;
            if entry.redirect_uri != redirect_uri {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "Bad Request: redirect_uri_mismatch",
                ));
            }
            let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.is_empty() || digest != entry.challenge {
                return Err(OAuthError::new("invalid_grant", "Invalid code verifier."));
            }
            let (user, scope) = (entry.user.clone(), entry.scope.clone());
            Ok(issue(
                inner,
                grant,
                &client.id,
                Some(user),
                None,
                &scope,
                true,
            ))
        }
        "" => Err(OAuthError::new("invalid_request", "grant_type is missing")),
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type {other} is not supported"),
        )),
    }
}

fn issue(
    inner: &mut Inner,
    grant: &str,
    client_id: &str,
    user: Option<String>,
    app_tenant: Option<String>,
    scope: &str,
    with_refresh: bool,
) -> Issued {
    let at = SystemTime::now();
    let expires_at = at + inner.config.token_lifetime;
    let access_token = random_token("sim-at-");
    inner.access.insert(
        access_token.clone(),
        AccessToken {
            client_id: client_id.to_string(),
            user: user.clone(),
            app_tenant,
            scope: scope.to_string(),
            expires_at,
        },
    );
    let refresh_token = match (&user, with_refresh) {
        (Some(u), true) => {
            let rt = random_token("sim-rt-");
            inner.refresh.insert(
                rt.clone(),
                RefreshToken {
                    client_id: client_id.to_string(),
                    user: u.clone(),
                    scope: scope.to_string(),
                    revoked: false,
                },
            );
            Some(rt)
        }
        _ => None,
    };
    Issued {
        grant: grant.to_string(),
        client_id: client_id.to_string(),
        user,
        scope: scope.to_string(),
        access_token,
        refresh_token,
        at,
        expires_at,
    }
}

struct Claims {
    iss: String,
    sub: String,
    scope: String,
}

/// RFC 7523 §3 as Google applies it: RS256, `iss` a registered service account, `aud` the
/// token URL, `iat`/`exp` at most an hour apart and `exp` not past, `sub` a known mailbox.
fn check_assertion(inner: &Inner, assertion: &str) -> Result<Claims, OAuthError> {
    let bad = |m: &str| OAuthError::new("invalid_grant", m.to_string());
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("Invalid JWT: not three dot-separated parts"));
    };
    let decode_json = |part: &str| -> Result<Value, OAuthError> {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("Invalid JWT: a part is not base64url JSON"))
    };
    let header = decode_json(h)?;
    let payload = decode_json(p)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad("Invalid JWT Signature."))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(bad("Invalid JWT: the algorithm must be RS256"));
    }
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let account = inner
        .config
        .service_accounts
        .iter()
        .find(|a| a.client_email == iss)
        .ok_or_else(|| {
            OAuthError::new("invalid_client", format!("unknown service account {iss}"))
        })?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &account.public_key_der,
    );
    let signed = &assertion[..h.len() + 1 + p.len()];
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| bad("Invalid JWT Signature."))?;
    let token_url = format!("{}/token", inner.base_url);
    if payload.get("aud").and_then(Value::as_str) != Some(token_url.as_str()) {
        return Err(bad(&format!("Invalid JWT: aud must be {token_url}")));
    }
    let iat = payload.get("iat").and_then(Value::as_u64);
    let exp = payload.get("exp").and_then(Value::as_u64);
    let (Some(iat), Some(exp)) = (iat, exp) else {
        return Err(bad("Invalid JWT: iat and exp are required"));
    };
    let now = now_secs(SystemTime::now());
    if exp <= iat || exp - iat > 3600 {
        return Err(bad("Invalid JWT: exp must be within an hour of iat"));
    }
    if exp <= now {
        return Err(bad(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scope = payload
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if scope.is_empty() {
        return Err(OAuthError::new(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    let sub = payload
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !inner
        .config
        .users
        .iter()
        .any(|u| u.eq_ignore_ascii_case(sub))
    {
        return Err(OAuthError::new("invalid_grant", "Invalid email or User ID"));
    }
    Ok(Claims {
        iss: iss.to_string(),
        sub: sub.to_string(),
        scope,
    })
}

async fn devicecode(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Params>,
) -> Response {
    let mut inner = lock(&shared);
    let client = match authenticate_client(&inner, &headers, &form) {
        Ok(c) => c,
        Err(e) => {
            return json_response(
                e.status,
                json!({"error": e.error, "error_description": e.description}),
            );
        }
    };
    let device_code = random_token("sim-dc-");
    let code = user_code();
    let interval = inner
        .config
        .device_poll_interval
        .max(Duration::from_secs(1));
    let lifetime = inner.config.device_code_lifetime;
    let verification_uri = format!("{}/device", inner.base_url);
    inner.devices.insert(
        device_code.clone(),
        Device {
            client_id: client.id,
            user_code: code.clone(),
            scope: form.get("scope").cloned().unwrap_or_default(),
            expires_at: Instant::now() + lifetime,
            interval,
            last_poll: None,
            approved: None,
            denied: false,
            used: false,
        },
    );
    json_response(
        StatusCode::OK,
        json!({
            "device_code": device_code,
            "user_code": code,
            "verification_uri": verification_uri,
            "expires_in": lifetime.as_secs(),
            "interval": interval.as_secs(),
            "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {code} to authenticate."),
        }),
    )
}

async fn device_page() -> Response {
    (
        StatusCode::OK,
        "Local OAuth2 test server: device codes are approved by the test (approve_device).\n",
    )
        .into_response()
}

async fn authorize(State(shared): State<Shared>, Query(q): Query<Params>) -> Response {
    let mut inner = lock(&shared);
    let page = |m: String| (StatusCode::BAD_REQUEST, m).into_response();
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if !inner.config.clients.iter().any(|c| c.id == client_id) {
        return page(format!(
            "Error 401: invalid_client (unknown client {client_id})"
        ));
    }
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    // Installed apps may only be sent back to a loopback address (Google's rule).
    let loopback = ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"]
        .iter()
        .any(|p| redirect_uri.starts_with(p));
    if !loopback {
        return page(format!("Error 400: redirect_uri_mismatch ({redirect_uri})"));
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return page("Error 400: unsupported response_type".into());
    }
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("code_challenge").is_none_or(|c| c.is_empty())
    {
        return page("Error 400: PKCE with code_challenge_method S256 is required".into());
    }
    let user = match q.get("login_hint") {
        Some(u) if inner.config.users.iter().any(|k| k.eq_ignore_ascii_case(u)) => u.clone(),
        Some(u) => return page(format!("Error 400: no account {u}")),
        None if inner.config.users.len() == 1 => inner.config.users[0].clone(),
        None => return page("Error 400: no login_hint, and more than one account".into()),
    };
    let code = random_token("sim-code-");
    inner.codes.insert(
        code.clone(),
        AuthCode {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: q.get("code_challenge").cloned().unwrap_or_default(),
            user,
            scope: q.get("scope").cloned().unwrap_or_default(),
            used: false,
        },
    );
    let mut location = format!(
        "{redirect_uri}{}code={code}",
        if redirect_uri.contains('?') { '&' } else { '?' }
    );
    if let Some(state) = q.get("state") {
        location.push_str("&state=");
        location.push_str(&percent_encode(state));
    }
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn introspect(State(shared): State<Shared>, Form(form): Form<Params>) -> Response {
    let mut inner = lock(&shared);
    let token = form.get("token").cloned().unwrap_or_default();
    let now = SystemTime::now();
    let known = inner.access.get(&token).cloned();
    let active = known.as_ref().is_some_and(|t| t.expires_at > now);
    inner.introspections.push(Introspection {
        active,
        user: known.as_ref().and_then(|t| t.user.clone()),
        at: now,
    });
    // See introspection_url: both username attributes always, so that Dovecot fails a
    // refused token as an authentication failure.
    let body = match known {
        Some(t) => {
            let app_tenant = t
                .app_tenant
                .as_ref()
                .map(|d| format!("app@{d}"))
                .unwrap_or_default();
            json!({
                "active": active,
                "username": t.user.clone().unwrap_or_default(),
                "app_tenant": app_tenant,
                "client_id": t.client_id,
                "scope": t.scope,
                "exp": now_secs(t.expires_at),
                "token_type": "Bearer",
            })
        }
        None => json!({"active": false, "username": "", "app_tenant": ""}),
    };
    json_response(StatusCode::OK, body)
}

/// Decodes a PEM block: its label and DER bytes.
fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem.find("-----BEGIN ").ok_or("no PEM BEGIN line")?;
    let rest = &pem[begin + 11..];
    let label_end = rest.find("-----").ok_or("malformed PEM BEGIN line")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find("-----END ").ok_or("no PEM END line")?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((label, der))
}

/// The PKCS#1 key inside an RSA SubjectPublicKeyInfo (a SEQUENCE of the algorithm and a BIT
/// STRING holding the key).
fn spki_to_pkcs1(der: &[u8]) -> Result<Vec<u8>, String> {
    fn read(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *der.first()?;
        let first = *der.get(1)? as usize;
        let (len, start) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *der.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let body = der.get(start..start + len)?;
        Some((tag, body, &der[start + len..]))
    }
    let err = || "malformed SubjectPublicKeyInfo".to_string();
    let (tag, spki, _) = read(der).ok_or_else(err)?;
    if tag != 0x30 {
        return Err(err());
    }
    let (_, _algorithm, rest) = read(spki).ok_or_else(err)?;
    let (tag, bits, _) = read(rest).ok_or_else(err)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return Err(err());
    }
    Ok(bits[1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_public_keys_parse() {
        let sa = ServiceAccount::from_pem("sa@test", TEST_SERVICE_ACCOUNT_PUBLIC_KEY).unwrap();
        assert!(sa.public_key_der.len() > 256);
        assert!(ServiceAccount::from_pem("sa@test", TEST_SERVICE_ACCOUNT_KEY).is_err());
    }

    #[test]
    fn user_codes_have_the_rfc_shape() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
    }
}
