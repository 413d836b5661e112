//! E-mail notifications over SMTP (lettre): implicit TLS or STARTTLS on rustls with the
//! platform's trust store (plus the target's `ca_file`), certificates always verified;
//! `security: none` only where the plan validator allowed it (loopback, or `allow_plaintext`).
//! The password is a secret reference, read at sending time and never part of the message.

use std::path::Path;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Notice;
use crate::plan::model::{EmailNotify, Security};

/// Attempts per message, and the wait before the second (doubled each time).
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest one SMTP command may wait for its answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest one attempt may take, connection, TLS and all.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn send(target: &EmailNotify, base: &Path, notice: &Notice) -> Result<(), String> {
    let smtp = &target.smtp;
    let place = format!("SMTP server {}:{}", smtp.host, smtp.effective_port());
    let message = message(target, notice)?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.effective_port())
        .timeout(Some(COMMAND_TIMEOUT));
    if smtp.security != Security::None {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let path = base.join(ca);
            let pem = std::fs::read(&path)
                .map_err(|e| format!("{place}: cannot read `ca_file` {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("{place}: `ca_file` {} is not PEM: {e}", path.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("{place}: TLS setup failed: {e}"))?;
        builder = builder.tls(match smtp.security {
            Security::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let (Some(login), Some(password)) = (&smtp.login, &smtp.password) {
        let password = password
            .resolve(base)
            .map_err(|e| format!("{place}: cannot read the SMTP password: {e}"))?;
        builder = builder.credentials(Credentials::new(
            login.clone(),
            password.expose().to_string(),
        ));
    }
    let transport = builder.build();
    let mut wait = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        // lettre's timeout bounds each command, not a TLS handshake that stalls: bound it all.
        let sent = tokio::time::timeout(SEND_TIMEOUT, transport.send(message.clone())).await;
        let sent = match sent {
            Ok(sent) => sent,
            Err(_) => {
                last = format!("{place}: no answer within {}s", SEND_TIMEOUT.as_secs());
                if attempt < ATTEMPTS {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                continue;
            }
        };
        match sent {
            Ok(_) => return Ok(()),
            // A refused login will not be accepted on the next try: not retried in this run.
            // lettre's errors name the server's answer, never the credentials.
            Err(e) if is_login_refused(&e) => {
                return Err(format!(
                    "{place} refused the login `{}`: {e}; check `login` and `password`",
                    smtp.login.as_deref().unwrap_or("")
                ));
            }
            Err(e) if e.is_permanent() => return Err(format!("{place} refused the message: {e}")),
            // A certificate that does not verify will not verify in a few seconds either.
            Err(e) if e.is_tls() || is_certificate(&e) => {
                return Err(format!(
                    "{place}: TLS failed: {e}; check `security`, `port` and `ca_file`"
                ));
            }
            Err(e) => last = format!("{place}: {e}"),
        }
        if attempt < ATTEMPTS {
            tracing::info!("{last}; retrying in {}s", wait.as_secs_f32());
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}

/// The message: a subject naming the plan and the event, a plain-text body.
pub fn message(target: &EmailNotify, notice: &Notice) -> Result<Message, String> {
    let from: Mailbox = target
        .from
        .parse()
        .map_err(|e| format!("sender `{}`: {e}", target.from))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(format!("[mailshift {}] {}", notice.plan, notice.summary));
    for to in &target.to {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient `{to}`: {e}"))?;
        builder = builder.to(to);
    }
    let mut body = format!(
        "{}\n\nplan: {}\nevent: {}\n",
        notice.summary,
        notice.plan,
        notice.event.as_str()
    );
    if let Some(a) = &notice.account {
        body.push_str(&format!("account: {a}\n"));
    }
    if let Some(s) = &notice.step {
        body.push_str(&format!("step: {s}\n"));
    }
    if !notice.detail.is_empty() {
        body.push_str(&format!("\n{}\n", notice.detail));
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("cannot build the notification: {e}"))
}

/// Whether the server refused the credentials (RFC 4954: 535 bad credentials, 534 mechanism
/// too weak, 530 authentication required; 538 encryption required for the mechanism).
fn is_login_refused(e: &lettre::transport::smtp::Error) -> bool {
    e.status()
        .is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538"))
}

/// Whether a rustls certificate error is somewhere in the chain (lettre reports a failed
/// handshake as a connection error wrapping the I/O error that wraps rustls's).
fn is_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
        }
        cur = err.source();
    }
    false
}
