//! Authentication as the real API does it: a known application key on every call, and on
//! signed calls a validated consumer key, a fresh timestamp, a signature over the exact URL
//! and body the client sent, and access rules covering the call. Also the `/auth` calls themselves: server time,
//! asking for a consumer key, reading and ending the current one.

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::control::glob;
use super::reply::{ApiErr, Reply};
use super::state::{Ck, State};
use super::world::AccessRule;

/// How far a signed call's timestamp may be from the server clock. (inferred: the real
/// window is not published.)
const MAX_SKEW_SECS: u64 = 180;

/// The `X-Ovh-*` request headers.
pub(super) struct AuthHeaders<'a> {
    pub application: Option<&'a str>,
    pub consumer: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

pub(super) struct Call<'a> {
    pub method: &'a str,
    /// Relative to the API root, without the query string.
    pub path: &'a str,
    /// What the client signed: scheme, the `Host` it sent, `/1.0`, path and query.
    pub full_url: &'a str,
    pub body: &'a str,
    pub no_auth: bool,
}

/// Checks a call's credentials; `Ok` lets it through.
pub(super) fn authenticate(
    st: &mut State,
    call: &Call<'_>,
    h: &AuthHeaders<'_>,
) -> Result<(), ApiErr> {
    // The clock is public: clients read it before they can sign anything.
    if call.path == "/auth/time" {
        return Ok(());
    }
    let Some(app) = h
        .application
        .and_then(|k| st.apps.iter().find(|a| a.key == k))
    else {
        return Err(ApiErr::auth(403, "INVALID_KEY", "Invalid application key"));
    };
    if call.no_auth {
        return Ok(());
    }
    let (app_key, app_secret) = (app.key.clone(), app.secret.clone());
    let Some(consumer) = h.consumer else {
        return Err(ApiErr::auth(403, "NOT_CREDENTIAL", "You must login first"));
    };
    let now = st.now();
    let now_str = st.now_str();
    let Some(ck) = st
        .cks
        .iter_mut()
        .find(|c| c.key == consumer && c.app == app_key && !c.expired)
    else {
        return Err(ApiErr::auth(
            403,
            "INVALID_CREDENTIAL",
            "This credential does not exist",
        ));
    };
    if !ck.validated {
        return Err(ApiErr::auth(
            403,
            "NOT_CREDENTIAL",
            "This credential is not valid",
        ));
    }
    let Some(ts) = h.timestamp.and_then(|t| t.trim().parse::<i64>().ok()) else {
        return Err(ApiErr::auth(400, "INVALID_SIGNATURE", "Invalid timestamp"));
    };
    if ts.abs_diff(now.timestamp()) > MAX_SKEW_SECS {
        return Err(ApiErr::auth(400, "QUERY_TIME_OUT", "Query out of time"));
    }
    let expected = expected_signature(
        &app_secret,
        consumer,
        call.method,
        call.full_url,
        call.body,
        &ts.to_string(),
    );
    if h.signature != Some(expected.as_str()) {
        return Err(ApiErr::auth(400, "INVALID_SIGNATURE", "Invalid signature"));
    }
    // (inferred) A key may always read and end itself, whatever its rules.
    let own = call.path == "/auth/currentCredential" || call.path == "/auth/logout";
    if !own && !granted(&ck.rules, call.method, call.path) {
        return Err(ApiErr::auth(
            403,
            "NOT_GRANTED_CALL",
            "This call has not been granted",
        ));
    }
    ck.last_use = Some(now_str);
    Ok(())
}

/// The signature the server expects, from OVHcloud's published description:
/// `"$1$"` + hex SHA-1 of `AS+"+"+CK+"+"+METHOD+"+"+URL+"+"+BODY+"+"+TIMESTAMP`. Written
/// here from that description rather than taken from the client, so that a client bug in
/// signing shows up as a refused call instead of agreeing with itself.
fn expected_signature(
    app_secret: &str,
    consumer_key: &str,
    method: &str,
    full_url: &str,
    body: &str,
    timestamp: &str,
) -> String {
    let joined = [app_secret, consumer_key, method, full_url, body, timestamp].join("+");
    let digest = Sha1::digest(joined.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("$1${hex}")
}

fn granted(rules: &[AccessRule], method: &str, path: &str) -> bool {
    rules
        .iter()
        .any(|r| r.method.eq_ignore_ascii_case(method) && glob(&r.path, path))
}

/// The `/auth/…` operations. `host` is the `Host` the client used, for the validation URL.
pub(super) fn handle(
    st: &mut State,
    method: &str,
    template: &str,
    h: &AuthHeaders<'_>,
    body: &Value,
    host: &str,
) -> Option<Reply> {
    Some(match (method, template) {
        ("GET", "/auth/time") => Ok(json!(st.now().timestamp())),
        ("POST", "/auth/credential") => {
            let Some(app) = h.application.map(str::to_string) else {
                return Some(Err(ApiErr::auth(
                    403,
                    "INVALID_KEY",
                    "Invalid application key",
                )));
            };
            let rules: Vec<AccessRule> = body
                .get("accessRules")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| AccessRule {
                            method: r["method"].as_str().unwrap_or_default().to_string(),
                            path: r["path"].as_str().unwrap_or_default().to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let key = random_key(st);
            let token = random_key(st);
            let id = st.id();
            let created = st.now_str();
            st.cks.push(Ck {
                id,
                key: key.clone(),
                token: token.clone(),
                app,
                rules,
                validated: false,
                expired: false,
                redirection: body
                    .get("redirection")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                created,
                last_use: None,
            });
            Ok(json!({
                "consumerKey": key,
                "state": "pendingValidation",
                "validationUrl": format!("http://{host}/_sim/validate?credentialToken={token}"),
            }))
        }
        ("GET", "/auth/currentCredential") => match current(st, h) {
            Some(ck) => {
                let app_id = st.apps.iter().find(|a| a.key == ck.app).map_or(0, |a| a.id);
                Ok(json!({
                    "allowedIPs": null,
                    "applicationId": app_id,
                    "creation": ck.created,
                    "credentialId": ck.id,
                    "expiration": null,
                    "lastUse": ck.last_use,
                    "ovhSupport": false,
                    "rules": ck.rules.iter().map(|r| json!({"method": r.method, "path": r.path})).collect::<Vec<_>>(),
                    "status": if ck.validated { "validated" } else { "pendingValidation" },
                }))
            }
            None => Err(ApiErr::auth(
                403,
                "INVALID_CREDENTIAL",
                "This credential does not exist",
            )),
        },
        ("POST", "/auth/logout") => {
            if let Some(key) = h.consumer
                && let Some(ck) = st.cks.iter_mut().find(|c| c.key == key)
            {
                ck.expired = true;
            }
            Ok(Value::Null)
        }
        _ => return None,
    })
}

fn current<'a>(st: &'a State, h: &AuthHeaders<'_>) -> Option<&'a Ck> {
    let key = h.consumer?;
    st.cks.iter().find(|c| c.key == key && !c.expired)
}

fn random_key(st: &mut State) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| ALPHABET[(st.random() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::expected_signature;

    // The vectors published with OVHcloud's description of the signature.
    const AS: &str = "9ufkBmLaTQ9nz5yMUlg79taH0GNnzDjk";
    const CK: &str = "5mBuy6SUQcRw2ZUxg0cG68BoDKpED4KY";
    const URL: &str = "https://eu.api.ovh.com/1.0/auth";
    const TS: &str = "1457018875";
    const BODY: &str = r#"{"a":"b","c":"d"}"#;

    #[test]
    fn published_vectors() {
        for (method, body, expected) in [
            ("GET", "", "$1$e9556054b6309771395efa467c22e627407461ad"),
            ("POST", BODY, "$1$ec2fb5c7a81f64723c77d2e5b609ae6f58a84fc1"),
            ("PUT", BODY, "$1$8a75a9e7c8e7296c9dbeda6a2a735eb6bd58ec4b"),
            ("DELETE", "", "$1$a1eecd00b3b02b6cf5708b84b9ff42059a950d85"),
        ] {
            assert_eq!(
                expected_signature(AS, CK, method, URL, body, TS),
                expected,
                "{method}"
            );
        }
    }
}
