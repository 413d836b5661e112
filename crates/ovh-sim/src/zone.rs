//! The `/domain/zone` API: DNS zones hosted at OVHcloud, their records, and the refresh that
//! publishes them. As on OVHcloud, a record created, changed or deleted through the API is
//! only in the zone's working copy until `POST /domain/zone/{zone}/refresh`; the name servers
//! (`nameserver`) answer from the copy last refreshed, so a client that forgets the refresh
//! sees its change in the API and never in the DNS.
//!
//! Record data is checked the way a name server would load it (hickory's presentation-format
//! parser): a target the zone could not serve is refused with 400, as the real API refuses
//! an invalid record. TXT targets are stored quoted, as OVHcloud shows them.

use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};

use super::reply::{ApiErr, Reply, Req};
use super::state::State;
use super::world;

/// One record of a zone as the API knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ZRec {
    pub id: u64,
    /// Relative to the zone, lower-case, `""` for the apex.
    pub sub: String,
    /// `domain.zone.RecordTypeEnum`.
    pub field_type: String,
    pub target: String,
    /// 0: the zone's default.
    pub ttl: u32,
}

/// What the name servers answer: a zone as of its last refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Served {
    pub name: String,
    pub default_ttl: u32,
    pub serial: u32,
    pub records: Vec<ZRec>,
}

pub(super) struct DnsZone {
    pub name: String,
    pub default_ttl: u32,
    /// The working copy the API reads and changes.
    pub records: Vec<ZRec>,
    pub served: Served,
    pub last_update: String,
}

/// The two name servers every simulated zone is delegated to, as OVHcloud pairs them
/// (`dnsNN.ovh.net` and `nsNN.ovh.net`). Their addresses are the simulator's responders.
pub const NAME_SERVERS: [&str; 2] = ["dns200.ovh.net", "ns200.ovh.net"];

/// The DNS type a record is served as: OVHcloud's `SPF`, `DKIM` and `DMARC` field types are
/// TXT records with a type of their own in the API only.
pub(super) fn served_type(field_type: &str) -> Option<RecordType> {
    match field_type {
        "SPF" | "DKIM" | "DMARC" => Some(RecordType::TXT),
        other => other.parse::<RecordType>().ok().filter(|t| {
            // What the name servers can encode from text; the rest is refused at the API.
            matches!(
                t,
                RecordType::A
                    | RecordType::AAAA
                    | RecordType::CAA
                    | RecordType::CNAME
                    | RecordType::MX
                    | RecordType::NAPTR
                    | RecordType::NS
                    | RecordType::PTR
                    | RecordType::SRV
                    | RecordType::SSHFP
                    | RecordType::TLSA
                    | RecordType::TXT
            )
        }),
    }
}

/// The record data a name server serves for a record, or why it cannot.
pub(super) fn rdata(field_type: &str, target: &str) -> Result<RData, String> {
    let rtype = served_type(field_type)
        .ok_or_else(|| format!("the simulator does not serve {field_type} records"))?;
    RData::try_from_str(rtype, target).map_err(|e| format!("{e}"))
}

/// A TXT target as OVHcloud stores it: quoted (a target sent without quotes is one string).
fn stored_target(field_type: &str, target: &str) -> String {
    let target = target.trim();
    let txt = served_type(field_type) == Some(RecordType::TXT);
    if txt && !target.starts_with('"') {
        format!("\"{}\"", target.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        target.to_string()
    }
}

impl DnsZone {
    pub fn from_world(z: &world::Zone, next_id: &mut dyn FnMut() -> u64, now: String) -> DnsZone {
        let records: Vec<ZRec> = z
            .records
            .iter()
            .map(|r| ZRec {
                id: next_id(),
                sub: r.sub_domain.trim().to_ascii_lowercase(),
                field_type: r.field_type.clone(),
                target: stored_target(&r.field_type, &r.target),
                ttl: r.ttl,
            })
            .collect();
        let name = z.name.trim().trim_end_matches('.').to_ascii_lowercase();
        DnsZone {
            served: Served {
                name: name.clone(),
                default_ttl: z.default_ttl,
                serial: 2024060100,
                records: records.clone(),
            },
            name,
            default_ttl: z.default_ttl,
            records,
            last_update: now,
        }
    }

    pub fn to_world(&self) -> world::Zone {
        world::Zone {
            name: self.name.clone(),
            default_ttl: self.default_ttl,
            records: self
                .records
                .iter()
                .map(|r| world::ZoneRecord {
                    sub_domain: r.sub.clone(),
                    field_type: r.field_type.clone(),
                    target: r.target.clone(),
                    ttl: r.ttl,
                })
                .collect(),
        }
    }

    /// Whether the name servers answer what the API shows.
    pub fn deployed(&self) -> bool {
        self.served.records == self.records
    }

    fn record_json(&self, r: &ZRec) -> Value {
        json!({
            "id": r.id,
            "zone": self.name,
            "subDomain": r.sub,
            "fieldType": r.field_type,
            "target": r.target,
            "ttl": r.ttl,
        })
    }

    /// A record must be one a name server can load, and a CNAME cannot share its name with
    /// any other record (RFC 1034 §3.6.2; the real API refuses it too).
    fn check(
        &self,
        id: Option<u64>,
        sub: &str,
        field_type: &str,
        target: &str,
    ) -> Result<(), ApiErr> {
        rdata(field_type, target).map_err(|e| {
            ApiErr::bad(format!(
                "Invalid target {target:?} for a {field_type} record: {e}"
            ))
        })?;
        let others = self
            .records
            .iter()
            .filter(|r| Some(r.id) != id && r.sub == sub);
        for r in others {
            if r.field_type == "CNAME" || field_type == "CNAME" {
                return Err(ApiErr::bad(format!(
                    "Cannot add a {field_type} record on {}: the name already has a {} record and a CNAME cannot coexist with other records",
                    fqdn(sub, &self.name),
                    r.field_type
                )));
            }
        }
        Ok(())
    }
}

fn fqdn(sub: &str, zone: &str) -> String {
    if sub.is_empty() {
        zone.to_string()
    } else {
        format!("{sub}.{zone}")
    }
}

fn not_found(zone: &str) -> ApiErr {
    ApiErr::business(
        404,
        "Client::NotFound",
        format!("This service does not exist (zoneName = {zone})"),
    )
}

/// Handles a `/domain/...` call; `None` for a published operation the simulator does not
/// model.
pub(super) fn handle(st: &mut State, req: &Req<'_>) -> Option<Reply> {
    let t = req.template;
    if t == "/domain/zone" {
        return Some(Ok(json!(
            st.zones.iter().map(|z| z.name.clone()).collect::<Vec<_>>()
        )));
    }
    let rest = t.strip_prefix("/domain/zone/{zoneName}")?;
    let name = req
        .param("zoneName")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let now = st.now_str();
    let Some(index) = st.zones.iter().position(|z| z.name == name) else {
        return Some(Err(not_found(&name)));
    };
    let next_id = if (req.method, rest) == ("POST", "/record") {
        st.id()
    } else {
        0
    };
    let zone = &mut st.zones[index];
    let record_index = |zone: &DnsZone| {
        let id = req.param_id("id");
        zone.records
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| ApiErr::missing("id", req.param("id")))
    };
    Some(match (req.method, rest) {
        ("GET", "") => Ok(json!({
            "name": zone.name,
            "nameServers": NAME_SERVERS,
            "dnssecSupported": true,
            "hasDnsAnycast": false,
            "lastUpdate": zone.last_update,
        })),
        ("GET", "/status") => Ok(json!({
            "isDeployed": zone.deployed(),
            "warnings": [],
            "errors": [],
        })),
        ("GET", "/soa") => Ok(json!({
            "server": format!("{}.", NAME_SERVERS[0]),
            "email": "tech.ovh.net.",
            "serial": zone.served.serial,
            "refresh": 86400,
            "nxDomainTtl": 3600,
            "expire": 3600000,
            "ttl": zone.default_ttl,
        })),
        ("GET", "/record") => {
            // `fieldType` is a like filter and `subDomain` an ilike one: without wildcards,
            // equality (case-insensitive for the name). `subDomain=` selects the apex.
            let ids: Vec<u64> = zone
                .records
                .iter()
                .filter(|r| req.query("fieldType").is_none_or(|f| r.field_type == f))
                .filter(|r| {
                    req.query("subDomain")
                        .is_none_or(|s| r.sub == s.trim().to_ascii_lowercase())
                })
                .map(|r| r.id)
                .collect();
            Ok(json!(ids))
        }
        ("POST", "/record") => {
            let field_type = req.str("fieldType").unwrap_or_default().to_string();
            let sub = req
                .str("subDomain")
                .unwrap_or_default()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let target = stored_target(&field_type, req.str("target").unwrap_or_default());
            let ttl = req.i64("ttl").unwrap_or(0);
            if ttl < 0 || ttl > i64::from(i32::MAX) {
                return Some(Err(ApiErr::bad(format!("Invalid ttl {ttl}"))));
            }
            if let Err(e) = zone.check(None, &sub, &field_type, &target) {
                return Some(Err(e));
            }
            let r = ZRec {
                id: next_id,
                sub,
                field_type,
                target,
                ttl: ttl as u32,
            };
            let v = zone.record_json(&r);
            zone.records.push(r);
            Ok(v)
        }
        ("GET", "/record/{id}") => record_index(zone).map(|i| zone.record_json(&zone.records[i])),
        ("PUT", "/record/{id}") => record_index(zone).and_then(|i| {
            let mut r = zone.records[i].clone();
            if let Some(sub) = req.nullable("subDomain") {
                r.sub = sub
                    .unwrap_or_default()
                    .trim()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
            }
            if let Some(target) = req.str("target") {
                r.target = stored_target(&r.field_type, target);
            }
            match req.body.get("ttl") {
                Some(Value::Null) => r.ttl = 0,
                Some(v) => match v.as_u64().filter(|t| *t <= i32::MAX as u64) {
                    Some(t) => r.ttl = t as u32,
                    None => return Err(ApiErr::bad(format!("Invalid ttl {v}"))),
                },
                None => {}
            }
            zone.check(Some(r.id), &r.sub, &r.field_type, &r.target)?;
            zone.records[i] = r;
            Ok(Value::Null)
        }),
        ("DELETE", "/record/{id}") => record_index(zone).map(|i| {
            zone.records.remove(i);
            Value::Null
        }),
        ("POST", "/refresh") => {
            // Published at once: the real refresh takes seconds, which only a propagation
            // check that waits would see, and that check waits for the answers anyway.
            if !zone.deployed() {
                zone.served.records = zone.records.clone();
                zone.served.serial += 1;
                zone.last_update = now;
            }
            Ok(Value::Null)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_types_and_targets() {
        assert_eq!(served_type("SPF"), Some(RecordType::TXT));
        assert_eq!(served_type("MX"), Some(RecordType::MX));
        assert_eq!(served_type("LOC"), None);
        assert!(rdata("MX", "1 mx1.mail.ovh.net.").is_ok());
        assert!(rdata("MX", "mx1.mail.ovh.net.").is_err());
        assert!(rdata("SRV", "0 0 443 mailconfig.ovh.net.").is_ok());
        assert_eq!(stored_target("TXT", "v=spf1 ~all"), "\"v=spf1 ~all\"");
        assert_eq!(stored_target("SPF", "\"v=spf1 ~all\""), "\"v=spf1 ~all\"");
        match rdata(
            "TXT",
            &stored_target("TXT", "v=spf1 include:mx.ovh.com ~all"),
        )
        .unwrap()
        {
            RData::TXT(t) => assert_eq!(t.to_string(), "v=spf1 include:mx.ovh.com ~all"),
            other => panic!("{other:?}"),
        }
    }
}
