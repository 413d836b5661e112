//! A domain's DNS diagnostics (MX, SPF, autodiscover) as the platform reports them, and the
//! records they ask for, as the record sets a cutover writes by default.

use serde_json::Value;

use super::{Family, Service};
use crate::error::OvhError;
use mailshift_core::dns::{RecordSet, RecordType};

/// SPF that OVHcloud's diagnosis expects (`expectedSPF` on Exchange; the same value in
/// OVHcloud's guides for Email Pro and MX Plan, whose diagnosis has no such field).
pub const OVH_SPF: &str = "v=spf1 include:mx.ovh.com ~all";

/// The MX hosts of Email Pro and MX Plan in OVHcloud's guides, with their preferences, for a
/// diagnosis that names none (Email Pro's has no `expectedMX`). Checked in 2026 against zones
/// published by OVHcloud customers, which carry exactly these three with these preferences
/// (older zones have `mx0`..`mx4` with other preferences; either routes to OVHcloud).
const OVH_MX: [(u16, &str); 3] = [
    (1, "mx1.mail.ovh.net"),
    (5, "mx2.mail.ovh.net"),
    (100, "mx3.mail.ovh.net"),
];

/// A domain's DNS diagnostics as the platform sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsDiagnostics {
    pub mx_valid: Option<bool>,
    pub spf_valid: Option<bool>,
    pub srv_valid: Option<bool>,
    pub mx_records: Vec<String>,
    pub expected_mx: Vec<String>,
    /// `expectedSPF` (Exchange only).
    pub expected_spf: Option<String>,
    /// `expectedAutodiscoverSRV` (Exchange only), as the API writes it.
    pub expected_srv: Option<String>,
}

impl DnsDiagnostics {
    pub fn summary(&self) -> String {
        let word = |v: Option<bool>| match v {
            Some(true) => "valid",
            Some(false) => "not valid",
            None => "not reported",
        };
        let mut s = format!(
            "MX {}, SPF {}, autodiscover SRV {}",
            word(self.mx_valid),
            word(self.spf_valid),
            word(self.srv_valid)
        );
        if self.mx_valid == Some(false) && !self.expected_mx.is_empty() {
            s.push_str(&format!(
                " (MX is {}; expected {})",
                if self.mx_records.is_empty() {
                    "unset".to_string()
                } else {
                    self.mx_records.join(", ")
                },
                self.expected_mx.join(", ")
            ));
        }
        s
    }
}

impl Service {
    /// DNS diagnostics of a domain attached to this service.
    pub async fn dns(&self, name: &str) -> Result<DnsDiagnostics, OvhError> {
        let d = self
            .domain(name)
            .await?
            .ok_or_else(|| OvhError::Refused(format!("{name} is not attached to this service")))?;
        let strings = |key: &str| -> Vec<String> {
            d.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let flag = |key: &str| -> Option<bool> {
            match d.get(key)? {
                Value::Bool(b) => Some(*b),
                Value::String(s) => Some(s == "valid"),
                _ => None,
            }
        };
        Ok(match self.family {
            Family::Legacy { .. } => DnsDiagnostics {
                mx_valid: flag("isMXValid"),
                spf_valid: flag("isSPFValid"),
                ..Default::default()
            },
            _ => DnsDiagnostics {
                mx_valid: flag("mxIsValid"),
                spf_valid: flag("spfIsValid"),
                srv_valid: flag("srvIsValid"),
                mx_records: strings("mxRecord"),
                expected_mx: strings("expectedMX"),
                expected_spf: d
                    .get("expectedSPF")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                expected_srv: d
                    .get("expectedAutodiscoverSRV")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        })
    }
}

impl Service {
    /// The records this service needs in `domain`'s zone for mail to reach it, with `ttl`:
    /// what the cutover writes when the plan names no records of its own.
    /// - MX: the diagnosis's `expectedMX` (hosts given preferences 1, 5, 100, then +100 each,
    ///   in the order listed, unless the API wrote a preference); without one, OVHcloud's
    ///   published Email Pro / MX Plan hosts.
    /// - TXT at the apex: only the SPF string (`expectedSPF`, else [`OVH_SPF`]); merge it into
    ///   the apex's other TXT records with [`with_spf`] before writing, since a zone write
    ///   replaces the whole set.
    /// - SRV `_autodiscover._tcp`: `expectedAutodiscoverSRV`, else port 443 on the service's
    ///   hostname (Exchange, Email Pro, MX Plan); none for the legacy MX Plan, which has no
    ///   autodiscover of its own in the API.
    pub async fn expected_records(
        &self,
        domain: &str,
        ttl: u32,
    ) -> Result<Vec<RecordSet>, OvhError> {
        let diagnosis = self.dns(domain).await?;
        let srv = match (&self.family, &diagnosis.expected_srv) {
            (Family::Legacy { .. }, _) => None,
            (_, Some(expected)) => Some(srv_data(expected)),
            (_, None) => Some(format!("0 0 443 {}", self.imap_host().await?)),
        };
        Ok(expected_sets(domain, ttl, &diagnosis, srv))
    }
}

/// The SRV data of an `expectedAutodiscoverSRV`, which may be the data alone or a whole
/// record (`_autodiscover._tcp.example.com SRV 0 0 443 host`).
fn srv_data(expected: &str) -> String {
    let words: Vec<&str> = expected.split_whitespace().collect();
    match words.iter().position(|w| w.eq_ignore_ascii_case("SRV")) {
        Some(i) => words[i + 1..].join(" "),
        None => words.join(" "),
    }
}

fn expected_sets(
    domain: &str,
    ttl: u32,
    diagnosis: &DnsDiagnostics,
    srv: Option<String>,
) -> Vec<RecordSet> {
    let mx: Vec<String> = if diagnosis.expected_mx.is_empty() {
        OVH_MX.iter().map(|(p, h)| format!("{p} {h}")).collect()
    } else {
        diagnosis
            .expected_mx
            .iter()
            .enumerate()
            .map(|(i, mx)| {
                let mx = mx.trim();
                if mx.split_whitespace().count() == 2 {
                    return mx.to_string();
                }
                let preference = match i {
                    0 => 1,
                    1 => 5,
                    n => 100 * (n - 1),
                };
                format!("{preference} {mx}")
            })
            .collect()
    };
    let spf = diagnosis.expected_spf.as_deref().unwrap_or(OVH_SPF);
    let mut sets = vec![
        RecordSet::new(domain, RecordType::Mx, ttl, mx),
        RecordSet::new(domain, RecordType::Txt, ttl, vec![spf.to_string()]),
    ];
    if let Some(srv) = srv {
        sets.push(RecordSet::new(
            &format!("_autodiscover._tcp.{domain}"),
            RecordType::Srv,
            ttl,
            vec![srv],
        ));
    }
    sets
}

/// The apex's TXT set with `spf` as its one SPF string: other TXT records (site
/// verifications, DMARC lives elsewhere) are kept, an older `v=spf1` string replaced.
pub fn with_spf(existing: Option<&RecordSet>, name: &str, ttl: u32, spf: &str) -> RecordSet {
    let is_spf = |d: &str| {
        d.trim_start_matches('"')
            .to_ascii_lowercase()
            .starts_with("v=spf1")
    };
    let mut data: Vec<String> = existing
        .map(|s| s.data.iter().filter(|d| !is_spf(d)).cloned().collect())
        .unwrap_or_default();
    data.push(spf.to_string());
    RecordSet::new(name, RecordType::Txt, ttl, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_records_from_a_diagnosis() {
        let exchange = DnsDiagnostics {
            expected_mx: vec!["ex.mail.ovh.net".into()],
            expected_spf: Some(OVH_SPF.into()),
            expected_srv: Some("_autodiscover._tcp.d.example SRV 0 0 443 ex.mail.ovh.net".into()),
            ..Default::default()
        };
        let srv = exchange.expected_srv.as_deref().map(srv_data);
        let sets = expected_sets("d.example", 600, &exchange, srv);
        assert_eq!(sets[0].data, ["1 ex.mail.ovh.net"]);
        assert_eq!(sets[1].data, ["\"v=spf1 include:mx.ovh.com ~all\""]);
        assert_eq!(sets[2].name, "_autodiscover._tcp.d.example");
        assert_eq!(sets[2].data, ["0 0 443 ex.mail.ovh.net"]);
        // Email Pro's diagnosis names no MX: OVHcloud's published ones.
        let sets = expected_sets(
            "d.example",
            600,
            &DnsDiagnostics::default(),
            Some("0 0 443 pro1.mail.ovh.net".into()),
        );
        assert_eq!(
            sets[0].data,
            [
                "1 mx1.mail.ovh.net",
                "100 mx3.mail.ovh.net",
                "5 mx2.mail.ovh.net"
            ]
        );
        let mxplan = DnsDiagnostics {
            expected_mx: vec![
                "mx1.mail.ovh.net".into(),
                "mx2.mail.ovh.net".into(),
                "mx3.mail.ovh.net".into(),
                "mx4.mail.ovh.net".into(),
            ],
            ..Default::default()
        };
        let sets = expected_sets("d.example", 600, &mxplan, None);
        assert_eq!(
            sets[0].data,
            [
                "1 mx1.mail.ovh.net",
                "100 mx3.mail.ovh.net",
                "200 mx4.mail.ovh.net",
                "5 mx2.mail.ovh.net"
            ]
        );
        assert_eq!(sets.len(), 2);
    }

    #[test]
    fn spf_replaces_only_the_spf_string() {
        let existing = RecordSet::new(
            "d.example",
            RecordType::Txt,
            300,
            vec![
                "v=spf1 include:old.example -all".into(),
                "site-verification=abc".into(),
            ],
        );
        let set = with_spf(Some(&existing), "d.example", 600, OVH_SPF);
        assert_eq!(
            set.data,
            [
                "\"site-verification=abc\"",
                "\"v=spf1 include:mx.ovh.com ~all\""
            ]
        );
        assert_eq!(with_spf(None, "d.example", 600, OVH_SPF).data.len(), 1);
    }

    #[test]
    fn dns_summary_names_the_expected_mx_when_invalid() {
        let d = DnsDiagnostics {
            mx_valid: Some(false),
            spf_valid: Some(true),
            srv_valid: None,
            mx_records: vec!["mx.old.example.".into()],
            expected_mx: vec!["mx1.mail.ovh.net.".into()],
            ..Default::default()
        };
        assert_eq!(
            d.summary(),
            "MX not valid, SPF valid, autodiscover SRV not reported (MX is mx.old.example.; expected mx1.mail.ovh.net.)"
        );
    }
}
