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
use crate::plan::secret::Secret;

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

pub struct OvhClient {
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
            http,
            base,
            credentials,
            options,
            time_delta: OnceCell::new(),
        })
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
            match self.attempt(method, &url, path, body, delta).await {
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
