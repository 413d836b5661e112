//! The model as the executor's hooks: each step and copy of the daemon's runs is logged here
//! (the daemon's log lines of a run) and counted for `/metrics`.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Inner, Live, StatusModel};
use crate::apply::{Hooks, Outcome, StepResult};
use crate::diff::{Action, Change};
use crate::render::progress::verb;
use crate::transfer::imap::copy::Progress;

impl Progress for StatusModel {
    fn account_started(&self, account: &str, to_copy: u64) {
        let mut inner = self.lock();
        let info = inner.accounts.entry(account.to_string()).or_default();
        info.copy_started = Some(super::unix_now());
        info.expected = to_copy;
    }

    fn folder_started(&self, account: &str, folder: &str, to_copy: u64) {
        if to_copy > 0 {
            debug!(account, folder, to_copy, "copying folder");
        }
        let mut inner = self.lock();
        inner
            .accounts
            .entry(account.to_string())
            .or_default()
            .to_copy += to_copy;
    }

    fn copied(&self, account: &str, messages: u64, bytes: u64) {
        let mut inner = self.lock();
        let info = inner.accounts.entry(account.to_string()).or_default();
        info.copied += messages;
        info.bytes += bytes;
        inner.counters.copied(account, messages, bytes);
    }

    fn note(&self, account: &str, text: &str) {
        info!(account, "{text}");
    }
}

impl Hooks for StatusModel {
    fn step_started(&self, change: &Change) {
        // A sync's result line says what it copied; its start is news only when debugging.
        let account = change.account.as_deref().unwrap_or("");
        let text = format!("{} {}", verb(change.action), change.id);
        if change.action == Action::Sync {
            debug!(account, step = %change.id, "{text}");
        } else {
            info!(account, step = %change.id, action = change.action.as_str(), "{text}");
        }
        let mut inner = self.lock();
        inner
            .counters
            .step_started(&change.id, change.kind.as_str(), Instant::now());
        if let Some(r) = inner.resources.get_mut(&change.id) {
            r.live = Some(Live::Running);
        }
    }

    fn items_copied(&self, account: &str, kind: &str, items: u64, _bytes: u64) {
        self.lock().counters.items_copied(account, kind, items);
    }

    fn step_finished(&self, result: &StepResult) {
        let account = result.account.as_deref().unwrap_or("");
        let copied_nothing = result.action == Action::Sync
            && self
                .lock()
                .accounts
                .get(account)
                .is_none_or(|a| a.copied == 0);
        let mut error_kind = None;
        let (label, text) = match &result.outcome {
            // Every interval, each account's no-op sync: a line per account would drown the rest.
            Outcome::Done(t) if copied_nothing => {
                debug!(account, step = %result.id, "done: {t}");
                ("done", t)
            }
            Outcome::Done(t) => {
                info!(account, step = %result.id, "done: {t}");
                ("done", t)
            }
            Outcome::Failed(e) => {
                warn!(account, step = %result.id, error_kind = e.kind.as_str(), "failed: {e}");
                error_kind = Some(e.kind);
                ("failed", &e.message)
            }
            Outcome::Skipped(t) if self.lock().stopping => {
                info!(account, step = %result.id, "stopped at a checkpoint: {t}");
                ("blocked", t)
            }
            Outcome::Skipped(t) => {
                info!(account, step = %result.id, "not run: {t}");
                ("blocked", t)
            }
            Outcome::Manual(t) => {
                warn!(account, step = %result.id, "manual step waiting for a person: {t}");
                ("manual", t)
            }
            Outcome::Conflict(t) => {
                warn!(account, step = %result.id, "conflict: {t}");
                ("conflict", t)
            }
            Outcome::Paused { text, .. } => {
                info!(account, step = %result.id, "{text}");
                ("paused", text)
            }
            // A person's pause, not a daily limit's: labelled apart (`/api/status`, metrics).
            Outcome::Held(text) => {
                info!(account, step = %result.id, "{text}");
                ("paused-by-user", text)
            }
            // Another shard's step comes first: shown as waiting, not failed.
            Outcome::Waiting { text, .. } => {
                info!(account, step = %result.id, "{text}");
                ("waiting", text)
            }
        };
        let mut guard = self.lock();
        let inner: &mut Inner = &mut guard;
        inner
            .counters
            .step_finished(&result.id, label, error_kind, || {
                inner
                    .resources
                    .get(&result.id)
                    .map_or_else(|| "unknown".to_string(), |r| r.kind.clone())
            });
        // A stopped step is neither a failure nor news: the state says in-progress.
        let stopped = inner.stopping && matches!(result.outcome, Outcome::Skipped(_));
        if let Some(r) = inner.resources.get_mut(&result.id) {
            r.live = if stopped {
                None
            } else {
                Some(Live::Ended(label, text.clone()))
            };
        }
    }

    fn api_call(&self, api: &str, operation: &str, elapsed: Duration, ok: bool) {
        debug!(
            api,
            operation,
            ms = elapsed.as_millis() as u64,
            ok,
            "API call"
        );
        self.lock().counters.api_call(api, operation, elapsed, ok);
    }
}
