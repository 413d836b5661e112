//! An account's filters on the legacy MX Plan API (`/account/{accountName}/filter`), the
//! form inbox rules take there (`mailshift_core::rules::mxplan` translates them). A filter is
//! created with its first rule and gets the others one call each; its activity and priority
//! have calls of their own, its action none (a changed action means delete and create again).
//!
//! Each change is a task of the domain's filter list (`/task/filter?account=`) that vanishes
//! once finished, failed or not: every write waits for its tasks, then the filter is read
//! again to see that the change took. Reads first wait for the account's tasks under way (a
//! run killed after its call leaves one), so a second run sees the first one's work and
//! writes nothing.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Applied, Family, Service, seg, str_field};
use crate::error::OvhError;
use mailshift_core::rules::mxplan::{Filter, FilterAction, FilterRule, Operand};

impl Service {
    fn filters_path(&self, address: &str) -> Result<String, OvhError> {
        match self.family {
            Family::Legacy { .. } => Ok(format!("{}/filter", self.legacy_account_path(address)?)),
            _ => Err(self.unsupported(
                "filters (the newer platforms keep inbox rules in the mailbox: Outlook on the web)",
            )),
        }
    }

    fn filter_path(&self, address: &str, name: &str) -> Result<String, OvhError> {
        Ok(format!("{}/{}", self.filters_path(address)?, seg(name)))
    }

    /// Waits until no filter task of the account is under way.
    async fn filter_tasks_done(&self, address: &str) -> Result<(), OvhError> {
        let account = self.legacy_name(address)?;
        let path = format!("{}/task/filter?account={}", self.root(), seg(account));
        let started = Instant::now();
        let deadline = started + self.timing.deadline;
        loop {
            let ids: Vec<Value> = self.get(&path).await?;
            if ids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path,
                    waited: started.elapsed(),
                    last: format!("{} filter tasks of {address} under way", ids.len()),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// The account's filters with their rules, by priority (name breaking ties).
    pub async fn filters(&self, address: &str) -> Result<Vec<Filter>, OvhError> {
        let base = self.filters_path(address)?;
        self.filter_tasks_done(address).await?;
        let names: Vec<String> = self.get(&base).await?;
        let mut out = Vec::new();
        for name in names {
            // A filter deleted meanwhile is simply not there.
            if let Some((f, _)) = self.read_filter(address, &name).await? {
                out.push(f);
            }
        }
        out.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// One filter with its rules and their ids, or `None`.
    async fn read_filter(
        &self,
        address: &str,
        name: &str,
    ) -> Result<Option<(Filter, Vec<u64>)>, OvhError> {
        let path = self.filter_path(address, name)?;
        let Some(v) = self.get_opt(&path).await? else {
            return Ok(None);
        };
        let action = FilterAction::from_api(str_field(&v, "action"), str_field(&v, "actionParam"))
            .map_err(|e| {
                OvhError::Refused(format!(
                    "the filter {name:?} of {address} cannot be read: {e}; fix or delete it in the control panel"
                ))
            })?;
        let ids: Vec<u64> = self.get(&format!("{path}/rule")).await?;
        let mut rules = Vec::new();
        let mut kept = Vec::new();
        for id in ids {
            let Some(r) = self.get_opt(&format!("{path}/rule/{id}")).await? else {
                continue;
            };
            let operand = str_field(&r, "operand").unwrap_or_default();
            let operand = Operand::parse(operand).ok_or_else(|| {
                OvhError::Refused(format!(
                    "a rule of the filter {name:?} of {address} has the operand {operand:?}, which the API does not list; fix it in the control panel"
                ))
            })?;
            rules.push(FilterRule {
                header: str_field(&r, "header").unwrap_or_default().to_string(),
                operand,
                value: str_field(&r, "value").unwrap_or_default().to_string(),
            });
            kept.push(id);
        }
        Ok(Some((
            Filter {
                name: str_field(&v, "name").unwrap_or(name).to_string(),
                priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
                active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
                action,
                rules,
            },
            kept,
        )))
    }

    /// A filter write: its answer is a task (or a list of them) that vanishes once finished.
    /// A refusal names the filter and what to do.
    async fn filter_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<(), OvhError> {
        let answer: Value = match self.write(method, path, body).await {
            Ok(v) => v,
            Err(OvhError::Api(e)) if e.status == 400 => {
                return Err(OvhError::Refused(format!(
                    "MX Plan refused to {what}: {}; change the rule on the source, or make the filter by hand in the control panel",
                    e.message
                )));
            }
            Err(e) => return Err(e),
        };
        let tasks = match &answer {
            Value::Array(list) => list.iter().collect(),
            v => vec![v],
        };
        for t in tasks {
            let id = match t.get("id") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => continue,
            };
            self.gone(&format!("{}/task/filter/{}", self.root(), seg(&id)))
                .await?;
        }
        Ok(())
    }

    /// Makes the account hold `want`, by its name: created with its rules when missing, its
    /// activity, priority and rules changed where they differ, deleted and created again
    /// when its action differs (the API cannot change one).
    pub async fn ensure_filter(&self, address: &str, want: &Filter) -> Result<Applied, OvhError> {
        let name = &want.name;
        let Some(first) = want.rules.first() else {
            return Err(OvhError::Refused(format!(
                "the filter {name:?} of {address} has no rule, and MX Plan makes a filter with its first rule"
            )));
        };
        self.filter_tasks_done(address).await?;
        let path = self.filter_path(address, name)?;
        let mut wrote = false;
        let mut current = self.read_filter(address, name).await?;
        if let Some((have, _)) = &current
            && have.action != want.action
        {
            self.filter_write(
                Method::DELETE,
                &path,
                None,
                &format!("delete the filter {name:?} of {address} (to change its action)"),
            )
            .await?;
            wrote = true;
            current = self.read_filter(address, name).await?;
            if current.is_some() {
                return Err(OvhError::NotApplied(format!(
                    "the platform did not delete the filter {name:?} of {address}; run apply again"
                )));
            }
        }
        match current {
            None => {
                let (action, param) = want.action.api();
                let mut body = json!({
                    "name": name,
                    "priority": want.priority,
                    "active": want.active,
                    "action": action,
                    "header": first.header,
                    "operand": first.operand.as_str(),
                    "value": first.value,
                });
                if let Some(p) = param {
                    body["actionParam"] = json!(p);
                }
                let posted = self
                    .filter_write(
                        Method::POST,
                        &self.filters_path(address)?,
                        Some(body),
                        &format!("create the filter {name:?} of {address}"),
                    )
                    .await;
                wrote = true;
                // A POST that failed may have landed all the same (a retry after a lost
                // answer): what the platform holds decides.
                if let Err(e) = posted
                    && self.read_filter(address, name).await?.is_none()
                {
                    return Err(e);
                }
                // Its first rule is in; the rest are added below.
            }
            Some((have, _)) => {
                if have.active != want.active {
                    self.filter_write(
                        Method::POST,
                        &format!("{path}/changeActivity"),
                        Some(json!({ "activity": want.active })),
                        &format!("switch the filter {name:?} of {address} on or off"),
                    )
                    .await?;
                    wrote = true;
                }
                if have.priority != want.priority {
                    self.filter_write(
                        Method::POST,
                        &format!("{path}/changePriority"),
                        Some(json!({ "priority": want.priority })),
                        &format!("change the priority of the filter {name:?} of {address}"),
                    )
                    .await?;
                    wrote = true;
                }
            }
        }
        let (have, ids) = self.read_filter(address, name).await?.ok_or_else(|| {
            OvhError::NotApplied(format!(
                "the platform did not create the filter {name:?} of {address}; run apply again"
            ))
        })?;
        // Rules are matched one for one (the same rule twice counts twice). The missing ones
        // are added before the others go, so that the filter never runs without a rule.
        let mut extra: Vec<(u64, &FilterRule)> = ids.into_iter().zip(&have.rules).collect();
        let mut missing = Vec::new();
        for rule in &want.rules {
            match extra.iter().position(|(_, r)| *r == rule) {
                Some(i) => {
                    extra.remove(i);
                }
                None => missing.push(rule),
            }
        }
        for rule in missing {
            self.filter_write(
                Method::POST,
                &format!("{path}/rule"),
                Some(json!({
                    "header": rule.header,
                    "operand": rule.operand.as_str(),
                    "value": rule.value,
                })),
                &format!("add the rule {rule} to the filter {name:?} of {address}"),
            )
            .await?;
            wrote = true;
        }
        for (id, rule) in extra {
            self.filter_write(
                Method::DELETE,
                &format!("{path}/rule/{id}"),
                None,
                &format!("remove the rule {rule} of the filter {name:?} of {address}"),
            )
            .await?;
            wrote = true;
        }
        if !wrote {
            return Ok(Applied::unchanged(format!(
                "{address} already has the filter {name:?}"
            )));
        }
        match self.read_filter(address, name).await? {
            Some((have, _)) if same(&have, want) => Ok(Applied::changed(format!(
                "{address} has the filter {name:?}: {want}"
            ))),
            _ => Err(OvhError::NotApplied(format!(
                "the platform did not apply every change to the filter {name:?} of {address}; run apply again"
            ))),
        }
    }

    /// Deletes the account's filter `name`, if it has one.
    pub async fn delete_filter(&self, address: &str, name: &str) -> Result<Applied, OvhError> {
        self.filter_tasks_done(address).await?;
        if self.read_filter(address, name).await?.is_none() {
            return Ok(Applied::unchanged(format!(
                "{address} has no filter {name:?}"
            )));
        }
        self.filter_write(
            Method::DELETE,
            &self.filter_path(address, name)?,
            None,
            &format!("delete the filter {name:?} of {address}"),
        )
        .await?;
        if self.read_filter(address, name).await?.is_some() {
            return Err(OvhError::NotApplied(format!(
                "the platform did not delete the filter {name:?} of {address}; run apply again"
            )));
        }
        Ok(Applied::changed(format!(
            "{address} no longer has the filter {name:?}"
        )))
    }
}

/// Whether a filter as read holds what was wanted: its rules in any order (they must all
/// hold, so their order means nothing).
pub fn same(have: &Filter, want: &Filter) -> bool {
    let mut a: Vec<String> = have.rules.iter().map(|r| r.to_string()).collect();
    let mut b: Vec<String> = want.rules.iter().map(|r| r.to_string()).collect();
    a.sort();
    b.sort();
    have.name == want.name
        && have.priority == want.priority
        && have.active == want.active
        && have.action == want.action
        && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(header: &str, value: &str) -> FilterRule {
        FilterRule {
            header: header.into(),
            operand: Operand::Contains,
            value: value.into(),
        }
    }

    #[test]
    fn rule_order_does_not_make_filters_differ() {
        let a = Filter {
            name: "f".into(),
            priority: 1,
            active: true,
            action: FilterAction::Delete,
            rules: vec![rule("From", "a"), rule("Subject", "b")],
        };
        let b = Filter {
            rules: vec![rule("Subject", "b"), rule("From", "a")],
            ..a.clone()
        };
        assert!(same(&a, &b));
        assert!(!same(
            &a,
            &Filter {
                rules: vec![rule("From", "a")],
                ..a.clone()
            }
        ));
        assert!(!same(
            &a,
            &Filter {
                active: false,
                ..a.clone()
            }
        ));
    }
}
