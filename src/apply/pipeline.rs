//! Planning, written once for `plan`, `apply` and watch mode: compile the plan into resources,
//! diff them with the state, optionally read the live platforms for drift (`--refresh`), and
//! keep the changes of the targeted accounts.

use std::collections::BTreeMap;

use super::hold::Hold;
use super::plane::{Observed, Planes};
use crate::diff::{Action, Change, add_drift, diff};
use crate::error::StepError;
use crate::model::{Execution, Resource, ResourceAddr, compile_shard};
use crate::plan::Loaded;
use crate::state::{ResourceRecord, Status};

/// The plan's resources and the changes that would make the platforms match them.
pub struct Planned {
    pub resources: Vec<Resource>,
    pub changes: Vec<Change>,
}

impl Planned {
    /// Compiles this shard's share of the plan (`--shard`, all of it by default) and compares
    /// it with the state's records.
    pub fn new(loaded: &Loaded, state: &BTreeMap<String, ResourceRecord>) -> Planned {
        let resources = compile_shard(&loaded.plan, loaded.shard);
        // Records of another shard's resources are that shard's business: a state shared by
        // mistake must never make this one see them as removed from the plan (and delete
        // them). `state reshard` moves them where they belong.
        let foreign = |rec: &ResourceRecord| !owns_record(loaded, rec);
        let changes = if state.values().any(foreign) {
            let mine: BTreeMap<String, ResourceRecord> = state
                .iter()
                .filter(|(_, r)| !foreign(r))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            diff(&resources, &mine)
        } else {
            diff(&resources, state)
        };
        Planned { resources, changes }
    }

    /// Accounts a domain's cutover recorded as cut over (`mark-cut-over`, see `crate::cutover`)
    /// count as `cut_over: true`: their syncs stop as if the plan said so.
    pub fn cut_over(
        &mut self,
        state: &BTreeMap<String, ResourceRecord>,
        cutovers: &BTreeMap<String, crate::cutover::CutoverRecord>,
    ) {
        let accounts = crate::cutover::cut_over_accounts(cutovers);
        if accounts.is_empty() {
            return;
        }
        for r in &mut self.resources {
            if let Execution::Sync { cut_over } = &mut r.execution
                && r.account.as_ref().is_some_and(|a| accounts.contains(a))
            {
                *cut_over = true;
            }
        }
        self.changes = diff(&self.resources, state);
    }

    /// Adds the steps that repair drift on the live platforms.
    pub async fn refresh(
        &mut self,
        planes: &Planes,
        state: &BTreeMap<String, ResourceRecord>,
    ) -> Result<(), StepError> {
        let drift = observe_drift(planes, &self.resources, state).await?;
        add_drift(&mut self.changes, &self.resources, state, &drift);
        Ok(())
    }

    /// Shows the copies of held accounts (`hold`) as paused: `apply` leaves them where they
    /// stand, and what depends on them waits.
    pub fn hold(&mut self, holds: &BTreeMap<String, Hold>) {
        if holds.is_empty() {
            return;
        }
        for c in &mut self.changes {
            if c.action == Action::Sync
                && c.kind.is_content()
                && let Some(h) = c.account.as_ref().and_then(|a| holds.get(a))
            {
                c.action = Action::Paused;
                c.reason = h.text();
            }
        }
    }

    /// Keeps only the changes of these accounts (lower-case addresses); none means all.
    pub fn only_accounts(&mut self, targets: &[String]) {
        if !targets.is_empty() {
            self.changes
                .retain(|c| c.account.as_ref().is_some_and(|a| targets.contains(a)));
        }
    }
}

/// Whether a state record is of a resource this process runs (`--shard`).
pub fn owns_record(loaded: &Loaded, rec: &ResourceRecord) -> bool {
    match &rec.account {
        Some(a) => loaded.owns_account(a),
        None => loaded.shard.owns_platform_steps(),
    }
}

/// Reads the live platforms and says, for each API resource the state calls applied, how the
/// platform differs from the plan (an alias deleted in the control panel, a domain switched
/// back to authoritative). Resources that match are left out.
async fn observe_drift(
    planes: &Planes,
    desired: &[Resource],
    state: &BTreeMap<String, ResourceRecord>,
) -> Result<BTreeMap<String, String>, StepError> {
    let mut drift = BTreeMap::new();
    for r in desired {
        if r.execution != Execution::Api {
            continue;
        }
        let Some(rec) = state.get(r.id()) else {
            continue;
        };
        if rec.status != Status::Done || rec.fingerprint != r.fingerprint {
            continue;
        }
        let plane = planes.get(&r.platform)?;
        // Once the cleanup has reset the provisional account, its absence is the plan's doing.
        if let ResourceAddr::Rename { account } = &r.addr {
            let cleanup = ResourceAddr::Cleanup {
                account: account.clone(),
            };
            if state
                .get(&cleanup.to_string())
                .is_some_and(|c| c.status == Status::Done)
            {
                continue;
            }
        }
        if let Observed::Drift(what) = plane.observe(r).await? {
            drift.insert(r.id().to_string(), what);
        }
    }
    Ok(drift)
}
