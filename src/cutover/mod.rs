//! A domain's cutover as steps of the plan: lower the TTL of the records that will change,
//! switch them to the destination's once `cutover.at` has come and the old TTL has run out,
//! wait until every authoritative server answers the new records, run a last incremental sync
//! of the domain's accounts, mark them cut over, raise the TTL back; and `rollback --cutover`,
//! which puts the previous records back the same checked way.
//!
//! Like a reconciler, each run derives what to do from the plan, the state's
//! [`CutoverRecord`] and what the zone holds now, never from why it runs: every step reads
//! before it writes, records before it moves on, and finds its own write in place after a
//! kill. A record changed by hand since mailshift wrote or read it is drift: the step stops
//! with a conflict (acknowledged by `accept_drift`) instead of overwriting it.
//!
//! What talks to servers is behind traits: the zone ([`Zone`], from `mailshift-core`), the
//! authoritative servers' answers ([`Propagation`]), the accounts' health and their final sync
//! ([`Accounts`]), the record store ([`Records`]). Time is a parameter.

pub use mailshift_core::cutover::CutoverRecord;
use mailshift_core::cutover::{DEFAULT_TTL, Desired, Held, Step, Timing, desired, target};
use mailshift_core::dns::{RecordSet, RecordType, Zone};
use mailshift_core::error::{ErrorKind, StepError};
use mailshift_core::plan::model::{Domain, Plan};
use mailshift_core::plane::PlaneResult;

pub mod accounts;
pub mod ack;
#[cfg(test)]
mod tests;
pub mod view;
pub mod zones;

/// One authoritative server's answer for a name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The server asked, `host:port`.
    pub server: String,
    /// The record set it serves (`None`: no such record), or why it gave no usable answer.
    pub result: Result<Option<RecordSet>, String>,
}

/// What each authoritative server of the zone answers, asked directly (no resolver cache).
pub trait Propagation: Send + Sync {
    fn answers<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Vec<Answer>>;
}

/// Why an account keeps the switch back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWhole {
    pub account: String,
    /// "its last sync failed: ...", "its last verify found 3 messages missing".
    pub why: String,
}

/// The domain's accounts as the cutover needs them.
pub trait Accounts: Send + Sync {
    /// The accounts that are not whole, as the state knows them.
    fn not_whole(&self, accounts: &[String]) -> Result<Vec<NotWhole>, StepError>;
    /// A last incremental sync of each account (the normal sync steps); an error when one
    /// did not complete. `Some(why)`: it is under way elsewhere (watch mode's account units),
    /// ask again later; `after` keeps what the implementation needs between the asks.
    fn final_sync<'a>(
        &'a self,
        accounts: &'a [String],
        after: &'a mut Option<u64>,
    ) -> PlaneResult<'a, Option<String>>;
}

/// Where a domain's [`CutoverRecord`] is kept (the state; a map in tests).
pub trait Records: Send + Sync {
    fn load(&self, domain: &str) -> Result<Option<CutoverRecord>, StepError>;
    fn save(&self, domain: &str, record: &CutoverRecord) -> Result<(), StepError>;
}

impl Records for mailshift_core::state::StateStore {
    fn load(&self, domain: &str) -> Result<Option<CutoverRecord>, StepError> {
        self.cutover(domain)
            .map_err(|e| StepError::state(e.to_string()))
    }

    fn save(&self, domain: &str, record: &CutoverRecord) -> Result<(), StepError> {
        self.put_cutover(domain, record)
            .map_err(|e| StepError::state(e.to_string()))
    }
}

/// A record that is not what mailshift wrote or read there last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub name: String,
    pub rtype: RecordType,
    /// What mailshift wrote or read last.
    pub expected: Option<RecordSet>,
    /// What the zone holds now.
    pub found: Option<RecordSet>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |s: &Option<RecordSet>| match s {
            Some(s) => format!("{} (TTL {})", s.data.join(", "), s.ttl),
            None => "no record".to_string(),
        };
        write!(
            f,
            "{} {} was changed in the zone since mailshift wrote or read it: expected {}, found {}",
            self.name,
            self.rtype,
            show(&self.expected),
            show(&self.found)
        )
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Every step is done.
    Done,
    /// `step` is not due: it may run at `until` (Unix seconds; `None`: no time is set, or it
    /// waits for something else, said in `why`).
    Waiting {
        step: Step,
        until: Option<i64>,
        why: String,
    },
    /// The switch is refused: accounts of the domain are not whole and `force` is off.
    Refused { step: Step, accounts: Vec<NotWhole> },
    /// Records changed by hand: a person decides (`accept_drift`, then the next run).
    Conflict { step: Step, drift: Vec<Drift> },
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Steps that ran, each with one line for people.
    pub ran: Vec<(Step, String)>,
    /// Loud lines: a forced switch.
    pub warnings: Vec<String>,
    pub stop: Stop,
}

/// A domain's cutover: its desired records and times, and its accounts.
#[derive(Debug, Clone)]
pub struct Cutover {
    pub domain: String,
    pub desired: Vec<Desired>,
    pub timing: Timing,
    /// Addresses of the domain's accounts, lower-case.
    pub accounts: Vec<String>,
}

/// How often a waiting propagation check is asked again.
pub const PROPAGATION_RECHECK: i64 = 30;

impl Cutover {
    /// The cutover of a domain with a `dns:` block, from a validated plan.
    pub fn from_plan(plan: &Plan, domain: &Domain) -> Result<Cutover, StepError> {
        let name = domain.name.to_ascii_lowercase();
        let suffix = format!("@{name}");
        let mut accounts: Vec<String> = plan
            .accounts
            .iter()
            .map(|a| a.address.to_ascii_lowercase())
            .filter(|a| a.ends_with(&suffix))
            .collect();
        accounts.sort();
        accounts.dedup();
        Ok(Cutover {
            desired: desired(plan, domain).map_err(StepError::config)?,
            timing: Timing::of(&domain.cutover_settings(plan)),
            domain: name,
            accounts,
        })
    }

    /// When each step may run, as far as the record tells: `(step, done at, due at)`.
    pub fn schedule(
        &self,
        record: Option<&CutoverRecord>,
    ) -> Vec<(Step, Option<i64>, Option<i64>)> {
        let empty = CutoverRecord::default();
        let record = record.unwrap_or(&empty);
        Step::ALL
            .iter()
            .map(|&step| {
                let due = match step {
                    Step::LowerTtl => self.timing.lower_at(),
                    Step::Switch => match (self.timing.at, record.wait_until) {
                        (Some(at), Some(w)) => Some(at.max(w)),
                        (at, _) => at,
                    },
                    Step::FinalSync => record
                        .is_done(Step::Propagation)
                        .map(|p| p + i64::from(self.timing.low_ttl)),
                    // The others follow the one before as soon as it is done.
                    _ => None,
                };
                (step, record.is_done(step), due)
            })
            .collect()
    }

    fn rolled_back_for_this_at(&self, record: &CutoverRecord) -> bool {
        matches!(record.rolled_back, Some((_, at)) if at == self.timing.at)
    }

    /// Runs every due step in order, from where the record stands, and says where it stopped.
    pub async fn advance(
        &self,
        zone: &dyn Zone,
        propagation: &dyn Propagation,
        accounts: &dyn Accounts,
        records: &dyn Records,
        now: i64,
    ) -> Result<Report, StepError> {
        let mut record = records.load(&self.domain)?.unwrap_or_default();
        let mut report = Report {
            ran: Vec::new(),
            warnings: Vec::new(),
            stop: Stop::Done,
        };
        if let Some((when, _)) = record.rolled_back
            && self.rolled_back_for_this_at(&record)
        {
            report.stop = Stop::Waiting {
                step: Step::LowerTtl,
                until: None,
                why: format!(
                    "rolled back at {}; give `cutover.at` a new time to cut over again",
                    crate::render::time::rfc3339(u64::try_from(when).unwrap_or(0))
                ),
            };
            return Ok(report);
        }
        if record.rolled_back.is_some() {
            // A new `at` after a rollback: a new cutover, from the zone as it is now.
            record = CutoverRecord::default();
            records.save(&self.domain, &record)?;
        }
        for step in Step::ALL {
            if record.is_done(step).is_some() {
                continue;
            }
            let outcome = match step {
                Step::LowerTtl => self.lower_ttl(zone, &mut record, records, now).await?,
                Step::Switch => {
                    self.switch(zone, accounts, &mut record, records, now, &mut report)
                        .await?
                }
                Step::Propagation => self.propagation(propagation, &record, now).await?,
                // Resolvers that asked before the switch keep the old answer for up to the
                // low TTL and deliver there meanwhile: the last sync comes after that.
                Step::FinalSync
                    if now
                        < record.is_done(Step::Propagation).unwrap_or(now)
                            + i64::from(self.timing.low_ttl) =>
                {
                    let until = record.is_done(Step::Propagation).unwrap_or(now)
                        + i64::from(self.timing.low_ttl);
                    Err(Stop::Waiting {
                        step,
                        until: Some(until),
                        why: "resolvers' cached answers (the low TTL) run out".into(),
                    })
                }
                Step::FinalSync => {
                    let mut after = record.final_after;
                    let waiting = accounts
                        .final_sync(&self.accounts, &mut after)
                        .await
                        .map_err(|e| e.context(format!("final sync of {}", self.domain)))?;
                    if after != record.final_after {
                        record.final_after = after;
                        records.save(&self.domain, &record)?;
                    }
                    match waiting {
                        None => Ok(format!(
                            "{} account(s) synced a last time",
                            self.accounts.len()
                        )),
                        Some(why) => Err(Stop::Waiting {
                            step,
                            until: Some(now + PROPAGATION_RECHECK),
                            why,
                        }),
                    }
                }
                Step::MarkCutOver => {
                    record.accounts = self.accounts.clone();
                    Ok(format!(
                        "{} account(s) marked cut over: their syncs stop",
                        self.accounts.len()
                    ))
                }
                Step::RaiseTtl => self.raise_ttl(zone, &mut record, records).await?,
            };
            match outcome {
                Ok(line) => {
                    record.done.push((step, now));
                    records.save(&self.domain, &record)?;
                    report.ran.push((step, line));
                }
                Err(stop) => {
                    report.stop = stop;
                    return Ok(report);
                }
            }
        }
        Ok(report)
    }

    /// Reads each set the cutover writes; the drift among them against `baseline` (each may
    /// also already be `ours`, our own write that a kill kept from being recorded).
    async fn read_all(
        &self,
        zone: &dyn Zone,
        baseline: &[Held],
        ours: impl Fn(&Desired, Option<&RecordSet>) -> Option<RecordSet>,
    ) -> Result<(Vec<Option<RecordSet>>, Vec<Drift>), StepError> {
        let mut found = Vec::new();
        let mut drift = Vec::new();
        for d in &self.desired {
            let cur = zone.read(&d.set.name, d.set.rtype).await?;
            if let Some(h) = CutoverRecord::held(baseline, &d.set.name, d.set.rtype)
                && h.set != cur
                && ours(d, h.set.as_ref()) != cur
            {
                drift.push(Drift {
                    name: d.set.name.clone(),
                    rtype: d.set.rtype,
                    expected: h.set.clone(),
                    found: cur.clone(),
                });
            }
            found.push(cur);
        }
        Ok((found, drift))
    }

    /// Makes the zone hold `set` (writable zone), or says it waits for a person (manual).
    async fn ensure(
        zone: &dyn Zone,
        cur: Option<&RecordSet>,
        set: Option<&RecordSet>,
        name: &str,
        rtype: RecordType,
    ) -> Result<bool, StepError> {
        if cur == set {
            return Ok(true);
        }
        if !zone.writable() {
            return Ok(false);
        }
        match set {
            Some(s) => zone.write(s).await?,
            None => zone.remove(name, rtype).await?,
        }
        Ok(true)
    }

    fn manual_wait(step: Step, wanted: &[RecordSet]) -> Stop {
        let lines: Vec<String> = wanted
            .iter()
            .map(|s| format!("{} {} {} {}", s.name, s.ttl, s.rtype, s.data.join(" | ")))
            .collect();
        Stop::Waiting {
            step,
            until: None,
            why: format!(
                "waiting for these records in the zone: {}",
                lines.join("; ")
            ),
        }
    }

    /// Records what the zone held (`found`, read for `self.desired`) for every name and type it
    /// has no earlier answer for, before any write of ours, so a kill after the write cannot
    /// lose what a rollback restores. `expected` too for a set written from here on (the
    /// switch: a record the plan added after the TTL was lowered).
    fn keep_previous(
        &self,
        records: &dyn Records,
        record: &mut CutoverRecord,
        found: &[Option<RecordSet>],
        expected: bool,
    ) -> Result<(), StepError> {
        let mut new_previous = false;
        for (d, cur) in self.desired.iter().zip(found) {
            if CutoverRecord::held(&record.previous, &d.set.name, d.set.rtype).is_none() {
                let held = Held {
                    name: d.set.name.clone(),
                    rtype: d.set.rtype,
                    set: cur.clone(),
                };
                if expected {
                    CutoverRecord::set_held(&mut record.expected, held.clone());
                }
                record.previous.push(held);
                new_previous = true;
            }
        }
        if new_previous {
            records.save(&self.domain, record)?;
        }
        Ok(())
    }

    async fn lower_ttl(
        &self,
        zone: &dyn Zone,
        record: &mut CutoverRecord,
        records: &dyn Records,
        now: i64,
    ) -> Result<Result<String, Stop>, StepError> {
        let Some(lower_at) = self.timing.lower_at() else {
            return Ok(Err(Stop::Waiting {
                step: Step::LowerTtl,
                until: None,
                why: "no `cutover.at` in the plan".into(),
            }));
        };
        if now < lower_at {
            return Ok(Err(Stop::Waiting {
                step: Step::LowerTtl,
                until: Some(lower_at),
                why: "`lower_ttl_ahead` before `cutover.at`".into(),
            }));
        }
        let low = self.timing.low_ttl;
        let lowered = |_: &Desired, prev: Option<&RecordSet>| {
            prev.map(|p| RecordSet {
                ttl: p.ttl.min(low),
                ..p.clone()
            })
        };
        let (found, drift) = self.read_all(zone, &record.previous, lowered).await?;
        if !drift.is_empty() {
            return Ok(Err(Stop::Conflict {
                step: Step::LowerTtl,
                drift,
            }));
        }
        // What the zone held before any write of ours is recorded first, so a kill after the
        // write cannot lose it.
        self.keep_previous(records, record, &found, false)?;
        let mut wait = 0u32;
        let mut changed = 0;
        let mut pending = Vec::new();
        for (d, cur) in self.desired.iter().zip(&found) {
            let prev = CutoverRecord::held(&record.previous, &d.set.name, d.set.rtype)
                .and_then(|h| h.set.clone());
            // Only a record that will change and is cached longer than `low_ttl` is lowered;
            // a new name has nothing cached but its absence.
            let wanted = match &prev {
                Some(p) if !p.same_data(&target(d, Some(p), p.ttl)) && p.ttl > low => {
                    wait = wait.max(p.ttl);
                    Some(RecordSet {
                        ttl: low,
                        ..p.clone()
                    })
                }
                other => other.clone(),
            };
            if !Self::ensure(
                zone,
                cur.as_ref(),
                wanted.as_ref(),
                &d.set.name,
                d.set.rtype,
            )
            .await?
            {
                pending.extend(wanted.clone());
            } else if cur != &wanted {
                changed += 1;
            }
            CutoverRecord::set_held(
                &mut record.expected,
                Held {
                    name: d.set.name.clone(),
                    rtype: d.set.rtype,
                    set: wanted,
                },
            );
        }
        if !pending.is_empty() {
            return Ok(Err(Self::manual_wait(Step::LowerTtl, &pending)));
        }
        record.wait_until = Some(now + i64::from(wait));
        Ok(Ok(format!(
            "TTL lowered to {low}s on {changed} record set(s); the old TTL ({wait}s) runs out before the switch"
        )))
    }

    async fn switch(
        &self,
        zone: &dyn Zone,
        accounts: &dyn Accounts,
        record: &mut CutoverRecord,
        records: &dyn Records,
        now: i64,
        report: &mut Report,
    ) -> Result<Result<String, Stop>, StepError> {
        let due = self
            .schedule(Some(record))
            .into_iter()
            .find(|(s, _, _)| *s == Step::Switch)
            .and_then(|(_, _, due)| due);
        match due {
            Some(due) if now >= due => {}
            until => {
                return Ok(Err(Stop::Waiting {
                    step: Step::Switch,
                    until,
                    why: if until.is_some() {
                        "`cutover.at`, and the old TTL run out".into()
                    } else {
                        "no `cutover.at` in the plan".into()
                    },
                }));
            }
        }
        let not_whole = accounts.not_whole(&self.accounts)?;
        if !not_whole.is_empty() {
            if !self.timing.force {
                return Ok(Err(Stop::Refused {
                    step: Step::Switch,
                    accounts: not_whole,
                }));
            }
            for n in &not_whole {
                report.warnings.push(format!(
                    "FORCED: {} switched although {} {}",
                    self.domain, n.account, n.why
                ));
            }
            record.forced = not_whole.iter().map(|n| n.account.clone()).collect();
        }
        let low = self.timing.low_ttl;
        let (found, drift) = self
            .read_all(zone, &record.expected, |d, held| Some(target(d, held, low)))
            .await?;
        if !drift.is_empty() {
            return Ok(Err(Stop::Conflict {
                step: Step::Switch,
                drift,
            }));
        }
        // A record the plan added after the TTL was lowered: what the zone holds is what a
        // rollback restores, recorded before the write as in `lower_ttl`.
        self.keep_previous(records, record, &found, true)?;
        let mut pending = Vec::new();
        for (d, cur) in self.desired.iter().zip(&found) {
            // The other TXT strings kept beside a new SPF are those the zone held before.
            let before = CutoverRecord::held(&record.expected, &d.set.name, d.set.rtype)
                .and_then(|h| h.set.clone())
                .or_else(|| cur.clone());
            let wanted = target(d, before.as_ref(), low);
            if !Self::ensure(zone, cur.as_ref(), Some(&wanted), &d.set.name, d.set.rtype).await? {
                pending.push(wanted.clone());
            }
            CutoverRecord::set_held(
                &mut record.expected,
                Held {
                    name: d.set.name.clone(),
                    rtype: d.set.rtype,
                    set: Some(wanted),
                },
            );
        }
        if !pending.is_empty() {
            return Ok(Err(Self::manual_wait(Step::Switch, &pending)));
        }
        Ok(Ok(format!(
            "{} record set(s) switched to the destination's",
            self.desired.len()
        )))
    }

    async fn propagation(
        &self,
        propagation: &dyn Propagation,
        record: &CutoverRecord,
        now: i64,
    ) -> Result<Result<String, Stop>, StepError> {
        let wanted: Vec<Held> = self
            .desired
            .iter()
            .filter_map(|d| CutoverRecord::held(&record.expected, &d.set.name, d.set.rtype))
            .cloned()
            .collect();
        match Self::propagated(propagation, &wanted).await? {
            Ok(servers) => Ok(Ok(format!(
                "every authoritative server ({servers}) answers the new records"
            ))),
            Err(why) => Ok(Err(Stop::Waiting {
                step: Step::Propagation,
                until: Some(now + PROPAGATION_RECHECK),
                why,
            })),
        }
    }

    /// Whether every server answers each of `wanted` (data only: the TTL a server reports
    /// counts down); `Err` names the first that does not.
    async fn propagated(
        propagation: &dyn Propagation,
        wanted: &[Held],
    ) -> Result<Result<usize, String>, StepError> {
        let mut servers = 0;
        for h in wanted {
            let answers = propagation.answers(&h.name, h.rtype).await?;
            if answers.is_empty() {
                return Ok(Err(format!(
                    "no authoritative server to ask for {} {}",
                    h.name, h.rtype
                )));
            }
            servers = servers.max(answers.len());
            for a in answers {
                let ok = match (&a.result, &h.set) {
                    (Ok(Some(got)), Some(want)) => got.same_data(want),
                    (Ok(None), None) => true,
                    _ => false,
                };
                if !ok {
                    let got = match &a.result {
                        Ok(Some(s)) => s.data.join(", "),
                        Ok(None) => "no record".into(),
                        Err(e) => format!("no answer ({e})"),
                    };
                    return Ok(Err(format!(
                        "{} still answers {} {} with {got}",
                        a.server, h.name, h.rtype
                    )));
                }
            }
        }
        Ok(Ok(servers))
    }

    async fn raise_ttl(
        &self,
        zone: &dyn Zone,
        record: &mut CutoverRecord,
        _records: &dyn Records,
    ) -> Result<Result<String, Stop>, StepError> {
        let final_ttl = |d: &Desired, record: &CutoverRecord| {
            if d.set.ttl > 0 {
                return d.set.ttl;
            }
            CutoverRecord::held(&record.previous, &d.set.name, d.set.rtype)
                .and_then(|h| h.set.as_ref())
                .map_or(DEFAULT_TTL, |s| s.ttl)
        };
        let snapshot = record.clone();
        let (found, drift) = self
            .read_all(zone, &record.expected, |d, held| {
                held.map(|h| RecordSet {
                    ttl: final_ttl(d, &snapshot),
                    ..h.clone()
                })
            })
            .await?;
        if !drift.is_empty() {
            return Ok(Err(Stop::Conflict {
                step: Step::RaiseTtl,
                drift,
            }));
        }
        let mut pending = Vec::new();
        for (d, cur) in self.desired.iter().zip(&found) {
            let wanted = CutoverRecord::held(&record.expected, &d.set.name, d.set.rtype)
                .and_then(|h| h.set.clone())
                .map(|s| RecordSet {
                    ttl: final_ttl(d, &snapshot),
                    ..s
                });
            if !Self::ensure(
                zone,
                cur.as_ref(),
                wanted.as_ref(),
                &d.set.name,
                d.set.rtype,
            )
            .await?
            {
                pending.extend(wanted.clone());
            }
            CutoverRecord::set_held(
                &mut record.expected,
                Held {
                    name: d.set.name.clone(),
                    rtype: d.set.rtype,
                    set: wanted,
                },
            );
        }
        if !pending.is_empty() {
            return Ok(Err(Self::manual_wait(Step::RaiseTtl, &pending)));
        }
        Ok(Ok("TTL raised back".into()))
    }

    /// What changed by hand in the zone since mailshift wrote or read it (`plan --refresh`).
    pub async fn drift(
        &self,
        zone: &dyn Zone,
        record: &CutoverRecord,
    ) -> Result<Vec<Drift>, StepError> {
        let (_, drift) = self.read_all(zone, &record.expected, |_, _| None).await?;
        Ok(drift)
    }

    /// A person looked at the drift and keeps the zone as it is: what it holds now becomes
    /// what mailshift expects, and the next run goes on from there (`mailshift ack`).
    pub async fn accept_drift(
        &self,
        zone: &dyn Zone,
        records: &dyn Records,
    ) -> Result<usize, StepError> {
        let mut record = records.load(&self.domain)?.unwrap_or_default();
        let mut accepted = 0;
        // Before the switch, the hand-made record is also what a rollback restores.
        let before_switch = record.is_done(Step::Switch).is_none();
        for d in &self.desired {
            let cur = zone.read(&d.set.name, d.set.rtype).await?;
            let held = Held {
                name: d.set.name.clone(),
                rtype: d.set.rtype,
                set: cur,
            };
            let differs = |list: &[Held]| {
                CutoverRecord::held(list, &held.name, held.rtype).is_some_and(|h| h.set != held.set)
            };
            if differs(&record.expected) {
                CutoverRecord::set_held(&mut record.expected, held.clone());
                accepted += 1;
            }
            if before_switch && differs(&record.previous) {
                CutoverRecord::set_held(&mut record.previous, held);
            }
        }
        records.save(&self.domain, &record)?;
        Ok(accepted)
    }

    /// Puts back the records the zone held before the cutover, checks that every
    /// authoritative server answers them, and un-marks the accounts. Resumable: each part is
    /// recorded; run it again until it says [`Stop::Done`].
    pub async fn rollback(
        &self,
        zone: &dyn Zone,
        propagation: &dyn Propagation,
        records: &dyn Records,
        now: i64,
    ) -> Result<Report, StepError> {
        let Some(mut record) = records.load(&self.domain)? else {
            return Err(StepError::config(format!(
                "the cutover of {} never started: there is nothing to roll back",
                self.domain
            )));
        };
        let mut report = Report {
            ran: Vec::new(),
            warnings: Vec::new(),
            stop: Stop::Done,
        };
        if record.rolled_back.is_some() {
            report.warnings.push(format!(
                "the cutover of {} is already rolled back",
                self.domain
            ));
            return Ok(report);
        }
        let done = |r: &CutoverRecord, s: Step| r.rollback_done.iter().any(|(x, _)| *x == s);
        if !done(&record, Step::Switch) {
            let (found, drift) = self
                .read_all(zone, &record.expected, |d, _| {
                    CutoverRecord::held(&record.previous, &d.set.name, d.set.rtype)
                        .and_then(|h| h.set.clone())
                })
                .await?;
            if !drift.is_empty() {
                report.stop = Stop::Conflict {
                    step: Step::Switch,
                    drift,
                };
                return Ok(report);
            }
            let mut pending = Vec::new();
            for (d, cur) in self.desired.iter().zip(&found) {
                let Some(prev) = CutoverRecord::held(&record.previous, &d.set.name, d.set.rtype)
                else {
                    continue;
                };
                if !Self::ensure(
                    zone,
                    cur.as_ref(),
                    prev.set.as_ref(),
                    &prev.name,
                    prev.rtype,
                )
                .await?
                {
                    pending.extend(prev.set.clone());
                }
            }
            if !pending.is_empty() {
                report.stop = Self::manual_wait(Step::Switch, &pending);
                return Ok(report);
            }
            record.expected = record.previous.clone();
            record.rollback_done.push((Step::Switch, now));
            records.save(&self.domain, &record)?;
            report.ran.push((
                Step::Switch,
                "the previous records are back in the zone".into(),
            ));
        }
        if !done(&record, Step::Propagation) {
            match Self::propagated(propagation, &record.previous).await? {
                Ok(_) => {
                    record.rollback_done.push((Step::Propagation, now));
                    records.save(&self.domain, &record)?;
                    report.ran.push((
                        Step::Propagation,
                        "every authoritative server answers the previous records".into(),
                    ));
                }
                Err(why) => {
                    report.stop = Stop::Waiting {
                        step: Step::Propagation,
                        until: Some(now + PROPAGATION_RECHECK),
                        why,
                    };
                    return Ok(report);
                }
            }
        }
        let unmarked = record.accounts.len();
        record.accounts.clear();
        record.done.clear();
        record.rolled_back = Some((now, self.timing.at));
        records.save(&self.domain, &record)?;
        report.ran.push((
            Step::MarkCutOver,
            format!("{unmarked} account(s) no longer cut over: their syncs resume"),
        ));
        Ok(report)
    }
}

/// The accounts every domain's cutover recorded as cut over (lower-case addresses).
pub fn cut_over_accounts(
    cutovers: &std::collections::BTreeMap<String, CutoverRecord>,
) -> std::collections::BTreeSet<String> {
    cutovers
        .values()
        .filter(|r| r.cut_over())
        .flat_map(|r| r.accounts.iter().cloned())
        .collect()
}

/// A refusal or a conflict as a step failure, for the executor's record and retry policy.
pub fn stop_error(domain: &str, stop: &Stop) -> Option<StepError> {
    match stop {
        Stop::Refused { step, accounts } => Some(StepError::new(
            ErrorKind::Conflict,
            format!(
                "{}: the switch is refused while accounts are not whole: {}; fix them, or set `cutover: {{force: true}}` on the domain",
                step.address(domain),
                accounts
                    .iter()
                    .map(|n| format!("{} {}", n.account, n.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        Stop::Conflict { step, drift } => Some(StepError::new(
            ErrorKind::Conflict,
            format!(
                "{}: {}; put the record back, or keep it with `mailshift ack {}`",
                step.address(domain),
                drift
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                step.address(domain)
            ),
        )),
        _ => None,
    }
}

/// Refuses a domain's cutover in a split run (`--shard I/N`, N > 1): its final sync and its
/// marks concern accounts every shard owns, and shard 0 can neither sync them nor mark them in
/// the other shards' states. Said before anything runs, with the fix.
pub fn refuse_split(plan: &Plan, shard: mailshift_core::shard::Shard) -> Result<(), String> {
    if shard.is_whole() {
        return Ok(());
    }
    match plan.domains.iter().find(|d| d.dns.is_some()) {
        None => Ok(()),
        Some(d) => Err(format!(
            "domain {} has a `dns:` cutover, which a split run (--shard {shard}) cannot carry \
             out yet: its final sync and its marks concern the accounts of every shard. Run the \
             shards without the domain's `dns:` block, then cut over from one process over the \
             whole plan (`mailshift state reshard PLAN --to 1`)",
            d.name
        )),
    }
}
