//! Redirections (forwarding): an account field on Exchange, separate objects on MX Plan.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Applied, Family, Service, seg, str_field};
use crate::error::OvhError;

impl Service {
    /// Whether `address` forwards to `to` (and with which local-copy setting).
    pub async fn redirection(&self, address: &str, to: &str) -> Result<Option<bool>, OvhError> {
        match self.family {
            Family::Exchange { .. } => {
                let Some(a) = self.account(address).await? else {
                    return Ok(None);
                };
                if str_field(&a, "forwardingEmail").is_some_and(|f| f.eq_ignore_ascii_case(to)) {
                    Ok(Some(
                        a.get("storeCopyOfEmail")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    ))
                } else {
                    Ok(None)
                }
            }
            Family::Legacy { .. } => Ok(self
                .legacy_redirections(address, to)
                .await?
                .first()
                .map(|_| true)),
            _ => Err(self.unsupported("redirections")),
        }
    }

    async fn legacy_redirections(&self, address: &str, to: &str) -> Result<Vec<String>, OvhError> {
        self.get(&format!(
            "{}/redirection?from={}&to={}",
            self.root(),
            seg(address),
            seg(to)
        ))
        .await
    }

    pub async fn ensure_redirection(
        &self,
        address: &str,
        to: &str,
        local_copy: bool,
    ) -> Result<Applied, OvhError> {
        let current = self.redirection(address, to).await?;
        match self.family {
            Family::Exchange { .. } => {
                if current == Some(local_copy) {
                    return Ok(Applied::unchanged(format!(
                        "{address} already forwards to {to}"
                    )));
                }
                let path = self.account_path(address);
                self.put_settled(
                    &path,
                    json!({ "forwardingEmail": to, "storeCopyOfEmail": local_copy }),
                )
                .await?;
                if self.redirection(address, to).await? != Some(local_copy) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not set the forwarding of {address}; run apply again"
                    )));
                }
            }
            _ => {
                if current.is_some() {
                    return Ok(Applied::unchanged(format!(
                        "{address} already forwards to {to}"
                    )));
                }
                let posted = self
                    .legacy_write(
                        Method::POST,
                        &format!("{}/redirection", self.root()),
                        Some(json!({ "from": address, "to": to, "localCopy": local_copy })),
                        "redirection",
                    )
                    .await;
                let landed = self.redirection(address, to).await?.is_some();
                match posted {
                    Err(e) if !landed => return Err(e),
                    Ok(()) if !landed => {
                        return Err(OvhError::NotApplied(format!(
                            "the platform did not create the redirection of {address} to {to}; run apply again"
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(Applied::changed(format!("{address} now forwards to {to}")))
    }

    pub async fn delete_redirection(&self, address: &str, to: &str) -> Result<Applied, OvhError> {
        if self.redirection(address, to).await?.is_none() {
            return Ok(Applied::unchanged(format!(
                "{address} does not forward to {to}"
            )));
        }
        match self.family {
            Family::Exchange { .. } => {
                let path = self.account_path(address);
                self.put_settled(
                    &path,
                    json!({ "forwardingEmail": "", "storeCopyOfEmail": false }),
                )
                .await?;
            }
            _ => {
                for id in self.legacy_redirections(address, to).await? {
                    self.legacy_write(
                        Method::DELETE,
                        &format!("{}/redirection/{}", self.root(), seg(&id)),
                        None,
                        "redirection",
                    )
                    .await?;
                }
            }
        }
        Ok(Applied::changed(format!(
            "{address} no longer forwards to {to}"
        )))
    }
}
