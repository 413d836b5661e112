//! The HTTP side: one axum fallback handler that takes every call through the steps the
//! real service would, in order: match a path and method of the vendored definition and
//! check its query options (a mismatch is a 400 and a recorded violation), authenticate
//! the Bearer token, count the call in its mailbox's 10-minute window, apply injected
//! faults, enforce the 4-concurrent-requests-per-mailbox limit, check the JSON body, run
//! the operation on the mailbox (`ops`), and check the answer against the definition.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::Fault;
use crate::ops::{self, Call, Reply};
use crate::schema::{Side, Violation, parse_query, schema};
use crate::store::{Invitation, Mailbox};

/// Graph's documented limit of concurrent requests per app and mailbox.
pub(crate) const MAX_CONCURRENT: usize = 4;
/// Bodies above this are refused: no item the engine writes comes near it.
const MAX_BODY: usize = 8 << 20;

#[derive(Default)]
pub(crate) struct State {
    pub counter: u64,
    /// Keyed by lower-cased address.
    pub mailboxes: BTreeMap<String, Mailbox>,
    /// Token → the mailbox it is for, or None for an application token (every mailbox).
    pub tokens: BTreeMap<String, Option<String>>,
    pub violations: Vec<Violation>,
    pub invitations: Vec<Invitation>,
    pub throttled: BTreeMap<String, u64>,
    pub in_flight: BTreeMap<String, usize>,
    pub faults: BTreeMap<String, VecDeque<Fault>>,
    /// (mailbox, unix seconds / 600) → requests.
    pub windows: BTreeMap<(String, u64), u64>,
    /// `METHOD path` of requests that did not ask for immutable ids.
    pub without_immutable: Vec<String>,
    pub log: Vec<crate::Logged>,
    pub page_size: usize,
    /// Requests a mailbox may make per 10-minute window before 429 (Graph: 10,000).
    pub window_limit: Option<u64>,
}

/// Decides what a token not configured with `add_mailbox`/`add_app_token` opens: a test
/// plugs in its OAuth server (provider-sim's `user_of`/`expires_at`) here.
pub(crate) type Resolver = Box<dyn Fn(&str) -> Option<crate::Grant> + Send + Sync>;

pub(crate) struct Shared {
    state: Mutex<State>,
    pub resolver: Mutex<Option<Resolver>>,
    /// While true, authenticated requests wait after taking their concurrency slot, so a
    /// test can hold several in flight at once without relying on timing.
    pub hold: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new() -> Shared {
        let state = State {
            page_size: 10,
            ..State::default()
        };
        Shared {
            state: Mutex::new(state),
            resolver: Mutex::new(None),
            hold: tokio::sync::watch::channel(false).0,
        }
    }

    /// A panic while holding the lock must not take every later call down with it: the
    /// state is plain data and stays usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::Json(status, json!({"error": {"code": code, "message": message}}))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn window_now() -> u64 {
    unix_now() / 600
}

/// Releases the mailbox's concurrency slot however the request ends.
struct Slot<'a> {
    shared: &'a Shared,
    mailbox: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.shared.lock().in_flight.get_mut(&self.mailbox) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Serves a request and logs it with the status it got, whatever step answered it.
async fn handle(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let response = serve(&shared, req).await;
    shared.lock().log.push(crate::Logged {
        method,
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

async fn serve(shared: &Arc<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return render(error(
            413,
            "RequestEntityTooLarge",
            "request body too large",
        ));
    };
    let method = parts.method.as_str().to_string();
    let raw_path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let headers = parts.headers;

    let violation = |at: &str, message: &str| Violation {
        method: method.clone(),
        path: raw_path.clone(),
        side: "request",
        at: at.to_string(),
        message: message.to_string(),
    };
    let Some(api_path) = raw_path.strip_prefix("/v1.0/") else {
        shared
            .lock()
            .violations
            .push(violation("path", "not under /v1.0"));
        return render(error(400, "BadRequest", "Invalid version"));
    };
    let segments: Vec<String> = api_path
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let s = schema();
    let Some(matched) = s.match_path(&segments) else {
        shared.lock().violations.push(violation(
            "path",
            "no path of the published definition matches",
        ));
        return render(error(
            400,
            "BadRequest",
            "Resource not found for the segment",
        ));
    };
    let Some(op) = s.operation(&matched.template, &method) else {
        shared.lock().violations.push(violation(
            "path",
            &format!("{} has no {method} operation", matched.template),
        ));
        return render(error(405, "Request_BadRequest", "Unsupported method"));
    };
    let problems = s.check_query(op, &query);
    if !problems.is_empty() {
        let mut st = shared.lock();
        for (at, message) in &problems {
            st.violations.push(violation(at, message));
        }
        return render(error(400, "BadRequest", &problems[0].1));
    }

    // Authentication: the token names a mailbox, or is an application token.
    let user = matched
        .params
        .first()
        .cloned()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let resolved = token.as_ref().and_then(|t| {
        let resolver = shared.resolver.lock().unwrap_or_else(|e| e.into_inner());
        resolver
            .as_ref()
            .and_then(|r| r(t))
            .map(|grant| match grant {
                crate::Grant::Mailbox(m) => Some(m.to_ascii_lowercase()),
                crate::Grant::App => None,
            })
    });
    let fault = {
        let mut st = shared.lock();
        let grant = token
            .as_ref()
            .and_then(|t| st.tokens.get(t).cloned())
            .or(resolved);
        match grant {
            None => {
                return render(error(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token is empty or invalid.",
                ));
            }
            Some(Some(mb)) if mb != user => {
                return render(error(403, "ErrorAccessDenied", "Access is denied."));
            }
            Some(_) => {}
        }
        if !st.mailboxes.contains_key(&user) {
            return render(error(
                404,
                "ErrorInvalidUser",
                "The requested user is invalid.",
            ));
        }
        let window = window_now();
        let count = st.windows.entry((user.clone(), window)).or_default();
        *count += 1;
        let count = *count;
        if st.window_limit.is_some_and(|limit| count > limit) {
            *st.throttled.entry(user.clone()).or_default() += 1;
            let left = (window + 1) * 600 - unix_now();
            return throttle(429, u32::try_from(left).unwrap_or(600));
        }
        let fault = st.faults.get_mut(&user).and_then(VecDeque::pop_front);
        if fault.is_none() {
            let n = st.in_flight.entry(user.clone()).or_default();
            if *n >= MAX_CONCURRENT {
                *st.throttled.entry(user.clone()).or_default() += 1;
                return throttle(429, 1);
            }
            *n += 1;
        }
        fault
    };
    match fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => return throttle(status, retry_after),
        Some(Fault::Cut) => return cut(),
        None => {}
    }
    let _slot = Slot {
        shared,
        mailbox: user.clone(),
    };
    let mut hold = shared.hold.subscribe();
    // An error means the sender is gone with the simulator: nothing left to wait for.
    let _ = hold.wait_for(|held| !held).await;

    let body = if matches!(method.as_str(), "POST" | "PATCH") && op.body.is_some() {
        let parsed: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                shared
                    .lock()
                    .violations
                    .push(violation("$", &format!("body is not JSON: {e}")));
                return render(error(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload.",
                ));
            }
        };
        let problems = s.check_value(
            &parsed,
            op.body.as_ref().unwrap_or(&Value::Null),
            Side::Request,
        );
        if !problems.is_empty() {
            let mut st = shared.lock();
            for (at, message) in &problems {
                st.violations.push(violation(at, message));
            }
            return render(error(400, "BadRequest", &problems[0].1));
        }
        Some(parsed)
    } else {
        None
    };
    let immutable = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.replace(' ', "").contains("IdType=\"ImmutableId\""));
    let max_page = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("odata.maxpagesize=")?
                .parse::<usize>()
                .ok()
        });
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let call = Call {
        method: &method,
        template: matched.template.trim_start_matches("/users/{user-id}/"),
        params: &matched.params[1..],
        query: &query,
        body: body.as_ref(),
        raw_body: &bytes,
        immutable,
        max_page,
        if_match: headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()),
        base: format!("http://{host}{raw_path}"),
    };
    let reply = {
        let mut st = shared.lock();
        if !immutable {
            st.without_immutable.push(format!("{method} {raw_path}"));
        }
        let reply = ops::run(&mut st, &user, &call);
        if let Reply::Json(status, v) = &reply
            && (200..300).contains(status)
            && let Some(expected) = &op.response
        {
            for (at, message) in s.check_value(v, expected, Side::Response) {
                st.violations.push(Violation {
                    side: "response",
                    ..violation(&at, &message)
                });
            }
        }
        reply
    };
    render(reply)
}

fn throttle(status: u16, retry_after: u32) -> Response {
    let code = if status == 429 {
        "TooManyRequests"
    } else {
        "ServiceUnavailable"
    };
    let mut response = render(error(
        status,
        code,
        "Please retry after the time in Retry-After.",
    ));
    if let Ok(v) = retry_after.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// An answer whose body fails after the headers: hyper then drops the connection, which
/// the client sees as a connection cut in the middle of a response.
fn cut() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection cut by the test"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "100")
        .body(Body::from_stream(failing))
        .unwrap_or_default()
}

pub(crate) fn render(reply: Reply) -> Response {
    match reply {
        Reply::Json(status, v) => {
            let mut response = Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(tag) = v.get("@odata.etag").and_then(Value::as_str) {
                response = response.header(header::ETAG, tag);
            }
            response.body(Body::from(v.to_string())).unwrap_or_default()
        }
        Reply::Empty(status) => Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap_or_default(),
        Reply::Bytes(bytes) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "image/jpeg")
            .body(Body::from(bytes))
            .unwrap_or_default(),
    }
}
