//! The reconcile loop: which unit runs when, on which plan.
//!
//! A unit is one account (every step of it, through `apply` with that account as target) or
//! the steps of no account (domains, groups, contacts, footers). Each unit has one slot: it is
//! never run twice at once; a plan change that arrives while it runs marks it to run again as
//! soon as it ends. How a run ended decides the next (`schedule::next_run`). Units run in
//! parallel up to the plan's `parallel_accounts`; the steps of no account run first when they
//! are due, since accounts depend on their domain.
//!
//! The loop owns the plan in force. A change of the plan file is loaded and validated; an
//! invalid one is reported (log, `/api/status`) and ignored, and the last valid plan keeps
//! running.
//!
//! Each run has a stop flag of its own, raised for all of them when the daemon stops, and for
//! one account's run when a person pauses that account (a plan edit to `paused: true`, or
//! `POST /api/pause/ACCOUNT`, kept in the state): the copy stops between two batches, as at
//! SIGTERM, and the unit waits until the pause is lifted (`apply::hold`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::Trigger;
use super::schedule::{self, Next, RunEnd};
use super::status::{StatusModel, units_of};
use crate::apply::hold::{self, Hold, HoldCell};
use crate::apply::{ApplyOptions, ApplyReport, DEFAULT_PARALLEL_ACCOUNTS, Hooks, Outcome, apply};
use crate::error::{ErrorKind, Retry, StepError};
use crate::model::{Execution, ResourceKind, compile_shard};
use crate::plan::Loaded;
use crate::state::StateStore;
use crate::transfer::imap::copy::StopFlag;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// Sorts first: it is started before the accounts that depend on its domains.
    Platform,
    Account(String),
}

impl Unit {
    fn account(&self) -> Option<&str> {
        match self {
            Unit::Platform => None,
            Unit::Account(a) => Some(a),
        }
    }

    fn name(&self) -> &str {
        self.account().unwrap_or("(steps of no account)")
    }
}

/// What a unit's task returns: the unit, and what `apply` said.
type RunResult = (Unit, Result<ApplyReport, StepError>);

#[derive(Debug, Default)]
struct Slot {
    /// When it runs next; `None`: when the plan changes.
    next: Option<Instant>,
    running: bool,
    /// The plan changed while it ran: run again as soon as it ends.
    rerun: bool,
    failures: u32,
}

pub struct Daemon {
    plan_path: PathBuf,
    plan: Arc<Loaded>,
    generation: u64,
    store: Arc<StateStore>,
    status: Arc<StatusModel>,
    stop: StopFlag,
    permits: Arc<Semaphore>,
    /// The IMAP servers' connection budgets, shared by every account's runs.
    connections: Arc<crate::transfer::imap::broker::Broker>,
    slots: BTreeMap<Unit, Slot>,
    tasks: JoinSet<RunResult>,
    task_units: HashMap<tokio::task::Id, Unit>,
    /// The rendering of the last refused plan: the same refusal is reported once, not at every
    /// event in the directory.
    rejected: Option<String>,
    /// How often each account whose mail keeps syncing is synced again, from the plan in
    /// force: asked at the end of every run, so compiled once per plan, not once per run.
    sync_every: HashMap<String, Duration>,
    /// The stop flag and hold cell of each unit's run in flight (`apply::hold::HoldCell`).
    run_stops: HashMap<Unit, (StopFlag, HoldCell)>,
    /// The UTC day whose summary was queued (`notify::daily_summary` keeps the lasting record
    /// in the state; this keeps two runs ending together from both queuing it).
    summary_day: String,
    /// Delivers the notifications the runs queue, in the background: runs never wait for an
    /// SMTP server or a webhook.
    courier: crate::notify::Courier,
}

impl Daemon {
    /// After each run: the first run ending on a new UTC day queues the daily summary, and
    /// the courier delivers what the runs queued, in the background.
    fn notify(&mut self) {
        if self.plan.plan.notify.is_empty() {
            return;
        }
        let today = crate::notify::today();
        if self.summary_day != today {
            self.summary_day = today.clone();
            let text = crate::notify::summary_text(&self.store);
            crate::notify::daily_summary(&self.plan, &self.store, &today, text);
        }
        self.courier.kick(self.plan.clone());
    }

    pub fn new(
        plan: Loaded,
        store: Arc<StateStore>,
        status: Arc<StatusModel>,
        stop: StopFlag,
    ) -> Daemon {
        let plan_path = plan.path.clone();
        let courier = crate::notify::Courier::new(store.clone());
        let mut d = Daemon {
            plan_path,
            permits: Arc::new(Semaphore::new(parallel(&plan))),
            connections: crate::transfer::imap::broker::Broker::new(),
            plan: Arc::new(plan),
            generation: 1,
            store,
            status,
            stop,
            slots: BTreeMap::new(),
            tasks: JoinSet::new(),
            task_units: HashMap::new(),
            rejected: None,
            sync_every: HashMap::new(),
            run_stops: HashMap::new(),
            summary_day: String::new(),
            courier,
        };
        d.plan_in_force();
        d
    }

    /// Runs until `shutdown` says so (or its sender is gone).
    pub async fn run(
        &mut self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        triggers: &mut UnboundedReceiver<Trigger>,
        acks: &mut UnboundedReceiver<super::http::AckRequest>,
        holds: &mut UnboundedReceiver<super::http::HoldRequest>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            self.start_due();
            let wake = self.next_wake();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                Some(trigger) = triggers.recv() => self.reload(trigger),
                Some(request) = acks.recv() => {
                    let answer = self.acknowledge_any(&request.id).await;
                    let _ = request.reply.send(answer);
                }
                Some(request) = holds.recv() => {
                    let answer = if request.pause {
                        self.pause(&request.account)
                    } else {
                        self.resume(&request.account)
                    };
                    let _ = request.reply.send(answer);
                }
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.joined(joined);
                }
                _ = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    /// `POST /api/ack/ID`: a cutover step (`cutover/DOMAIN/STEP`: the records changed by hand
    /// in the zone are kept, as `mailshift ack` does) or a manual step (`acknowledge`).
    pub async fn acknowledge_any(&mut self, id: &str) -> Result<String, String> {
        if !id.starts_with("cutover/") {
            return self.acknowledge(id);
        }
        // The platform unit's run writes the same record: an ack between its read and its
        // write would be lost, so it waits for the run to end.
        if self.slots.get(&Unit::Platform).is_some_and(|s| s.running) {
            return Err(format!(
                "{id}: the cutover is running now; acknowledge again when the run of the steps                  of no account has ended (see /api/status)"
            ));
        }
        let (plan, store) = (self.plan.clone(), self.store.clone());
        let line = crate::cutover::ack::acknowledge_async(&plan, &store, id)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| format!("{id}: nothing to acknowledge"));
        info!(step = id, "drift in the zone acknowledged by hand");
        if let Some(slot) = self.slots.get_mut(&Unit::Platform) {
            slot.next = Some(Instant::now());
        }
        self.status.refresh_platform(&self.store);
        Ok(line)
    }

    /// Records a manual step as done (`POST /api/ack/ID`) and runs its unit again now: the
    /// steps that waited for it can go ahead.
    pub fn acknowledge(&mut self, id: &str) -> Result<String, String> {
        let done = crate::apply::ack::acknowledge(&self.plan, &self.store, id)?;
        info!(step = id, "acknowledged by hand");
        let unit = match &done.account {
            Some(a) => Unit::Account(a.clone()),
            None => Unit::Platform,
        };
        if let Some(slot) = self.slots.get_mut(&unit) {
            if slot.running {
                slot.rerun = true;
            } else {
                slot.next = Some(Instant::now());
            }
        }
        match unit.account() {
            Some(a) => self.status.refresh_account(&self.store, a),
            None => self.status.refresh_platform(&self.store),
        }
        Ok(done.message)
    }

    /// Pauses an account's copies (`POST /api/pause/ACCOUNT`): recorded in the state (it
    /// outlives a restart), and a copy under way stops at its next checkpoint.
    pub fn pause(&mut self, account: &str) -> Result<String, super::http::HoldRefused> {
        use super::http::HoldRefused;
        let account = self.known_account(account)?;
        if let Some(h) = hold::plan_hold(&self.plan.plan, &account) {
            return Ok(format!("{account} is already {}", h.text()));
        }
        let since = crate::apply::quota::now();
        self.store
            .put_hold(&account, &crate::state::HoldRecord { since })
            .map_err(|e| HoldRefused::State(e.to_string()))?;
        let recorded = self.store.holds().unwrap_or_default();
        let held =
            hold::hold_of(&self.plan.plan, &recorded, &account).unwrap_or(Hold::Api { since });
        info!(account, "paused from the API: {}", held.text());
        let unit = Unit::Account(account.clone());
        let running = self.hold_running(&unit, held);
        if !running && let Some(slot) = self.slots.get_mut(&unit) {
            // Nothing to run until it is resumed.
            slot.next = None;
            self.status.unit_scheduled(Some(&account), None);
        }
        self.status.refresh_account(&self.store, &account);
        Ok(format!(
            "Paused {account}{}; POST /api/resume/{account} resumes it from where it stands",
            if running {
                ": its copy stops at the next checkpoint"
            } else {
                ""
            }
        ))
    }

    /// Lifts a pause put with `pause` (`POST /api/resume/ACCOUNT`); the account runs now and
    /// its copy goes on from its records. A pause written in the plan is the plan's to lift.
    pub fn resume(&mut self, account: &str) -> Result<String, super::http::HoldRefused> {
        use super::http::HoldRefused;
        // An account gone from the plan may still carry a pause: it can be lifted, so that
        // the account does not come back paused if it is added again.
        let account = match self.known_account(account) {
            Ok(a) => a,
            Err(e) => {
                let a = account.trim().to_ascii_lowercase();
                if !self.store.holds().unwrap_or_default().contains_key(&a) {
                    return Err(e);
                }
                a
            }
        };
        if let Some(h) = hold::plan_hold(&self.plan.plan, &account) {
            return Err(HoldRefused::InPlan(format!(
                "{account} is paused in the plan ({}), not from the API: edit the plan                  ({}) to resume it",
                match h {
                    Hold::Plan { whole: true } => "`paused: true` for the whole plan",
                    _ => "`paused: true` on the account",
                },
                self.plan_path.display()
            )));
        }
        let was = self
            .store
            .clear_hold(&account)
            .map_err(|e| HoldRefused::State(e.to_string()))?;
        if !was {
            return Err(HoldRefused::NotPaused(format!("{account} is not paused")));
        }
        info!(account, "resumed from the API");
        let unit = Unit::Account(account.clone());
        if let Some(slot) = self.slots.get_mut(&unit) {
            if slot.running {
                slot.rerun = true;
            } else {
                slot.next = Some(Instant::now());
                self.status
                    .unit_scheduled(Some(&account), Some(SystemTime::now()));
            }
        }
        self.status.refresh_account(&self.store, &account);
        Ok(format!(
            "Resumed {account}: its copy goes on from where it stood"
        ))
    }

    /// `account` as the plan in force has it (lower case), or why not.
    fn known_account(&self, account: &str) -> Result<String, super::http::HoldRefused> {
        let account = account.trim().to_ascii_lowercase();
        let known: Vec<&str> = self
            .plan
            .plan
            .accounts
            .iter()
            .map(|a| a.address.as_str())
            .collect();
        if known.iter().any(|a| a.eq_ignore_ascii_case(&account)) {
            return Ok(account);
        }
        let hint = crate::plan::diagnostic::did_you_mean(&account, known.iter().copied())
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        Err(super::http::HoldRefused::Unknown(format!(
            "no account {account} in the plan in force{hint}"
        )))
    }

    /// Stops `unit`'s run in flight at its next checkpoint, reporting `held`; false when it is
    /// not running.
    fn hold_running(&mut self, unit: &Unit, held: Hold) -> bool {
        let Some((stop, cell)) = self.run_stops.get(unit) else {
            return false;
        };
        // The cell first: the run reads it once it sees the flag.
        *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// After the stop flag is set: lets in-flight runs reach their checkpoint, for at most
    /// `grace`. Returns whether they all did.
    pub async fn drain(&mut self, grace: Duration) -> bool {
        for (stop, _) in self.run_stops.values() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let running: Vec<&str> = self.task_units.values().map(Unit::name).collect();
        if !running.is_empty() {
            info!(
                units = running.len(),
                "waiting for {} to reach a checkpoint",
                running.join(", ")
            );
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = self.tasks.join_next_with_id() => match joined {
                    Some(j) => self.joined(j),
                    None => return true,
                },
                _ = &mut deadline => {
                    let left: Vec<&str> = self.task_units.values().map(Unit::name).collect();
                    warn!(
                        "{} did not reach a checkpoint within {}s; exiting anyway (the state is \
                         valid: the next run resumes and matches what was in flight)",
                        left.join(", "),
                        grace.as_secs()
                    );
                    return false;
                }
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        // Accounts held back by a running platform unit wake up when it ends, not before:
        // counting them here would spin on a deadline already past.
        let platform_busy = self.slots.get(&Unit::Platform).is_some_and(|s| s.running);
        self.slots
            .iter()
            .filter(|(u, s)| !(s.running || platform_busy && **u != Unit::Platform))
            .filter_map(|(_, s)| s.next)
            .min()
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        let due: Vec<Unit> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.running && s.next.is_some_and(|t| t <= now))
            .map(|(u, _)| u.clone())
            .collect();
        for unit in due {
            let platform_busy = self.slots.get(&Unit::Platform).is_some_and(|s| s.running);
            if unit != Unit::Platform && platform_busy {
                // Started once the domains are done with; its slot stays due.
                continue;
            }
            self.spawn(unit);
        }
    }

    fn spawn(&mut self, unit: Unit) {
        let Some(slot) = self.slots.get_mut(&unit) else {
            return;
        };
        slot.running = true;
        slot.next = None;
        let plan = self.plan.clone();
        let store = self.store.clone();
        let status = self.status.clone();
        // A flag of its own, so that pausing one account stops its run alone; it starts raised
        // when the daemon is already stopping.
        let stop: StopFlag = Arc::new(std::sync::atomic::AtomicBool::new(
            self.stop.load(std::sync::atomic::Ordering::Relaxed),
        ));
        let cell = HoldCell::default();
        let connections = Some(self.connections.clone());
        self.run_stops
            .insert(unit.clone(), (stop.clone(), cell.clone()));
        let permits = self.permits.clone();
        status.unit_queued(unit.account());
        let task_unit = unit.clone();
        let handle = self.tasks.spawn(async move {
            let unit = task_unit;
            let _permit = match unit {
                Unit::Platform => None,
                Unit::Account(_) => permits.acquire_owned().await.ok(),
            };
            status.unit_started(unit.account());
            let options = ApplyOptions {
                targets: unit
                    .account()
                    .map(|a| vec![a.to_string()])
                    .unwrap_or_default(),
                platform_only: unit == Unit::Platform,
                keep_spool: true,
                hold: cell,
                notify_in_background: true,
                connections,
                ..ApplyOptions::default()
            };
            let hooks: Arc<dyn Hooks> = status;
            let report = apply(plan, store, options, hooks, stop).await;
            (unit, report)
        });
        self.task_units.insert(handle.id(), unit);
    }

    fn joined(&mut self, joined: Result<(tokio::task::Id, RunResult), tokio::task::JoinError>) {
        let (unit, report) = match joined {
            Ok((id, (unit, report))) => {
                self.task_units.remove(&id);
                (unit, report)
            }
            Err(e) => {
                let Some(unit) = self.task_units.remove(&e.id()) else {
                    return;
                };
                (
                    unit,
                    Err(StepError::bug(format!("the run ended abnormally: {e}"))),
                )
            }
        };
        self.finished(unit, report);
    }

    fn finished(&mut self, unit: Unit, report: Result<ApplyReport, StepError>) {
        self.run_stops.remove(&unit);
        let shards_every = self
            .plan
            .plan
            .shards
            .as_ref()
            .map_or(crate::plan::model::Shards::DEFAULT_EVERY, |s| s.every());
        let (end, error, kind) = run_end(&report, shards_every);
        let sync_every = self.sync_interval(&unit);
        let Some(slot) = self.slots.get_mut(&unit) else {
            // Gone from the plan and the state while it ran.
            self.status
                .unit_finished(unit.account(), &end, error, kind, 0, None);
            return;
        };
        slot.running = false;
        slot.failures = match end {
            RunEnd::Failed { .. } => slot.failures.saturating_add(1),
            RunEnd::Stopped => slot.failures,
            _ => 0,
        };
        let next = if slot.rerun && end != RunEnd::Stopped {
            Next::After(Duration::ZERO)
        } else {
            schedule::next_run(&end, slot.failures, sync_every, schedule::jitter())
        };
        slot.rerun = false;
        let (next_instant, next_wall) = match next {
            Next::After(d) => (Some(Instant::now() + d), Some(SystemTime::now() + d)),
            Next::AwaitChange => (None, None),
        };
        slot.next = next_instant;
        let failures = slot.failures;
        // Groups and other platform steps may have been waiting for this account to exist:
        // a platform unit in backoff runs again now rather than at the end of its backoff.
        if end == RunEnd::Succeeded
            && unit != Unit::Platform
            && let Some(platform) = self.slots.get_mut(&Unit::Platform)
            && platform.failures > 0
            && !platform.running
        {
            platform.next = Some(Instant::now());
        }
        match unit.account() {
            Some(a) => self.status.refresh_account(&self.store, a),
            None => self.status.refresh_platform(&self.store),
        }
        self.notify();
        let next_text = match next {
            Next::After(d) => format!("next run in {}s", d.as_secs()),
            Next::AwaitChange => "next run when the plan changes (or on SIGHUP)".into(),
        };
        let name = unit.name();
        match (&end, &error) {
            // The steps' own lines say what happened.
            (RunEnd::Succeeded, _) => debug!(unit = name, "reconciled; {next_text}"),
            (RunEnd::Stopped, _) => info!(unit = name, "stopped at a checkpoint"),
            (RunEnd::Paused { .. }, _) => {
                info!(unit = name, "paused at a daily limit; {next_text}")
            }
            (RunEnd::Held, _) => info!(unit = name, "paused by a person; runs when resumed"),
            (RunEnd::Conflicted, e) => warn!(
                unit = name,
                "conflict: {}; {next_text}",
                e.as_deref().unwrap_or("")
            ),
            (RunEnd::Failed { .. }, e) => warn!(
                unit = name,
                failures,
                "run failed: {}; {next_text}",
                e.as_deref().unwrap_or("")
            ),
        }
        self.status
            .unit_finished(unit.account(), &end, error, kind, failures, next_wall);
    }

    /// How often an account's mail is synced again, while it is (plan in force).
    fn sync_interval(&self, unit: &Unit) -> Option<Duration> {
        self.sync_every.get(unit.account()?).copied()
    }

    /// Re-reads the plan file; puts it in force if it is valid and differs (or on SIGHUP).
    fn reload(&mut self, trigger: Trigger) {
        let cache = crate::plan::default_cache_dir();
        let loaded = match crate::plan::load_file_cached(&self.plan_path, cache.as_deref()) {
            // The shard is the process's, not the file's: a reload keeps it.
            Ok(l) => Loaded {
                shard: self.plan.shard,
                ..l
            },
            Err(e) => {
                self.reject(e.render(), trigger);
                return;
            }
        };
        if let Err(e) = crate::cutover::refuse_split(&loaded.plan, loaded.shard) {
            self.reject(format!("error: {e}\n"), trigger);
            return;
        }
        let state_path = loaded.state_path_for(self.store.shard());
        if state_path != self.store.path() {
            self.reject(
                format!(
                    "error: the plan now keeps its state in {}, and this daemon holds {}: restart \
                     `mailshift watch` to switch state files\n",
                    state_path.display(),
                    self.store.path().display()
                ),
                trigger,
            );
            return;
        }
        if loaded.source == self.plan.source && trigger == Trigger::File {
            if self.rejected.take().is_some() {
                info!("the plan file is back to the plan in force");
                self.status.plan_error_cleared();
            }
            return;
        }
        self.rejected = None;
        let warnings = loaded.render_warnings();
        if !warnings.is_empty() {
            warn!("{}", warnings.trim_end());
        }
        self.generation += 1;
        if parallel(&loaded) != parallel(&self.plan) {
            // Runs holding permits of the old limit finish under it.
            self.permits = Arc::new(Semaphore::new(parallel(&loaded)));
        }
        self.plan = Arc::new(loaded);
        info!(
            generation = self.generation,
            "plan {} in force ({})",
            self.plan_path.display(),
            match trigger {
                Trigger::File => "the file changed",
                Trigger::Signal => "re-read on SIGHUP",
            }
        );
        self.plan_in_force();
    }

    fn reject(&mut self, text: String, trigger: Trigger) {
        if self.rejected.as_deref() == Some(text.as_str()) && trigger == Trigger::File {
            return;
        }
        error!(
            "the plan file {} was not put in force; the previous plan keeps running:\n{}",
            self.plan_path.display(),
            text.trim_end()
        );
        self.status.plan_rejected(text.clone());
        self.rejected = Some(text);
    }

    /// The plan in force changed (or the daemon started): every unit is due now, and the units
    /// are those of the new plan (and of the state).
    fn plan_in_force(&mut self) {
        self.sync_every = sync_intervals(&self.plan);
        let records = self.store.resources().unwrap_or_else(|e| {
            error!("cannot read the state: {e}");
            BTreeMap::new()
        });
        let mut wanted: Vec<Unit> = vec![Unit::Platform];
        wanted.extend(
            units_of(&self.plan, &records)
                .into_iter()
                .map(Unit::Account),
        );
        let mut old = std::mem::take(&mut self.slots);
        let now = Instant::now();
        let recorded = self.store.holds().unwrap_or_default();
        for unit in wanted {
            let mut slot = old.remove(&unit).unwrap_or_default();
            // Paused by this plan while it copies: its copy stops at the next checkpoint.
            if slot.running
                && let Some(account) = unit.account()
                && let Some(h) = hold::hold_of(&self.plan.plan, &recorded, account)
                && self.hold_running(&unit, h.clone())
            {
                info!(
                    account,
                    "{}: stopping its copy at the next checkpoint",
                    h.text()
                );
            }
            if slot.running {
                slot.rerun = true;
            } else {
                slot.next = Some(now);
            }
            self.slots.insert(unit, slot);
        }
        // Units still running but no longer wanted are left to finish; their result is logged.
        self.status
            .plan_loaded(&self.plan, self.generation, &self.store);
        for (unit, slot) in &self.slots {
            if !slot.running {
                self.status
                    .unit_scheduled(unit.account(), Some(SystemTime::now()));
            }
        }
    }
}

/// The accounts whose mail keeps syncing (not cut over), each with how often, from one
/// compile of the plan.
fn sync_intervals(loaded: &Loaded) -> HashMap<String, Duration> {
    compile_shard(&loaded.plan, loaded.shard)
        .into_iter()
        .filter(|r| {
            r.kind == ResourceKind::Mail
                && matches!(r.execution, Execution::Sync { cut_over: false })
        })
        .filter_map(|r| {
            let interval = r
                .spec
                .account()?
                .options
                .sync_interval
                .as_ref()
                .and_then(|s| s.secs())
                .map_or(schedule::DEFAULT_SYNC_INTERVAL, Duration::from_secs);
            Some((r.account?, interval))
        })
        .collect()
}

fn parallel(loaded: &Loaded) -> usize {
    loaded
        .plan
        .options
        .parallel_accounts
        .unwrap_or(DEFAULT_PARALLEL_ACCOUNTS)
        .max(1) as usize
}

/// How a run ended, the error to show for it, and the kind of that error.
///
/// Of several failed steps, the most eager retry wins: a step that may pass by itself (a
/// dropped connection) is not held back by one that waits for a person (a refused password).
fn run_end(
    report: &Result<ApplyReport, StepError>,
    shards_every: Duration,
) -> (RunEnd, Option<String>, Option<ErrorKind>) {
    let report = match report {
        Err(e) => return failed_end(&[(None, e)]),
        Ok(r) if r.stopped => return (RunEnd::Stopped, None, None),
        Ok(r) => r,
    };
    let failed: Vec<(Option<&str>, &StepError)> = report
        .steps
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Failed(e) => Some((Some(s.id.as_str()), e)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return failed_end(&failed);
    }
    // Paused at a daily limit: back when the earliest pause ends (the step says why).
    if let Some(until) = report.paused_until() {
        let after = Duration::from_secs(until.saturating_sub(crate::apply::quota::now()));
        return (RunEnd::Paused { after }, None, None);
    }
    // Waiting for another shard: asked again on the plan's `shards.every`, never a failure.
    if report.waiting() > 0 {
        return (
            RunEnd::Paused {
                after: shards_every,
            },
            None,
            None,
        );
    }
    // Paused by a person: nothing to do until the plan or the API resumes it.
    if report.held() > 0 {
        return (RunEnd::Held, None, None);
    }
    // Skipped without a failure of its own: waiting for a step of another unit.
    let skipped = report.steps.iter().find_map(|s| match &s.outcome {
        Outcome::Skipped(t) => Some(format!("{}: {t}", s.id)),
        _ => None,
    });
    if let Some(e) = skipped {
        let end = RunEnd::Failed {
            retry: Retry::Backoff,
            after: None,
        };
        return (end, Some(e), None);
    }
    let conflict = report.steps.iter().find_map(|s| match &s.outcome {
        Outcome::Conflict(t) => Some(format!("{}: {t}", s.id)),
        _ => None,
    });
    match conflict {
        Some(e) => (RunEnd::Conflicted, Some(e), Some(ErrorKind::Conflict)),
        None => (RunEnd::Succeeded, None, None),
    }
}

/// `failed` is not empty: the failed steps (their ids) or the run's own error.
fn failed_end(
    failed: &[(Option<&str>, &StepError)],
) -> (RunEnd, Option<String>, Option<ErrorKind>) {
    let retry = failed
        .iter()
        .map(|(_, e)| e.retry())
        .min()
        .unwrap_or(Retry::Backoff);
    let after = failed.iter().filter_map(|(_, e)| e.retry_after).max();
    let (id, e) = failed
        .iter()
        .find(|(_, e)| e.retry() == retry)
        .unwrap_or(&failed[0]);
    let what = match id {
        Some(id) => format!("{id}: {}", e.message),
        None => e.message.clone(),
    };
    let text = match retry {
        Retry::AwaitChange => format!(
            "waiting for a plan change or SIGHUP: {}: {what}",
            e.kind.waiting_reason()
        ),
        _ => what,
    };
    (RunEnd::Failed { retry, after }, Some(text), Some(e.kind))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::StepResult;
    use crate::diff::Action;

    const PLAN: &str = "version: 1\nplatforms:\n  \
        old: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\n  \
        new: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\naccounts:\n";

    fn plan(accounts: &[&str]) -> String {
        let mut p = PLAN.to_string();
        for a in accounts {
            p.push_str(&format!(
                "  - address: {a}@example.com\n    from: old\n    to: new\n    \
                 source: {{password: {{env: X}}}}\n    destination: {{password: {{env: X}}}}\n"
            ));
        }
        p
    }

    fn daemon(dir: &std::path::Path, accounts: &[&str]) -> Daemon {
        let path = dir.join("plan.yaml");
        std::fs::write(&path, plan(accounts)).unwrap();
        let loaded = crate::plan::load_file(&path).unwrap();
        let store = Arc::new(StateStore::open(&loaded.state_path()).unwrap());
        let status = Arc::new(StatusModel::new("plan.yaml".into()));
        Daemon::new(loaded, store, status, Arc::default())
    }

    fn account(a: &str) -> Unit {
        Unit::Account(format!("{a}@example.com"))
    }

    #[test]
    fn sync_intervals_come_from_the_plan_in_force_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice", "bob", "carol"]);
        let text = format!(
            "{}{}{}{}",
            PLAN.replace("accounts:\n", "options: {sync_interval: 10m}\naccounts:\n"),
            "  - address: Alice@example.com\n    from: old\n    to: new\n    \
             source: {password: {env: X}}\n    destination: {password: {env: X}}\n",
            "  - address: bob@example.com\n    from: old\n    to: new\n    options: {cut_over: true}\n    \
             source: {password: {env: X}}\n    destination: {password: {env: X}}\n",
            "  - address: carol@example.com\n    from: old\n    to: new\n    \
             options: {sync_interval: 1h}\n    \
             source: {password: {env: X}}\n    destination: {password: {env: X}}\n",
        );
        assert_eq!(
            d.sync_interval(&account("alice")),
            Some(schedule::DEFAULT_SYNC_INTERVAL)
        );
        std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
        d.reload(Trigger::Signal);
        assert_eq!(
            d.sync_interval(&account("alice")),
            Some(Duration::from_secs(10 * 60))
        );
        assert_eq!(
            d.sync_interval(&account("bob")),
            None,
            "cut over: no more syncs"
        );
        assert_eq!(
            d.sync_interval(&account("carol")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(d.sync_interval(&Unit::Platform), None);
    }

    fn done(unit: &Unit) -> Result<ApplyReport, StepError> {
        Ok(ApplyReport {
            steps: vec![StepResult {
                id: format!("account/{}/mail", unit.name()),
                account: unit.account().map(str::to_string),
                action: Action::Sync,
                outcome: Outcome::Done("0 messages copied".into()),
            }],
            ..ApplyReport::default()
        })
    }

    #[test]
    fn a_plan_change_during_a_run_queues_one_more_run_instead_of_a_second_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        let alice = account("alice");
        assert!(d.slots[&alice].next.is_some(), "due at start");
        // As `spawn` leaves it.
        let slot = d.slots.get_mut(&alice).unwrap();
        slot.running = true;
        slot.next = None;

        std::fs::write(dir.path().join("plan.yaml"), plan(&["alice", "bob"])).unwrap();
        d.reload(Trigger::File);
        assert_eq!(d.generation, 2);
        let slot = &d.slots[&alice];
        assert!(
            slot.running && slot.rerun && slot.next.is_none(),
            "{slot:?}"
        );
        assert!(d.slots[&account("bob")].next.is_some(), "bob is due");
        assert!(d.next_wake().is_some());

        d.finished(alice.clone(), done(&alice));
        let slot = &d.slots[&alice];
        assert!(!slot.running && !slot.rerun);
        assert!(
            slot.next.is_some_and(|t| t <= Instant::now()),
            "runs again now"
        );

        // Then, from its own result: the default interval.
        d.slots.get_mut(&alice).unwrap().running = true;
        d.finished(alice.clone(), done(&alice));
        let wait = d.slots[&alice].next.unwrap() - Instant::now();
        assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
    }

    #[test]
    fn a_failing_platform_unit_runs_again_once_an_account_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        let alice = account("alice");
        // A group waiting for alice's account: the platform unit fails and backs off.
        d.slots.get_mut(&Unit::Platform).unwrap().running = true;
        d.finished(
            Unit::Platform,
            Err(StepError::new(
                ErrorKind::Network,
                "waiting for account/alice@example.com/create",
            )),
        );
        let backoff = d.slots[&Unit::Platform].next.unwrap();
        assert!(backoff > Instant::now());
        d.slots.get_mut(&alice).unwrap().running = true;
        d.finished(alice.clone(), done(&alice));
        let again = d.slots[&Unit::Platform].next.unwrap();
        assert!(
            again <= Instant::now(),
            "still waiting {:?}",
            again - Instant::now()
        );
    }

    /// `POST /api/ack/cutover/...` reaches the cutover's ack (the manual steps' would say
    /// "no such step"), and waits while the platform unit, which writes the same record, runs.
    #[test]
    fn a_cutover_ack_goes_to_the_cutover_and_waits_for_a_running_platform_unit() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        d.slots.entry(Unit::Platform).or_default().running = true;
        let busy = rt
            .block_on(d.acknowledge_any("cutover/example.com/switch"))
            .unwrap_err();
        assert!(busy.contains("the cutover is running now"), "{busy}");
        d.slots.get_mut(&Unit::Platform).unwrap().running = false;
        let none = rt
            .block_on(d.acknowledge_any("cutover/example.com/switch"))
            .unwrap_err();
        assert!(
            none.contains("no domain of the plan has a `dns:` zone named `example.com`"),
            "{none}"
        );
    }

    #[test]
    fn acknowledging_a_manual_step_records_it_and_runs_its_account_now() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        // A plain IMAP source has no API: its rename is a manual step the copy waits for.
        let text = plan(&["alice"]).replace(
            "    from: old\n",
            "    from: old\n    rename_to: alice.old@example.com\n",
        );
        std::fs::write(&path, text).unwrap();
        let loaded = crate::plan::load_file(&path).unwrap();
        let store = Arc::new(StateStore::open(&loaded.state_path()).unwrap());
        let status = Arc::new(StatusModel::new("plan.yaml".into()));
        let mut d = Daemon::new(loaded, store.clone(), status, Arc::default());
        let alice = account("alice");
        d.slots.get_mut(&alice).unwrap().next = None;

        let wrong = d
            .acknowledge("account/alice@example.com/renam")
            .unwrap_err();
        assert!(
            wrong.contains("did you mean `account/alice@example.com/rename`?"),
            "{wrong}"
        );
        let copy = d.acknowledge("account/alice@example.com/mail").unwrap_err();
        assert!(copy.contains("is not a manual step"), "{copy}");
        assert_eq!(
            d.slots[&alice].next, None,
            "a refused ack schedules nothing"
        );

        let message = d.acknowledge("account/alice@example.com/rename").unwrap();
        assert!(
            message.starts_with("Acknowledged account/alice@example.com/rename"),
            "{message}"
        );
        let rec = store
            .resource("account/alice@example.com/rename")
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, crate::state::Status::Acknowledged);
        assert!(d.slots[&alice].next.is_some_and(|n| n <= Instant::now()));
    }

    #[test]
    fn an_api_pause_is_recorded_holds_the_account_and_only_the_api_lifts_it() {
        use crate::watch::http::HoldRefused;
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice", "bob"]);
        let alice = account("alice");
        assert!(matches!(
            d.pause("nobody@example.com"),
            Err(HoldRefused::Unknown(_))
        ));
        assert!(matches!(
            d.resume("alice@example.com"),
            Err(HoldRefused::NotPaused(_))
        ));

        let said = d.pause("Alice@Example.com").unwrap();
        assert!(said.starts_with("Paused alice@example.com"), "{said}");
        assert!(d.store.holds().unwrap().contains_key("alice@example.com"));
        assert_eq!(d.slots[&alice].next, None, "nothing to run while paused");
        let view = d.status.snapshot();
        let row = view
            .accounts
            .iter()
            .find(|a| a.address == "alice@example.com")
            .unwrap();
        assert_eq!(row.paused_by.as_deref(), Some("api"));
        assert_eq!(row.paused_until, None, "not a daily limit's pause");
        assert_eq!(view.summary.paused, 1, "alice, not bob, counted as paused");

        // A run in flight is stopped through its own flag, bob's run is left alone.
        let flag = |d: &mut Daemon, unit: &Unit| {
            let stop: StopFlag = Arc::default();
            d.run_stops
                .insert(unit.clone(), (stop.clone(), HoldCell::default()));
            stop
        };
        let (alice_stop, bob_stop) = (flag(&mut d, &alice), flag(&mut d, &account("bob")));
        assert!(d.hold_running(&alice, Hold::Api { since: 1 }));
        assert!(alice_stop.load(std::sync::atomic::Ordering::Relaxed));
        assert!(!bob_stop.load(std::sync::atomic::Ordering::Relaxed));
        let cell = d.run_stops[&alice].1.clone();
        assert_eq!(hold::read_cell(&cell), Some(Hold::Api { since: 1 }));
        d.run_stops.clear();

        let said = d.resume("alice@example.com").unwrap();
        assert!(said.starts_with("Resumed alice@example.com"), "{said}");
        assert!(d.store.holds().unwrap().is_empty());
        assert!(d.slots[&alice].next.is_some_and(|t| t <= Instant::now()));

        // Paused in the plan: the API cannot lift it. alice, paused again, then gone from the
        // plan, can still be resumed.
        d.pause("alice@example.com").unwrap();
        let text = plan(&["bob"]).replace(
            "- address: bob@example.com\n",
            "- address: bob@example.com\n    paused: true\n",
        );
        std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
        d.reload(Trigger::File);
        let Err(HoldRefused::InPlan(why)) = d.resume("bob@example.com") else {
            panic!("a plan's pause is the plan's to lift");
        };
        assert!(
            why.contains("paused in the plan") && why.contains("edit the plan"),
            "{why}"
        );
        assert!(
            d.pause("bob@example.com")
                .unwrap()
                .contains("already paused by the plan")
        );
        assert!(matches!(
            d.pause("alice@example.com"),
            Err(HoldRefused::Unknown(_))
        ));
        d.resume("alice@example.com").unwrap();
        assert!(d.store.holds().unwrap().is_empty());
    }

    #[test]
    fn failures_back_off_and_a_success_resets_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        let alice = account("alice");
        for n in 1..=3u32 {
            d.slots.get_mut(&alice).unwrap().running = true;
            d.finished(
                alice.clone(),
                Err(StepError::new(ErrorKind::Network, "connection reset")),
            );
            let slot = &d.slots[&alice];
            assert_eq!(slot.failures, n);
            let wait = slot.next.unwrap() - Instant::now();
            assert!(wait <= schedule::backoff(n, 1.0), "{n}: {wait:?}");
            assert!(wait + Duration::from_millis(100) >= schedule::backoff(n, 0.0));
        }
        d.slots.get_mut(&alice).unwrap().running = true;
        d.finished(alice.clone(), done(&alice));
        assert_eq!(d.slots[&alice].failures, 0);
    }

    fn failing(unit: &Unit, errors: &[StepError]) -> Result<ApplyReport, StepError> {
        let steps = errors
            .iter()
            .enumerate()
            .map(|(n, e)| StepResult {
                id: format!("account/{}/step{n}", unit.name()),
                account: unit.account().map(str::to_string),
                action: Action::Sync,
                outcome: Outcome::Failed(e.clone()),
            })
            .collect();
        Ok(ApplyReport {
            steps,
            ..ApplyReport::default()
        })
    }

    #[test]
    fn a_refused_password_waits_for_a_plan_change_or_sighup_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        let alice = account("alice");
        let refused = StepError::new(
            ErrorKind::Auth,
            "login as alice on 127.0.0.1:1 was refused: [AUTHENTICATIONFAILED]",
        );
        for n in 1..=3u32 {
            d.slots.get_mut(&alice).unwrap().running = true;
            d.finished(
                alice.clone(),
                failing(&alice, std::slice::from_ref(&refused)),
            );
            let slot = &d.slots[&alice];
            assert_eq!((slot.failures, slot.next), (n, None), "run {n}");
        }
        let view = d.status.snapshot().accounts[0].clone();
        let error = view.last_error.unwrap();
        assert!(
            error.starts_with(
                "waiting for a plan change or SIGHUP: the password was refused: account/alice@example.com/step0: login as alice"
            ),
            "{error}"
        );
        assert_eq!(view.error_kind.as_deref(), Some("auth"));
        assert_eq!(view.next_run, None);

        // A failure that may pass by itself in the same run keeps the unit on a timer.
        let cut = StepError::new(ErrorKind::Network, "connection reset");
        d.slots.get_mut(&alice).unwrap().running = true;
        d.finished(alice.clone(), failing(&alice, &[refused, cut]));
        assert!(d.slots[&alice].next.is_some());

        // SIGHUP (or a plan change) makes it due again.
        d.slots.get_mut(&alice).unwrap().next = None;
        d.reload(Trigger::Signal);
        assert!(d.slots[&alice].next.is_some_and(|t| t <= Instant::now()));
    }

    #[test]
    fn throttling_backs_off_longer_than_a_dropped_connection() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice", "bob"]);
        let (alice, bob) = (account("alice"), account("bob"));
        for unit in [&alice, &bob] {
            d.slots.get_mut(unit).unwrap().running = true;
        }
        d.finished(
            alice.clone(),
            failing(
                &alice,
                &[StepError::new(ErrorKind::Throttled, "[THROTTLED]")],
            ),
        );
        d.finished(
            bob.clone(),
            failing(&bob, &[StepError::new(ErrorKind::Network, "reset")]),
        );
        let now = Instant::now();
        let slow = d.slots[&alice].next.unwrap() - now;
        let normal = d.slots[&bob].next.unwrap() - now;
        assert!(
            slow >= schedule::SLOW_BACKOFF_BASE / 2 - Duration::from_secs(1),
            "{slow:?}"
        );
        assert!(normal <= schedule::backoff(1, 1.0), "{normal:?}");
    }

    #[test]
    fn an_invalid_or_unchanged_plan_changes_nothing_and_sighup_reruns_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        for slot in d.slots.values_mut() {
            slot.next = None;
        }
        d.reload(Trigger::File);
        assert_eq!(d.generation, 1, "same text");
        assert!(d.slots.values().all(|s| s.next.is_none()));

        std::fs::write(dir.path().join("plan.yaml"), "version: 1\naccounts: [{}]\n").unwrap();
        d.reload(Trigger::File);
        assert_eq!(d.generation, 1);
        assert!(d.rejected.is_some());
        let snapshot = d.status.snapshot();
        assert!(snapshot.plan.error.is_some(), "{snapshot:?}");
        assert_eq!(
            snapshot.accounts.len(),
            1,
            "the running plan's accounts stay"
        );

        std::fs::write(dir.path().join("plan.yaml"), plan(&["alice"])).unwrap();
        d.reload(Trigger::File);
        assert_eq!(d.generation, 1, "back to the plan in force");
        assert!(d.status.snapshot().plan.error.is_none());

        d.reload(Trigger::Signal);
        assert_eq!(d.generation, 2);
        assert!(d.slots.values().all(|s| s.next.is_some()), "all due");
    }

    #[test]
    fn a_plan_naming_another_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(dir.path(), &["alice"]);
        let moved = format!("state: elsewhere.redb\n{}", plan(&["alice"]));
        std::fs::write(dir.path().join("plan.yaml"), moved).unwrap();
        d.reload(Trigger::File);
        assert_eq!(d.generation, 1);
        let error = d.status.snapshot().plan.error.unwrap();
        assert!(error.contains("restart `mailshift watch`"), "{error}");
    }
}
