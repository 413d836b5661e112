//! A domain's DNS diagnostics (MX, SPF, autodiscover) as the platform reports them.

use serde_json::Value;

use super::{Family, Service};
use crate::error::OvhError;

/// A domain's DNS diagnostics as the platform sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsDiagnostics {
    pub mx_valid: Option<bool>,
    pub spf_valid: Option<bool>,
    pub srv_valid: Option<bool>,
    pub mx_records: Vec<String>,
    pub expected_mx: Vec<String>,
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
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_summary_names_the_expected_mx_when_invalid() {
        let d = DnsDiagnostics {
            mx_valid: Some(false),
            spf_valid: Some(true),
            srv_valid: None,
            mx_records: vec!["mx.old.example.".into()],
            expected_mx: vec!["mx1.mail.ovh.net.".into()],
        };
        assert_eq!(
            d.summary(),
            "MX not valid, SPF valid, autodiscover SRV not reported (MX is mx.old.example.; expected mx1.mail.ovh.net.)"
        );
    }
}
