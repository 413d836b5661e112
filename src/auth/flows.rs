//! The OAuth2 flows against a token endpoint, as the vendors document them: client
//! credentials (RFC 6749 §4.4; Microsoft's app-only access), refresh (§6), the device
//! authorization grant (RFC 8628), the JWT bearer grant (RFC 7523) signed RS256 with a Google
//! service account's key, and the authorization code grant with PKCE (RFC 7636) redirected to
//! a loopback port (RFC 8252 §7.3, Google's installed apps). [`PlanGrant`] is the
//! [`Grant`] of a plan's account side; the interactive halves are for `mailshift auth login`.
//!
//! Error messages name the account, the endpoint and the fix (Microsoft's `AADSTS` numbers
//! where known), never a secret: the request body is never quoted, only the server's
//! `error` and `error_description`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cache::{BoxFuture, Fresh, Grant};
use super::http::{Http, Reply, percent_decode, percent_encode};
use super::store::{Entry, TokenStore};
use super::{ServiceAccountKey, Settings};
use crate::plan::model::OAuth2Flow;
use crate::transfer::imap::ErrorKind;
use crate::transfer::imap::session::{Secret, TokenError};

/// How long `mailshift auth login` waits for the browser to come back to the loopback port.
const LOOPBACK_WAIT: Duration = Duration::from_secs(300);

/// What an interactive flow obtained.
pub struct Obtained {
    pub access: Fresh,
    pub refresh_token: Option<Secret>,
}

/// A started device authorization: what to show the person.
#[derive(Debug)]
pub struct DeviceStart {
    pub verification_uri: String,
    pub user_code: String,
    /// The server's own instructions (Microsoft sends them), if any.
    pub message: Option<String>,
    device_code: Secret,
    interval: Duration,
    expires_in: Duration,
}

/// The token source of one account side of a plan.
pub struct PlanGrant {
    settings: Settings,
    http: Http,
    store: TokenStore,
    /// A refresh token rotated during this run when the plan gave it as a secret reference
    /// (which cannot be written back): the newest one is used from then on.
    rotated: Mutex<Option<Secret>>,
}

impl Grant for PlanGrant {
    fn fetch(&self) -> BoxFuture<'_, Result<Fresh, TokenError>> {
        Box::pin(self.fetch_token())
    }
}

fn auth_error(message: String) -> TokenError {
    TokenError {
        kind: ErrorKind::Auth,
        message,
    }
}

fn config_error(message: String) -> TokenError {
    TokenError {
        kind: ErrorKind::Config,
        message,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_b64(n: usize) -> Result<String, TokenError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| config_error("the system's random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl PlanGrant {
    pub fn new(settings: Settings, store: TokenStore) -> Result<PlanGrant, String> {
        let http = Http::new(settings.ca_file.as_deref())?;
        Ok(PlanGrant {
            settings,
            http,
            store,
            rotated: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// A new access token, the way the flow gets one without a person.
    pub async fn fetch_token(&self) -> Result<Fresh, TokenError> {
        match self.settings.flow {
            OAuth2Flow::ClientCredentials => self.client_credentials().await,
            OAuth2Flow::ServiceAccount => self.jwt_bearer().await,
            OAuth2Flow::DeviceCode | OAuth2Flow::Loopback | OAuth2Flow::RefreshToken => {
                self.refresh().await
            }
        }
    }

    fn scope(&self) -> String {
        self.settings.scopes.join(" ")
    }

    /// The client's own fields of a token request: its id, and its secret when it has one.
    fn client_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("client_id", self.settings.client_id.clone())];
        if let Some(secret) = &self.settings.client_secret {
            fields.push(("client_secret", secret.expose().to_string()));
        }
        fields
    }

    async fn post(&self, url: &str, fields: &[(&str, String)]) -> Result<Reply, TokenError> {
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.http.post_form(url, &form).await
    }

    async fn client_credentials(&self) -> Result<Fresh, TokenError> {
        let mut fields = vec![
            ("grant_type", "client_credentials".to_string()),
            ("scope", self.scope()),
        ];
        fields.extend(self.client_fields());
        let reply = self.post(&self.settings.token_url, &fields).await?;
        self.token_reply(reply, Request::ClientCredentials)
            .map(|o| o.access)
    }

    async fn jwt_bearer(&self) -> Result<Fresh, TokenError> {
        let key = self.settings.service_account.as_ref().ok_or_else(|| {
            config_error("the service-account flow needs `service_account_key`".into())
        })?;
        let assertion = sign_assertion(
            key,
            &self.settings.token_url,
            &self.scope(),
            &self.settings.login,
            unix_now(),
        )?;
        let fields = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
            ),
            ("assertion", assertion),
        ];
        let reply = self.post(&self.settings.token_url, &fields).await?;
        self.token_reply(reply, Request::JwtBearer)
            .map(|o| o.access)
    }

    /// The refresh token to use: the plan's (or its rotation this run), else the store's.
    fn current_refresh_token(&self) -> Result<Secret, TokenError> {
        if let Some(plan_rt) = &self.settings.refresh_token {
            let rotated = self.rotated.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(rotated.clone().unwrap_or_else(|| plan_rt.clone()));
        }
        let entry = self
            .store
            .get(&self.settings.store_key())
            .map_err(config_error)?;
        match entry {
            Some(e) => Ok(Secret::new(e.refresh_token)),
            None => Err(auth_error(format!(
                "no refresh token for {} in the token store {}: the {} flow needs a person once; {}",
                self.settings.login,
                self.store.path().display(),
                self.settings.flow.as_str(),
                self.settings.login_fix()
            ))),
        }
    }

    async fn refresh(&self) -> Result<Fresh, TokenError> {
        let rt = self.current_refresh_token()?;
        let mut fields = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", rt.expose().to_string()),
            ("scope", self.scope()),
        ];
        fields.extend(self.client_fields());
        let reply = self.post(&self.settings.token_url, &fields).await?;
        let obtained = self.token_reply(reply, Request::Refresh)?;
        if let Some(new_rt) = &obtained.refresh_token
            && new_rt.expose() != rt.expose()
        {
            if self.settings.refresh_token.is_some() {
                *self.rotated.lock().unwrap_or_else(|e| e.into_inner()) = Some(new_rt.clone());
            } else if let Err(e) = self.keep_refresh_token(new_rt) {
                // The old refresh token usually stays valid (Microsoft's do until they
                // expire): this run goes on, and the next may need `auth login` again.
                tracing::warn!(
                    "a new refresh token for {} could not be saved: {e}",
                    self.settings.login
                );
            }
        }
        Ok(obtained.access)
    }

    /// Writes `refresh_token` to the store under this side's key.
    pub fn keep_refresh_token(&self, refresh_token: &Secret) -> Result<(), String> {
        self.store.put(
            &self.settings.store_key(),
            Entry {
                refresh_token: refresh_token.expose().to_string(),
                login: self.settings.login.clone(),
                client_id: self.settings.client_id.clone(),
                token_url: self.settings.token_url.clone(),
                flow: self.settings.flow.as_str().to_string(),
                updated: chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        )
    }

    /// Starts a device authorization (RFC 8628 §3.1).
    pub async fn device_start(&self) -> Result<DeviceStart, TokenError> {
        let url = self
            .settings
            .device_authorization_url
            .clone()
            .ok_or_else(|| config_error("no `device_authorization_url`".into()))?;
        let mut fields = vec![("scope", self.scope())];
        fields.extend(self.client_fields());
        let reply = self.post(&url, &fields).await?;
        if reply.status != 200 {
            return Err(self.endpoint_error(&reply, Request::DeviceStart, &url));
        }
        let s = |k: &str| reply.body.get(k).and_then(Value::as_str).map(String::from);
        let n = |k: &str| reply.body.get(k).and_then(number);
        let (Some(device_code), Some(user_code)) = (s("device_code"), s("user_code")) else {
            return Err(auth_error(format!(
                "the device authorization endpoint {url} answered without a device_code and user_code"
            )));
        };
        Ok(DeviceStart {
            // Google names it verification_url (RFC 8628 says verification_uri).
            verification_uri: s("verification_uri")
                .or_else(|| s("verification_url"))
                .unwrap_or_default(),
            user_code,
            message: s("message"),
            device_code: Secret::new(device_code),
            interval: Duration::from_secs(n("interval").unwrap_or(5).max(1)),
            expires_in: Duration::from_secs(n("expires_in").unwrap_or(900)),
        })
    }

    /// Polls the token endpoint until the person has entered the code (RFC 8628 §3.4–3.5).
    pub async fn device_poll(&self, start: &DeviceStart) -> Result<Obtained, TokenError> {
        let deadline = tokio::time::Instant::now() + start.expires_in;
        let mut interval = start.interval;
        loop {
            tokio::time::sleep(interval).await;
            let mut fields = vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:device_code".to_string(),
                ),
                ("device_code", start.device_code.expose().to_string()),
            ];
            fields.extend(self.client_fields());
            let reply = self.post(&self.settings.token_url, &fields).await?;
            if reply.status == 200 {
                return self.token_reply(reply, Request::DeviceCode);
            }
            match reply.body.get("error").and_then(Value::as_str) {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += Duration::from_secs(5),
                Some("expired_token") => {
                    return Err(auth_error(format!(
                        "the code {} was not entered in time: run `mailshift auth login` again and enter the new code",
                        start.user_code
                    )));
                }
                Some("access_denied") => {
                    return Err(auth_error(format!(
                        "the sign-in for {} was declined in the browser: run `mailshift auth login` again and accept",
                        self.settings.login
                    )));
                }
                _ => return Err(self.endpoint_error(&reply, Request::DeviceCode, "")),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(auth_error(format!(
                    "the code {} was not entered in time: run `mailshift auth login` again",
                    start.user_code
                )));
            }
        }
    }

    /// The authorization code flow with PKCE through a loopback redirect: `show` receives
    /// the URL to open (a browser is opened too when there is a display).
    pub async fn loopback(&self, show: &mut dyn FnMut(&str)) -> Result<Obtained, TokenError> {
        let auth_url = self
            .settings
            .authorization_url
            .clone()
            .ok_or_else(|| config_error("no `authorization_url`".into()))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| config_error(format!("cannot listen on a loopback port: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| config_error(format!("cannot read the loopback port: {e}")))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/");
        let verifier = random_b64(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_b64(16)?;
        let query = [
            ("response_type", "code".to_string()),
            ("client_id", self.settings.client_id.clone()),
            ("redirect_uri", redirect_uri.clone()),
            ("scope", self.scope()),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256".to_string()),
            ("state", state.clone()),
            ("login_hint", self.settings.login.clone()),
            // Google hands out a refresh token only with these.
            ("access_type", "offline".to_string()),
            ("prompt", "consent".to_string()),
        ];
        let sep = if auth_url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{auth_url}{sep}{}",
            query
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        );
        show(&url);
        open_browser(&url);
        let params = tokio::time::timeout(LOOPBACK_WAIT, wait_for_redirect(&listener))
            .await
            .map_err(|_| {
                auth_error(format!(
                    "no answer from the browser within {} minutes: run `mailshift auth login` again",
                    LOOPBACK_WAIT.as_secs() / 60
                ))
            })??;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("state").as_deref() != Some(state.as_str()) {
            return Err(auth_error(
                "the browser came back with another sign-in's state: run `mailshift auth login` again".into(),
            ));
        }
        if let Some(err) = get("error") {
            return Err(auth_error(format!(
                "the sign-in for {} failed in the browser: {err}{}",
                self.settings.login,
                get("error_description")
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )));
        }
        let code = get("code").ok_or_else(|| {
            auth_error("the browser came back without an authorization code".into())
        })?;
        let mut fields = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        fields.extend(self.client_fields());
        let reply = self.post(&self.settings.token_url, &fields).await?;
        self.token_reply(reply, Request::AuthorizationCode)
    }

    fn token_reply(&self, reply: Reply, grant: Request) -> Result<Obtained, TokenError> {
        if reply.status != 200 {
            return Err(self.endpoint_error(&reply, grant, ""));
        }
        let access = reply
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                auth_error(format!(
                    "the token endpoint {} answered without an access token",
                    self.settings.token_url
                ))
            })?;
        // RFC 6749 §5.1 recommends expires_in; without it, assume the common hour.
        let lifetime = reply
            .body
            .get("expires_in")
            .and_then(number)
            .unwrap_or(3600);
        Ok(Obtained {
            access: Fresh {
                access_token: Secret::new(access),
                lifetime: Duration::from_secs(lifetime),
            },
            refresh_token: reply
                .body
                .get("refresh_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        })
    }

    /// The server's refusal as a message naming the account, the endpoint and the fix.
    fn endpoint_error(&self, reply: &Reply, grant: Request, url: &str) -> TokenError {
        let s = &self.settings;
        let url = if url.is_empty() { &s.token_url } else { url };
        let error = reply
            .body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let description = reply
            .body
            .get("error_description")
            .and_then(Value::as_str)
            .map(|d| d.lines().next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let said = match (error.is_empty(), description.is_empty()) {
            (true, true) => format!("HTTP {}", reply.status),
            (false, true) => error.clone(),
            (true, false) => description.clone(),
            (false, false) => format!("{error}: {description}"),
        };
        if reply.status == 429 || reply.status >= 500 || error == "temporarily_unavailable" {
            let kind = if reply.status == 429 {
                ErrorKind::Throttled
            } else {
                ErrorKind::Network
            };
            let wait = reply
                .retry_after
                .map(|s| format!(" (it asks to wait {s} s)"))
                .unwrap_or_default();
            return TokenError {
                kind,
                message: format!("the token endpoint {url} is unavailable{wait}: {said}"),
            };
        }
        let aadsts = aadsts_code(&description);
        let fix = match (aadsts, error.as_str(), grant) {
            (Some(50173 | 70008 | 700082 | 50078 | 50079 | 700084 | 9002313), _, _)
            | (_, "invalid_grant", Request::Refresh) => format!(
                "the refresh token for {} was revoked or has expired: {}",
                s.login,
                s.login_fix()
            ),
            (Some(7000215 | 7000222), _, _) => "the client secret is wrong or has expired: create a new one in the app registration (Certificates & secrets) and update `client_secret`".to_string(),
            (Some(700016), _, _) => format!(
                "no application {} in this tenant: check `client_id` and `tenant`, and that an administrator consented to the app",
                s.client_id
            ),
            (Some(65001), _, _) => "the app has no consent for these scopes: an administrator must grant it (Enterprise applications, Permissions)".to_string(),
            (Some(1002012), _, _) | (_, "invalid_scope", _) => format!(
                "the scopes `{}` were refused: check `scopes` (app-only tokens of Microsoft 365 take `https://outlook.office365.com/.default`)",
                s.scopes.join(" ")
            ),
            (_, "invalid_grant", Request::JwtBearer) | (_, "invalid_client", Request::JwtBearer) => format!(
                "the service account's signed request was refused: check that `service_account_key` is a current key of that service account, that domain-wide delegation grants its client id the scope {}, and that {} is a mailbox of the domain",
                s.scopes.join(" "),
                s.login
            ),
            (_, "invalid_grant", _) => format!("the grant was refused: {}", s.login_fix()),
            (_, "invalid_client" | "unauthorized_client", _) => format!(
                "the client {} was refused: check `client_id` and `client_secret` (and, on Microsoft 365, `tenant`)",
                s.client_id
            ),
            _ => "check the `oauth2` block of the plan".to_string(),
        };
        auth_error(format!(
            "the token endpoint {url} refused {} for {}: {said}; {fix}",
            grant.what(),
            s.login
        ))
    }
}

/// Which request was refused, for messages and the fix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Request {
    ClientCredentials,
    JwtBearer,
    Refresh,
    DeviceStart,
    DeviceCode,
    AuthorizationCode,
}

impl Request {
    fn what(self) -> &'static str {
        match self {
            Request::ClientCredentials => "an app-only token (client credentials)",
            Request::JwtBearer => "a service-account token (JWT bearer)",
            Request::Refresh => "to refresh the token",
            Request::DeviceStart => "a device code",
            Request::DeviceCode => "the device-code sign-in",
            Request::AuthorizationCode => "the authorization code",
        }
    }
}

/// `expires_in` and friends: a JSON number, or a number in a string (some servers).
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Microsoft's error number in a description: `AADSTS70008: ...`.
fn aadsts_code(description: &str) -> Option<u32> {
    let start = description.find("AADSTS")? + 6;
    let digits: String = description[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// An RS256-signed JWT assertion for Google's token endpoint (RFC 7523 §2.1, Google's
/// "Using OAuth 2.0 for server to server applications"): `iss` the service account, `sub`
/// the mailbox impersonated, `aud` the token URL, an hour of validity (Google's maximum).
pub fn sign_assertion(
    key: &ServiceAccountKey,
    token_url: &str,
    scope: &str,
    sub: &str,
    now: u64,
) -> Result<String, TokenError> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": key.client_email,
        "scope": scope,
        "aud": token_url,
        "iat": now,
        "exp": now + 3600,
        "sub": sub,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let bad_key = |why: &str| {
        config_error(format!(
            "the private_key of the service account {} cannot sign: {why}",
            key.client_email
        ))
    };
    let der = pem_body(&key.private_key, "PRIVATE KEY")
        .ok_or_else(|| bad_key("it is not a PEM `PRIVATE KEY` (PKCS#8)"))?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| bad_key(&format!("not an RSA key ring accepts ({e})")))?;
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| bad_key("signing failed"))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The DER inside a PEM block with `label`.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

/// Accepts connections on the loopback port until one brings the redirect (a browser may
/// ask for /favicon.ico first), answers it with a page saying the window can be closed, and
/// returns its query parameters.
async fn wait_for_redirect(
    listener: &tokio::net::TcpListener,
) -> Result<Vec<(String, String)>, TokenError> {
    loop {
        let (mut conn, _) = listener
            .accept()
            .await
            .map_err(|e| config_error(format!("the loopback listener failed: {e}")))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let answered = params.iter().any(|(k, _)| k == "code" || k == "error");
        let (status, body) = if answered {
            (
                "200 OK",
                "mailshift: the sign-in is done; you can close this window.\n",
            )
        } else {
            ("404 Not Found", "mailshift: waiting for the sign-in.\n")
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(response.as_bytes()).await;
        let _ = conn.shutdown().await;
        if answered {
            return Ok(params);
        }
    }
}

/// Opens `url` in the desktop's browser when there is a desktop; the URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    if let Some(program) = opener {
        let _ = std::process::Command::new(program)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_numbers_are_read_from_descriptions() {
        assert_eq!(
            aadsts_code(
                "AADSTS70008: The provided authorization code or refresh token has expired"
            ),
            Some(70008)
        );
        assert_eq!(aadsts_code("Token has been expired or revoked."), None);
    }

    #[test]
    fn a_signed_assertion_has_the_claims_google_checks() {
        let key = ServiceAccountKey {
            client_email: "sa@project.iam.gserviceaccount.com".into(),
            private_key: provider_sim::oauth::TEST_SERVICE_ACCOUNT_KEY.into(),
            private_key_id: Some("kid1".into()),
            token_uri: None,
        };
        let jwt = sign_assertion(&key, "https://t.example/token", "s", "bob@x", 1000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://t.example/token");
        assert_eq!(claims["sub"], "bob@x");
        assert_eq!(claims["exp"].as_u64(), Some(4600));
        // Checked with the public key as the server would.
        let pem = provider_sim::oauth::TEST_SERVICE_ACCOUNT_PUBLIC_KEY;
        let der = pem_body(pem, "RSA PUBLIC KEY").unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            der,
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn a_key_that_is_not_pkcs8_is_a_clear_error() {
        let key = ServiceAccountKey {
            client_email: "sa@p".into(),
            private_key: "not a key".into(),
            private_key_id: None,
            token_uri: None,
        };
        let err = sign_assertion(&key, "u", "s", "b", 0).unwrap_err();
        assert!(err.message.contains("sa@p"), "{}", err.message);
        assert!(err.message.contains("PKCS#8"), "{}", err.message);
    }
}
