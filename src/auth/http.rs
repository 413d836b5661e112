//! The HTTP the OAuth2 flows need: form POSTs to token and device endpoints answered with
//! JSON, over reqwest with rustls (ring) and the platform's trust store plus the block's
//! `ca_file`. Certificates are always verified: token endpoints carry secrets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::transfer::imap::ErrorKind;
use crate::transfer::imap::session::TokenError;

/// A token endpoint's answer: its status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<u64>,
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new(ca_file: Option<&Path>) -> Result<Http, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let setup = |e: rustls::Error| format!("TLS setup for the OAuth2 endpoints failed: {e}");
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(setup)?;
        let verifier = match ca_file {
            None => rustls_platform_verifier::Verifier::new(provider),
            Some(path) => {
                rustls_platform_verifier::Verifier::new_with_extra_roots(read_ca(path)?, provider)
            }
        }
        .map_err(setup)?;
        let mut tls = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Http { client })
    }

    /// The client itself, for other verified HTTPS calls (webhook notifications).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs `form` (application/x-www-form-urlencoded) to `url`.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Reply, TokenError> {
        let body = encode_form(form);
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| TokenError {
                kind: ErrorKind::Network,
                // reqwest's message names the URL, never the body.
                message: format!("cannot reach the token endpoint {url}: {}", chain(&e)),
            })?;
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = answer.bytes().await.map_err(|e| TokenError {
            kind: ErrorKind::Network,
            message: format!("the answer of {url} broke off: {}", chain(&e)),
        })?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// application/x-www-form-urlencoded (RFC 6749 appendix B).
pub fn encode_form(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but the unreserved characters (RFC 3986 §2.3).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes a percent-encoded query value (`+` is a space in forms).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok()) =>
            {
                out.push(v);
                i += 3;
                continue;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_ca(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail = |why: String| format!("cannot use the CA file {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip() {
        let enc = encode_form(&[("scope", "a b/.default"), ("x", "é&=")]);
        assert_eq!(enc, "scope=a%20b%2F.default&x=%C3%A9%26%3D");
        assert_eq!(percent_decode("a%20b+c%2F"), "a b c/");
        assert_eq!(percent_decode("bad%2"), "bad%2");
    }
}
