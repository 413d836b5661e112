//! The executor: runs the changes a diff produced, in dependency order, and records each
//! finished step in the state in its own transaction.
//!
//! Platform-level steps (domains) run first, then accounts (up to `parallel_accounts` at
//! once), then platform features that may depend on accounts (groups, contacts, footers).
//! One failing account does not stop the others: its later steps are skipped, and the report
//! says what failed and why. A copy a person paused (`hold`) is not started, and what waits for
//! it waits, without failing, like a copy paused at a daily limit (`quota`). The engine prints
//! nothing; it calls [`Hooks`].
//!
//! Each step works from its resource's spec (`model::Spec`), never from the plan again: copies
//! here, API steps through the platform's control plane (`plane`, `control`). What is planned
//! comes from `pipeline`, and every record the state keeps of a resource is written by `record`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};

pub mod ack;
pub mod content;
mod control;
mod cutover;
pub mod dav_journal;
pub mod hold;
pub mod imap_adapter;
pub mod journal;
pub mod pipeline;
pub mod plane;
pub mod quota;
pub mod record;
pub mod servers;
pub mod shards;
pub mod sizing;

use crate::diff::{Action, Change};
use crate::error::{ErrorKind, StepError};
use crate::model::{
    AccountSpec, Resource, ResourceAddr, ResourceKind, Spec, dest_login, source_login,
};
use crate::plan::Loaded;
use crate::state::{StateStore, Status};
use crate::transfer::imap::broker::Broker;
use crate::transfer::imap::copy::{CopyReport, Progress, StopFlag};
use crate::transfer::imap::session::Target;
use imap_adapter::target;
use pipeline::Planned;
use plane::Planes;
use record::Records;

/// Accounts run at once when the plan does not say (`options.parallel_accounts`). Many:
/// what bounds a copy is its servers' connection budgets (`limits.server_connections`), which
/// every account's copy waits on for its first connection; this only bounds the tasks.
pub const DEFAULT_PARALLEL_ACCOUNTS: u32 = 16;
/// How long the copy retries a refused login right after this run renamed or created the
/// account: platforms take a moment to propagate such changes to their IMAP servers.
const FRESH_LOGIN_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Clone)]
pub enum Outcome {
    Done(String),
    /// Its kind decides what happens next (`crate::error`); people read its message.
    Failed(StepError),
    /// Not attempted: a step it depends on did not complete.
    Skipped(String),
    /// Waiting for a person (`mailshift ack`).
    Manual(String),
    Conflict(String),
    /// A copy stopped at a platform's daily limit (Gmail's bandwidth): not a failure; it goes
    /// on at `until` (Unix seconds), and runs before then skip it. `text` says so.
    Paused {
        until: u64,
        text: String,
    },
    /// A copy a person paused (`hold`: the plan's `paused: true`, or watch mode's API), or a
    /// step that waits for one: not a failure; it goes on when the pause is lifted. `text`
    /// says who paused it and how to resume.
    Held(String),
    /// A step that depends on one another shard runs (`--shard`), not done there yet (or that
    /// shard's status cannot be read): not a failure; watch mode tries it again (`shards`).
    Waiting {
        shard: u32,
        text: String,
    },
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(_) | Outcome::Conflict(_) | Outcome::Skipped(_)
        )
    }
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub id: String,
    pub account: Option<String>,
    pub action: Action,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub steps: Vec<StepResult>,
    pub copies: BTreeMap<String, CopyReport>,
    /// Contacts, calendars and tasks copies, in the order they ended.
    pub dav_copies: Vec<content::dav::DavCopy>,
    /// Write calls made to control-plane APIs (a run with nothing to change makes none).
    pub api_writes: u64,
    pub stopped: bool,
    /// Notifications of this run that could not be delivered (`notify:`), for people: they
    /// never fail the run.
    pub notify_failures: Vec<String>,
}

impl ApplyReport {
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.outcome.is_failure())
    }

    /// Steps a person's pause held back in this run (`Outcome::Held`).
    pub fn held(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Held(_)))
            .count()
    }

    /// Steps of this run that wait for another shard (`Outcome::Waiting`).
    pub fn waiting(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Waiting { .. }))
            .count()
    }

    /// When the earliest paused copy of this run may go on, if one paused.
    pub fn paused_until(&self) -> Option<u64> {
        self.steps
            .iter()
            .filter_map(|s| match s.outcome {
                Outcome::Paused { until, .. } => Some(until),
                _ => None,
            })
            .min()
    }
}

/// What the executor tells the outside world; progress of copies included.
pub trait Hooks: Progress {
    fn step_started(&self, _change: &Change) {}
    fn step_finished(&self, _result: &StepResult) {}
    /// One call to a platform's API returned (`ok`: it succeeded), after `elapsed`. Providers
    /// report each call here so that watch mode can expose latencies; `api` names the API
    /// (`ovh`), `operation` the call without ids (`POST /email/pro/{service}/account`).
    fn api_call(&self, _api: &str, _operation: &str, _elapsed: Duration, _ok: bool) {}
    /// Contacts, events or tasks (`kind`: `contacts`, `calendars`, `tasks`) written to the
    /// destination, after each recorded batch.
    fn items_copied(&self, _account: &str, _kind: &str, _items: u64, _bytes: u64) {}
}

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Only these accounts (lower-case addresses); empty means all.
    pub targets: Vec<String>,
    /// Read the live platforms first and repair drift (see `plan --refresh`).
    pub refresh: bool,
    /// Only the steps that belong to no account (domains, groups, contacts, footers):
    /// watch mode reconciles those as a unit of their own, beside one unit per account.
    pub platform_only: bool,
    /// Leave the spool directory alone: another apply of this process may be spooling into
    /// it (watch mode runs several, and clears the spool itself when it starts).
    pub keep_spool: bool,
    /// Watch mode's way to pause this run while it goes: it writes the hold here, then raises
    /// the stop flag (`hold::HoldCell`).
    pub hold: hold::HoldCell,
    /// Queue the run's notifications without waiting for their delivery: watch mode delivers
    /// them in the background (`notify::Courier`), so a slow SMTP server never holds a copy.
    pub notify_in_background: bool,
    /// The servers' connection budgets, when they are shared beyond this run (watch mode's
    /// runs share one); `None`: this run's own.
    pub connections: Option<Arc<Broker>>,
}

/// Runs every pending change of the plan against the state.
pub async fn apply(
    loaded: Arc<Loaded>,
    store: Arc<StateStore>,
    options: ApplyOptions,
    hooks: Arc<dyn Hooks>,
    stop: StopFlag,
) -> Result<ApplyReport, StepError> {
    // Watch cycles come here directly; the commands have read them already (and said so).
    let (loaded, detected) = servers::detect(loaded).await;
    for d in &detected {
        tracing::info!("{}", d.line(&loaded));
    }
    // Spool files left by a killed run are garbage: this process holds the state lock.
    if !options.keep_spool {
        let _ = std::fs::remove_dir_all(store.spool_dir());
    }
    let state = store.resources()?;
    // Content copied once before this run: its sync now is not a first copy (notifications).
    let done_before: std::collections::BTreeSet<String> = state
        .iter()
        .filter(|(_, r)| r.status == Status::Done)
        .map(|(id, _)| id.clone())
        .collect();
    let mut planned = Planned::new(&loaded, &state);
    planned.cut_over(&state, &store.cutovers()?);
    planned.hold(&hold::holds(&loaded.plan, &store.holds()?));
    let api_calls: plane::ApiCalls = {
        let hooks = hooks.clone();
        Arc::new(move |api, operation, elapsed, ok| hooks.api_call(api, operation, elapsed, ok))
    };
    let planes = Planes::new(loaded.clone(), Some(api_calls));
    if options.refresh {
        planned.refresh(&planes, &state).await?;
    }
    planned.only_accounts(&options.targets);
    let Planned {
        resources,
        mut changes,
    } = planned;
    // The domains' cutovers run last in a whole `apply` and in watch mode's platform unit;
    // their final sync is the accounts' own sync steps, run again here, or (watch mode) run
    // by the accounts' units and waited for (`cutover::run`).
    let cutover_content: Option<Vec<Change>> = (options.targets.is_empty()
        && loaded.plan.domains.iter().any(|d| d.dns.is_some()))
    .then(|| {
        changes
            .iter()
            .filter(|c| c.action == Action::Sync && c.kind.is_content())
            .cloned()
            .collect()
    });
    if options.platform_only {
        changes.retain(|c| c.account.is_none());
    }
    changes.retain(|c| c.action != Action::Orphaned);

    let accounts: HashMap<String, Arc<AccountSpec>> = resources
        .iter()
        .filter_map(|r| r.spec.account())
        .map(|a| (a.address.clone(), a.clone()))
        .collect();
    let resources: HashMap<ResourceAddr, Resource> =
        resources.into_iter().map(|r| (r.addr.clone(), r)).collect();
    let peers = shards::Peers::new(&loaded);
    let ctx = Arc::new(Ctx {
        loaded,
        store,
        hooks,
        stop,
        resources,
        accounts,
        results: Mutex::new(Vec::new()),
        copies: Mutex::new(BTreeMap::new()),
        dav_copies: Mutex::new(Vec::new()),
        finished: Mutex::new(HashMap::new()),
        paused: Mutex::new(HashMap::new()),
        held: Mutex::new(std::collections::HashSet::new()),
        waiting: Mutex::new(HashMap::new()),
        peers,
        hold: options.hold.clone(),
        planes,
        sync_point: tokio::sync::OnceCell::new(),
        connections: options.connections.clone().unwrap_or_default(),
    });

    let (platform_first, rest): (Vec<Change>, Vec<Change>) = changes
        .into_iter()
        .partition(|c| c.kind == ResourceKind::Domain);
    let (accounts, platform_last): (Vec<Change>, Vec<Change>) =
        rest.into_iter().partition(|c| c.account.is_some());

    run_group(&ctx, platform_first).await;
    // Accounts in two waves: first every account's rename, creation and copy, then the
    // features and cleanups. A delegation or a group needs the *other* accounts to exist, and
    // waiting for them inside the first wave could starve the `parallel_accounts` permits.
    let (core, features): (Vec<Change>, Vec<Change>) = accounts.into_iter().partition(|c| {
        matches!(c.kind, ResourceKind::Rename | ResourceKind::Create) || c.kind.is_content()
    });
    run_accounts(&ctx, core).await?;
    run_accounts(&ctx, features).await?;
    run_group(&ctx, platform_last).await;
    if let Some(content) = cutover_content {
        cutover::run(&ctx, content, options.platform_only).await;
    }

    let mut steps = std::mem::take(&mut *ctx.results.lock().await);
    steps.sort_by(|a, b| a.id.cmp(&b.id));
    let copies = std::mem::take(&mut *ctx.copies.lock().await);
    let dav_copies = std::mem::take(&mut *ctx.dav_copies.lock().await);
    let mut report = ApplyReport {
        steps,
        copies,
        dav_copies,
        api_writes: ctx.planes.writes(),
        // Stopped by a pause is not stopped: the run ended where the person asked.
        stopped: ctx.stop.load(Ordering::Relaxed) && hold::read_cell(&ctx.hold).is_none(),
        notify_failures: Vec::new(),
    };
    // After the records: what is told is what the state already says. Never fails the run.
    report.notify_failures = crate::notify::after_apply(
        &ctx.loaded,
        &ctx.store,
        &report,
        &done_before,
        !options.notify_in_background,
    )
    .await;
    Ok(report)
}

/// Runs changes grouped by account, up to `parallel_accounts` accounts at once.
async fn run_accounts(ctx: &Arc<Ctx>, changes: Vec<Change>) -> Result<(), StepError> {
    let mut by_account: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for c in changes {
        by_account
            .entry(c.account.clone().unwrap_or_default())
            .or_default()
            .push(c);
    }
    let parallel = ctx
        .loaded
        .plan
        .options
        .parallel_accounts
        .unwrap_or(DEFAULT_PARALLEL_ACCOUNTS)
        .max(1) as usize;
    let permits = Arc::new(Semaphore::new(parallel));
    let mut handles = Vec::new();
    for (_, group) in by_account {
        let ctx = ctx.clone();
        let permits = permits.clone();
        handles.push(tokio::spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            run_group(&ctx, group).await;
        }));
    }
    for h in handles {
        if let Err(e) = h.await {
            return Err(StepError::bug(format!("an account task panicked: {e}")));
        }
    }
    Ok(())
}

struct Ctx {
    loaded: Arc<Loaded>,
    store: Arc<StateStore>,
    hooks: Arc<dyn Hooks>,
    stop: StopFlag,
    resources: HashMap<ResourceAddr, Resource>,
    /// The plan's accounts by lower-case address (a removed feature's account included).
    accounts: HashMap<String, Arc<AccountSpec>>,
    results: Mutex<Vec<StepResult>>,
    copies: Mutex<BTreeMap<String, CopyReport>>,
    dav_copies: Mutex<Vec<content::dav::DavCopy>>,
    /// Steps of this run that completed (true) or did not (false).
    finished: Mutex<HashMap<ResourceAddr, bool>>,
    /// Copies of this run paused at a daily limit, and until when: what depends on them waits
    /// as long, without failing.
    paused: Mutex<HashMap<ResourceAddr, u64>>,
    /// Steps of this run a person's pause held back: what depends on them waits too.
    held: Mutex<std::collections::HashSet<ResourceAddr>>,
    /// Steps of this run that wait for another shard, and for which: what depends on them
    /// waits too.
    waiting: Mutex<HashMap<ResourceAddr, u32>>,
    /// The other shards' status (`--shard`), read when a step depends on one of theirs.
    peers: shards::Peers,
    /// Set (with the stop flag) when watch mode pauses this run while it goes.
    hold: hold::HoldCell,
    planes: Planes,
    /// This run's sync point, taken when its first copy starts: every copy of one `apply`
    /// (one watch cycle) shares it, so `rollback --since N` undoes whole runs, as OVH Mail
    /// Migrator's synchronisation points do.
    sync_point: tokio::sync::OnceCell<u64>,
    /// Every IMAP server's connection budget, shared by the accounts' copies.
    connections: Arc<Broker>,
}

/// Runs one group's changes in dependency order (a group's changes are few: a simple
/// repeated scan is enough).
async fn run_group(ctx: &Arc<Ctx>, mut pending: Vec<Change>) {
    while !pending.is_empty() {
        let next = pending
            .iter()
            .position(|c| {
                !c.depends_on
                    .iter()
                    .any(|d| pending.iter().any(|p| p.addr.as_ref() == Some(d)))
            })
            .unwrap_or(0);
        let change = pending.remove(next);
        let outcome = if ctx.stop.load(Ordering::Relaxed) {
            match hold::read_cell(&ctx.hold) {
                Some(h) => Outcome::Held(format!("not started: {}", h.text())),
                None => Outcome::Skipped(
                    "stopped before this step (run apply again to continue)".to_string(),
                ),
            }
        } else {
            match blocked_by(ctx, &change).await {
                Some(reason) => match paused_dependency(ctx, &change).await {
                    Some((dep, until)) => Outcome::Paused {
                        until,
                        text: format!(
                            "waits for {dep}, paused until {}",
                            crate::render::time::minute(until)
                        ),
                    },
                    None => match held_dependency(ctx, &change).await {
                        Some(dep) => Outcome::Held(format!(
                            "waits for {dep}, which is paused (resume it to go on)"
                        )),
                        None => match waiting_dependency(ctx, &change).await {
                            Some((dep, shard)) => Outcome::Waiting {
                                shard,
                                text: format!("waits for {dep}, which waits for shard {shard}"),
                            },
                            None => Outcome::Skipped(reason),
                        },
                    },
                },
                None => match elsewhere(ctx, &change).await {
                    Some(waiting) => waiting,
                    None => {
                        ctx.hooks.step_started(&change);
                        run_change(ctx, &change).await
                    }
                },
            }
        };
        if let Some(addr) = &change.addr {
            ctx.finished
                .lock()
                .await
                .insert(addr.clone(), matches!(outcome, Outcome::Done(_)));
            if let Outcome::Paused { until, .. } = outcome {
                ctx.paused.lock().await.insert(addr.clone(), until);
            }
            if let Outcome::Held(_) = &outcome {
                ctx.held.lock().await.insert(addr.clone());
            }
            if let Outcome::Waiting { shard, .. } = &outcome {
                ctx.waiting.lock().await.insert(addr.clone(), *shard);
            }
        }
        let result = StepResult {
            id: change.id.clone(),
            account: change.account.clone(),
            action: change.action,
            outcome,
        };
        ctx.hooks.step_finished(&result);
        ctx.results.lock().await.push(result);
    }
}

/// Why a change cannot run yet: a dependency that failed in this run, or that was never
/// applied (a manual step not acknowledged, an API step not done).
async fn blocked_by(ctx: &Ctx, change: &Change) -> Option<String> {
    let finished = ctx.finished.lock().await;
    for dep in &change.depends_on {
        match finished.get(dep) {
            Some(true) => continue,
            Some(false) => return Some(format!("{dep} did not complete")),
            None => {}
        }
        let applied = ctx
            .store
            .resource(&dep.to_string())
            .ok()
            .flatten()
            .is_some_and(|r| r.status.is_applied());
        if !applied && ctx.resources.contains_key(dep) {
            return Some(format!("waiting for {dep}"));
        }
    }
    None
}

/// A dependency of `change` that paused in this run, and until when.
async fn paused_dependency(ctx: &Ctx, change: &Change) -> Option<(ResourceAddr, u64)> {
    let paused = ctx.paused.lock().await;
    change
        .depends_on
        .iter()
        .find_map(|d| paused.get(d).map(|until| (d.clone(), *until)))
}

/// A dependency of `change` that waits for another shard in this run, and for which.
async fn waiting_dependency(ctx: &Ctx, change: &Change) -> Option<(ResourceAddr, u32)> {
    let waiting = ctx.waiting.lock().await;
    change
        .depends_on
        .iter()
        .find_map(|d| waiting.get(d).map(|s| (d.clone(), *s)))
}

/// Why `change` must wait for another shard: a dependency that shard runs is not done there
/// (`shards`). Only asked once nothing of this shard blocks it. Removals do not wait: they
/// depend on nothing elsewhere.
async fn elsewhere(ctx: &Ctx, change: &Change) -> Option<Outcome> {
    if change.action == Action::Delete {
        return None;
    }
    for dep in &change.depends_on {
        let Some(owner) = ctx.peers.owner(dep) else {
            continue;
        };
        if let shards::Elsewhere::Waiting { shard, text } = ctx.peers.check(owner, dep).await {
            return Some(Outcome::Waiting { shard, text });
        }
    }
    None
}

/// A dependency of `change` that a person's pause held back in this run.
async fn held_dependency(ctx: &Ctx, change: &Change) -> Option<ResourceAddr> {
    let held = ctx.held.lock().await;
    change
        .depends_on
        .iter()
        .find(|d| held.contains(*d))
        .cloned()
}

async fn run_change(ctx: &Arc<Ctx>, change: &Change) -> Outcome {
    match change.action {
        Action::Conflict => Outcome::Conflict(change.reason.clone()),
        Action::Manual => Outcome::Manual(
            change
                .instructions
                .clone()
                .unwrap_or_else(|| change.reason.clone()),
        ),
        Action::Orphaned => Outcome::Done("kept".to_string()),
        // Not started: the reason says who paused it and how to resume.
        Action::Paused => Outcome::Held(change.reason.clone()),
        Action::Sync => run_sync(ctx, change).await,
        Action::Create | Action::Update | Action::Delete => control::run(ctx, change).await,
    }
}

/// Where and how to log in on both sides of an account; secrets are read now.
pub(crate) fn spec_targets(
    loaded: &crate::plan::Loaded,
    spec: &AccountSpec,
) -> Result<(Target, Target), StepError> {
    let (from, to, account) = (&*spec.source, &*spec.dest, &spec.account);
    let source = target(loaded, from, &account.source, source_login(account))
        .map_err(|e| StepError::config(format!("source: {e}")))?;
    let dest = target(loaded, to, &account.destination, dest_login(account))
        .map_err(|e| StepError::config(format!("destination: {e}")))?;
    Ok((source, dest))
}

async fn run_sync(ctx: &Arc<Ctx>, change: &Change) -> Outcome {
    let Some(resource) = change.addr.as_ref().and_then(|a| ctx.resources.get(a)) else {
        return Outcome::Failed(StepError::bug(format!("{} is not in the plan", change.id)));
    };
    let records = Records::new(&ctx.store);
    let Some(engine) = content::engine(resource.kind) else {
        let err = StepError::config(format!(
            "copying {} (CardDAV/CalDAV) is not available in this version of mailshift",
            resource.kind.as_str()
        ));
        records.failed(&change.id, Some(resource), &err);
        return Outcome::Failed(err);
    };
    let Spec::Content { account: spec, .. } = &resource.spec else {
        return Outcome::Failed(StepError::bug(format!(
            "{}: not a content resource",
            change.id
        )));
    };
    // Paused at a daily limit: nothing is asked of the servers before its time.
    match ctx.store.pause(resource.id()) {
        Ok(Some(p)) if p.until > quota::now() => {
            return Outcome::Paused {
                until: p.until,
                text: quota::pause_text(&p),
            };
        }
        Ok(Some(_)) => {
            if let Err(e) = ctx.store.clear_pause(resource.id()) {
                return Outcome::Failed(e.into());
            }
        }
        Ok(None) => {}
        Err(e) => return Outcome::Failed(e.into()),
    }
    // A rollback cut between its deletes and its state update leaves records of items that may
    // be gone: copying on top of them would not converge, whatever engine copies (IMAP, POP3,
    // files, DAV), so the resource waits until the rollback is run again.
    let pending = crate::rollback::refuse_if_interrupted(&ctx.store, resource.id(), &spec.address)
        .and_then(|()| {
            crate::rollback::dav::refuse_if_interrupted(&ctx.store, resource.id(), &spec.address)
        });
    if let Err(e) = pending {
        records.failed(&change.id, Some(resource), &e);
        return Outcome::Failed(e);
    }
    let sides = match engine.prepare(spec, &ctx.loaded) {
        Ok(sides) => sides,
        Err(e) => {
            records.failed(&change.id, Some(resource), &e);
            return Outcome::Failed(e);
        }
    };
    // Mark the step as started: a crash from here on shows as "resume" in the next plan.
    let store = ctx.store.clone();
    let sync_point = match ctx
        .sync_point
        .get_or_try_init(|| async { store.next_sync_point() })
        .await
    {
        Ok(p) => *p,
        Err(e) => return Outcome::Failed(e.into()),
    };
    let (started, prev) = match records.sync_started(resource) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.into()),
    };
    // Only a finished copy with the same settings lets folders list just the newer messages.
    let full_scan = !prev
        .as_ref()
        .is_some_and(|p| p.status == Status::Done && p.fingerprint == resource.fingerprint);
    // An account renamed or created by this run may take a moment to accept logins.
    let fresh = {
        let finished = ctx.finished.lock().await;
        resource
            .depends_on
            .iter()
            .any(|d| d.makes_account() && finished.get(d) == Some(&true))
    };
    let run = content::SyncRun {
        id: resource.id(),
        store: &store,
        spool_dir: store.spool_dir(),
        sync_point,
        full_scan,
        login_grace: if fresh {
            FRESH_LOGIN_GRACE
        } else {
            std::time::Duration::ZERO
        },
        hooks: ctx.hooks.clone(),
        stop: ctx.stop.clone(),
        connections: &ctx.connections,
    };
    let clock = std::time::Instant::now();
    let synced = match sides.sync(run).await {
        Ok(synced) => synced,
        Err(e) => {
            records.sync_failed(resource, started, &e.message);
            return Outcome::Failed(e);
        }
    };
    let stopped = ctx.stop.load(Ordering::Relaxed);
    let summary = if stopped {
        format!("{}, stopped before the end", synced.summary)
    } else {
        synced.summary
    };
    // Paused at a daily limit: in progress, like a stopped copy, until the window reopens.
    let paused = synced.paused;
    let stopped = stopped || paused.is_some();
    let mut outputs = prev.map(|p| p.outputs).unwrap_or_default();
    outputs.insert("last_copied".into(), synced.copied.to_string());
    outputs.extend(synced.outputs);
    // Parts given up on fail the step, while what was copied stays recorded; the next apply
    // scans in full and copies only what is missing.
    let failed = synced.failed;
    // A stopped copy stays in progress: the next apply resumes it.
    let status = if failed.is_some() {
        Status::Failed
    } else if stopped {
        Status::InProgress
    } else {
        Status::Done
    };
    let point = if stopped || failed.is_some() {
        started.sync_point
    } else {
        Some(sync_point)
    };
    let detail = failed.as_ref().map(|f| f.detail.clone());
    if let Err(e) = records.sync_ended(resource, started, status, point, detail, outputs) {
        return Outcome::Failed(e.into());
    }
    match synced.report {
        content::ContentReport::Mail(report) => {
            sizing::record_throughput(&store, spec, report.bytes(), clock.elapsed());
            ctx.copies.lock().await.insert(spec.address.clone(), report);
        }
        content::ContentReport::Dav(report) => {
            ctx.dav_copies.lock().await.push(report);
        }
        // Its summary and its failed parts say all there is to say.
        content::ContentReport::Rules(_) => {}
    }
    let held = hold::read_cell(&ctx.hold).filter(|_| stopped && failed.is_none());
    if let Some(h) = held {
        Outcome::Held(format!("{summary}; {}", h.text()))
    } else if let Some(p) = paused.filter(|_| failed.is_none()) {
        Outcome::Paused {
            until: p.until,
            text: format!("{summary}; {}", quota::pause_text(&p)),
        }
    } else if let Some(f) = failed.as_ref().filter(|f| f.kind == ErrorKind::Conflict) {
        // Parts only a person can carry (inbox rules a platform cannot hold): each shown
        // whole, with its reason, since retrying cannot help.
        Outcome::Failed(StepError::new(
            f.kind,
            format!(
                "{summary}; {}; once done, run `mailshift ack PLAN {}`",
                f.detail, change.id
            ),
        ))
    } else if let Some(f) = failed {
        // The reasons are in the state's record and the report (one line per part).
        Outcome::Failed(
            StepError::new(
                f.kind,
                format!(
                    "{summary}; {} failed: {} (run apply again to retry what is missing)",
                    crate::plan::diagnostic::plural(f.names.len(), f.unit),
                    f.names.join(", ")
                ),
            )
            .with_retry_after(f.retry_after),
        )
    } else if stopped {
        Outcome::Skipped(format!(
            "stopped after {summary}; run apply again to continue"
        ))
    } else {
        Outcome::Done(summary)
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_secret_that_cannot_be_read_is_a_config_error_naming_its_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        std::fs::write(
            &path,
            "version: 1\nplatforms:\n  \
             old: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\n  \
             new: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\naccounts:\n  \
             - address: a@example.com\n    from: old\n    to: new\n    \
             source: {password: {file: missing-secret}}\n    \
             destination: {password: {file: missing-secret}}\n",
        )
        .unwrap();
        let loaded = crate::plan::load_file(&path).unwrap();
        let spec = AccountSpec::of(&loaded.plan, &loaded.plan.accounts[0]).unwrap();
        let Err(e) = spec_targets(&loaded, &spec) else {
            panic!("the secret file does not exist");
        };
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.starts_with("source: "), "{e}");
        assert!(e.message.contains("missing-secret"), "{e}");
    }
}
