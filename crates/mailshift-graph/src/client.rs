//! The HTTP side of the Graph client: one mailbox's API root, its Bearer token, TLS trust as
//! the DAV client's, `Prefer: IdType="ImmutableId"` on every request (ids then survive moves
//! between folders), paging by `@odata.nextLink`, and Graph's throttling obeyed: a 429 or 503
//! is retried after its Retry-After (a bounded number of times), and a semaphore keeps at most
//! [`crate::GraphConfig::max_in_flight`] requests in flight for the mailbox (Graph's limit is 4
//! per app per mailbox; a fifth is answered 429).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailshift_dav::dav::{DavConfig, parse_retry_after, tls_config};
use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreError;
use reqwest::{Method, Url};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::{GraphConfig, TokenSource};

/// The longest Retry-After waited out here; a longer one ends the call with Throttled and the
/// wait, for the engine to schedule.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(120);

/// How many `@odata.nextLink` pages one listing follows.
const MAX_PAGES: usize = 10_000;

/// How much of an answer's body an error message quotes.
const EXCERPT: usize = 300;

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Graph's error, `code: message`, or the start of the body.
    pub fn reason(&self) -> String {
        let json = self.json();
        let error = &json["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => excerpt(&self.body),
        }
    }
}

/// The body's first words, on one line.
fn excerpt(body: &[u8]) -> String {
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

/// A request: method, a path under the API root (`users/x/contacts`) or a full URL that Graph
/// gave (a next or delta link, checked to be under the root), headers and a JSON body.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub target: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// A body that is not JSON (a photo), with its own content-type header.
    pub raw: Option<Vec<u8>>,
}

impl Call {
    pub fn new(method: Method, target: impl Into<String>) -> Call {
        Call {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: None,
            raw: None,
        }
    }

    pub fn get(target: impl Into<String>) -> Call {
        Call::new(Method::GET, target)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    pub fn bytes(mut self, body: Vec<u8>) -> Call {
        self.raw = Some(body);
        self
    }
}

/// The Graph client of one mailbox.
pub struct GraphClient {
    http: reqwest::Client,
    root: Url,
    tokens: Arc<dyn TokenSource>,
    attempts: u32,
    backoff: Duration,
    gate: Arc<Semaphore>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("root", &self.root.as_str())
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    pub fn new(config: &GraphConfig) -> Result<GraphClient, StoreError> {
        let root = check_url(&config.url)?;
        let tls = tls_config(&DavConfig {
            url: config.url.clone(),
            ca_file: config.ca_file.clone(),
            insecure_skip_verify: config.insecure_skip_verify,
            ..DavConfig::default()
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            // Graph answers with JSON; a redirect would carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                error(
                    ErrorKind::Config,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(GraphClient {
            http,
            root,
            tokens: config.tokens.clone(),
            attempts: config.attempts.max(1),
            backoff: config.backoff,
            gate: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        })
    }

    /// The API root, for messages.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of a call's target: a path under the root, or a link Graph gave, which must
    /// stay under the root (the token goes with it).
    pub fn url_of(&self, target: &str) -> Result<Url, StoreError> {
        if target.starts_with("https://") || target.starts_with("http://") {
            let url = Url::parse(target).map_err(|e| {
                error(
                    ErrorKind::Refused,
                    format!("Graph gave an invalid link {target:?}: {e}"),
                )
            })?;
            if url.origin() != self.root.origin() || !url.path().starts_with(self.root.path()) {
                return Err(error(
                    ErrorKind::Refused,
                    format!(
                        "Graph gave a link outside {} ({}): not followed, the token would go \
                         with it",
                        self.root,
                        url.origin().ascii_serialization()
                    ),
                ));
            }
            return Ok(url);
        }
        let text = format!(
            "{}/{}",
            self.root.as_str().trim_end_matches('/'),
            target.trim_start_matches('/')
        );
        Url::parse(&text).map_err(|e| {
            error(
                ErrorKind::Bug,
                format!("cannot make a URL of {text:?}: {e}"),
            )
        })
    }

    /// Sends a call, retrying throttling (429, 503 with its Retry-After) and transient
    /// failures a bounded number of times; any other answer is returned as is (the caller
    /// decides what a 404 or a 412 means).
    pub async fn send(&self, call: &Call) -> Result<Answer, StoreError> {
        let url = self.url_of(&call.target)?;
        let what = format!("{} {}", call.method, shown(&url));
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            let token = self.tokens.token().await?;
            let outcome = {
                // Held for the request only, never across a wait: a throttled call does not
                // keep the others out.
                let _permit = self
                    .gate
                    .acquire()
                    .await
                    .map_err(|_| error(ErrorKind::Bug, "the request gate was closed"))?;
                self.attempt(call, url.clone(), &token).await
            };
            if let Ok((answer, _)) = &outcome
                && answer.status == 401
                && !renewed
            {
                // Expired or revoked: the source drops it, and one more try has a new one.
                self.tokens.refused(&token);
                renewed = true;
                continue;
            }
            let (failure, retry_after) = match outcome {
                Ok((answer, retry_after)) => match answer.status {
                    429 | 500 | 502 | 503 | 504 => (
                        format!("Graph answered {}: {}", answer.status, answer.reason()),
                        {
                            if answer.status == 429 || answer.status == 503 {
                                Some(retry_after.unwrap_or_else(|| self.delay(attempt)))
                            } else {
                                retry_after
                            }
                        },
                    ),
                    _ => return Ok(answer),
                },
                Err(e) => {
                    if let Some(reason) = tls_failure(&e) {
                        return Err(error(
                            ErrorKind::Tls,
                            format!(
                                "{what}: TLS failed: {reason} (trust the server's CA with \
                                 `graph.ca_file`, or, only on a trusted network, \
                                 `graph.insecure_skip_verify`)"
                            ),
                        ));
                    }
                    (chain(&e), None)
                }
            };
            let throttled = retry_after.is_some();
            let wait = retry_after.unwrap_or_else(|| self.delay(attempt));
            if attempt >= self.attempts || wait > MAX_INLINE_WAIT {
                let tries = if attempt == 1 {
                    String::new()
                } else {
                    format!(" (after {attempt} attempts)")
                };
                return Err(StoreError {
                    kind: if throttled {
                        ErrorKind::Throttled
                    } else {
                        ErrorKind::Network
                    },
                    message: format!("{what}: {failure}{tries}"),
                    retry_after,
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
        call: &Call,
        url: Url,
        token: &mailshift_dav::dav::Secret,
    ) -> Result<(Answer, Option<Duration>), reqwest::Error> {
        let mut builder = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token.expose())
            .header("prefer", r#"IdType="ImmutableId""#)
            .header("accept", "application/json");
        for (name, value) in &call.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &call.body {
            builder = builder
                .header("content-type", "application/json")
                .body(body.to_string());
        } else if let Some(raw) = &call.raw {
            builder = builder.body(raw.clone());
        }
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after =
            header("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let content_type = header("content-type");
        let body = response.bytes().await?.to_vec();
        Ok((
            Answer {
                status,
                body,
                content_type,
            },
            retry_after,
        ))
    }

    /// Sends a call and reads its JSON; an unexpected status is an error naming `what`.
    pub async fn json(&self, call: &Call, what: &str) -> Result<Value, StoreError> {
        let answer = self.send(call).await?;
        if !answer.is_success() {
            return Err(unexpected(what, &answer));
        }
        Ok(answer.json())
    }

    /// Every item of a collection, following `@odata.nextLink`; the `@odata.deltaLink` of the
    /// last page too, for a delta query.
    pub async fn list_all(
        &self,
        target: &str,
        what: &str,
    ) -> Result<(Vec<Value>, Option<String>), StoreError> {
        let mut items = Vec::new();
        let mut next = target.to_string();
        for _ in 0..MAX_PAGES {
            let page = self.json(&Call::get(&next), what).await?;
            if let Some(values) = page["value"].as_array() {
                items.extend(values.iter().cloned());
            }
            match page["@odata.nextLink"].as_str() {
                Some(link) => next = link.to_string(),
                None => {
                    let delta = page["@odata.deltaLink"].as_str().map(str::to_string);
                    return Ok((items, delta));
                }
            }
        }
        Err(error(
            ErrorKind::Refused,
            format!("{what}: more than {MAX_PAGES} pages; Graph's paging does not end"),
        ))
    }
}

impl GraphClient {
    /// A delta round from `start` (a collection's delta function, or the deltaLink of an
    /// earlier round) through its pages: the items (removals carry `@removed`) and the new
    /// deltaLink. `None` when Graph no longer knows the state (410: `syncStateNotFound`,
    /// `resyncRequired`), or the link is not of this service (a plan whose URL changed): the
    /// caller starts over with a listing.
    pub async fn delta_round(
        &self,
        start: &str,
        what: &str,
    ) -> Result<Option<(Vec<Value>, String)>, StoreError> {
        if self.url_of(start).is_err() {
            return Ok(None);
        }
        let mut items = Vec::new();
        let mut next = start.to_string();
        for _ in 0..MAX_PAGES {
            let answer = self.send(&Call::get(&next)).await?;
            if answer.status == 410 {
                return Ok(None);
            }
            if !answer.is_success() {
                return Err(unexpected(what, &answer));
            }
            let page = answer.json();
            if let Some(values) = page["value"].as_array() {
                items.extend(values.iter().cloned());
            }
            match (
                page["@odata.nextLink"].as_str(),
                page["@odata.deltaLink"].as_str(),
            ) {
                (Some(link), _) => next = link.to_string(),
                (None, Some(link)) => return Ok(Some((items, link.to_string()))),
                (None, None) => {
                    return Err(error(
                        ErrorKind::Refused,
                        format!("{what}: Graph ended a delta round without a deltaLink"),
                    ));
                }
            }
        }
        Err(error(
            ErrorKind::Refused,
            format!("{what}: more than {MAX_PAGES} pages; Graph's paging does not end"),
        ))
    }
}

/// The StoreError for an answer the caller did not expect, by its status.
pub fn unexpected(what: &str, answer: &Answer) -> StoreError {
    let kind = match answer.status {
        401 | 403 => ErrorKind::Auth,
        429 => ErrorKind::Throttled,
        507 => ErrorKind::Quota,
        s if (500..600).contains(&s) => ErrorKind::Network,
        _ => ErrorKind::Refused,
    };
    let hint = match answer.status {
        401 => " (the access token was refused: check the account's oauth2 settings)",
        403 => {
            " (the app lacks a permission: Contacts.ReadWrite, Calendars.ReadWrite and \
             Tasks.ReadWrite(.All) must be granted to it)"
        }
        _ => "",
    };
    error(
        kind,
        format!(
            "{what}: Graph answered {}: {}{hint}",
            answer.status,
            answer.reason()
        ),
    )
}

/// Checks the plan's URL as the DAV client does: https, no credentials in it, plain http
/// only to this machine.
fn check_url(text: &str) -> Result<Url, StoreError> {
    mailshift_dav::dav::check_service_url(text, "platform's `graph.url`")
}

/// A URL as shown in messages: without its query (a delta link's state is long and says
/// nothing to a reader).
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn tls_failure(e: &reqwest::Error) -> Option<String> {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        source = s.source();
    }
    None
}

/// An error and its sources on one line.
fn chain(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    // reqwest's message names the URL, which the caller's message names already (with its
    // query: a delta link's state).
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message
            .replace(&format!(" for url ({url})"), "")
            .replace(&format!(" ({url})"), "");
    }
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

#[cfg(test)]
mod tests;
