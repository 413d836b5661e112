//! The HTTP side: one axum fallback handler that takes every call through the same steps
//! the real API would, in order: match a published operation and check parameters and body
//! (a mismatch is a 400 and a recorded violation), authenticate, apply injected faults,
//! run the operation, check the answer against the schema, record the call. Tasks the call
//! started are then scheduled on the runtime.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::{self, AuthHeaders, Call};
use super::control::{self, ControlReply, RequestRecord, Violation};
use super::reply::{ApiErr, Req};
use super::schema::{Schema, parse_query};
use super::state::State;
use super::{legacy, service, zone};

/// Bodies above this are refused: no call of the API needs anywhere near it.
const MAX_BODY: usize = 1 << 20;

pub(super) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub fn new(state: State) -> Shared {
        Shared {
            state: Mutex::new(state),
        }
    }

    /// A panic while holding the lock must not take every later call down with it: the
    /// state is plain data and stays usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return respond(413, &json!({"message": "Request body too large"}), None);
    };
    let (response, tasks) = process(
        &shared,
        parts.method.as_str(),
        &parts.uri,
        &parts.headers,
        &bytes,
    );
    if let Some((ids, delay)) = tasks {
        for id in ids {
            let shared = shared.clone();
            // Half the delay in `todo`, half in `doing`, so a poller can see both.
            let first = delay / 2;
            let second = delay - first;
            tokio::spawn(async move {
                tokio::time::sleep(first).await;
                shared.lock().advance(id);
                tokio::time::sleep(second).await;
                shared.lock().advance(id);
            });
        }
    }
    response
}

type Scheduled = Option<(Vec<u64>, std::time::Duration)>;

fn process(
    shared: &Shared,
    method: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> (Response, Scheduled) {
    let mut st = shared.lock();
    let path = uri.path();
    if let Some(control_path) = path.strip_prefix("/_sim/") {
        let query = uri.query().unwrap_or("");
        let reply = control::handle(&mut st, method, control_path, query, bytes);
        return (
            match reply {
                ControlReply::Json(status, v) => respond(status, &v, None),
                ControlReply::Redirect(url) => Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, url)
                    .body(Body::empty())
                    .unwrap_or_default(),
            },
            None,
        );
    }
    let query_id = format!("SIM.ext-1.{:010x}", st.next_query);
    st.next_query += 1;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let raw_query = uri.query().unwrap_or("");
    let api_path = match path.strip_prefix("/1.0") {
        Some(p) if p.starts_with('/') => p,
        _ => {
            let body = json!({"message": "Got an invalid (or empty) URL"});
            return (respond(404, &body, Some(&query_id)), None);
        }
    };
    let text = String::from_utf8_lossy(bytes);
    let mut record = RequestRecord {
        method: method.to_string(),
        path: api_path.to_string(),
        query: raw_query.to_string(),
        body: None,
        status: 0,
        operation: None,
        write: method != "GET" && !api_path.starts_with("/auth/"),
        query_id: query_id.clone(),
    };
    let violation = |st: &mut State, record: &mut RequestRecord, reason: String| {
        st.violations.push(Violation {
            method: method.to_string(),
            path: api_path.to_string(),
            reason: reason.clone(),
        });
        let body = json!({
            "class": "Client::BadRequest",
            "message": format!("Invalid request (not in the published schema: {reason})"),
        });
        finish(st, record, 400, &body)
    };

    let body = if text.trim().is_empty() {
        None
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                record.body = Some(Value::String(text.to_string()));
                let response =
                    violation(&mut st, &mut record, format!("the body is not JSON: {e}"));
                return (response.with_query_id(&query_id), None);
            }
        }
    };
    record.body = body.clone();

    let schema = Schema::global();
    let matched = match schema.find(method, api_path) {
        Ok(m) => m,
        Err(reason) => {
            return (
                violation(&mut st, &mut record, reason).with_query_id(&query_id),
                None,
            );
        }
    };
    let op = matched.op;
    record.operation = Some(op.template.clone());
    let query = parse_query(raw_query);
    if let Err(reason) = schema.check_request(&matched, &query, body.as_ref()) {
        return (
            violation(&mut st, &mut record, reason).with_query_id(&query_id),
            None,
        );
    }

    let auth_headers = AuthHeaders {
        application: header("x-ovh-application"),
        consumer: header("x-ovh-consumer"),
        timestamp: header("x-ovh-timestamp"),
        signature: header("x-ovh-signature"),
    };
    let host = header("host").unwrap_or("127.0.0.1");
    let full_url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or(path, |pq| pq.as_str())
    );
    let call = Call {
        method,
        path: api_path,
        full_url: &full_url,
        body: &text,
        no_auth: op.no_auth,
    };
    if let Err(e) = auth::authenticate(&mut st, &call, &auth_headers) {
        return (
            finish(&mut st, &mut record, e.status, &e.body).with_query_id(&query_id),
            None,
        );
    }

    let (fault, fail_tasks) = control::apply_faults(&mut st, method, api_path);
    if let Some(reply) = fault {
        return (
            finish(&mut st, &mut record, reply.status, &reply.body).with_query_id(&query_id),
            None,
        );
    }

    st.fail_tasks = fail_tasks;
    let null = Value::Null;
    let req = Req {
        method,
        template: &op.template,
        params: &matched.params,
        query: &query,
        body: body.as_ref().unwrap_or(&null),
    };
    let reply = if op.template.starts_with("/auth/") {
        auth::handle(&mut st, method, &op.template, &auth_headers, req.body, host)
    } else if op.template.starts_with("/email/domain") {
        legacy::handle(&mut st, &req)
    } else if op.template.starts_with("/domain") {
        zone::handle(&mut st, &req)
    } else {
        service::handle(&mut st, &req)
    };
    st.fail_tasks = false;
    let reply = reply.unwrap_or_else(|| Err(ApiErr::unmodelled(method, &op.template)));
    let response = match reply {
        Ok(v) => {
            if let Err(reason) = schema.check_response(op, &v) {
                st.violations.push(Violation {
                    method: method.to_string(),
                    path: api_path.to_string(),
                    reason: format!("the simulator's answer does not match the schema: {reason}"),
                });
            }
            finish(&mut st, &mut record, 200, &v)
        }
        Err(e) => finish(&mut st, &mut record, e.status, &e.body),
    };
    let new_tasks = std::mem::take(&mut st.new_tasks);
    let scheduled = (!st.settings.manual_tasks && !new_tasks.is_empty())
        .then(|| (new_tasks, st.settings.task_delay));
    (response.with_query_id(&query_id), scheduled)
}

/// Records the call with its status and builds the answer.
fn finish(st: &mut State, record: &mut RequestRecord, status: u16, body: &Value) -> Response {
    record.status = status;
    st.requests.push(record.clone());
    respond(status, body, None)
}

fn respond(status: u16, body: &Value, query_id: Option<&str>) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    if let Some(id) = query_id {
        builder = builder.header("X-Ovh-QueryID", id);
    }
    builder
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

trait WithQueryId {
    fn with_query_id(self, id: &str) -> Response;
}

impl WithQueryId for Response {
    fn with_query_id(mut self, id: &str) -> Response {
        if let Ok(v) = id.parse() {
            self.headers_mut().insert("X-Ovh-QueryID", v);
        }
        self
    }
}
