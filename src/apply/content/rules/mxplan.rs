//! The legacy MX Plan end of the rules copy: an account's filters through the OVHcloud API
//! (`mailshift_ovh::ops`, `ops/filter.rs`), translated by `crate::rules::mxplan`. A filter's
//! name is its key in the API, so it is the rule's id here: a rule of the source whose name a
//! filter of the destination's own already has cannot be written beside it, and the step
//! says which to rename. The source's filters are written after the destination's own
//! (priorities after the highest one kept). Each filter is one call or a few (created with
//! its first rule, then one call per rule): a run cut between them is completed by the next,
//! which finds the filter by its name (same action, part of the rules) and adds only what is
//! missing.

use std::sync::Arc;

use mailshift_ovh::ops::Service;
use mailshift_ovh::plane::OvhPlanes;

use super::listed::{Held, RuleList, read_back};
use crate::error::{ErrorKind, StepError};
use crate::plan::Loaded;
use crate::plan::model::Platform;
use crate::rules::mxplan::{Filter, from_mxplan, to_mxplan};
use crate::rules::{Rule, Untranslatable};

/// Where an account's filters are: its service and address; opened for each use.
pub(super) struct MxPlanEnd {
    service: Arc<Service>,
    address: String,
    domain: String,
}

impl MxPlanEnd {
    /// The account `login` of the plan's platform `name`.
    pub(super) fn of(
        name: &str,
        platform: &Platform,
        loaded: &Loaded,
        login: &str,
    ) -> Result<MxPlanEnd, String> {
        let service = OvhPlanes::service(name, platform, loaded).map_err(|e| e.message)?;
        let domain = login
            .split_once('@')
            .map(|(_, d)| d.to_string())
            .ok_or_else(|| {
                format!(
                    "{login} is not an address of the MX Plan platform `{name}`: set the account's login to its address"
                )
            })?;
        Ok(MxPlanEnd {
            service: Arc::new(service),
            address: login.to_string(),
            domain,
        })
    }

    pub(super) fn open(&self) -> MxPlanRules {
        MxPlanRules {
            service: self.service.clone(),
            address: self.address.clone(),
            domain: self.domain.clone(),
            filters: Vec::new(),
        }
    }
}

pub(super) struct MxPlanRules {
    service: Arc<Service>,
    /// The account's address on the platform.
    address: String,
    /// Its domain, for an `account` action written as an account name.
    domain: String,
    /// The filters at the last reading.
    filters: Vec<Filter>,
}

impl RuleList for MxPlanRules {
    async fn held(&mut self) -> Result<Vec<Held>, StepError> {
        self.filters = self.service.filters(&self.address).await?;
        Ok(self
            .filters
            .iter()
            .map(|f| {
                let mut t = from_mxplan(std::slice::from_ref(f), &self.domain);
                let rule = match t.rules.pop() {
                    Some(r) => Ok(r),
                    None => Err(t.untranslatable.pop().unwrap_or_else(|| Untranslatable {
                        text: f.to_string(),
                        reason: "MX Plan's filter cannot be read".into(),
                    })),
                };
                Held {
                    id: f.name.clone(),
                    rule,
                }
            })
            .collect())
    }

    fn canonical(rule: &Rule) -> Result<Rule, String> {
        // Written filters redirect to full addresses: no domain is needed to read them back.
        let (filters, mut left) = to_mxplan(std::slice::from_ref(rule));
        if let Some(u) = left.pop() {
            return Err(u.reason);
        }
        let read = from_mxplan(&filters, "");
        read_back(read, "MX Plan")
    }

    async fn write(
        &mut self,
        delete: &[String],
        create: &[Rule],
    ) -> Result<Vec<String>, StepError> {
        let (mut filters, left) = to_mxplan(create);
        // Each rule was checked alone; two of one name only show together.
        if let Some(u) = left.first() {
            return Err(StepError::new(
                ErrorKind::Conflict,
                format!("{} cannot be written: {}", u.text, u.reason),
            ));
        }
        // A filter of the same name that holds part of what is to be written (same action,
        // some of its rules) is this copy's own, cut short by a kill after its creation and
        // before its other rules: completed, not refused. Any other is the destination's.
        let partial = |held: &Filter, want: &Filter| {
            held.name == want.name
                && held.action == want.action
                && held.rules.iter().all(|r| want.rules.contains(r))
        };
        let kept: Vec<&Filter> = self
            .filters
            .iter()
            .filter(|f| !delete.contains(&f.name))
            .filter(|f| !filters.iter().any(|w| partial(f, w)))
            .collect();
        for f in &filters {
            if let Some(own) = kept.iter().find(|k| k.name.eq_ignore_ascii_case(&f.name)) {
                return Err(StepError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} already has a filter named {:?} of its own ({own}): rename the source's rule or the destination's filter, then run apply again",
                        self.address, own.name
                    ),
                ));
            }
        }
        // After every filter the account keeps.
        let last = kept.iter().map(|f| f.priority).max().unwrap_or(0);
        for name in delete {
            self.service.delete_filter(&self.address, name).await?;
        }
        for (n, f) in filters.iter_mut().enumerate() {
            f.priority = last + 1 + n as i64;
            self.service.ensure_filter(&self.address, f).await?;
        }
        // Filters are written one by one and nothing else of the account is touched.
        Ok(Vec::new())
    }
}
