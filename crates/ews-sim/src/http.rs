//! The HTTP side: `POST /EWS/Exchange.asmx` (SOAP 1.1) and `POST /autodiscover/autodiscover.xml`
//! (POX), with Basic and Bearer authentication, or NTLM only (per TCP connection, see
//! `ntlm`) when asked, schema checks on every request and answer,
//! impersonation, and the injected faults (busy, cut connections, concurrency limit).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;

use crate::check::{check_request, check_response};
use crate::ntlm::{self, ConnId, Outcome};
use crate::ops::{self, Cx};
use crate::soap::{envelope, escape, fault};
use crate::state::State;
use crate::xml;

pub struct Shared {
    pub state: Mutex<State>,
    /// While true, requests wait after taking their concurrency slot: how a test holds one
    /// request in flight to hit the per-mailbox limit without timing.
    pub hold: tokio::sync::watch::Sender<bool>,
    /// NTLM: whether it is required, pending challenges and authenticated connections. Taken
    /// after `state` when both are needed, never before.
    pub ntlm: Mutex<ntlm::Server>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            state: Mutex::new(State::default()),
            hold: tokio::sync::watch::Sender::new(false),
            ntlm: Mutex::new(ntlm::Server::default()),
        }
    }

    /// The state, even after a panic elsewhere poisoned the lock (a test double must keep
    /// answering so the test reports the first failure, not this one).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ntlm(&self) -> MutexGuard<'_, ntlm::Server> {
        self.ntlm.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/EWS/Exchange.asmx", post(ews))
        .route("/autodiscover/autodiscover.xml", post(autodiscover))
        .route("/Autodiscover/Autodiscover.xml", post(autodiscover))
        // Contact photos and large bodies: Exchange accepts requests far above axum's 2 MB
        // default.
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(shared)
}

fn unauthorized() -> Response {
    offering(&["Basic realm=\"ews-sim\"", "Bearer"])
}

/// A 401 with one `WWW-Authenticate` header per scheme (appended: a header array given to
/// axum would keep only the last of a repeated name).
fn offering(schemes: &[&'static str]) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "").into_response();
    for scheme in schemes {
        response.headers_mut().append(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(scheme),
        );
    }
    response
}

/// 401 for an NTLM-only server: a CHALLENGE_MESSAGE when there is one, else the bare
/// schemes (`NTLM`, and `Negotiate` as IIS offers it), never Basic.
fn ntlm_unauthorized(challenge: Option<(Vec<u8>, bool)>) -> Response {
    match challenge {
        Some((message, close)) => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    format!(
                        "NTLM {}",
                        base64::engine::general_purpose::STANDARD.encode(message)
                    ),
                )],
                "",
            )
                .into_response();
            if close {
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            response
        }
        None => offering(&["NTLM", "Negotiate"]),
    }
}

/// The mailbox an NTLM user names: a UPN (the address, empty domain) or `DOMAIN\user`
/// (the mailbox whose address's local part is `user`); with its password.
fn ntlm_account(state: &State, user: &str, domain: &str) -> Option<(String, String)> {
    let mb = if domain.is_empty() {
        state.mailbox(user)
    } else {
        state.mailboxes.values().find(|mb| {
            mb.address
                .split('@')
                .next()
                .is_some_and(|local| local.eq_ignore_ascii_case(user))
        })
    }?;
    Some((mb.address.clone(), mb.password.clone()))
}

/// Who the caller is, or the 401 to answer: Basic/Bearer normally, NTLM on this connection
/// when the simulator requires it.
fn authorize(shared: &Shared, conn: &ConnId, headers: &HeaderMap) -> Result<String, Box<Response>> {
    if !shared.ntlm().required {
        let st = shared.lock();
        return authenticate(&st, headers).ok_or_else(|| Box::new(unauthorized()));
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = value.and_then(|v| {
        let (word, token) = v.trim().split_once(' ')?;
        (word.eq_ignore_ascii_case("ntlm") || word.eq_ignore_ascii_case("negotiate")).then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .ok()
        })
    });
    match token {
        None => {
            if value.is_none()
                && let Some(principal) = shared.ntlm().principal(conn)
            {
                return Ok(principal.clone());
            }
            if let Some(v) = value {
                let scheme = v.split_whitespace().next().unwrap_or_default().to_owned();
                shared.ntlm().refusals.push(format!(
                    "connection {}: {scheme} refused (NTLM only)",
                    conn.id
                ));
            }
            Err(Box::new(ntlm_unauthorized(None)))
        }
        Some(None) => Err(Box::new(ntlm_unauthorized(None))),
        Some(Some(bytes)) => {
            let st = shared.lock();
            let outcome = shared
                .ntlm()
                .step(conn, &bytes, |user, domain| ntlm_account(&st, user, domain));
            match outcome {
                Outcome::Principal(address) => Ok(address),
                Outcome::Challenge(message, close) => {
                    Err(Box::new(ntlm_unauthorized(Some((message, close)))))
                }
                Outcome::Refused => Err(Box::new(ntlm_unauthorized(None))),
            }
        }
    }
}

/// Who the caller is: a mailbox address (Basic, or a token issued for a mailbox) or the
/// principal a token was issued to.
fn authenticate(state: &State, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return state.tokens.get(token.trim()).cloned();
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    let mb = state.mailbox(user)?;
    (mb.password == password).then(|| mb.address.clone())
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn fault_response(code: &str, message: &str, message_xml: &str) -> Response {
    xml_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        fault(code, message, message_xml),
    )
}

fn busy(backoff_ms: u64) -> Response {
    fault_response(
        "ErrorServerBusy",
        "The server cannot service this request right now. Try again later.",
        &format!(r#"<t:Value Name="BackOffMilliseconds">{backoff_ms}</t:Value>"#),
    )
}

/// Gives the concurrency slot back however the request ends.
struct Slot {
    shared: Arc<Shared>,
    mailbox: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if let Some(n) = st.in_flight.get_mut(&self.mailbox) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn ews(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match authorize(&shared, &conn, &headers) {
        Ok(principal) => principal,
        Err(refusal) => return *refusal,
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut report = check_request(&text);
    report.violations.extend(range_facets(&text));
    let op = report.operation.clone().unwrap_or_else(|| "?".into());
    if !report.violations.is_empty() {
        let mut st = shared.lock();
        *st.requests.entry(op.clone()).or_default() += 1;
        for v in &report.violations {
            st.violations.push(format!("{op} request: {v}"));
        }
        let first = report.violations[0].to_string();
        return fault_response(
            "ErrorSchemaValidation",
            &format!("The request failed schema validation: {first}"),
            &format!("<t:Violation>{}</t:Violation>", escape(&first)),
        );
    }
    let Ok(root) = xml::parse("the request", &text) else {
        // check_request parsed it already; this cannot differ.
        return fault_response("ErrorInternalServerError", "unreadable request", "");
    };
    let header_kids: Vec<&xml::Node> = root
        .children
        .iter()
        .filter(|c| c.name.local == "Header")
        .flat_map(|h| h.children.iter())
        .collect();
    let Some(request) = root
        .children
        .iter()
        .find(|c| c.name.local == "Body")
        .and_then(|b| b.children.first())
    else {
        return fault_response("ErrorInternalServerError", "no operation", "");
    };
    // Resolve whose mailbox the request acts on, and apply the injected faults.
    let (mailbox, cut) = {
        let mut st = shared.lock();
        *st.requests.entry(op.clone()).or_default() += 1;
        // Required wherever the WSDL allows it (a few old operations do not).
        let version_header = xml::Name::new(xml::TYPES, "RequestServerVersion");
        let takes_version = crate::schema::published()
            .operations
            .get(&request.name)
            .is_some_and(|o| o.headers.contains(&version_header));
        if takes_version
            && !header_kids
                .iter()
                .any(|h| h.name.local == "RequestServerVersion")
        {
            st.violations.push(format!(
                "{op} request: no t:RequestServerVersion header (Exchange would answer as Exchange2007_SP1, whose schema lacks much of what mailshift uses)"
            ));
            return fault_response(
                "ErrorInvalidServerVersion",
                "The request is missing the RequestServerVersion header.",
                "",
            );
        }
        let impersonated = header_kids
            .iter()
            .find(|h| h.name.local == "ExchangeImpersonation")
            .and_then(|h| h.children.first())
            .and_then(|sid| sid.children.first())
            .map(|who| who.text.trim().to_owned());
        let mailbox = match impersonated {
            Some(who) => {
                if !st.impersonators.contains(&principal.to_lowercase()) {
                    return fault_response(
                        "ErrorImpersonateUserDenied",
                        &format!(
                            "The account does not have permission to impersonate the requested user ({who})."
                        ),
                        "",
                    );
                }
                match st.mailbox(&who) {
                    Some(mb) => mb.address.clone(),
                    None => {
                        return fault_response(
                            "ErrorNonExistentMailbox",
                            &format!("The SMTP address has no mailbox associated with it ({who})."),
                            "",
                        );
                    }
                }
            }
            None => match st.mailbox(&principal) {
                Some(mb) => mb.address.clone(),
                None => {
                    return fault_response(
                        "ErrorMissingEmailAddress",
                        "When making a request as an account that does not have a mailbox, you must specify the mailbox (ExchangeImpersonation).",
                        "",
                    );
                }
            },
        };
        if st.status_next > 0 {
            st.status_next -= 1;
            let status =
                StatusCode::from_u16(st.status_code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = (status, "").into_response();
            if let Some(secs) = st.status_retry_after
                && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        let cut = st.cut_next > 0;
        if cut {
            st.cut_next -= 1;
        } else if st.busy_next > 0 {
            st.busy_next -= 1;
            return busy(st.busy_backoff_ms);
        }
        (mailbox, cut)
    };
    let key = mailbox.to_lowercase();
    {
        let mut st = shared.lock();
        let limit = st.concurrency_limit;
        let n = st.in_flight.entry(key.clone()).or_default();
        if limit.is_some_and(|l| *n >= l) {
            let backoff = st.busy_backoff_ms;
            return busy(backoff);
        }
        *n += 1;
    }
    let _slot = Slot {
        shared: shared.clone(),
        mailbox: key,
    };
    let mut held = shared.hold.subscribe();
    let _ = held.wait_for(|h| !*h).await;
    let answer = {
        let mut st = shared.lock();
        let mut cx = Cx {
            state: &mut st,
            mailbox,
            zone: header_kids
                .iter()
                .find(|h| h.name.local == "TimeZoneContext")
                .and_then(|c| c.children.first()),
        };
        ops::run(&mut cx, &op, request)
    };
    let body = match answer {
        Ok(b) => envelope(&b),
        Err((code, message)) => {
            // Only operations the simulator lacks end here: a test must notice it ran
            // outside what the simulator models, not take the fault for Exchange's.
            shared.lock().violations.push(format!(
                "{op}: not implemented by the simulator ({message})"
            ));
            return fault_response(code, &message, "");
        }
    };
    let report = check_response(&body);
    if !report.violations.is_empty() {
        let mut st = shared.lock();
        for v in &report.violations {
            st.violations
                .push(format!("{op} response (the simulator's own): {v}"));
        }
    }
    if cut {
        return cut_response(body);
    }
    xml_response(StatusCode::OK, body)
}

/// Half the answer, then the connection breaks: what a client sees when a proxy or the
/// server dies mid-response.
fn cut_response(body: String) -> Response {
    let bytes = Bytes::from(body.into_bytes());
    // Half of it: past the envelope's start, never the whole answer.
    let half = bytes.slice(..bytes.len() / 2);
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "cut by the simulator",
        )),
    ];
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(Body::from_stream(futures_util::stream::iter(parts)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn autodiscover(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = authorize(&shared, &conn, &headers) {
        return *refusal;
    }
    let st = shared.lock();
    let text = String::from_utf8_lossy(&body);
    let address = xml::parse("the autodiscover request", &text)
        .ok()
        .and_then(|r| {
            r.children
                .iter()
                .find(|c| c.name.local == "Request")
                .and_then(|q| q.children.iter().find(|c| c.name.local == "EMailAddress"))
                .map(|e| e.text.trim().to_owned())
        });
    let found = address.as_deref().and_then(|a| st.mailbox(a));
    let inner = match found {
        Some(mb) => format!(
            "<User><DisplayName>{a}</DisplayName><AutoDiscoverSMTPAddress>{a}</AutoDiscoverSMTPAddress></User><Account><AccountType>email</AccountType><Action>settings</Action><Protocol><Type>EXCH</Type><EwsUrl>{u}</EwsUrl><ASUrl>{u}</ASUrl></Protocol><Protocol><Type>EXPR</Type><EwsUrl>{u}</EwsUrl></Protocol></Account>",
            a = escape(&mb.address),
            u = escape(&st.ews_url)
        ),
        None => "<Error Time=\"00:00:00\" Id=\"1\"><ErrorCode>500</ErrorCode><Message>The e-mail address cannot be found.</Message><DebugData /></Error>".to_owned(),
    };
    xml_response(
        StatusCode::OK,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">{inner}</Response></Autodiscover>"#
        ),
    )
}

/// The range facets the checker does not read (README: "What the checker does not check")
/// that a client meets in practice: SyncFolderItems' MaxChangesReturned is 1 to 512
/// (`t:MaxSyncChangesReturnedType`), and Exchange refuses the request otherwise.
fn range_facets(text: &str) -> Vec<crate::check::Violation> {
    let Ok(root) = xml::parse("the request", text) else {
        return Vec::new();
    };
    let Some(request) = root
        .children
        .iter()
        .find(|c| c.name.local == "Body")
        .and_then(|b| b.children.first())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if request.name.local == "SyncFolderItems"
        && let Some(max) = request
            .children
            .iter()
            .find(|c| c.name.local == "MaxChangesReturned")
        && !max
            .text
            .trim()
            .parse::<i64>()
            .is_ok_and(|n| (1..=512).contains(&n))
    {
        out.push(crate::check::Violation {
            path: "/soap:Envelope/soap:Body/m:SyncFolderItems/m:MaxChangesReturned".into(),
            message: format!(
                "{:?} is outside t:MaxSyncChangesReturnedType (1 to 512)",
                max.text.trim()
            ),
        });
    }
    out
}
