//! Delegations: the send-as, send-on-behalf and full-access rights one account holds on another.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;

use super::{Applied, Service};
use crate::error::OvhError;
use mailshift_core::plan::model::Right;

impl Service {
    fn right_paths(right: Right) -> (&'static str, &'static str) {
        match right {
            Right::SendAs => ("sendAs", "allowAccountId"),
            Right::SendOnBehalf => ("sendOnBehalfTo", "allowAccountId"),
            Right::FullAccess => ("fullAccess", "allowedAccountId"),
        }
    }

    const RIGHTS: [Right; 3] = [Right::SendAs, Right::SendOnBehalf, Right::FullAccess];

    /// The rights `grantee` holds on `address`.
    pub async fn delegation(
        &self,
        address: &str,
        grantee: &str,
    ) -> Result<BTreeSet<Right>, OvhError> {
        self.not_on_legacy("delegations")?;
        let mut held = BTreeSet::new();
        if self.account(address).await?.is_none() {
            return Ok(held);
        }
        let Ok(id) = self.account_id(grantee, "grantee").await else {
            return Ok(held);
        };
        for right in Self::RIGHTS {
            let (list, _) = Self::right_paths(right);
            let ids: Vec<u64> = self
                .get(&format!("{}/{list}", self.account_path(address)))
                .await?;
            if ids.contains(&id) {
                held.insert(right);
            }
        }
        Ok(held)
    }

    /// Gives `grantee` exactly `rights` on `address` (rights not listed are taken away).
    pub async fn ensure_delegation(
        &self,
        address: &str,
        grantee: &str,
        rights: &BTreeSet<Right>,
    ) -> Result<Applied, OvhError> {
        let id = self.account_id(grantee, "grantee").await?;
        let held = self.delegation(address, grantee).await?;
        if &held == rights {
            return Ok(Applied::unchanged(format!(
                "{grantee} already has these rights on {address}"
            )));
        }
        for right in Self::RIGHTS {
            let (list, field) = Self::right_paths(right);
            let base = format!("{}/{list}", self.account_path(address));
            match (held.contains(&right), rights.contains(&right)) {
                (false, true) => {
                    let posted = self
                        .task_write(Method::POST, &base, Some(json!({ field: id })))
                        .await;
                    if let Err(e) = posted {
                        let ids: Vec<u64> = self.get(&base).await?;
                        if !ids.contains(&id) {
                            return Err(e);
                        }
                    }
                }
                (true, false) => {
                    self.task_write(Method::DELETE, &format!("{base}/{id}"), None)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(Applied::changed(format!(
            "set {grantee}'s rights on {address}"
        )))
    }

    pub async fn delete_delegation(
        &self,
        address: &str,
        grantee: &str,
    ) -> Result<Applied, OvhError> {
        let held = self.delegation(address, grantee).await?;
        if held.is_empty() {
            return Ok(Applied::unchanged(format!(
                "{grantee} has no rights on {address}"
            )));
        }
        self.ensure_delegation(address, grantee, &BTreeSet::new())
            .await
            .map(|_| Applied::changed(format!("removed {grantee}'s rights on {address}")))
    }
}
