//! The daemon's HTTP side (axum): `/healthz`, `/metrics`, `/api/status` and the status page;
//! and three actions, `POST /api/ack/ID`, `/api/pause/ACCOUNT` and `/api/resume/ACCOUNT`,
//! handed to the daemon, which holds the state and the plan in force.
//!
//! Bound to loopback unless told otherwise; on any other address a bearer token (read from a
//! secret reference) is required on every route but `/healthz`, which orchestrators probe
//! without credentials. The same token is accepted as the password of HTTP Basic
//! authentication, so that a person can open the page in a browser, which cannot send a bearer
//! header by itself. Tokens are compared through their SHA-256 digests, in constant time.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::page;
use super::status::StatusModel;
use crate::plan::secret::Secret;

/// A manual step acknowledged over HTTP, handed to the daemon (which holds the state and the
/// plan in force); the answer goes back to the caller.
pub struct AckRequest {
    pub id: String,
    pub reply: tokio::sync::oneshot::Sender<Result<String, String>>,
}

/// An account paused (`pause`) or resumed over HTTP, handed to the daemon.
pub struct HoldRequest {
    pub account: String,
    pub pause: bool,
    pub reply: tokio::sync::oneshot::Sender<Result<String, HoldRefused>>,
}

/// Why a pause or resume was refused; each is its own HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRefused {
    /// No such account in the plan in force (404).
    Unknown(String),
    /// Paused in the plan: only a plan edit lifts it (409).
    InPlan(String),
    /// Resume of an account that is not paused (409).
    NotPaused(String),
    /// The state could not be written (500).
    State(String),
}

impl HoldRefused {
    fn response(self) -> Response {
        let (code, text) = match self {
            HoldRefused::Unknown(t) => (StatusCode::NOT_FOUND, t),
            HoldRefused::InPlan(t) | HoldRefused::NotPaused(t) => (StatusCode::CONFLICT, t),
            HoldRefused::State(t) => (StatusCode::INTERNAL_SERVER_ERROR, t),
        };
        (code, format!("{text}\n")).into_response()
    }
}

/// What the handlers share.
pub struct HttpState {
    pub status: Arc<StatusModel>,
    pub acks: tokio::sync::mpsc::UnboundedSender<AckRequest>,
    pub holds: tokio::sync::mpsc::UnboundedSender<HoldRequest>,
    /// `None`: no authentication (loopback without `--token`). Replaced on SIGHUP.
    pub token: RwLock<Option<Secret>>,
}

/// Whether serving on `addr` needs a token: anything but loopback is reachable by others.
pub fn needs_token(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/status", get(api_status))
        .route("/metrics", get(metrics))
        .route("/api/ack/{*id}", axum::routing::post(ack))
        .route("/api/pause/{account}", axum::routing::post(pause))
        .route("/api/resume/{account}", axum::routing::post(resume))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        s.status.metrics_text(),
    )
        .into_response()
}

/// `POST /api/ack/ID`: what `mailshift ack PLAN ID` does, for a state the daemon holds.
async fn ack(
    State(s): State<Arc<HttpState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if cross_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin requests may not acknowledge steps\n",
        )
            .into_response();
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    if s.acks.send(AckRequest { id, reply }).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response();
    }
    match answer.await {
        Ok(Ok(message)) => (StatusCode::OK, format!("{message}\n")).into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response(),
    }
}

/// A request a web page of another origin made: a page in the operator's browser could
/// otherwise post here (the daemon trusts loopback without a token). Browsers name the page's
/// origin; command-line clients don't.
fn cross_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|origin| {
            host.is_none_or(|h| origin != format!("http://{h}") && origin != format!("https://{h}"))
        })
}

/// `POST /api/pause/ACCOUNT`: the account's copies stop at the next checkpoint and stay
/// stopped, across restarts, until `/api/resume/ACCOUNT`.
async fn pause(
    State(s): State<Arc<HttpState>>,
    axum::extract::Path(account): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    hold(s, account, headers, true).await
}

/// `POST /api/resume/ACCOUNT`: lifts a pause put with `/api/pause` (not one in the plan).
async fn resume(
    State(s): State<Arc<HttpState>>,
    axum::extract::Path(account): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    hold(s, account, headers, false).await
}

async fn hold(s: Arc<HttpState>, account: String, headers: HeaderMap, pause: bool) -> Response {
    if cross_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin requests may not pause or resume accounts\n",
        )
            .into_response();
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = HoldRequest {
        account,
        pause,
        reply,
    };
    if s.holds.send(request).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response();
    }
    match answer.await {
        Ok(Ok(message)) => (StatusCode::OK, format!("{message}\n")).into_response(),
        Ok(Err(refused)) => refused.response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response(),
    }
}

async fn api_status(State(s): State<Arc<HttpState>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(s.status.snapshot()),
    )
        .into_response()
}

async fn index(State(s): State<Arc<HttpState>>) -> Response {
    page_response(page::render(&s.status.snapshot()))
}

/// The page with its headers: the CSP allows the page's own script by hash, nothing else.
pub fn page_response(html: String) -> Response {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(page::SCRIPT))
    );
    let mut res = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

async fn authenticate(State(s): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    if authorized(&s.token, req.headers()) {
        next.run(req).await
    } else {
        tracing::debug!(path = %req.uri().path(), "refused an unauthenticated request");
        unauthorized()
    }
}

/// Whether a request may pass: no token is required, or it presents the token. Shared with
/// the aggregator (`super::aggregate::serve`), which guards its routes the same way.
pub fn authorized(token: &RwLock<Option<Secret>>, headers: &HeaderMap) -> bool {
    let expected = token
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|t| Sha256::digest(t.expose().as_bytes()));
    let Some(expected) = expected else {
        return true;
    };
    presented(headers)
        .is_some_and(|given| constant_time_eq(&Sha256::digest(given.as_bytes()), &expected))
}

/// 401, with both schemes offered (a browser asks for Basic, a script sends Bearer).
pub fn unauthorized() -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        "a token is required: send `Authorization: Bearer TOKEN`\n",
    )
        .into_response();
    let h = res.headers_mut();
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"mailshift\", charset=\"UTF-8\""),
    );
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mailshift\""),
    );
    res
}

/// The token a request carries: a bearer token, or a Basic password (any user name).
fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':').map(|(_, pw)| pw.to_string())
    } else {
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_tokens_are_read() {
        assert_eq!(
            presented(&headers("Bearer s3cret")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            presented(&headers("bearer  s3cret ")).as_deref(),
            Some("s3cret")
        );
        // "anyone:s3:cret" — the password may contain colons.
        assert_eq!(
            presented(&headers("Basic YW55b25lOnMzOmNyZXQ=")).as_deref(),
            Some("s3:cret")
        );
        assert_eq!(presented(&headers("Digest abc")), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn loopback_alone_goes_without_a_token() {
        for (addr, needs) in [
            ("127.0.0.1:8470", false),
            ("127.0.0.2:1", false),
            ("[::1]:8470", false),
            ("0.0.0.0:8470", true),
            ("[::]:8470", true),
            ("192.0.2.10:8470", true),
        ] {
            assert_eq!(needs_token(&addr.parse().unwrap()), needs, "{addr}");
        }
    }

    #[test]
    fn only_a_page_of_another_origin_is_cross_origin() {
        let with = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8470"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            cross_origin(&h)
        };
        assert!(!with(None), "curl sends no Origin");
        assert!(
            !with(Some("http://127.0.0.1:8470")),
            "the status page itself"
        );
        assert!(!with(Some("https://127.0.0.1:8470")));
        assert!(with(Some("http://evil.example")));
        assert!(with(Some("http://127.0.0.1:8471")));
        assert!(with(Some("null")), "a sandboxed page");
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
