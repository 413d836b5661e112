//! OAuth2 access tokens for XOAUTH2 logins that last a whole migration: the plan's `oauth2`
//! blocks become a token source per account side ([`cache::TokenCache`]) that the mail engine
//! asks at every login, which refreshes (or re-signs) tokens before they expire and drops one
//! a server refused. `mailshift auth login` (`crate::cli::auth`) runs the interactive flows
//! once and keeps their refresh tokens in the token store ([`store`]), never in the state.
//!
//! Flows ([`flows`]), each with its platform type's defaults ([`Settings::resolve`]):
//! Microsoft 365 app-only client credentials and delegated device code (RFC 8628), Google
//! Workspace service accounts (RS256 JWT bearer, RFC 7523, `sub` = the mailbox), the
//! installed-app loopback flow with PKCE (RFC 7636) for consumer Gmail, and refreshing a
//! refresh token given as a secret reference; on other platforms the block names its
//! endpoints.
//!
//! Crates: none new. The flows are a handful of form POSTs, written here over reqwest 0.13
//! (already in the tree for DAV and the OVHcloud API) and signed with ring (already in the
//! tree as rustls's crypto provider: `RsaKeyPair::from_pkcs8`, `RSA_PKCS1_SHA256`). The issue
//! named `oauth2` and `jsonwebtoken`; measured with `cargo tree` against this tree, `oauth2`
//! 5.0 without default features (its `reqwest` feature is for reqwest 0.12, a second HTTP
//! stack) adds 15 crates, mostly second copies of what we have (base64 0.22, sha2 0.10 and
//! digest 0.10, rand 0.8 with rand_chacha, chrono's time-zone crates), has had no release
//! since January 2025 and has no JWT bearer grant; `jsonwebtoken` 10 with `rust_crypto`
//! adds 46 (the rsa crate, p256/p384, ed25519-dalek and their big-integer stack), or with
//! `aws_lc_rs` a C build on CI. What we would use of them is smaller than that glue.

pub mod cache;
pub mod flows;
pub mod http;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::plan::Loaded;
use crate::plan::model::{Credentials, OAuth2, OAuth2Flow, Platform, PlatformKind};
use crate::transfer::imap::session::{Secret, Tokens};

pub use cache::TokenCache;
pub use store::TokenStore;

/// Microsoft identity platform (v2.0 endpoints) for a tenant.
const MICROSOFT_LOGIN: &str = "https://login.microsoftonline.com";
const MICROSOFT_APP_ONLY_SCOPE: &str = "https://outlook.office365.com/.default";
const MICROSOFT_DELEGATED_SCOPES: [&str; 2] = [
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "offline_access",
];
/// Microsoft Graph (contacts, calendars and To Do on Microsoft 365, crates/mailshift-graph):
/// its own audience, so its own tokens. App-only: the app's Graph permissions
/// (Contacts.ReadWrite, Calendars.ReadWrite, Tasks.ReadWrite.All, application). Delegated: the
/// same refresh token as IMAP, exchanged for Graph scopes (the app must be consented for them).
const MICROSOFT_GRAPH_APP_ONLY_SCOPE: &str = "https://graph.microsoft.com/.default";
const MICROSOFT_GRAPH_DELEGATED_SCOPES: [&str; 6] = [
    "https://graph.microsoft.com/Contacts.ReadWrite",
    "https://graph.microsoft.com/Calendars.ReadWrite",
    "https://graph.microsoft.com/Tasks.ReadWrite",
    // Inbox rules (messageRules), and the mail folders a rule files into (read, created).
    "https://graph.microsoft.com/MailboxSettings.ReadWrite",
    "https://graph.microsoft.com/Mail.ReadWrite",
    "offline_access",
];
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_AUTHORIZATION_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_DEVICE_URL: &str = "https://oauth2.googleapis.com/device/code";
const GOOGLE_MAIL_SCOPE: &str = "https://mail.google.com/";

/// A Google service account's key file (the JSON Google Cloud gives), the fields we use.
#[derive(Clone, serde::Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccountKey({})", self.client_email)
    }
}

/// One account side's OAuth2 setup with every default filled in and its secrets read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub flow: OAuth2Flow,
    /// The mailbox (XOAUTH2 `user=`; the JWT's `sub`; the `login_hint`).
    pub login: String,
    pub token_url: String,
    pub device_authorization_url: Option<String>,
    pub authorization_url: Option<String>,
    /// The client id; a service account's `client_email`.
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub service_account: Option<ServiceAccountKey>,
    /// A refresh token from the plan (`oauth2.refresh_token`), used instead of the store.
    pub refresh_token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    /// How to name the fix in errors: `mailshift auth login PLAN LOGIN`.
    pub plan_path: String,
}

impl Settings {
    /// The side's block (else the platform's) with the platform type's defaults: endpoints,
    /// scopes, the tenant's URLs. Errors name the missing field and where to put it.
    pub fn resolve(
        block: &OAuth2,
        kind: PlatformKind,
        base: &Path,
        login: &str,
        plan_path: &str,
    ) -> Result<Settings, String> {
        let read = |what: &str, r: &crate::plan::secret::SecretRef| {
            r.resolve(base)
                .map(|s| Secret::new(s.expose()))
                .map_err(|e| format!("oauth2.{what}: {e}"))
        };
        let client_secret = block
            .client_secret
            .as_ref()
            .map(|r| read("client_secret", r))
            .transpose()?;
        let refresh_token = block
            .refresh_token
            .as_ref()
            .map(|r| read("refresh_token", r))
            .transpose()?;
        let service_account = match (&block.service_account_key, block.flow) {
            (Some(r), _) => {
                let json = read("service_account_key", r)?;
                let key: ServiceAccountKey = serde_json::from_str(json.expose()).map_err(|e| {
                    format!(
                        "oauth2.service_account_key: not a Google service-account key file (JSON with client_email and private_key): {e}"
                    )
                })?;
                Some(key)
            }
            (None, OAuth2Flow::ServiceAccount) => {
                return Err("oauth2: the `service-account` flow needs `service_account_key` (the JSON key file of the service account, e.g. `{file: key.json}`)".into());
            }
            (None, _) => None,
        };
        let microsoft = kind == PlatformKind::Microsoft365;
        let google = kind == PlatformKind::Gmail;
        let tenant = || -> Result<String, String> {
            match (&block.tenant, block.flow) {
                (Some(t), _) => Ok(t.clone()),
                (None, OAuth2Flow::ClientCredentials) => Err(
                    "oauth2: app-only `client-credentials` on Microsoft 365 needs `tenant` (the directory id or a domain such as contoso.onmicrosoft.com)".into(),
                ),
                (None, _) => Ok("organizations".into()),
            }
        };
        let ms_url = |end: &str| -> Result<String, String> {
            Ok(format!("{MICROSOFT_LOGIN}/{}/oauth2/v2.0/{end}", tenant()?))
        };
        let token_url = match (&block.token_url, &service_account) {
            (Some(u), _) => u.clone(),
            (None, Some(key)) if google || key.token_uri.is_some() => key
                .token_uri
                .clone()
                .unwrap_or_else(|| GOOGLE_TOKEN_URL.to_string()),
            (None, _) if microsoft => ms_url("token")?,
            (None, _) if google => GOOGLE_TOKEN_URL.to_string(),
            (None, _) => {
                return Err(format!(
                    "oauth2: `token_url` is needed on a `{}` platform (only gmail and microsoft-365 have defaults)",
                    kind.as_str()
                ));
            }
        };
        let device_authorization_url = match &block.device_authorization_url {
            Some(u) => Some(u.clone()),
            None if microsoft => Some(ms_url("devicecode")?),
            None if google => Some(GOOGLE_DEVICE_URL.to_string()),
            None => None,
        };
        let authorization_url = match &block.authorization_url {
            Some(u) => Some(u.clone()),
            None if microsoft => Some(ms_url("authorize")?),
            None if google => Some(GOOGLE_AUTHORIZATION_URL.to_string()),
            None => None,
        };
        let needs = |what: &str, have: bool| -> Result<(), String> {
            if have {
                Ok(())
            } else {
                Err(format!(
                    "oauth2: the `{}` flow needs `{what}`",
                    block.flow.as_str()
                ))
            }
        };
        match block.flow {
            OAuth2Flow::ClientCredentials => {
                needs("client_id", block.client_id.is_some())?;
                needs("client_secret", client_secret.is_some())?;
            }
            OAuth2Flow::DeviceCode => {
                needs("client_id", block.client_id.is_some())?;
                needs(
                    "device_authorization_url",
                    device_authorization_url.is_some(),
                )?;
            }
            OAuth2Flow::Loopback => {
                needs("client_id", block.client_id.is_some())?;
                needs("authorization_url", authorization_url.is_some())?;
            }
            OAuth2Flow::RefreshToken => {
                needs("client_id", block.client_id.is_some())?;
                needs("refresh_token", refresh_token.is_some())?;
            }
            OAuth2Flow::ServiceAccount => {}
        }
        for (field, url) in [
            ("token_url", Some(&token_url)),
            (
                "device_authorization_url",
                device_authorization_url.as_ref(),
            ),
            ("authorization_url", authorization_url.as_ref()),
        ] {
            if let Some(url) = url {
                check_url(field, url)?;
            }
        }
        let client_id = match (&block.client_id, &service_account) {
            (Some(id), _) => id.clone(),
            (None, Some(key)) => key.client_email.clone(),
            (None, None) => String::new(),
        };
        let scopes = if !block.scopes.is_empty() {
            block.scopes.clone()
        } else if microsoft && block.flow == OAuth2Flow::ClientCredentials {
            vec![MICROSOFT_APP_ONLY_SCOPE.to_string()]
        } else if microsoft {
            MICROSOFT_DELEGATED_SCOPES.map(String::from).to_vec()
        } else if google {
            vec![GOOGLE_MAIL_SCOPE.to_string()]
        } else {
            return Err(format!(
                "oauth2: `scopes` is needed on a `{}` platform (only gmail and microsoft-365 have defaults)",
                kind.as_str()
            ));
        };
        Ok(Settings {
            flow: block.flow,
            login: login.to_string(),
            token_url,
            device_authorization_url,
            authorization_url,
            client_id,
            client_secret,
            scopes,
            service_account,
            refresh_token,
            ca_file: block.ca_file.as_ref().map(|f| base.join(f)),
            plan_path: plan_path.to_string(),
        })
    }

    /// Where this side's refresh token is kept in the store: one entry per client and login
    /// at a token endpoint (renaming a platform in the plan keeps it).
    pub fn store_key(&self) -> String {
        format!("{} {} {}", self.token_url, self.client_id, self.login)
    }

    /// The command that gets a new refresh token, for error messages.
    pub fn login_fix(&self) -> String {
        format!(
            "run `mailshift auth login {} {}`",
            self.plan_path, self.login
        )
    }

    /// Whether tokens come from a refresh token (kept in the store or given in the plan).
    pub fn uses_refresh_token(&self) -> bool {
        self.refresh_token.is_some() || self.flow.is_interactive()
    }
}

/// OAuth2 endpoints carry secrets: HTTPS, except to this machine (a local test server).
fn check_url(field: &str, url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("oauth2.{field}: `{url}` is not an http(s) URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "oauth2.{field}: `{url}` would send secrets in clear: use https (plain http is only accepted to localhost)"
        ))
    }
}

/// The OAuth2 block that applies to a side: its own, else its platform's, unless the side
/// logs in another way (a password or a fixed token of its own).
pub fn block_for<'a>(platform: &'a Platform, creds: &'a Credentials) -> Option<&'a OAuth2> {
    if let Some(b) = &creds.oauth2 {
        return Some(b);
    }
    if creds.password.is_some() || creds.oauth2_token.is_some() {
        return None;
    }
    platform.oauth2.as_ref()
}

/// The token store a plan uses: the plan's `token_store`, else `MAILSHIFT_TOKEN_STORE`, else
/// `.mailshift/tokens.json` beside the plan.
pub fn store_path(loaded: &Loaded) -> PathBuf {
    if let Some(p) = &loaded.plan.token_store {
        return loaded.base_dir.join(p);
    }
    if let Some(p) = std::env::var_os("MAILSHIFT_TOKEN_STORE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    loaded.base_dir.join(".mailshift").join("tokens.json")
}

/// The token source of one account side, shared by every connection of the run (and of a
/// `watch` daemon's later runs): one cache per OAuth2 setup, login and store, so a copy over
/// many connections asks the token endpoint once per token lifetime, not once per login.
/// `None` when the side does not log in with OAuth2.
pub fn tokens_for(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: &str,
) -> Result<Option<Tokens>, String> {
    let Some(block) = block_for(platform, creds) else {
        return Ok(None);
    };
    tokens_with(loaded, platform, block, login)
}

/// Like [`tokens_for`], for Microsoft Graph: the account's `oauth2` setup asked for Graph's
/// scopes instead of IMAP's (the block's `scopes` are IMAP's and do not apply). `None` when
/// the account has no `oauth2` block.
pub fn graph_tokens_for(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: &str,
) -> Result<Option<Tokens>, String> {
    let Some(block) = block_for(platform, creds) else {
        return Ok(None);
    };
    tokens_with(loaded, platform, &graph_block(block), login)
}

/// An `oauth2` block with Graph's scopes for its flow.
fn graph_block(block: &OAuth2) -> OAuth2 {
    let mut graph = block.clone();
    graph.scopes = if block.flow == OAuth2Flow::ClientCredentials {
        vec![MICROSOFT_GRAPH_APP_ONLY_SCOPE.to_string()]
    } else {
        MICROSOFT_GRAPH_DELEGATED_SCOPES.map(String::from).to_vec()
    };
    graph
}

fn tokens_with(
    loaded: &Loaded,
    platform: &Platform,
    block: &OAuth2,
    login: &str,
) -> Result<Option<Tokens>, String> {
    let store = store_path(loaded);
    // An app-only token is the app's, whatever the mailbox (XOAUTH2 names the mailbox): one
    // cache per app, so 10,000 mailboxes of a tenant cost one token request per lifetime, not
    // 10,000 (Microsoft's token endpoint throttles too).
    let login = if block.flow == OAuth2Flow::ClientCredentials {
        "the app's mailboxes"
    } else {
        login
    };
    let key = registry_key(block, platform.kind, &loaded.base_dir, login, &store);
    static CACHES: OnceLock<Mutex<HashMap<String, Arc<TokenCache>>>> = OnceLock::new();
    let caches = CACHES.get_or_init(Default::default);
    if let Some(cache) = lock(caches).get(&key) {
        return Ok(Some(Tokens(cache.clone())));
    }
    let settings = Settings::resolve(
        block,
        platform.kind,
        &loaded.base_dir,
        login,
        &loaded.file_name(),
    )?;
    let grant = flows::PlanGrant::new(settings, TokenStore::new(store))?;
    let cache = lock(caches)
        .entry(key)
        .or_insert_with(|| Arc::new(TokenCache::new(Box::new(grant))))
        .clone();
    Ok(Some(Tokens(cache)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Identifies a setup without holding its secrets in clear: the block as written (secret
/// references, not values), the platform type, the login and the store, hashed.
fn registry_key(
    block: &OAuth2,
    kind: PlatformKind,
    base: &Path,
    login: &str,
    store: &Path,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_string(block).unwrap_or_default());
    h.update([0]);
    h.update(kind.as_str());
    h.update([0]);
    h.update(base.to_string_lossy().as_bytes());
    h.update([0]);
    h.update(login.to_ascii_lowercase());
    h.update([0]);
    h.update(store.to_string_lossy().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod graph_scope_tests {
    use super::*;

    fn block(flow: OAuth2Flow) -> OAuth2 {
        OAuth2 {
            flow,
            client_id: Some("app".into()),
            client_secret: None,
            tenant: Some("contoso.onmicrosoft.com".into()),
            service_account_key: None,
            refresh_token: None,
            // IMAP's, as a plan may set them: Graph never gets them.
            scopes: vec!["https://outlook.office365.com/.default".into()],
            token_url: None,
            device_authorization_url: None,
            authorization_url: None,
            ca_file: None,
        }
    }

    #[test]
    fn graph_asks_for_graph_scopes_not_imap_ones() {
        let app = graph_block(&block(OAuth2Flow::ClientCredentials));
        assert_eq!(app.scopes, ["https://graph.microsoft.com/.default"]);
        let delegated = graph_block(&block(OAuth2Flow::DeviceCode));
        assert!(
            delegated
                .scopes
                .iter()
                .all(|s| s.starts_with("https://graph.microsoft.com/") || s == "offline_access"),
            "{:?}",
            delegated.scopes
        );
        assert!(
            delegated
                .scopes
                .iter()
                .any(|s| s.ends_with("Calendars.ReadWrite"))
        );
        let settings = Settings::resolve(
            &delegated,
            PlatformKind::Microsoft365,
            Path::new("."),
            "ada@contoso.com",
            "plan.yaml",
        )
        .unwrap();
        assert_eq!(settings.scopes, delegated.scopes);
    }
}
