//! A DNS zone hosted at OVHcloud (`/domain/zone/{zone}`) as a [`Zone`]: record sets read and
//! written through the same signed client as the email APIs, then published with the zone's
//! refresh.
//!
//! How OVHcloud's records map onto [`RecordSet`]s:
//! - `subDomain` is relative to the zone, `""` for the apex; a set's `name` is absolute.
//! - `target` is presentation format (`1 mx1.mail.ovh.net.`, `0 0 443 pro1.mail.ovh.net.`,
//!   `"v=spf1 include:mx.ovh.com ~all"`, quoted or not): [`normalize_data`] makes it
//!   comparable. Names in targets are always written absolute (with the final dot), so the
//!   zone never appends its own name to them.
//! - a TXT set is the records of field type `TXT` and of OVHcloud's own `SPF`, `DKIM` and
//!   `DMARC` types, which are served as TXT: an SPF record made in the control panel is part of
//!   the apex's TXT answer and is kept, changed or removed like the others.
//! - `ttl` 0 means the zone's default (its SOA's TTL): read sets carry the TTL the name servers
//!   serve (the default resolved, the smallest when the records differ), so a set read back
//!   compares equal to what resolvers get; written sets always send their TTL explicitly.
//!
//! Writing reads first and changes only what differs: records that stay get a `PUT` of their
//! TTL, records to replace get a `PUT` of their target (same field type), the rest is
//! `POST`ed, extras are `DELETE`d, then one `POST /refresh`. Nothing is served before the
//! refresh, so the order leaves no gap in answers. A run killed between two calls converges on
//! the next: the records are read again, and a zone whose working copy is not deployed yet
//! (`GET /status`, `isDeployed`) is refreshed even when no record needs a change.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::client::OvhClient;
use crate::error::OvhError;
use mailshift_core::dns::{RecordSet, RecordType, Zone, normalize_data, normalize_name};
use mailshift_core::error::StepError;
use mailshift_core::plane::PlaneResult;

/// One record as `GET /domain/zone/{zone}/record/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: u64,
    #[serde(default)]
    sub_domain: Option<String>,
    field_type: String,
    target: String,
    #[serde(default)]
    ttl: Option<u32>,
}

/// A zone hosted at OVHcloud, reached through a signed client.
pub struct OvhZone {
    client: Arc<OvhClient>,
    /// `example.com`: lower-case, no final dot.
    apex: String,
    /// The SOA's TTL, read once: what a record with `ttl` 0 is served with.
    default_ttl: OnceCell<u32>,
}

impl std::fmt::Debug for OvhZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvhZone").field("apex", &self.apex).finish()
    }
}

/// The OVHcloud field types whose records a set of `rtype` is made of, the canonical one first.
fn field_types(rtype: RecordType) -> &'static [&'static str] {
    match rtype {
        RecordType::A => &["A"],
        RecordType::Aaaa => &["AAAA"],
        RecordType::Cname => &["CNAME"],
        RecordType::Mx => &["MX"],
        RecordType::Txt => &["TXT", "SPF", "DKIM", "DMARC"],
        RecordType::Srv => &["SRV"],
        RecordType::Ns => &["NS"],
    }
}

/// A set's normalized data as an OVHcloud target: domain names absolute (final dot), TXT
/// quoted as [`normalize_data`] keeps it.
fn target_of(rtype: RecordType, data: &str) -> String {
    let absolute = |name: &str| format!("{}.", name.trim_end_matches('.'));
    match rtype {
        RecordType::Cname | RecordType::Ns => absolute(data),
        // `PREF HOST` and `PRIO WEIGHT PORT HOST`: the host is the last word.
        RecordType::Mx | RecordType::Srv => match data.rsplit_once(' ') {
            Some((head, host)) => format!("{head} {}", absolute(host)),
            None => data.to_string(),
        },
        RecordType::A | RecordType::Aaaa | RecordType::Txt => data.to_string(),
    }
}

/// `%XX` for what may not stand in a query value as is.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl OvhZone {
    /// The zone `apex` (`example.com`) of the account `client` signs for.
    pub fn new(client: Arc<OvhClient>, apex: &str) -> OvhZone {
        OvhZone {
            client,
            apex: normalize_name(apex),
            default_ttl: OnceCell::new(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/domain/zone/{}{rest}", self.apex)
    }

    /// What went wrong, naming the zone; a 404 says the zone is not in the account.
    fn error(&self, e: OvhError) -> StepError {
        if e.api().is_some_and(|a| a.is_not_found()) {
            return StepError::config(format!(
                "DNS zone {}: OVHcloud answers that this account has no such zone or record ({e}); \
                 check that the zone is hosted at OVHcloud (GET /domain/zone lists the account's zones) \
                 and that the consumer key may use /domain/zone/{}/*",
                self.apex, self.apex
            ));
        }
        StepError::from(e).context(format!("DNS zone {}", self.apex))
    }

    /// `subDomain` of an absolute name, or why it is not in this zone.
    fn sub_domain(&self, name: &str) -> Result<String, StepError> {
        let name = normalize_name(name);
        if name == self.apex {
            return Ok(String::new());
        }
        match name.strip_suffix(&format!(".{}", self.apex)) {
            Some(sub) => Ok(sub.to_string()),
            None => Err(StepError::config(format!(
                "{name} is not in the DNS zone {}: write its records in the zone that holds it",
                self.apex
            ))),
        }
    }

    async fn default_ttl(&self) -> Result<u32, StepError> {
        self.default_ttl
            .get_or_try_init(|| async {
                let soa: Value = self
                    .client
                    .get(&self.path("/soa"), None)
                    .await
                    .map_err(|e| self.error(e))?;
                soa.get("ttl")
                    .and_then(Value::as_u64)
                    .and_then(|t| u32::try_from(t).ok())
                    .ok_or_else(|| {
                        StepError::bug(format!(
                            "DNS zone {}: the SOA has no usable ttl: {soa}",
                            self.apex
                        ))
                    })
            })
            .await
            .copied()
    }

    /// Every record of `sub` whose field type makes up sets of `rtype`.
    async fn records(&self, sub: &str, rtype: RecordType) -> Result<Vec<Record>, StepError> {
        let mut out = Vec::new();
        for field_type in field_types(rtype) {
            let ids: Vec<u64> = self
                .client
                .get(
                    &self.path(&format!(
                        "/record?fieldType={field_type}&subDomain={}",
                        encode(sub)
                    )),
                    None,
                )
                .await
                .map_err(|e| self.error(e))?;
            for id in ids {
                let r: Record = self
                    .client
                    .get(&self.path(&format!("/record/{id}")), None)
                    .await
                    .map_err(|e| self.error(e))?;
                // The filter is a case-insensitive `like`, where `_` matches any character:
                // `_autodiscover._tcp` could select more than that name.
                if r.sub_domain
                    .as_deref()
                    .unwrap_or("")
                    .eq_ignore_ascii_case(sub)
                {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// The TTL a record is served with.
    async fn served_ttl(&self, r: &Record) -> Result<u32, StepError> {
        match r.ttl {
            Some(t) if t > 0 => Ok(t),
            _ => self.default_ttl().await,
        }
    }

    /// Publishes the working copy when it differs from what is served: after changes, or
    /// after a run that changed records and stopped before refreshing.
    async fn refresh(&self, changed: bool) -> Result<(), StepError> {
        if !changed {
            let status: Value = self
                .client
                .get(&self.path("/status"), None)
                .await
                .map_err(|e| self.error(e))?;
            if status.get("isDeployed").and_then(Value::as_bool) != Some(false) {
                return Ok(());
            }
        }
        self.client
            .post::<Value>(&self.path("/refresh"), None)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// See [`Zone::read`].
    pub async fn read_set(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Option<RecordSet>, StepError> {
        let sub = self.sub_domain(name)?;
        let records = self.records(&sub, rtype).await?;
        if records.is_empty() {
            return Ok(None);
        }
        let mut ttl = u32::MAX;
        for r in &records {
            ttl = ttl.min(self.served_ttl(r).await?);
        }
        let data = records.iter().map(|r| r.target.clone()).collect();
        Ok(Some(RecordSet::new(name, rtype, ttl, data)))
    }

    /// See [`Zone::write`].
    pub async fn write_set(&self, set: &RecordSet) -> Result<(), StepError> {
        let sub = self.sub_domain(&set.name)?;
        let canonical = field_types(set.rtype)[0];
        let existing = self.records(&sub, set.rtype).await?;
        let wanted: Vec<String> = set
            .data
            .iter()
            .map(|d| normalize_data(set.rtype, d))
            .collect();
        let mut kept = Vec::new();
        let mut extra = Vec::new();
        for r in existing {
            let data = normalize_data(set.rtype, &r.target);
            if wanted.contains(&data) && !kept.iter().any(|(d, _): &(String, Record)| *d == data) {
                kept.push((data, r));
            } else {
                extra.push(r);
            }
        }
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|d| !kept.iter().any(|(k, _)| k == *d))
            .collect();
        let mut changed = false;
        for (_, r) in &kept {
            if self.served_ttl(r).await? != set.ttl {
                let body = json!({"ttl": set.ttl});
                self.put(r.id, &body).await?;
                changed = true;
            }
        }
        for data in missing {
            let target = target_of(set.rtype, data);
            // A record to replace takes the new target: one call, and a CNAME is never
            // briefly two records.
            match extra.iter().position(|r| r.field_type == canonical) {
                Some(i) => {
                    let r = extra.remove(i);
                    self.put(r.id, &json!({"target": target, "ttl": set.ttl}))
                        .await?;
                }
                None => {
                    let body = json!({
                        "fieldType": canonical,
                        "subDomain": sub,
                        "target": target,
                        "ttl": set.ttl,
                    });
                    self.client
                        .post::<Value>(&self.path("/record"), Some(&body))
                        .await
                        .map_err(|e| self.error(e))?;
                }
            }
            changed = true;
        }
        for r in &extra {
            self.delete(r.id).await?;
            changed = true;
        }
        self.refresh(changed).await
    }

    /// See [`Zone::remove`].
    pub async fn remove_set(&self, name: &str, rtype: RecordType) -> Result<(), StepError> {
        let sub = self.sub_domain(name)?;
        let existing = self.records(&sub, rtype).await?;
        for r in &existing {
            self.delete(r.id).await?;
        }
        self.refresh(!existing.is_empty()).await
    }

    async fn put(&self, id: u64, body: &Value) -> Result<(), StepError> {
        self.client
            .put::<Value>(&self.path(&format!("/record/{id}")), Some(body))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Deletes a record; one already gone (a retried call that had landed) is fine.
    async fn delete(&self, id: u64) -> Result<(), StepError> {
        match self
            .client
            .delete::<Value>(&self.path(&format!("/record/{id}")), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.api().is_some_and(|a| a.is_not_found()) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

impl Zone for OvhZone {
    fn apex(&self) -> &str {
        &self.apex
    }

    fn read<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Option<RecordSet>> {
        Box::pin(self.read_set(name, rtype))
    }

    fn write<'a>(&'a self, set: &'a RecordSet) -> PlaneResult<'a, ()> {
        Box::pin(self.write_set(set))
    }

    fn remove<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, ()> {
        Box::pin(self.remove_set(name, rtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_written_absolute() {
        assert_eq!(
            target_of(RecordType::Mx, "1 mx1.mail.ovh.net"),
            "1 mx1.mail.ovh.net."
        );
        assert_eq!(
            target_of(RecordType::Srv, "0 0 443 pro1.mail.ovh.net"),
            "0 0 443 pro1.mail.ovh.net."
        );
        assert_eq!(
            target_of(RecordType::Cname, "autodiscover.mail.ovh.net"),
            "autodiscover.mail.ovh.net."
        );
        assert_eq!(
            target_of(RecordType::Txt, "\"v=spf1 ~all\""),
            "\"v=spf1 ~all\""
        );
        assert_eq!(target_of(RecordType::A, "192.0.2.1"), "192.0.2.1");
        assert_eq!(encode("_autodiscover._tcp"), "_autodiscover._tcp");
        assert_eq!(encode("*.x"), "%2A.x");
    }
}
