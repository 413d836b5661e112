//! Mail as a content kind: the IMAP engine (`mailshift-imap`) behind [`ContentSync`], its
//! records kept in the state through [`StoreJournal`], its report put in words. A source of
//! mail files (`type: files`) is handed to `mail_files`.

use std::sync::Arc;

use super::{
    Checked, ContentReport, ContentResult, ContentSync, FailedParts, Prepared, Preview,
    ReportedQuota, Size, SyncRun, Synced,
};
use crate::apply::imap_adapter::{self, IntoStepError};
use crate::apply::journal::{StoreJournal, folder_records};
use crate::apply::quota;
use crate::apply::{human_bytes, spec_targets};
use crate::error::{ErrorKind, StepError};
use crate::model::{AccountSpec, ResourceAddr};
use crate::plan::Loaded;
use crate::plan::diagnostic::plural;
use crate::plan::model::PlatformKind;
use crate::state::StateReader;
use crate::transfer::imap::broker;
use crate::transfer::imap::copy::{self, CopyOptions, CopyReport, Job, Progress};
use crate::transfer::imap::error::suggested_backoff;
use crate::transfer::imap::folders::FolderRules;
use crate::transfer::imap::preview;
use crate::transfer::imap::session::Target;
use crate::transfer::imap::sizing;
use crate::verify::{Refused, verify_account};

pub(super) struct MailSync;

impl ContentSync for MailSync {
    fn prepare(
        &self,
        account: &AccountSpec,
        loaded: &Loaded,
    ) -> Result<Box<dyn Prepared>, StepError> {
        if account.source.kind == PlatformKind::Files {
            return super::mail_files::prepare(account, loaded);
        }
        if account.source.pop3.is_some() {
            return super::mail_pop3::prepare(account, loaded);
        }
        let (source, dest) = spec_targets(loaded, account)?;
        let (rules, options) = imap_adapter::rules_and_options(account);
        Ok(Box::new(Mailboxes {
            budgets: (
                account.source.server_connections() as usize,
                account.dest.server_connections() as usize,
            ),
            limits: quota::Limits::of(account),
            address: account.address.clone(),
            source,
            dest,
            rules,
            options,
        }))
    }
}

/// Both mailboxes of an account.
struct Mailboxes {
    /// The connection budgets of the source's and the destination's servers.
    budgets: (usize, usize),
    /// The platforms' daily limits.
    limits: quota::Limits,
    address: String,
    source: Target,
    dest: Target,
    rules: FolderRules,
    options: CopyOptions,
}

impl Prepared for Mailboxes {
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>> {
        Box::pin(async move {
            let mut options = self.options.clone();
            options.budget = self.limits.budget(run.store, quota::now())?;
            let mut journal = StoreJournal::new(run.store.clone(), run.id.to_string());
            if options.budget.is_limited() {
                journal = journal.counting_for(&self.address);
            }
            let job = Arc::new(Job {
                resource_id: run.id.to_string(),
                account: self.address.clone(),
                source: self.source.clone(),
                dest: self.dest.clone(),
                rules: self.rules.clone(),
                options,
                sync_point: run.sync_point,
                spool_dir: run.spool_dir,
                full_scan: run.full_scan,
                login_grace: run.login_grace,
                adopt_locks: Default::default(),
                share: Some(run.connections.account(
                    [
                        (&broker::server_key(&self.source), self.budgets.0),
                        (&broker::server_key(&self.dest), self.budgets.1),
                    ],
                    self.options.connections,
                )),
            });
            let progress: Arc<dyn Progress> = Arc::new(crate::apply::sizing::RecordRun {
                inner: run.hooks,
                store: run.store.clone(),
                id: run.id.to_string(),
                sync_point: run.sync_point,
            });
            let report = copy::sync_account(job, Arc::new(journal), progress, run.stop)
                .await
                .map_err(IntoStepError::into_step_error)?;
            // A daily limit reached: the account waits until the window has room again.
            let paused = match &report.paused {
                Some(why) => {
                    let pause = self.limits.pause_for(run.store, why, quota::now())?;
                    run.store.put_pause(run.id, &pause)?;
                    Some(pause)
                }
                None => None,
            };
            Ok(Synced {
                paused,
                ..synced(report)
            })
        })
    }

    fn verify<'a>(
        &'a self,
        state: Option<&'a StateReader>,
        list_limit: usize,
    ) -> ContentResult<'a, Result<Checked, StepError>> {
        Box::pin(async move {
            let refused = match state {
                Some(reader) => refused_of(reader, &self.address)?,
                None => Refused::new(),
            };
            Ok(Checked::Mail(
                verify_account(
                    &self.address,
                    &self.source,
                    &self.dest,
                    &self.rules,
                    &self.options,
                    list_limit,
                    &refused,
                )
                .await,
            ))
        })
    }

    fn preview<'a>(
        &'a self,
        state: &'a StateReader,
        id: &'a str,
    ) -> ContentResult<'a, Result<Preview, StepError>> {
        Box::pin(async move {
            let records = folder_records(state.folders(id).map_err(StepError::from)?);
            let mut lines = preview::preview(&self.source, &self.dest, &self.rules, &records)
                .await
                .map_err(StepError::config)?;
            let size = self.measure(&records, true).await?;
            // Under a daily limit, what is left to move says how many days the copy takes.
            lines.extend(self.limits.estimate(size.to_move_bytes));
            Ok(Preview {
                lines,
                size: Some(size),
            })
        })
    }

    fn size_source<'a>(
        &'a self,
        state: &'a StateReader,
        id: &'a str,
    ) -> ContentResult<'a, Result<Option<Size>, StepError>> {
        Box::pin(async move {
            let records = folder_records(state.folders(id).map_err(StepError::from)?);
            Ok(Some(self.measure(&records, false).await?))
        })
    }

    fn size(&self) -> ContentResult<'_, Result<u64, StepError>> {
        Box::pin(async move {
            crate::transfer::imap::mailbox_bytes(&self.source)
                .await
                .map_err(|e| {
                    e.into_step_error()
                        .context("cannot measure the source mailbox")
                })
        })
    }
}

impl Mailboxes {
    /// The copy's size (`apply::sizing`); the destination is read only `with_dest`.
    async fn measure(
        &self,
        records: &std::collections::BTreeMap<String, crate::transfer::imap::journal::FolderRecord>,
        with_dest: bool,
    ) -> Result<Size, StepError> {
        let dest = with_dest.then_some(&self.dest);
        let m = sizing::measure(&self.source, dest, &self.rules, &self.options, records)
            .await
            .map_err(|e| StepError::config(format!("cannot measure the copy: {e}")))?;
        Ok(Size {
            unit: "message",
            items: m.messages,
            bytes: m.bytes,
            to_move_items: m.to_move_messages,
            to_move_bytes: m.to_move_bytes,
            method: "UID FETCH RFC822.SIZE",
            dest_quota: m
                .dest_quota
                .map(|(used, limit)| ReportedQuota { used, limit }),
        })
    }
}

/// A copy's report in the executor's terms.
pub(super) fn synced(report: CopyReport) -> Synced {
    let mut extra = String::new();
    if report.adopted() > 0 {
        extra.push_str(&format!(", {} adopted", report.adopted()));
    }
    if report.moved() > 0 {
        extra.push_str(&format!(", {} moved", report.moved()));
    }
    let summary = format!(
        "{} ({}) copied{extra}",
        plural(report.copied() as usize, "message"),
        human_bytes(report.bytes()),
    );
    let failed = (!report.failed.is_empty()).then(|| {
        let list: Vec<String> = report
            .failed
            .iter()
            .map(|f| format!("{:?}: {}", f.path, f.reason))
            .collect();
        FailedParts {
            detail: format!(
                "{} failed: {}",
                plural(list.len(), "folder"),
                list.join("; ")
            ),
            names: report
                .failed
                .iter()
                .map(|f| format!("{:?}", f.path))
                .collect(),
            unit: "folder",
            // A dropped link is not held back by a folder that waits for a person.
            kind: report
                .failed
                .iter()
                .map(|f| imap_adapter::error_kind(f.kind))
                .min_by_key(|k| k.retry())
                .unwrap_or(ErrorKind::Refused),
            retry_after: report
                .failed
                .iter()
                .filter_map(|f| suggested_backoff(&f.reason))
                .max(),
        }
    });
    Synced {
        summary,
        copied: report.copied(),
        failed,
        paused: None,
        outputs: Default::default(),
        report: ContentReport::Mail(report),
    }
}

/// The messages the copy of an account recorded as refused by the destination: verify lists
/// them as skipped, with the destination's words, rather than as missing.
pub(super) fn refused_of(reader: &StateReader, address: &str) -> Result<Refused, StepError> {
    let id = ResourceAddr::Content {
        account: address.to_string(),
        content: crate::plan::model::Content::Mail,
    }
    .to_string();
    Ok(reader
        .refused(&id)
        .map_err(StepError::from)?
        .into_iter()
        .map(|(folder, uid, r)| ((folder, uid), r.reason))
        .collect())
}

/// What `plan` says of the IMAP servers' connection budgets: one line per server that mail
/// copies of the plan use, with its budget and how many accounts share it. The copy's own
/// keys (`host:port`, `broker::server_key`), so the line names what the run limits.
pub fn budget_lines(resources: &[crate::model::Resource]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut servers: BTreeMap<String, (u32, BTreeSet<&str>)> = BTreeMap::new();
    for r in resources {
        let crate::model::Spec::Content {
            account,
            content: crate::plan::model::Content::Mail,
        } = &r.spec
        else {
            continue;
        };
        // Files and POP3 sources hold no IMAP connection on the source side.
        let sides = [
            (account.source.kind != PlatformKind::Files && account.source.pop3.is_none())
                .then_some(&account.source),
            Some(&account.dest),
        ];
        for platform in sides.into_iter().flatten() {
            let Some(ep) = platform.imap_endpoint() else {
                continue;
            };
            let key = format!("{}:{}", ep.host.to_ascii_lowercase(), ep.effective_port());
            let entry = servers
                .entry(key)
                .or_insert_with(|| (platform.server_connections(), BTreeSet::new()));
            entry.1.insert(account.address.as_str());
        }
    }
    servers
        .into_iter()
        .map(|(server, (budget, accounts))| {
            format!(
                "Connections: {server}: {budget} connections shared by {}",
                plural(accounts.len(), "account")
            )
        })
        .collect()
}
