//! Aliases: further addresses delivered to an account.

use reqwest::Method;
use serde_json::json;

use super::{Applied, Service, seg};
use crate::error::OvhError;

impl Service {
    pub async fn aliases(&self, address: &str) -> Result<Vec<String>, OvhError> {
        self.not_on_legacy("aliases")?;
        let list: Vec<String> = self
            .get(&format!("{}/alias", self.account_path(address)))
            .await?;
        Ok(list.into_iter().map(|a| a.to_ascii_lowercase()).collect())
    }

    pub async fn ensure_alias(&self, address: &str, alias: &str) -> Result<Applied, OvhError> {
        if self.aliases(address).await?.iter().any(|a| a == alias) {
            return Ok(Applied::unchanged(format!(
                "{alias} already routes to {address}"
            )));
        }
        let path = format!("{}/alias", self.account_path(address));
        let posted = self
            .task_write(Method::POST, &path, Some(json!({ "alias": alias })))
            .await;
        if let Err(e) = posted
            && !self.aliases(address).await?.iter().any(|a| a == alias)
        {
            return Err(e);
        }
        Ok(Applied::changed(format!(
            "added alias {alias} to {address}"
        )))
    }

    pub async fn delete_alias(&self, address: &str, alias: &str) -> Result<Applied, OvhError> {
        if self.account(address).await?.is_none()
            || !self.aliases(address).await?.iter().any(|a| a == alias)
        {
            return Ok(Applied::unchanged(format!("{alias} is not on {address}")));
        }
        let path = format!("{}/alias/{}", self.account_path(address), seg(alias));
        self.task_write(Method::DELETE, &path, None).await?;
        Ok(Applied::changed(format!(
            "removed alias {alias} from {address}"
        )))
    }
}
