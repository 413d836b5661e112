//! Webhook notifications: the notice as JSON, POSTed with an HMAC-SHA256 of the exact body
//! under the target's secret in `X-Mailshift-Signature: sha256=HEX`, so the receiver can
//! check that it comes from this plan. HMAC from `ring` (already rustls's crypto provider)
//! rather than the `hmac` crate: one crate fewer.
//!
//! A failed delivery (no connection, a 5xx, a 429) is retried with backoff, a few times within
//! a minute; a 4xx other than 408/429 is the receiver's refusal and is not retried.

use std::path::Path;
use std::time::Duration;

use ring::hmac;

use super::{Notice, hex};
use crate::plan::model::WebhookNotify;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Mailshift-Signature";
/// Attempts per notice, and the wait before the second (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

/// `sha256=HEX` of `body` under `key`: what the header says.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    format!("sha256={}", hex(hmac::sign(&key, body).as_ref()))
}

pub async fn send(target: &WebhookNotify, base: &Path, notice: &Notice) -> Result<(), String> {
    send_with_backoff(target, base, notice, FIRST_BACKOFF).await
}

/// [`send`] with the first backoff given (tests use a short one).
pub async fn send_with_backoff(
    target: &WebhookNotify,
    base: &Path,
    notice: &Notice,
    first_backoff: Duration,
) -> Result<(), String> {
    let secret = target
        .secret
        .resolve(base)
        .map_err(|e| format!("webhook {}: cannot read its secret: {e}", target.url))?;
    let body = serde_json::to_vec(notice).map_err(|e| e.to_string())?;
    let sig = signature(secret.expose().as_bytes(), &body);
    let http =
        crate::auth::http::Http::new(None).map_err(|e| format!("webhook {}: {e}", target.url))?;
    let client = http.client();
    let mut wait = first_backoff;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(&target.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, &sig)
            .header("X-Mailshift-Event", notice.event.as_str())
            .timeout(Duration::from_secs(30))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let s = r.status();
                last = format!("webhook {} answered {s}", target.url);
                if s.is_client_error() && s.as_u16() != 408 && s.as_u16() != 429 {
                    return Err(format!("{last}; check the URL and the receiver's secret"));
                }
            }
            Err(e) => last = format!("cannot reach webhook {}: {e}", target.url),
        }
        if attempt < ATTEMPTS {
            tracing::info!("{last}; retrying in {}s", wait.as_secs_f32());
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
