//! Accounts: reading, creating (or configuring a pre-ordered placeholder), renaming, setting
//! the password and resetting.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::calls::is_settled;
use super::{Applied, Family, Service, split_address, str_field};
use crate::error::OvhError;

/// What [`Service::create`] found or did.
#[derive(Debug)]
pub enum Created {
    /// Made (or its interrupted configuration finished) by this call, with the password.
    Made(Applied),
    /// The address existed already; its password was not touched.
    Exists,
}

/// What the search for a free pre-ordered account found.
enum Slot {
    Free(String),
    /// None is needed: an interrupted run's configuration has just finished as this address.
    Ours,
}

impl Service {
    /// The account at `address`, if any (`None` also for a legacy account that does not exist).
    pub async fn account(&self, address: &str) -> Result<Option<Value>, OvhError> {
        let path = match self.family {
            Family::Legacy { .. } => self.legacy_account_path(address)?,
            _ => self.account_path(address),
        };
        self.get_opt(&path).await
    }

    /// Bytes used by the mailbox, as the platform reports it.
    pub async fn mailbox_usage(&self, address: &str) -> Result<Option<u64>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            let path = format!("{}/usage", self.legacy_account_path(address)?);
            return Ok(self
                .get_opt(&path)
                .await?
                .and_then(|u| u.get("quota").and_then(Value::as_u64)));
        }
        Ok(self
            .account(address)
            .await?
            .and_then(|a| a.get("currentUsage").and_then(Value::as_u64)))
    }

    /// The account's quota as its object shows it (`quota`, in GB of 10^9 bytes, the unit of
    /// the offers' published sizes: Exchange 50, Email Pro 10, MX Plan 5) and what it holds
    /// (`currentUsage`, bytes): (used, limit). Legacy MX Plan accounts do not say: `None`.
    pub async fn mailbox_quota(&self, address: &str) -> Result<Option<(u64, u64)>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Ok(None);
        }
        let Some(a) = self.account(address).await? else {
            return Ok(None);
        };
        let limit = a
            .get("quota")
            .and_then(Value::as_f64)
            .filter(|gb| *gb > 0.0)
            .map(|gb| (gb * 1e9) as u64);
        let used = a.get("currentUsage").and_then(Value::as_u64).unwrap_or(0);
        Ok(limit.map(|limit| (used, limit)))
    }

    pub(super) async fn account_id(&self, address: &str, role: &str) -> Result<u64, OvhError> {
        let account = self.account(address).await?.ok_or_else(|| {
            OvhError::Refused(format!(
                "{role} {address} has no account on this {} service: create it first (or add it to the plan's accounts)",
                self.family.name()
            ))
        })?;
        account.get("id").and_then(Value::as_u64).ok_or_else(|| {
            OvhError::Refused(format!("the API shows no id for the account {address}"))
        })
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<Applied, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Err(OvhError::Refused(
                "legacy MX Plan accounts cannot be renamed (the account name is read-only)".into(),
            ));
        }
        let (login, domain) = split_address(to)?;
        let old = self.account(from).await?;
        let new = self.account(to).await?;
        match (old, new) {
            (None, Some(_)) => Ok(Applied::unchanged(format!("{from} is already {to}"))),
            (Some(_), Some(_)) => Err(OvhError::Refused(format!(
                "cannot rename {from} to {to}: {to} is already used by another account; choose another `rename_to`"
            ))),
            (None, None) => Err(OvhError::Refused(format!(
                "cannot rename {from}: no such account on this {} service (check the address and the platform's service)",
                self.family.name()
            ))),
            (Some(_), None) => {
                let path = self.account_path(from);
                // A rename left pending by an interrupted run may finish while we wait.
                if self.settled_or_gone(&path).await?.is_none() {
                    return match self.account(to).await? {
                        Some(_) => Ok(Applied::unchanged(format!("{from} is already {to}"))),
                        None => Err(OvhError::Refused(format!(
                            "{from} disappeared while waiting to rename it; check the account in the control panel"
                        ))),
                    };
                }
                self.write::<Value>(
                    Method::PUT,
                    &path,
                    Some(json!({ "login": login, "domain": domain })),
                )
                .await?;
                // Usable once the new address answers with a settled state.
                let what = format!("the rename of {from} to {to}");
                self.moved(&path, &self.account_path(to), &what).await?;
                Ok(Applied::changed(format!("renamed {from} to {to}")))
            }
        }
    }

    /// Makes the account exist with this password. Where the platform pre-provisions accounts
    /// (`…@configureme.me` placeholders) a free one is configured; Exchange dedicated and
    /// provider offers and legacy MX Plan create one. `before_writing` runs right before the
    /// write that makes the account, so the caller can record that it is making it.
    ///
    /// An address that exists already is [`Created::Exists`]: its password may be one the user
    /// chose since, which only the caller can tell (and it is the one write that would undo a
    /// person's change), so it is left alone.
    pub async fn create(
        &self,
        address: &str,
        password: &str,
        display_name: Option<&str>,
        before_writing: &(dyn Fn() -> Result<(), OvhError> + Sync),
    ) -> Result<Created, OvhError> {
        let (login, domain) = split_address(address)?;
        if let Family::Legacy { .. } = self.family {
            return self.legacy_create(address, password, before_writing).await;
        }
        let path = self.account_path(address);
        let detail = match self.account(address).await? {
            Some(_) => return Ok(Created::Exists),
            None => {
                let posts = match &self.family {
                    Family::Exchange { .. } => {
                        let svc: Value = self.get(&self.root()).await?;
                        str_field(&svc, "offer").is_some_and(|o| o != "hosted")
                    }
                    _ => false,
                };
                if posts {
                    let mut body = json!({
                        "login": login, "domain": domain, "password": password, "license": "standard",
                    });
                    if let Some(n) = display_name {
                        body["displayName"] = json!(n);
                    }
                    before_writing()?;
                    self.post_settled(&format!("{}/account", self.root()), body, &path)
                        .await?;
                    // The POST carried the password.
                    return Ok(Created::Made(Applied::changed(format!(
                        "created {address}"
                    ))));
                }
                let _claim = self.claim.lock().await;
                let placeholder = match self.free_placeholder(address).await? {
                    Slot::Free(p) => p,
                    Slot::Ours => {
                        self.settled(&path).await?;
                        self.set_password(address, password).await?;
                        return Ok(Created::Made(Applied::changed(format!(
                            "{address} exists (configured by an interrupted run), password set"
                        ))));
                    }
                };
                let mut body = json!({ "login": login, "domain": domain });
                if let Some(n) = display_name {
                    body["displayName"] = json!(n);
                }
                let placeholder_path = self.account_path(&placeholder);
                before_writing()?;
                self.write::<Value>(Method::PUT, &placeholder_path, Some(body))
                    .await?;
                let what = format!("the configuration of {placeholder} as {address}");
                self.moved(&placeholder_path, &path, &what).await?;
                format!("configured {placeholder} as {address}")
            }
        };
        self.set_password(address, password).await?;
        Ok(Created::Made(Applied::changed(format!(
            "{detail}, password set"
        ))))
    }

    async fn free_placeholder(&self, address: &str) -> Result<Slot, OvhError> {
        let list: Vec<String> = self
            .get(&format!(
                "{}/account?primaryEmailAddress=%25configureme.me%25",
                self.root()
            ))
            .await?;
        let mut list = list;
        list.sort();
        for candidate in list {
            let Some(mut a) = self.account(&candidate).await? else {
                continue;
            };
            if !is_settled(&a) {
                // Left pending by an interrupted run: it may be becoming this very address.
                match self.settled_or_gone(&self.account_path(&candidate)).await? {
                    Some(settled) => a = settled,
                    None if self.account(address).await?.is_some() => return Ok(Slot::Ours),
                    None => continue,
                }
            }
            if a.get("configured").and_then(Value::as_bool) == Some(false) {
                return Ok(Slot::Free(candidate));
            }
        }
        Err(OvhError::Limit(format!(
            "no free account left on this {} service: order more accounts in the OVHcloud Control Panel (Web Cloud > Emails > the service > Email accounts > Order accounts), then run apply again",
            self.family.name()
        )))
    }

    /// Sets an account's password. A freshly configured account refuses it for a moment, so
    /// a refusal is retried a few times, one poll interval apart.
    pub async fn set_password(&self, address: &str, password: &str) -> Result<(), OvhError> {
        let path = match self.family {
            Family::Legacy { .. } => {
                format!("{}/changePassword", self.legacy_account_path(address)?)
            }
            _ => format!("{}/changePassword", self.account_path(address)),
        };
        let body = json!({ "password": password });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.family {
                Family::Legacy { .. } => {
                    self.legacy_write(Method::POST, &path, Some(body.clone()), "account")
                        .await
                }
                _ => {
                    self.task_write(Method::POST, &path, Some(body.clone()))
                        .await
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(OvhError::Api(e))
                    if attempt < 10 && (e.status == 400 || e.status == 409 || e.status == 404) =>
                {
                    tokio::time::sleep(self.timing.poll.max(Duration::from_millis(200))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn legacy_create(
        &self,
        address: &str,
        password: &str,
        before_writing: &(dyn Fn() -> Result<(), OvhError> + Sync),
    ) -> Result<Created, OvhError> {
        let name = self.legacy_name(address)?;
        if self.account(address).await?.is_some() {
            return Ok(Created::Exists);
        }
        let service: Value = self.get(&self.root()).await?;
        let size = service
            .get("allowedAccountSize")
            .and_then(Value::as_array)
            .and_then(|sizes| sizes.iter().filter_map(Value::as_u64).max());
        let mut body = json!({ "accountName": name, "password": password });
        if let Some(size) = size {
            body["size"] = json!(size);
        }
        before_writing()?;
        let posted = self
            .legacy_write(
                Method::POST,
                &format!("{}/account", self.root()),
                Some(body),
                "account",
            )
            .await;
        if let Err(e) = posted
            && self.account(address).await?.is_none()
        {
            return Err(e);
        }
        if self.account(address).await?.is_none() {
            return Err(OvhError::NotApplied(format!(
                "the platform did not create {address}"
            )));
        }
        Ok(Created::Made(Applied::changed(format!(
            "created {address}"
        ))))
    }

    /// Deletes an account (hosted platforms reset it to a free placeholder).
    pub async fn reset(&self, address: &str) -> Result<Applied, OvhError> {
        if self.account(address).await?.is_none() {
            return Ok(Applied::unchanged(format!("{address} no longer exists")));
        }
        match self.family {
            Family::Legacy { .. } => {
                let path = self.legacy_account_path(address)?;
                self.legacy_write(Method::DELETE, &path, None, "account")
                    .await?;
                if self.get_opt(&path).await?.is_some() {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not delete {address}; run apply again"
                    )));
                }
            }
            _ => {
                let path = self.account_path(address);
                self.delete_settled(&path).await?;
            }
        }
        Ok(Applied::changed(format!("reset {address}")))
    }
}
