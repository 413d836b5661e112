//! Mail whose source is a POP3 server (a platform with a `pop3:` endpoint): its one mailbox
//! copied into the destination's `INBOX` (or where the account's `folders` rules map `INBOX`)
//! by the mail engine's POP3 copy (`mailshift_imap::pop3::copy`), its records kept in the state
//! through the same [`StoreJournal`] as an IMAP copy's, its report put in the same words.

use std::collections::HashMap;
use std::sync::Arc;

use super::mail::{refused_of, synced};
use super::{Checked, ContentResult, Prepared, Preview, Size, SyncRun, Synced, dest_quota};
use crate::apply::imap_adapter::{self, IntoStepError, pop3_target, target};
use crate::apply::journal::StoreJournal;
use crate::error::StepError;
use crate::model::{AccountSpec, dest_login, source_login};
use crate::plan::Loaded;
use crate::plan::diagnostic::plural;
use crate::state::StateReader;
use crate::transfer::imap::copy::{CopyOptions, Progress};
use crate::transfer::imap::folders::FolderRules;
use crate::transfer::imap::pop3::Pop3;
use crate::transfer::imap::pop3::copy::{Pop3Job, copy_maildrop};
use crate::transfer::imap::session::Target;
use crate::verify::verify_pop3;

/// The account's POP3 maildrop and its destination mailbox.
pub(super) fn prepare(
    account: &AccountSpec,
    loaded: &Loaded,
) -> Result<Box<dyn Prepared>, StepError> {
    let a = &account.account;
    let source = pop3_target(loaded, &account.source, &a.source, source_login(a))
        .map_err(|e| StepError::config(format!("source: {e}")))?;
    let dest = target(loaded, &account.dest, &a.destination, dest_login(a))
        .map_err(|e| StepError::config(format!("destination: {e}")))?;
    let (mut rules, options) = imap_adapter::rules_and_options(account);
    // A POP3 source is never Gmail's IMAP (no labels, no All Mail), whatever its platform's
    // type: its one folder is INBOX.
    rules.gmail.source = false;
    Ok(Box::new(Maildrop {
        address: account.address.clone(),
        source,
        dest,
        rules,
        options,
    }))
}

struct Maildrop {
    address: String,
    source: Target,
    dest: Target,
    rules: FolderRules,
    options: CopyOptions,
}

impl Prepared for Maildrop {
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>> {
        Box::pin(async move {
            let job = Arc::new(Pop3Job {
                resource_id: run.id.to_string(),
                account: self.address.clone(),
                source: self.source.clone(),
                dest: self.dest.clone(),
                rules: self.rules.clone(),
                options: self.options.clone(),
                sync_point: run.sync_point,
                login_grace: run.login_grace,
            });
            let progress: Arc<dyn Progress> = Arc::new(crate::apply::sizing::RecordRun {
                inner: run.hooks,
                store: run.store.clone(),
                id: run.id.to_string(),
                sync_point: run.sync_point,
            });
            let journal = Arc::new(StoreJournal::new(run.store.clone(), run.id.to_string()));
            let report = copy_maildrop(job, journal, progress, run.stop)
                .await
                .map_err(IntoStepError::into_step_error)?;
            Ok(synced(report))
        })
    }

    fn verify<'a>(
        &'a self,
        state: Option<&'a StateReader>,
        list_limit: usize,
    ) -> ContentResult<'a, Result<Checked, StepError>> {
        Box::pin(async move {
            // The copy's refusals of the maildrop (one folder), by their UIDL's refusal key.
            let refusals: HashMap<u32, String> = match state {
                Some(reader) => refused_of(reader, &self.address)?
                    .into_iter()
                    .map(|((_, key), reason)| (key, reason))
                    .collect(),
                None => HashMap::new(),
            };
            Ok(Checked::Mail(
                verify_pop3(
                    &self.address,
                    &self.source,
                    &self.dest,
                    &self.rules,
                    &self.options,
                    list_limit,
                    &refusals,
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
            let mut pop = Pop3::connect(&self.source)
                .await
                .map_err(|e| e.into_step_error().context("source"))?;
            let listing = pop
                .listing()
                .await
                .map_err(|e| e.into_step_error().context("source"))?;
            pop.quit().await;
            let (recorded, recorded_bytes) = state
                .folders(id)
                .map_err(StepError::from)?
                .values()
                .fold((0, 0), |(m, b), f| (m + f.messages, b + f.bytes));
            let sizes: Vec<u64> = listing
                .iter()
                .map(|l| l.size)
                .filter(|s| self.options.max_message_size.is_none_or(|max| *s <= max))
                .collect();
            let (items, bytes) = (sizes.len() as u64, sizes.iter().sum::<u64>());
            let dest_quota = dest_quota(&self.dest).await?;
            Ok(Preview {
                lines: vec![format!(
                    "{} on the POP3 server, {} recorded as copied; each run fetches only messages whose UIDL it has not recorded",
                    plural(listing.len(), "message"),
                    plural(recorded as usize, "message"),
                )],
                // What was recorded is taken off the total: exact while nothing recorded was
                // deleted from the maildrop since (POP3 has no cheaper way to tell).
                size: Some(Size {
                    unit: "message",
                    items,
                    bytes,
                    to_move_items: items.saturating_sub(recorded),
                    to_move_bytes: bytes.saturating_sub(recorded_bytes),
                    method: "POP3 UIDL and LIST",
                    dest_quota,
                }),
            })
        })
    }

    fn size(&self) -> ContentResult<'_, Result<u64, StepError>> {
        Box::pin(async move {
            let mut pop = Pop3::connect(&self.source).await.map_err(|e| {
                e.into_step_error()
                    .context("cannot measure the POP3 source")
            })?;
            let (_, octets) = pop.stat().await.map_err(|e| {
                e.into_step_error()
                    .context("cannot measure the POP3 source")
            })?;
            pop.quit().await;
            Ok(octets)
        })
    }
}
