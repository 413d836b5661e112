//! The signed HTTP client for the OVHcloud API.
//!
//! Every signed call is hashed over the exact URL and body bytes that go on the wire, with a
//! timestamp corrected by the server's clock (`GET /auth/time`), because a skewed local clock
//! makes every signature stale. Transient failures (5xx, network errors, "already being
//! processed" conflicts) are retried with exponential backoff; any other 4xx is final, since
//! repeating a refused call cannot change the answer.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::error::{ApiError, ErrorBody, OvhError};
use super::signing::signature;
use mailshift_core::plan::secret::Secret;

/// Resolved credentials of a `providers` entry.
pub struct Credentials {
    pub application_key: Secret,
    pub application_secret: Secret,
    pub consumer_key: Secret,
}

/// How often and how patiently a failed call is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included; 1 disables retries.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound of a single wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, failed_attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Whole-request timeout (connect, send, read the answer), per attempt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
        }
    }
}

/// Whether a call carries the consumer key and a signature. Only a few `/auth` calls are
/// unsigned (server time, asking for a consumer key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Signed,
    Unsigned,
}

/// Base URL for a plan's `endpoint`: a known region name or an explicit `http(s)://` URL.
pub fn base_url(endpoint: &str) -> Result<String, OvhError> {
    let url = match endpoint {
        "ovh-eu" => "https://eu.api.ovh.com/1.0",
        "ovh-ca" => "https://ca.api.ovh.com/1.0",
        "ovh-us" => "https://api.us.ovhcloud.com/1.0",
        other if other.starts_with("https://") || other.starts_with("http://") => {
            Url::parse(other).map_err(|e| {
                OvhError::Config(format!("endpoint {other:?} is not a valid URL: {e}"))
            })?;
            // Paths are appended as text, so a trailing slash would double up.
            other.trim_end_matches('/')
        }
        other => {
            return Err(OvhError::Config(format!(
                "unknown endpoint {other:?}: expected ovh-eu, ovh-ca, ovh-us or an https:// URL"
            )));
        }
    };
    Ok(url.to_string())
}

/// Told about every answered (or failed) attempt: method, path, time taken, success.
pub type CallObserver = Arc<dyn Fn(&str, &str, Duration, bool) + Send + Sync>;

pub struct OvhClient {
    observer: Option<CallObserver>,
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    options: ClientOptions,
    /// `server - local` seconds, read once: the skew does not change within a run.
    time_delta: OnceCell<i64>,
}

// Written by hand so that no future field can print a credential.
impl fmt::Debug for OvhClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OvhClient")
            .field("base", &self.base)
            .field("credentials", &"<redacted>")
            .field("options", &self.options)
            .field("time_delta", &self.time_delta.get())
            .finish()
    }
}

impl OvhClient {
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<Self, OvhError> {
        Self::with_options(endpoint, credentials, ClientOptions::default())
    }

    pub fn with_options(
        endpoint: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, OvhError> {
        let base = base_url(endpoint)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("mailshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OvhError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(OvhClient {
            observer: None,
            http,
            base,
            credentials,
            options,
            time_delta: OnceCell::new(),
        })
    }

    /// Reports every call attempt to `observer` (watch mode's latency metrics).
    pub fn observe(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The API root every path is appended to, e.g. `https://eu.api.ovh.com/1.0`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OvhError> {
        self.call(Method::GET, path, body, Auth::Signed).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OvhError> {
        self.call(Method::POST, path, body, Auth::Signed).await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OvhError> {
        self.call(Method::PUT, path, body, Auth::Signed).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OvhError> {
        self.call(Method::DELETE, path, body, Auth::Signed).await
    }

    /// One API call, retried per the policy. `path` is relative to the API root and may carry
    /// a query string (already percent-encoded). An empty answer decodes as JSON `null`, so
    /// calls that return nothing can ask for `()`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        auth: Auth,
    ) -> Result<T, OvhError> {
        let delta = match auth {
            Auth::Signed => Some(self.time_delta().await?),
            Auth::Unsigned => None,
        };
        let body = match body {
            Some(value) => serde_json::to_string(value).map_err(|e| OvhError::Decode {
                method: method.to_string(),
                path: path.to_string(),
                reason: format!("cannot encode the request body: {e}"),
            })?,
            None => String::new(),
        };
        let bytes = self.retrying(&method, path, &body, delta).await?;
        decode(&method, path, &bytes)
    }

    /// `server - local` clock difference in seconds, fetched on first use.
    pub async fn time_delta(&self) -> Result<i64, OvhError> {
        self.time_delta
            .get_or_try_init(|| async {
                let bytes = self.retrying(&Method::GET, "/auth/time", "", None).await?;
                let server: i64 = decode(&Method::GET, "/auth/time", &bytes)?;
                Ok(server - unix_now())
            })
            .await
            .copied()
    }

    async fn retrying(
        &self,
        method: &Method,
        path: &str,
        body: &str,
        delta: Option<i64>,
    ) -> Result<Vec<u8>, OvhError> {
        // Parse once and sign `url.as_str()`: the signature must cover the URL exactly as
        // reqwest will send it, after any normalisation the parser applies.
        let url = Url::parse(&format!("{}{}", self.base, path)).map_err(|e| {
            OvhError::Config(format!("{}{path} is not a valid URL: {e}", self.base))
        })?;
        let policy = &self.options.retry;
        let mut attempt = 1;
        loop {
            let started = std::time::Instant::now();
            let result = self.attempt(method, &url, path, body, delta).await;
            if let Some(observe) = &self.observer {
                observe(method.as_str(), path, started.elapsed(), result.is_ok());
            }
            match result {
                Err(e) if attempt < policy.max_attempts && is_retryable(&e) => {
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        path: &str,
        body: &str,
        delta: Option<i64>,
    ) -> Result<Vec<u8>, OvhError> {
        let transport = |e: reqwest::Error| OvhError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            reason: describe_transport(&e, self.options.timeout),
        };
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(
                "X-Ovh-Application",
                header(&self.credentials.application_key)?,
            )
            .header(CONTENT_TYPE, "application/json");
        if let Some(delta) = delta {
            // Each attempt signs afresh: a retry after a long backoff must not reuse a stale
            // timestamp.
            let timestamp = u64::try_from(unix_now() + delta).unwrap_or(0);
            let sig = signature(
                self.credentials.application_secret.expose(),
                self.credentials.consumer_key.expose(),
                method.as_str(),
                url.as_str(),
                body,
                timestamp,
            );
            request = request
                .header("X-Ovh-Consumer", header(&self.credentials.consumer_key)?)
                .header("X-Ovh-Timestamp", timestamp)
                .header("X-Ovh-Signature", sig);
        }
        if !body.is_empty() {
            request = request.body(body.to_string());
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let query_id = response
            .headers()
            .get("X-Ovh-QueryID")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.map_err(transport)?.to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = parsed.message.unwrap_or_else(|| {
            // Not the documented JSON (a proxy's HTML page, say): keep a bounded excerpt.
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            match text.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None if text.is_empty() => status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_string(),
                None => text.to_string(),
            }
        });
        Err(OvhError::Api(Box::new(ApiError {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            class: parsed.class,
            error_code: parsed.error_code,
            message,
            query_id,
        })))
    }
}

fn is_retryable(e: &OvhError) -> bool {
    match e {
        OvhError::Transport { .. } => true,
        OvhError::Api(api) => api.status >= 500 || api.is_busy(),
        _ => false,
    }
}

fn header(secret: &Secret) -> Result<HeaderValue, OvhError> {
    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
        OvhError::Config("a credential holds characters invalid in an HTTP header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn decode<T: DeserializeOwned>(method: &Method, path: &str, bytes: &[u8]) -> Result<T, OvhError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| OvhError::Decode {
        method: method.to_string(),
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn describe_transport(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", timeout.as_secs_f64());
    }
    // reqwest's own message is generic ("error sending request"); the cause is in the chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// ring, like the IMAP side: the crate is built without aws-lc.
fn tls_config() -> Result<rustls::ClientConfig, OvhError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| OvhError::Config(format!("TLS setup failed: {e}")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OvhError::Config(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::super::testserver::{self, AK, AS, CK, Reply, ok, start, status, time};
    use super::*;

    const SHORT: Duration = Duration::from_secs(5);

    #[test]
    fn endpoints_map_to_documented_base_urls() {
        assert_eq!(base_url("ovh-eu").unwrap(), "https://eu.api.ovh.com/1.0");
        assert_eq!(base_url("ovh-ca").unwrap(), "https://ca.api.ovh.com/1.0");
        assert_eq!(
            base_url("ovh-us").unwrap(),
            "https://api.us.ovhcloud.com/1.0"
        );
        assert_eq!(
            base_url("http://127.0.0.1:8080/1.0/").unwrap(),
            "http://127.0.0.1:8080/1.0"
        );
        let err = base_url("ovh-mars").unwrap_err().to_string();
        assert!(err.contains("ovh-mars"), "{err}");
    }

    #[test]
    fn builds_a_tls_client_for_a_named_region() {
        // reqwest is built without a default crypto provider: if it did not take our ring
        // configuration, building (or the first TLS call) would fail.
        let credentials = Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(CK),
        };
        let client = OvhClient::new("ovh-ca", credentials).unwrap();
        assert_eq!(client.base(), "https://ca.api.ovh.com/1.0");
    }

    #[tokio::test]
    async fn signed_call_carries_headers_and_a_signature_the_server_can_verify() {
        let offset = 1000;
        let server = start(vec![time(offset), ok(r#"{"id":7}"#), ok("[]")]).await;
        let client = server.client(1, SHORT);
        let body = json!({"login": "jöhn", "domain": "example.com"});
        let path = "/email/pro/svc/account?primaryEmailAddress=%25configureme.me%25";
        let answer: Value = client.post(path, Some(&body)).await.unwrap();
        assert_eq!(answer, json!({"id": 7}));
        let _: Vec<u64> = client.get("/email/pro/svc/task", None).await.unwrap();

        let received = server.received();
        assert_eq!(received.len(), 3, "{received:#?}");
        // The clock call is unsigned, and made once for both calls.
        let t = &received[0];
        assert_eq!(
            (t.method.as_str(), t.target.as_str()),
            ("GET", "/1.0/auth/time")
        );
        assert_eq!(t.headers["x-ovh-application"], AK);
        assert!(!t.headers.contains_key("x-ovh-signature"));
        assert!(!t.headers.contains_key("x-ovh-consumer"));

        for (r, method, body) in [
            (&received[1], "POST", serde_json::to_string(&body).unwrap()),
            (&received[2], "GET", String::new()),
        ] {
            assert_eq!(r.method, method);
            assert_eq!(r.headers["x-ovh-application"], AK);
            assert_eq!(r.headers["x-ovh-consumer"], CK);
            assert_eq!(r.headers["content-type"], "application/json");
            assert_eq!(r.body, body);
            let ts: i64 = r.headers["x-ovh-timestamp"].parse().unwrap();
            let server_now = testserver::now() + offset;
            assert!(
                (server_now - 3..=server_now).contains(&ts),
                "timestamp {ts} is not the server's clock {server_now}"
            );
            let url = format!("{}{}", server.root, r.target);
            let expected = signature(AS, CK, method, &url, &r.body, ts as u64);
            assert_eq!(r.headers["x-ovh-signature"], expected, "for {url}");
        }
        assert_eq!(received[1].target, format!("/1.0{path}"));
    }

    #[tokio::test]
    async fn retries_a_server_error_then_succeeds() {
        let server = start(vec![time(0), status(500, "{}"), status(503, ""), ok("1")]).await;
        let n: u32 = server.client(3, SHORT).get("/x", None).await.unwrap();
        assert_eq!(n, 1);
        assert_eq!(server.received().len(), 4);
    }

    #[tokio::test]
    async fn retries_a_dropped_connection() {
        let server = start(vec![time(0), Reply::Drop, ok("2")]).await;
        let n: u32 = server.client(3, SHORT).get("/x", None).await.unwrap();
        assert_eq!(n, 2);
        assert_eq!(server.received().len(), 3);
    }

    #[tokio::test]
    async fn retries_409_already_being_processed() {
        let busy = r#"{"class":"Client::Conflict","message":"This pop is already being processed, please try later"}"#;
        let server = start(vec![time(0), status(409, busy), ok("null")]).await;
        let () = server
            .client(3, SHORT)
            .post(
                "/email/domain/d/account/a/changePassword",
                Some(&json!({"password": "p"})),
            )
            .await
            .unwrap();
        let received = server.received();
        assert_eq!(received.len(), 3);
        // The retry is signed afresh over the same body.
        assert_eq!(received[1].body, received[2].body);
    }

    #[tokio::test]
    async fn other_conflicts_and_client_errors_are_not_retried() {
        for (code, body) in [
            (409, r#"{"message":"Email address is already used."}"#),
            (
                400,
                r#"{"errorCode":"INVALID_SIGNATURE","httpCode":"400 Bad Request","message":"Invalid signature"}"#,
            ),
            (
                404,
                r#"{"class":"Client::NotFound","message":"The requested object does not exist"}"#,
            ),
        ] {
            let server = start(vec![time(0), status(code, body), ok("1")]).await;
            let err = server
                .client(5, SHORT)
                .get::<u32>("/x", None)
                .await
                .unwrap_err();
            assert_eq!(err.status(), Some(code));
            assert_eq!(server.received().len(), 2, "{code} was retried");
        }
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let server = start(vec![
            time(0),
            status(500, "{}"),
            status(500, "{}"),
            status(500, "{}"),
        ])
        .await;
        let err = server
            .client(3, SHORT)
            .get::<u32>("/x", None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(500));
        assert_eq!(server.received().len(), 4);
    }

    #[tokio::test]
    async fn error_answer_maps_code_message_and_query_id() {
        let body = r#"{"errorCode":"NOT_GRANTED_CALL","httpCode":"403 Forbidden","message":"This call has not been granted"}"#;
        let reply = Reply::Json(
            403,
            body.into(),
            vec![("X-Ovh-QueryID".into(), "EU.ext-1.123".into())],
        );
        let server = start(vec![time(0), reply]).await;
        let err = server
            .client(3, SHORT)
            .post::<Value>("/email/pro/svc/account/x", Some(&json!({})))
            .await
            .unwrap_err();
        let api = err.api().expect("an API error");
        assert_eq!(api.error_code.as_deref(), Some("NOT_GRANTED_CALL"));
        assert_eq!(api.query_id.as_deref(), Some("EU.ext-1.123"));
        assert_eq!(
            err.to_string(),
            "OVHcloud API POST /email/pro/svc/account/x: 403 NOT_GRANTED_CALL: \
             This call has not been granted (query id EU.ext-1.123)"
        );
    }

    #[tokio::test]
    async fn non_json_error_body_still_gives_a_message() {
        let server = start(vec![time(0), status(502, "<html>Bad Gateway</html>")]).await;
        let err = server
            .client(1, SHORT)
            .get::<u32>("/x", None)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("502: <html>Bad Gateway</html>"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn request_timeout_is_a_transport_error() {
        let server = start(vec![time(0), Reply::Hang]).await;
        let client = server.client(1, Duration::from_millis(300));
        let started = Instant::now();
        let err = client.get::<u32>("/slow", None).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, OvhError::Transport { .. }), "{err:?}");
        assert!(
            err.to_string().contains("GET /slow: no answer within 0.3s"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn empty_answer_decodes_as_unit() {
        let server = start(vec![time(0), ok("")]).await;
        let () = server
            .client(1, SHORT)
            .put(
                "/email/pro/svc/account/a",
                Some(&json!({"displayName": "A"})),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn secrets_never_reach_debug_or_errors() {
        let body = r#"{"errorCode":"INVALID_CREDENTIAL","message":"This credential is not valid"}"#;
        let server = start(vec![time(0), status(403, body)]).await;
        let client = server.client(1, SHORT);
        let err = client
            .post::<Value>("/x", Some(&json!({"password": "hunter2"})))
            .await
            .unwrap_err();
        for text in [
            format!("{client:?}"),
            format!("{client:#?}"),
            err.to_string(),
            format!("{err:?}"),
        ] {
            assert!(!text.contains(AS), "application secret in {text}");
            assert!(!text.contains(CK), "consumer key in {text}");
            assert!(!text.contains("hunter2"), "request body in {text}");
        }
    }
}
