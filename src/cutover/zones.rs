//! Which [`Zone`] and [`Propagation`] serve a domain's `dns:` block: RFC 2136 and manual
//! zones and the direct questions to each authoritative server come from `mailshift-dns`,
//! OVHcloud's zone API from `mailshift-ovh`, as do an OVHcloud destination's default records
//! (its DNS diagnosis).

use std::net::SocketAddr;

use base64::Engine;
use mailshift_core::cutover::{Desired, is_spf, records_from_diagnosis};
use mailshift_core::dns::{RecordType, Zone, normalize_name};
use mailshift_core::error::{ErrorKind, StepError};
use mailshift_core::plan::model::{DnsProvider, Domain, ProviderKind};
use mailshift_core::plane::PlaneResult;
use mailshift_dns::{ManualZone, Rfc2136Config, Rfc2136Zone, TsigKey};

use super::{Answer, Cutover, Propagation};
use crate::plan::Loaded;
use crate::providers::ovh::plane::OvhPlanes;

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
            let credentials = ovh_credentials(loaded, domain)?;
            Box::new(OvhPlanes::zone(credentials, &apex, loaded)?)
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

/// The `providers` entry that signs an OVHcloud zone's calls: the zone's `credentials`, else
/// the domain's platform's provider, else the plan's only `ovh` provider.
fn ovh_credentials<'a>(loaded: &'a Loaded, domain: &'a Domain) -> Result<&'a str, StepError> {
    let plan = &loaded.plan;
    if let Some(name) = domain.dns.as_ref().and_then(|z| z.credentials.as_deref()) {
        return Ok(name);
    }
    if let Some(name) = plan
        .platforms
        .get(&domain.platform)
        .and_then(|p| p.provider.as_deref())
    {
        return Ok(name);
    }
    let mut ovh = plan
        .providers
        .iter()
        .filter(|(_, p)| p.kind == ProviderKind::Ovh)
        .map(|(n, _)| n.as_str());
    match (ovh.next(), ovh.next()) {
        (Some(only), None) => Ok(only),
        _ => Err(StepError::config(format!(
            "the OVHcloud zone of {} names no `credentials`: add `credentials: NAME`, an `ovh` entry of `providers`",
            domain.name
        ))),
    }
}

/// The cutover of `domain` with its records known: the plan's, the platform's published ones,
/// or, for an OVHcloud destination without `records:`, the ones its DNS diagnosis expects
/// (read here, an API call). The TTL after the cutover is then the zone's own.
pub async fn cutover(loaded: &Loaded, domain: &Domain) -> Result<Cutover, StepError> {
    let mut c = Cutover::from_plan(&loaded.plan, domain)?;
    let Some(platform_name) = records_from_diagnosis(&loaded.plan, domain) else {
        return Ok(c);
    };
    let platform =
        loaded.plan.platforms.get(platform_name).ok_or_else(|| {
            StepError::bug(format!("platform `{platform_name}` is not in the plan"))
        })?;
    let service = OvhPlanes::service(platform_name, platform, loaded)?;
    let sets = service
        .expected_records(&domain.name.to_ascii_lowercase(), 0)
        .await
        .map_err(|e| {
            StepError::from(e).context(format!(
                "the records {} needs, from the DNS diagnosis of platform `{platform_name}` (or list them in the domain's `records:`)",
                domain.name
            ))
        })?;
    if sets.is_empty() {
        return Err(StepError::config(format!(
            "the DNS diagnosis of platform `{platform_name}` expects no record for {}: list them in the domain's `records:`",
            domain.name
        )));
    }
    c.desired = sets
        .into_iter()
        .map(|set| {
            let spf_only = set.rtype == RecordType::Txt && set.data.iter().any(|d| is_spf(d));
            Desired { set, spf_only }
        })
        .collect();
    Ok(c)
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
