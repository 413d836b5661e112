//! The SOAP 1.1 client: one EWS endpoint, its credentials and `RequestServerVersion`; the
//! envelope around every request; retries of what Exchange asks to retry (HTTP 429/503 with
//! Retry-After, and `ErrorServerBusy` with its `BackOffMilliseconds`, as a SOAP fault or as the
//! only response message), bounded by the configured attempts; and the per-item response
//! messages (`ResponseClass`, `ResponseCode`) handed back as data, for the caller to turn into
//! a [`StoreError`] or a refusal of that one item.

use std::time::Duration;

use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreError;
use reqwest::Url;

use crate::config::{Auth, EwsConfig, VERSIONS};
use crate::http::{self, error, shown};
use crate::xml::{self, MESSAGES, Node, SOAP11, TYPES};

/// The longest wait the client sits out itself; a longer one ends the call with Throttled and
/// the wait, for the engine to schedule.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(120);

/// How much of an answer an error message quotes.
const EXCERPT: usize = 300;

/// Wraps an operation's body (`<m:FindFolder>…</m:FindFolder>`) in the envelope every
/// request carries.
pub fn envelope(version: &str, body: &str) -> String {
    envelope_in(version, None, body)
}

/// Like [`envelope`], with a `TimeZoneContext` header when `zone` (a Windows time-zone id)
/// is given: date-times without an offset in the request are then read in that zone, and
/// the answer's are given in it (Exchange 2010 SP1 on).
pub fn envelope_in(version: &str, zone: Option<&str>, body: &str) -> String {
    let context = zone
        .map(|z| {
            format!(
                "<t:TimeZoneContext><t:TimeZoneDefinition Id=\"{}\"/></t:TimeZoneContext>",
                xml::escape(z)
            )
        })
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"{SOAP11}\" xmlns:m=\"{MESSAGES}\" xmlns:t=\"{TYPES}\">\
         <soap:Header><t:RequestServerVersion Version=\"{}\"/>{context}</soap:Header>\
         <soap:Body>{body}</soap:Body></soap:Envelope>",
        xml::escape(version)
    )
}

/// How Exchange judged one item (or folder) of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Success,
    Warning,
    Error,
}

/// One `*ResponseMessage` of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub class: Class,
    /// `NoError`, `ErrorItemNotFound`, …
    pub code: String,
    /// Exchange's words, when it gave some.
    pub text: String,
    /// The whole message element (its Items, Folders, SyncState, …).
    pub node: Node,
}

impl Message {
    pub fn is_success(&self) -> bool {
        self.class != Class::Error
    }

    /// The failure of a request about one named thing (`what`: "CreateItem of contact
    /// alice/xyz in folder Contacts"), as a StoreError of the kind its code means.
    pub fn to_error(&self, what: &str) -> StoreError {
        let mut message = format!("{what}: Exchange answered {}", self.code);
        if !self.text.is_empty() {
            message.push_str(&format!(" ({})", self.text));
        }
        StoreError {
            kind: code_kind(&self.code),
            message,
            retry_after: back_off(&self.node),
        }
    }
}

/// What a response code means for the run.
pub fn code_kind(code: &str) -> ErrorKind {
    match code {
        "ErrorServerBusy" | "ErrorTooManyObjectsOpened" | "ErrorExceededConnectionCount" => {
            ErrorKind::Throttled
        }
        "ErrorAccessDenied"
        | "ErrorNonExistentMailbox"
        | "ErrorImpersonateUserDenied"
        | "ErrorImpersonationDenied"
        | "ErrorInvalidLicense" => ErrorKind::Auth,
        "ErrorQuotaExceeded" | "ErrorMessageSizeExceeded" | "ErrorFolderSaveFailed" => {
            ErrorKind::Quota
        }
        "ErrorInternalServerTransientError"
        | "ErrorMailboxMoveInProgress"
        | "ErrorTimeoutExpired" => ErrorKind::Network,
        // The server refuses a request we built: ours to fix, not the user's.
        "ErrorSchemaValidation" | "ErrorInvalidRequest" | "ErrorInvalidServerVersion" => {
            ErrorKind::Bug
        }
        _ => ErrorKind::Refused,
    }
}

/// The HTTP client of one mailbox's EWS endpoint.
pub struct Client {
    transport: http::Transport,
    url: Url,
    auth: Auth,
    version: String,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("auth", &self.auth)
            .field("version", &self.version)
            .finish()
    }
}

enum Failure {
    /// Worth another attempt, after this long when the server said.
    Transient(String, Option<Duration>),
    Final(StoreError),
}

impl Client {
    /// A client for `config.url` (which must be set: Autodiscover runs before).
    pub fn new(config: &EwsConfig) -> Result<Client, StoreError> {
        if !VERSIONS.contains(&config.version.as_str()) {
            return Err(error(
                ErrorKind::Config,
                format!(
                    "`ews.version` {:?} is not an Exchange version this client speaks: use one \
                     of {}",
                    config.version,
                    VERSIONS.join(", ")
                ),
            ));
        }
        Ok(Client {
            transport: http::Transport::new(config)?,
            url: http::check_url(&config.url)?,
            auth: config.auth.clone(),
            version: config.version.clone(),
            attempts: config.attempts.max(1),
            backoff: config.backoff,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends one operation (`body` is its element, `m:` and `t:` prefixed) and returns its
    /// response messages in request order. Throttling and transient failures are retried;
    /// a per-item error is returned as a message, not as an Err.
    pub async fn call(&self, operation: &str, body: &str) -> Result<Vec<Message>, StoreError> {
        self.call_in(operation, None, body).await
    }

    /// Like [`Client::call`], in a time-zone context (a Windows id; see [`envelope_in`]).
    pub async fn call_in(
        &self,
        operation: &str,
        zone: Option<&str>,
        body: &str,
    ) -> Result<Vec<Message>, StoreError> {
        let what = format!("EWS {operation} at {}", shown(&self.url));
        let request = envelope_in(&self.version, zone, body);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(operation, &request).await {
                Ok((status, headers, text)) => match self.judge(&what, status, &headers, &text) {
                    Ok(messages) => return Ok(messages),
                    Err(failure) => failure,
                },
                Err(e) => {
                    if let Some(reason) = e.tls {
                        return Err(error(
                            ErrorKind::Tls,
                            format!(
                                "{what}: TLS failed: {reason} (trust the server's CA with \
                                 `ews.ca_file`, or, only on a trusted network, \
                                 `ews.insecure_skip_verify`)"
                            ),
                        ));
                    }
                    Failure::Transient(e.message, None)
                }
            };
            let (reason, asked) = match failure {
                Failure::Final(e) => return Err(e),
                Failure::Transient(reason, asked) => (reason, asked),
            };
            let wait = asked.unwrap_or_else(|| self.delay(attempt));
            if attempt >= self.attempts || wait > MAX_INLINE_WAIT {
                let tries = if attempt > 1 {
                    format!(" (after {attempt} attempts)")
                } else {
                    String::new()
                };
                return Err(StoreError {
                    kind: if asked.is_some() {
                        ErrorKind::Throttled
                    } else {
                        ErrorKind::Network
                    },
                    message: format!("{what}: {reason}{tries}"),
                    retry_after: asked,
                });
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

    async fn attempt(
        &self,
        operation: &str,
        request: &str,
    ) -> Result<(u16, reqwest::header::HeaderMap, String), http::SendError> {
        let headers = [
            ("content-type", "text/xml; charset=utf-8".to_string()),
            ("soapaction", format!("\"{MESSAGES}/{operation}\"")),
        ];
        let answer = self
            .transport
            .post(&self.url, &headers, request.to_string())
            .await?;
        Ok((answer.status, answer.headers, answer.text))
    }

    /// What an answer means: the messages, a failure worth retrying, or a final one.
    fn judge(
        &self,
        what: &str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        text: &str,
    ) -> Result<Vec<Message>, Failure> {
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match status {
            200 => {}
            401 | 403 => {
                let who = match &self.auth {
                    Auth::Basic { login, .. } if self.transport.uses_ntlm() => {
                        format!("the login {login:?} (NTLM)")
                    }
                    Auth::Basic { login, .. } => format!("the login {login:?}"),
                    Auth::Bearer(_) => "the OAuth token".into(),
                    Auth::None => "no credentials".into(),
                };
                let fix = if self.transport.uses_ntlm() {
                    "check the account's password and its login (`user@domain`, or \
                     `DOMAIN\\user` for an on-premises domain account), and that EWS is \
                     enabled for this mailbox"
                } else {
                    "check the account's password or token, and that EWS is enabled for this \
                     mailbox (a server that takes NTLM only: `ews.auth: ntlm`)"
                };
                return Err(Failure::Final(error(
                    ErrorKind::Auth,
                    format!("{what}: the server refused {who} ({status}): {fix}"),
                )));
            }
            429 | 502 | 503 | 504 => {
                return Err(Failure::Transient(
                    format!("the server answered {status}"),
                    retry_after,
                ));
            }
            _ => {}
        }
        let tree = match xml::parse(text) {
            Ok(tree) => tree,
            Err(why) if status == 200 => {
                return Err(Failure::Final(error(
                    ErrorKind::Network,
                    format!("{what}: the answer is not SOAP ({why}): {}", excerpt(text)),
                )));
            }
            // A 500 page that is not a fault: a server in trouble.
            Err(_) => {
                return Err(Failure::Transient(
                    format!("the server answered {status}: {}", excerpt(text)),
                    retry_after,
                ));
            }
        };
        let body = tree.child("Body").ok_or_else(|| {
            Failure::Final(error(
                ErrorKind::Network,
                format!("{what}: the answer has no SOAP body: {}", excerpt(text)),
            ))
        })?;
        if let Some(fault) = body.child("Fault") {
            let code = fault
                .find("ResponseCode")
                .map(|c| c.text.trim().to_string())
                .unwrap_or_default();
            let words = fault.text_of("faultstring").unwrap_or_default().trim();
            if code == "ErrorServerBusy" {
                return Err(Failure::Transient(
                    format!("Exchange is busy (ErrorServerBusy): {words}"),
                    back_off(fault).or(retry_after),
                ));
            }
            let kind = if code.is_empty() {
                ErrorKind::Network
            } else {
                code_kind(&code)
            };
            let code = if code.is_empty() {
                String::new()
            } else {
                format!(" {code}")
            };
            return Err(Failure::Final(error(
                kind,
                format!("{what}: SOAP fault{code}: {words}"),
            )));
        }
        if status != 200 {
            return Err(Failure::Transient(
                format!("the server answered {status}: {}", excerpt(text)),
                retry_after,
            ));
        }
        let messages = body
            .children
            .first()
            .and_then(|r| match r.child("ResponseMessages") {
                Some(list) => Some(list.children.iter().map(message).collect::<Vec<_>>()),
                // GetInboxRules and UpdateInboxRules answer with one message of their own,
                // not a list.
                None if r.attr("ResponseClass").is_some() => Some(vec![message(r)]),
                None => None,
            })
            .ok_or_else(|| {
                Failure::Final(error(
                    ErrorKind::Network,
                    format!(
                        "{what}: the answer holds no response messages: {}",
                        excerpt(text)
                    ),
                ))
            })?;
        if let [only] = messages.as_slice()
            && only.code == "ErrorServerBusy"
        {
            return Err(Failure::Transient(
                format!("Exchange is busy (ErrorServerBusy): {}", only.text),
                back_off(&only.node).or(retry_after),
            ));
        }
        Ok(messages)
    }
}

fn message(node: &Node) -> Message {
    let class = match node.attr("ResponseClass") {
        Some("Success") => Class::Success,
        Some("Warning") => Class::Warning,
        _ => Class::Error,
    };
    Message {
        class,
        code: node
            .text_of("ResponseCode")
            .unwrap_or(if class == Class::Success {
                "NoError"
            } else {
                "ErrorUnknown"
            })
            .trim()
            .to_string(),
        text: node
            .text_of("MessageText")
            .unwrap_or_default()
            .trim()
            .to_string(),
        node: node.clone(),
    }
}

/// The `BackOffMilliseconds` of an ErrorServerBusy (in its MessageXml).
pub fn back_off(node: &Node) -> Option<Duration> {
    fn search(node: &Node) -> Option<Duration> {
        if node.name == "Value" && node.attr("Name") == Some("BackOffMilliseconds") {
            return node.text.trim().parse().ok().map(Duration::from_millis);
        }
        node.children.iter().find_map(search)
    }
    search(node)
}

/// Retry-After in seconds, as Exchange and its front ends send it (a date is ignored: the
/// backoff applies).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests;
