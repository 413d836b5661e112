//! What tests see of the simulator and how they steer it: the request log, schema
//! violations, injected faults, and the unsigned control API under `/_sim/` that exposes
//! the same to a simulator running as a separate process (the `ovh-sim` binary).
//!
//! | call | effect |
//! |---|---|
//! | `GET /_sim/requests`, `DELETE /_sim/requests` | every API call received (and clear) |
//! | `GET /_sim/writes` | the calls that were writes |
//! | `GET /_sim/violations`, `DELETE /_sim/violations` | calls outside the published schema |
//! | `GET /_sim/faults`, `POST /_sim/faults`, `DELETE /_sim/faults` | fault rules (one or a list) |
//! | `POST /_sim/tasks/advance` | move every unfinished task one step (`manual_tasks`) |
//! | `GET /_sim/world` | the current world, in the world file's shape |
//! | `GET /_sim/validate?credentialToken=…` | the `validationUrl` of a new consumer key |
//! | `GET /_sim/dns` | the zones' two name servers: `[{name, addr, held}]` |
//! | `POST /_sim/dns/hold?server=N`, `POST /_sim/dns/release?server=N` | hold name server N (0 or 1) at the zones it answers now, or let it answer the last refresh again |

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::state::State;

/// One API call as received, with the answer's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    /// Relative to the API root (`/email/pro/…`), without the query string.
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// The JSON body (a string if it was not JSON), `None` when there was none.
    pub body: Option<Value>,
    pub status: u16,
    /// The published path template the call matched, e.g. `/email/pro/{service}/account`.
    pub operation: Option<String>,
    /// `POST`, `PUT` or `DELETE` outside `/auth`: a call that may change the platform.
    pub write: bool,
    /// The `X-Ovh-QueryID` it was answered with.
    pub query_id: String,
}

/// A call the published schema does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub method: String,
    pub path: String,
    pub reason: String,
}

/// A rule that changes how matching calls are answered. `path` is relative to the API root
/// and `*` matches any run of characters (`/email/pro/*/account/*/alias`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Any method when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub path: String,
    /// How many calls it applies to; every one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Answer this instead of handling the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<FaultReply>,
    /// Handle the call, but make the tasks it starts end in `error` without effect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_task: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultReply {
    pub status: u16,
    #[serde(default)]
    pub body: Value,
}

impl Fault {
    /// Answer matching calls with `status` and `body`.
    pub fn reply(method: &str, path: &str, status: u16, body: Value) -> Fault {
        Fault {
            method: Some(method.to_ascii_uppercase()),
            path: path.to_string(),
            times: None,
            reply: Some(FaultReply { status, body }),
            fail_task: false,
        }
    }

    /// Let matching calls through but make their tasks fail.
    pub fn fail_task(method: &str, path: &str) -> Fault {
        Fault {
            method: Some(method.to_ascii_uppercase()),
            path: path.to_string(),
            times: None,
            reply: None,
            fail_task: true,
        }
    }

    /// Apply to the next `n` matching calls only.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    fn check(&self) -> Result<(), String> {
        match (&self.reply, self.fail_task) {
            (Some(_), true) => Err("a fault either replies or fails tasks, not both".into()),
            (None, false) => Err("a fault needs `reply` or `fail_task: true`".into()),
            (Some(r), false) if !(100..=599).contains(&r.status) => {
                Err(format!("{} is not an HTTP status", r.status))
            }
            _ => Ok(()),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times != Some(0)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && glob(&self.path, path)
    }
}

/// What the faults say about a call: a reply that replaces the handling, and whether the
/// tasks it starts must fail. Each fault that applies uses up one of its `times`.
pub(super) fn apply_faults(st: &mut State, method: &str, path: &str) -> (Option<FaultReply>, bool) {
    let mut reply = None;
    let mut fail = false;
    for f in st.faults.iter_mut().filter(|f| f.matches(method, path)) {
        let used = match (&f.reply, reply.is_some()) {
            (Some(r), false) => {
                reply = Some(r.clone());
                true
            }
            (None, _) if f.fail_task && !fail => {
                fail = true;
                true
            }
            _ => false,
        };
        if used && let Some(n) = f.times.as_mut() {
            *n -= 1;
        }
    }
    if reply.is_some() {
        // A replaced call starts no task, so it must not use up a task fault.
        fail = false;
    }
    (reply, fail)
}

/// `*` matches any run of characters, `/` included, as in OVHcloud access rules.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

pub(super) enum ControlReply {
    Json(u16, Value),
    Redirect(String),
}

/// A call under `/_sim/`. `path` has the prefix removed.
pub(super) fn handle(
    st: &mut State,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> ControlReply {
    use ControlReply::Json;
    let parse = |body: &[u8]| serde_json::from_slice::<Value>(body).map_err(|e| e.to_string());
    match (method, path) {
        ("GET", "requests") => Json(200, json!(st.requests)),
        ("DELETE", "requests") => {
            st.requests.clear();
            Json(200, Value::Null)
        }
        ("GET", "writes") => {
            let writes: Vec<&RequestRecord> = st.requests.iter().filter(|r| r.write).collect();
            Json(200, json!(writes))
        }
        ("GET", "violations") => Json(200, json!(st.violations)),
        ("DELETE", "violations") => {
            st.violations.clear();
            Json(200, Value::Null)
        }
        ("GET", "faults") => Json(200, json!(st.faults)),
        ("DELETE", "faults") => {
            st.faults.clear();
            Json(200, Value::Null)
        }
        ("POST", "faults") => {
            let faults = parse(body).and_then(|v| match v {
                Value::Array(_) => {
                    serde_json::from_value::<Vec<Fault>>(v).map_err(|e| e.to_string())
                }
                v => serde_json::from_value::<Fault>(v)
                    .map(|f| vec![f])
                    .map_err(|e| e.to_string()),
            });
            match faults.and_then(|fs| fs.iter().try_for_each(Fault::check).map(|()| fs)) {
                Ok(fs) => {
                    let n = fs.len();
                    st.faults.extend(fs);
                    Json(200, json!({"added": n}))
                }
                Err(e) => Json(400, json!({"message": format!("invalid fault: {e}")})),
            }
        }
        ("POST", "tasks/advance") => Json(200, json!({"advanced": st.advance_all()})),
        ("GET", "world") => Json(200, json!(st.to_world())),
        ("GET", "dns") => Json(
            200,
            json!(
                st.dns_servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| json!({
                        "name": s.name,
                        "addr": s.addr.to_string(),
                        "held": st.dns_held.get(i).is_some_and(Option::is_some),
                    }))
                    .collect::<Vec<_>>()
            ),
        ),
        ("POST", "dns/hold") | ("POST", "dns/release") => {
            let server = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("server="))
                .and_then(|n| n.parse::<usize>().ok());
            let hold = path == "dns/hold";
            match server.map(|n| st.hold_name_server(n, hold)) {
                Some(Ok(())) => Json(200, Value::Null),
                Some(Err(e)) => Json(400, json!({"message": e})),
                None => Json(
                    400,
                    json!({"message": "say which name server: ?server=0 or 1"}),
                ),
            }
        }
        ("GET", "validate") => {
            let token = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("credentialToken="))
                .unwrap_or("");
            match st.cks.iter_mut().find(|c| c.token == token && !c.expired) {
                Some(ck) => {
                    ck.validated = true;
                    match ck.redirection.clone() {
                        Some(url) => ControlReply::Redirect(url),
                        None => Json(200, json!({"state": "validated"})),
                    }
                }
                None => Json(404, json!({"message": "unknown credential token"})),
            }
        }
        _ => Json(
            404,
            json!({"message": format!("no simulator control call {method} /_sim/{path}")}),
        ),
    }
}

/// Adds faults from Rust; refuses a fault that neither replies nor fails tasks.
pub(super) fn add_fault(st: &mut State, fault: Fault) -> Result<(), String> {
    fault.check()?;
    st.faults.push(fault);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_access_rules() {
        assert!(glob("/*", "/email/pro/s/account"));
        assert!(glob("/email/pro/*", "/email/pro/s/account/a@b/alias"));
        assert!(glob(
            "/email/pro/*/account/*/alias",
            "/email/pro/s/account/a@b/alias"
        ));
        assert!(!glob(
            "/email/pro/*/account/*/alias",
            "/email/pro/s/account/a@b/sendAs"
        ));
        assert!(glob("/auth/time", "/auth/time"));
        assert!(!glob("/auth/time", "/auth/time2"));
        assert!(!glob("/email/*x", "/email/"));
        assert!(glob("*", ""));
    }

    #[test]
    fn faults_need_exactly_one_effect() {
        let mut f = Fault::fail_task("post", "/x");
        f.check().unwrap();
        assert_eq!(f.method.as_deref(), Some("POST"));
        f.reply = Some(FaultReply {
            status: 500,
            body: Value::Null,
        });
        assert!(f.check().is_err());
        f.fail_task = false;
        f.check().unwrap();
        f.reply = None;
        assert!(f.check().is_err());
    }

    #[test]
    fn fault_json_shape() {
        let f: Fault = serde_json::from_value(json!({
            "method": "POST", "path": "/email/*", "times": 1,
            "reply": {"status": 503, "body": {"message": "down"}}
        }))
        .unwrap();
        assert_eq!(
            f,
            Fault::reply("POST", "/email/*", 503, json!({"message": "down"})).times(1)
        );
    }
}
