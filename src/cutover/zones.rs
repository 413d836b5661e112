//! Which [`Zone`] and [`Propagation`] serve a domain's `dns:` block: RFC 2136 and manual
//! zones and the direct questions to each authoritative server come from `mailshift-dns`.
//! OVHcloud's zone API (`mailshift-ovh`) is not registered yet, and validation refuses
//! `provider: ovh` until it is (`plan::validate::cutover`).

use std::net::SocketAddr;

use base64::Engine;
use mailshift_core::dns::{RecordType, Zone, normalize_name};
use mailshift_core::error::{ErrorKind, StepError};
use mailshift_core::plan::model::{DnsProvider, Domain};
use mailshift_core::plane::PlaneResult;
use mailshift_dns::{ManualZone, Rfc2136Config, Rfc2136Zone, TsigKey};

use super::{Answer, Propagation};
use crate::plan::Loaded;

/// Where a domain's records are written, and who says whether they are served.
pub struct Opened {
    pub zone: Box<dyn Zone>,
    pub propagation: Box<dyn Propagation>,
}

/// `host:port` to its first address.
async fn address(what: &str, text: &str) -> Result<SocketAddr, StepError> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    tokio::net::lookup_host(text)
        .await
        .map_err(|e| StepError::new(ErrorKind::Network, format!("{what} `{text}`: {e}")))?
        .next()
        .ok_or_else(|| {
            StepError::new(
                ErrorKind::Network,
                format!("{what} `{text}` has no address"),
            )
        })
}

/// The zone and the propagation check of `domain`. Secrets (the TSIG key) are read here.
pub async fn open(loaded: &Loaded, domain: &Domain) -> Result<Opened, StepError> {
    let Some(z) = &domain.dns else {
        return Err(StepError::config(format!(
            "domain {} has no `dns` zone",
            domain.name
        )));
    };
    let apex = normalize_name(z.zone.as_deref().unwrap_or(&domain.name));
    let timeout = z
        .timeout
        .as_ref()
        .and_then(|t| t.get())
        .unwrap_or(mailshift_dns::DEFAULT_TIMEOUT);
    let mut nameservers = Vec::new();
    for ns in &z.nameservers {
        nameservers.push(address("name server", ns).await?);
    }
    let server = match &z.server {
        Some(s) => Some(address("DNS server", s).await?),
        None => None,
    };
    let zone: Box<dyn Zone> = match z.provider {
        DnsProvider::Ovh => {
            return Err(StepError::config(format!(
                "the OVHcloud zone of {} cannot be written by this build",
                domain.name
            )));
        }
        DnsProvider::Rfc2136 => {
            let server = server.ok_or_else(|| {
                StepError::config(format!("the zone of {} has no `server`", domain.name))
            })?;
            let tsig = match &z.tsig {
                None => None,
                Some(t) => {
                    let secret = t.secret.resolve(&loaded.base_dir).map_err(|e| {
                        StepError::config(format!("the TSIG key of {}: {e}", domain.name))
                    })?;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(secret.expose().trim())
                        .map_err(|_| {
                            StepError::config(format!(
                                "the TSIG key of {} is not base64 (write it as in the server's `secret \"...\"`)",
                                domain.name
                            ))
                        })?;
                    let key = TsigKey {
                        name: t.name.clone(),
                        algorithm: t.algorithm.clone().unwrap_or_else(|| "hmac-sha256".into()),
                        secret: bytes,
                    };
                    key.validate().map_err(StepError::config)?;
                    Some(key)
                }
            };
            Box::new(Rfc2136Zone::new(Rfc2136Config {
                zone: apex.clone(),
                server,
                tsig,
                timeout,
            }))
        }
        DnsProvider::Manual => {
            // Read from the plan's server, else from the first authoritative server.
            let server = match server.or_else(|| nameservers.first().copied()) {
                Some(s) => s,
                None => *mailshift_dns::authoritative_servers(&apex, None)
                    .await
                    .map_err(|e| StepError::new(ErrorKind::Network, e))?
                    .first()
                    .ok_or_else(|| {
                        StepError::config(format!("zone {apex} has no name server to read"))
                    })?,
            };
            Box::new(ManualZone::new(Rfc2136Config {
                zone: apex.clone(),
                server,
                tsig: None,
                timeout,
            }))
        }
    };
    Ok(Opened {
        zone,
        propagation: Box::new(DnsPropagation {
            apex,
            nameservers,
            timeout,
        }),
    })
}

/// Each authoritative server asked directly: the plan's `nameservers`, else the zone's NS.
struct DnsPropagation {
    apex: String,
    nameservers: Vec<SocketAddr>,
    timeout: std::time::Duration,
}

impl Propagation for DnsPropagation {
    fn answers<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Vec<Answer>> {
        Box::pin(async move {
            let servers = if self.nameservers.is_empty() {
                mailshift_dns::authoritative_servers(&self.apex, None)
                    .await
                    .map_err(|e| StepError::new(ErrorKind::Network, e))?
            } else {
                self.nameservers.clone()
            };
            Ok(
                mailshift_dns::ask_each_with_timeout(&servers, name, rtype, self.timeout)
                    .await
                    .into_iter()
                    .map(|a| Answer {
                        server: a.server.to_string(),
                        result: a.result,
                    })
                    .collect(),
            )
        })
    }
}
