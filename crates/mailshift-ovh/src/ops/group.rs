//! Groups: mailing lists with members and owners (Exchange: accounts and contacts by id;
//! legacy MX Plan: subscribers and moderators by address).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Applied, Family, Service, eq_opt, seg, str_field};
use crate::error::OvhError;

/// A group as the plan wants it on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub address: String,
    pub display_name: Option<String>,
    pub members: Vec<String>,
    pub owners: Vec<String>,
}

impl Service {
    fn list_path(&self, address: &str) -> Result<String, OvhError> {
        match self.family {
            Family::Exchange { .. } => Ok(format!("{}/mailingList/{}", self.root(), seg(address))),
            Family::Legacy { .. } => Ok(format!(
                "{}/mailingList/{}",
                self.root(),
                seg(self.legacy_name(address)?)
            )),
            _ => Err(self.unsupported("groups")),
        }
    }

    /// The group's members and owners as the platform has them, or `None` if it does not exist.
    pub async fn group(&self, address: &str) -> Result<Option<GroupSpec>, OvhError> {
        let path = self.list_path(address)?;
        let Some(list) = self.get_opt(&path).await? else {
            return Ok(None);
        };
        let mut spec = GroupSpec {
            address: address.to_string(),
            display_name: str_field(&list, "displayName").map(str::to_string),
            members: Vec::new(),
            owners: Vec::new(),
        };
        match self.family {
            Family::Legacy { .. } => {
                let subs: Vec<String> = self.get(&format!("{path}/subscriber")).await?;
                let mods: Vec<String> = self.get(&format!("{path}/moderator")).await?;
                spec.members = lower_sorted(subs);
                let mut owners = mods;
                if let Some(o) = str_field(&list, "ownerEmail") {
                    owners.push(o.to_string());
                }
                spec.owners = lower_sorted(owners);
            }
            _ => {
                let accounts: Vec<u64> = self.get(&format!("{path}/member/account")).await?;
                let contacts: Vec<u64> = self.get(&format!("{path}/member/contact")).await?;
                let managers: Vec<u64> = self.get(&format!("{path}/manager/account")).await?;
                let mut members = Vec::new();
                for id in accounts {
                    members.push(self.account_address_by_id(id).await?);
                }
                for id in contacts {
                    members.push(self.contact_address_by_id(id).await?);
                }
                let mut owners = Vec::new();
                for id in managers {
                    owners.push(self.account_address_by_id(id).await?);
                }
                spec.members = lower_sorted(members);
                spec.owners = lower_sorted(owners);
            }
        }
        Ok(Some(spec))
    }

    async fn account_address_by_id(&self, id: u64) -> Result<String, OvhError> {
        let list: Vec<String> = self
            .get(&format!("{}/account?id={id}", self.root()))
            .await?;
        Ok(list
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("account #{id}")))
    }

    async fn contact_address_by_id(&self, id: u64) -> Result<String, OvhError> {
        let list: Vec<String> = self
            .get(&format!("{}/externalContact?id={id}", self.root()))
            .await?;
        Ok(list
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("contact #{id}")))
    }

    /// Makes the group exist with exactly the given members and owners.
    pub async fn ensure_group(&self, want: &GroupSpec) -> Result<Applied, OvhError> {
        let path = self.list_path(&want.address)?;
        let mut wrote = false;
        let have = match self.group(&want.address).await? {
            Some(g) => g,
            None => {
                wrote = true;
                self.create_group(want, &path).await?;
                self.group(&want.address).await?.ok_or_else(|| {
                    OvhError::NotApplied(format!("the platform did not create {}", want.address))
                })?
            }
        };
        let changed = match self.family {
            Family::Legacy { .. } => self.set_subscribers(want, &have, &path).await?,
            _ => self.set_members(want, &have, &path).await?,
        };
        Ok(if wrote || changed {
            Applied::changed(format!("group {} set", want.address))
        } else {
            Applied::unchanged(format!("group {} is up to date", want.address))
        })
    }

    /// A legacy MX Plan list: subscribers by address; owners beyond the fixed one are moderators.
    /// Returns whether anything was written.
    async fn set_subscribers(
        &self,
        want: &GroupSpec,
        have: &GroupSpec,
        path: &str,
    ) -> Result<bool, OvhError> {
        let members = lower_sorted(want.members.clone());
        let owners = lower_sorted(want.owners.clone());
        let mut wrote = false;
        for m in members.iter().filter(|m| !have.members.contains(m)) {
            wrote = true;
            self.legacy_list_write(
                Method::POST,
                &format!("{path}/subscriber"),
                Some(json!({ "email": m })),
                &want.address,
            )
            .await?;
        }
        for m in have.members.iter().filter(|m| !members.contains(m)) {
            wrote = true;
            self.legacy_list_write(
                Method::DELETE,
                &format!("{path}/subscriber/{}", seg(m)),
                None,
                &want.address,
            )
            .await?;
        }
        // The list's owner is fixed at creation; every other owner is a moderator.
        let list: Value = self.get(path).await?;
        let owner = str_field(&list, "ownerEmail")
            .unwrap_or("")
            .to_ascii_lowercase();
        let mods: Vec<String> = self.get(&format!("{path}/moderator")).await?;
        let mods = lower_sorted(mods);
        for o in owners.iter().filter(|o| **o != owner && !mods.contains(o)) {
            wrote = true;
            self.legacy_list_write(
                Method::POST,
                &format!("{path}/moderator"),
                Some(json!({ "email": o })),
                &want.address,
            )
            .await?;
        }
        for m in mods.iter().filter(|m| !owners.contains(m)) {
            wrote = true;
            self.legacy_list_write(
                Method::DELETE,
                &format!("{path}/moderator/{}", seg(m)),
                None,
                &want.address,
            )
            .await?;
        }
        Ok(wrote)
    }

    /// A mailing list on the newer APIs: members and managers by account or contact id.
    /// Returns whether anything was written.
    async fn set_members(
        &self,
        want: &GroupSpec,
        have: &GroupSpec,
        path: &str,
    ) -> Result<bool, OvhError> {
        let members = lower_sorted(want.members.clone());
        let owners = lower_sorted(want.owners.clone());
        let mut wrote = false;
        if !eq_opt(have.display_name.as_deref(), want.display_name.as_deref())
            && want.display_name.is_some()
        {
            wrote = true;
            self.put_settled(path, json!({ "displayName": want.display_name }))
                .await?;
        }
        for m in members.iter().filter(|m| !have.members.contains(m)) {
            wrote = true;
            match self.account(m).await? {
                Some(a) => {
                    let id = a.get("id").and_then(Value::as_u64).unwrap_or(0);
                    self.task_write(
                        Method::POST,
                        &format!("{path}/member/account"),
                        Some(json!({ "memberAccountId": id })),
                    )
                    .await?;
                }
                None => {
                    let contact = self.external_contact(m).await?.ok_or_else(|| {
                        OvhError::Refused(format!(
                            "group member {m} is neither an account nor an external contact on this service: add it to the plan's `external_contacts` (or accounts)"
                        ))
                    })?;
                    let id = contact.get("id").and_then(Value::as_u64).unwrap_or(0);
                    self.task_write(
                        Method::POST,
                        &format!("{path}/member/contact"),
                        Some(json!({ "memberContactId": id })),
                    )
                    .await?;
                }
            }
        }
        for m in have.members.iter().filter(|m| !members.contains(m)) {
            wrote = true;
            match self.account(m).await? {
                Some(a) => {
                    let id = a.get("id").and_then(Value::as_u64).unwrap_or(0);
                    self.task_write(Method::DELETE, &format!("{path}/member/account/{id}"), None)
                        .await?;
                }
                None => {
                    if let Some(c) = self.external_contact(m).await? {
                        let id = c.get("id").and_then(Value::as_u64).unwrap_or(0);
                        self.task_write(
                            Method::DELETE,
                            &format!("{path}/member/contact/{id}"),
                            None,
                        )
                        .await?;
                    }
                }
            }
        }
        for o in owners.iter().filter(|o| !have.owners.contains(o)) {
            wrote = true;
            let id = self.account_id(o, "group owner").await?;
            self.task_write(
                Method::POST,
                &format!("{path}/manager/account"),
                Some(json!({ "managerAccountId": id })),
            )
            .await?;
        }
        for o in have.owners.iter().filter(|o| !owners.contains(o)) {
            wrote = true;
            let id = self.account_id(o, "group owner").await?;
            self.task_write(
                Method::DELETE,
                &format!("{path}/manager/account/{id}"),
                None,
            )
            .await?;
        }
        Ok(wrote)
    }

    async fn create_group(&self, want: &GroupSpec, path: &str) -> Result<(), OvhError> {
        match self.family {
            Family::Legacy { .. } => {
                let owner = want.owners.first().or(want.members.first()).ok_or_else(|| {
                    OvhError::Refused(format!(
                        "a legacy MX Plan mailing list needs an owner: give the group {} an `owners` entry",
                        want.address
                    ))
                })?;
                let body = json!({
                    "name": self.legacy_name(&want.address)?,
                    "ownerEmail": owner,
                    "language": "en",
                    "options": { "moderatorMessage": false, "subscribeByModerator": true, "usersPostOnly": false },
                });
                self.legacy_list_write(
                    Method::POST,
                    &format!("{}/mailingList", self.root()),
                    Some(body),
                    &want.address,
                )
                .await
            }
            _ => {
                let mut body = json!({
                    "mailingListAddress": want.address,
                    "departRestriction": "closed",
                    "joinRestriction": "closed",
                });
                if let Some(n) = &want.display_name {
                    body["displayName"] = json!(n);
                }
                self.post_settled(&format!("{}/mailingList", self.root()), body, path)
                    .await?;
                Ok(())
            }
        }
    }

    async fn legacy_list_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        list: &str,
    ) -> Result<(), OvhError> {
        self.legacy_name(list)?;
        self.legacy_write(method, path, body, "mailinglist").await
    }

    pub async fn delete_group(&self, address: &str) -> Result<Applied, OvhError> {
        let path = self.list_path(address)?;
        if self.get_opt(&path).await?.is_none() {
            return Ok(Applied::unchanged(format!("group {address} is not there")));
        }
        match self.family {
            Family::Legacy { .. } => {
                self.legacy_list_write(Method::DELETE, &path, None, address)
                    .await?;
                self.gone(&path).await?;
            }
            _ => self.delete_settled(&path).await?,
        }
        Ok(Applied::changed(format!("removed group {address}")))
    }
}

fn lower_sorted(v: Vec<String>) -> Vec<String> {
    let set: BTreeSet<String> = v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
    set.into_iter().collect()
}
