//! Mail whose source is a `files` platform: one account's tree of `.mbox` / `.eml` files
//! (under `<platform path>/<address>/`) imported into its destination mailbox by the mail
//! engine's file import (`mailshift_imap::files`), its records kept in the state through the
//! same [`StoreJournal`] as an IMAP copy's, its report put in the same words.

use std::path::PathBuf;
use std::sync::Arc;

use super::mail::{refused_of, synced};
use super::{Checked, ContentResult, Prepared, Preview, ReportedQuota, Size, SyncRun, Synced};
use crate::apply::imap_adapter::{self, IntoStepError, target};
use crate::apply::journal::StoreJournal;
use crate::error::StepError;
use crate::model::{AccountSpec, dest_login};
use crate::plan::Loaded;
use crate::plan::diagnostic::plural;
use crate::state::StateReader;
use crate::transfer::imap::copy::{CopyOptions, Progress};
use crate::transfer::imap::files::{FilesJob, Tree, import_account};
use crate::transfer::imap::folders::{FolderRules, map_folders};
use crate::transfer::imap::session::{Imap, Target};
use crate::verify::{Refused, verify_files};

/// The account's directory of mail files, and its destination mailbox.
pub(super) fn prepare(
    account: &AccountSpec,
    loaded: &Loaded,
) -> Result<Box<dyn Prepared>, StepError> {
    let base = &loaded.base_dir;
    let path = account.source.path.as_deref().ok_or_else(|| {
        StepError::config("source: a `files` platform needs a `path` (the plan validator should have refused this)")
    })?;
    let root = base.join(path).join(&account.address);
    let dest = target(
        loaded,
        &account.dest,
        &account.account.destination,
        dest_login(&account.account),
    )
    .map_err(|e| StepError::config(format!("destination: {e}")))?;
    let (rules, options) = imap_adapter::rules_and_options(account);
    Ok(Box::new(MailFiles {
        address: account.address.clone(),
        root,
        dest,
        rules,
        options,
    }))
}

/// One account's files and its destination mailbox.
struct MailFiles {
    address: String,
    root: PathBuf,
    dest: Target,
    rules: FolderRules,
    options: CopyOptions,
}

impl Prepared for MailFiles {
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>> {
        Box::pin(async move {
            let job = Arc::new(FilesJob {
                resource_id: run.id.to_string(),
                account: self.address.clone(),
                root: self.root.clone(),
                dest: self.dest.clone(),
                rules: self.rules.clone(),
                options: self.options.clone(),
                sync_point: run.sync_point,
                login_grace: run.login_grace,
            });
            let progress: Arc<dyn Progress> = run.hooks;
            let journal = Arc::new(StoreJournal::new(run.store.clone(), run.id.to_string()));
            let report = import_account(job, journal, progress, run.stop)
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
            let refused = match state {
                Some(reader) => refused_of(reader, &self.address)?,
                None => Refused::new(),
            };
            Ok(Checked::Mail(
                verify_files(
                    &self.address,
                    &self.root,
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
            // Cheap: the files are listed, not read; the destination is only LISTed.
            let tree = Tree::scan(&self.root).map_err(StepError::config)?;
            let records = state.folders(id).map_err(StepError::from)?;
            let mut dst = Imap::connect(&self.dest)
                .await
                .map_err(|e| e.into_step_error().context("destination"))?;
            let dl = dst
                .list()
                .await
                .map_err(|e| e.into_step_error().context("destination"))?;
            let dest_quota = dst
                .storage_quota("INBOX")
                .await
                .map_err(|e| e.into_step_error().context("destination"))?
                .map(|(used, limit)| ReportedQuota { used, limit });
            dst.logout().await;
            let mapping = map_folders(&tree.remote_folders(), &dl, &self.rules)
                .map_err(|e| StepError::config(e.to_string()))?;
            let mapped: std::collections::HashSet<&str> =
                mapping.copy.iter().map(|f| f.source.as_str()).collect();
            let files: usize = tree
                .remote_folders()
                .iter()
                .zip(&tree.folders)
                .filter(|(raw, _)| mapped.contains(raw.name.as_str()))
                .map(|(_, f)| f.files.len())
                .sum();
            let new = mapping
                .copy
                .iter()
                .filter(|f| !records.contains_key(&f.path))
                .count();
            let mut lines = vec![format!(
                "{} in {} under {} ({} never imported); each run reads them all and sends only \
                 what the destination lacks",
                plural(files, "mail file"),
                plural(mapping.copy.len(), "folder"),
                self.root.display(),
                plural(new, "folder")
            )];
            lines.extend(tree.problems.iter().cloned());
            // Files, not messages: an mbox holds many, and counting them means reading it.
            // A folder never imported moves whole; one imported before is read again but
            // sends only what the destination lacks, so it is not counted as moving.
            let len = |rel: &std::path::Path| {
                std::fs::metadata(self.root.join(rel)).map_or(0, |m| m.len())
            };
            let mut size = Size {
                unit: "mail file",
                method: "file sizes",
                dest_quota,
                ..Size::default()
            };
            let by_source: std::collections::HashMap<&str, &str> = mapping
                .copy
                .iter()
                .map(|f| (f.source.as_str(), f.path.as_str()))
                .collect();
            for (raw, folder) in tree.remote_folders().iter().zip(&tree.folders) {
                let Some(path) = by_source.get(raw.name.as_str()) else {
                    continue;
                };
                let bytes: u64 = folder.files.iter().map(|(_, rel)| len(rel)).sum();
                size.items += folder.files.len() as u64;
                size.bytes += bytes;
                if !records.contains_key(*path) {
                    size.to_move_items += folder.files.len() as u64;
                    size.to_move_bytes += bytes;
                }
            }
            Ok(Preview {
                lines,
                size: Some(size),
            })
        })
    }

    fn size(&self) -> ContentResult<'_, Result<u64, StepError>> {
        Box::pin(async move {
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || Tree::scan(&root).map(|t| t.bytes()))
                .await
                .map_err(|e| StepError::bug(format!("size task failed: {e}")))?
                .map_err(|e| StepError::config(e).context("cannot measure the source files"))
        })
    }
}
