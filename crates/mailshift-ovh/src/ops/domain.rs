//! Domains attached to a service, authoritative or relaying to another server.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Applied, Family, Service, seg, str_field};
use crate::error::OvhError;
use mailshift_core::plan::model::DomainMode;

impl Service {
    pub async fn domain(&self, name: &str) -> Result<Option<Value>, OvhError> {
        match self.family {
            Family::Legacy { .. } => self.get_opt(&self.root()).await,
            _ => {
                self.get_opt(&format!("{}/domain/{}", self.root(), seg(name)))
                    .await
            }
        }
    }

    fn domain_matches(d: &Value, mode: DomainMode, relay: Option<&str>) -> bool {
        let want = match mode {
            DomainMode::Authoritative => "authoritative",
            DomainMode::NonAuthoritative => "nonAuthoritative",
        };
        str_field(d, "type") == Some(want)
            && (mode == DomainMode::Authoritative
                || str_field(d, "mxRelay")
                    .unwrap_or("")
                    .eq_ignore_ascii_case(relay.unwrap_or("")))
    }

    /// Attaches the domain in the given mode, or switches its mode.
    pub async fn ensure_domain(
        &self,
        name: &str,
        mode: DomainMode,
        relay: Option<&str>,
    ) -> Result<Applied, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Ok(Applied::unchanged("the legacy MX Plan domain is fixed"));
        }
        let path = format!("{}/domain/{}", self.root(), seg(name));
        let kind = match mode {
            DomainMode::Authoritative => "authoritative",
            DomainMode::NonAuthoritative => "nonAuthoritative",
        };
        let mut body = json!({ "type": kind });
        if mode == DomainMode::NonAuthoritative {
            body["mxRelay"] = json!(relay.unwrap_or_default());
        }
        let shown = match mode {
            DomainMode::Authoritative => "authoritative".to_string(),
            DomainMode::NonAuthoritative => {
                format!("non-authoritative, relay {}", relay.unwrap_or("?"))
            }
        };
        match self.get_opt(&path).await? {
            None => {
                if let Family::MxPlan { .. } = self.family {
                    return Err(OvhError::Refused(format!(
                        "{name} is not this MX Plan service's domain: an MX Plan serves one fixed domain, so point the plan's domain at the right platform"
                    )));
                }
                body["name"] = json!(name);
                // mailshift never lets the platform rewrite DNS: during a move the MX must keep
                // pointing where mail is read until the person doing the cutover decides.
                body["configureMx"] = json!(false);
                body["configureAutodiscover"] = json!(false);
                body["configureSPF"] = json!(false);
                let posted = self
                    .task_write(Method::POST, &format!("{}/domain", self.root()), Some(body))
                    .await;
                if let Err(e) = posted {
                    // A retried POST may have landed the first time.
                    match self.get_opt(&path).await? {
                        Some(d) if Self::domain_matches(&d, mode, relay) => {}
                        _ => return Err(e),
                    }
                }
                self.settled(&path).await?;
                Ok(Applied::changed(format!("attached {name} ({shown})")))
            }
            Some(d) if Self::domain_matches(&d, mode, relay) => {
                Ok(Applied::unchanged(format!("{name} already {shown}")))
            }
            Some(_) => {
                let d = self.put_settled(&path, body).await?;
                if !Self::domain_matches(&d, mode, relay) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not switch {name} to {shown}"
                    )));
                }
                Ok(Applied::changed(format!("switched {name} to {shown}")))
            }
        }
    }
}
