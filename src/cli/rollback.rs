//! `mailshift rollback PLAN --since N`: deletes from the destinations exactly the messages
//! mailshift copied in sync points N and later (content checked, nothing else touched), and the
//! contacts, events and tasks those runs created (ETag checked), after showing them and asking;
//! `--dry-run` only shows, `--yes` does not ask. The logic lives in `crate::rollback` (mail) and
//! `crate::rollback::dav`; this file picks the accounts, prints and asks. `--cutover DOMAIN`
//! undoes a domain's cutover instead (`rollback/cutover.rs`).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};

// `--cutover DOMAIN`: a domain's records put back, in a file of its own.
mod cutover;
use crate::apply::content::dav::Side;
use crate::model::{AccountSpec, ResourceKind, compile};
use crate::plan::diagnostic::plural;
use crate::rollback::dav::{self as davrb, CollectionSurvey, Kept};
use crate::rollback::{FolderSurvey, candidates, execute, no_gmail, no_uidplus, survey};
use crate::transfer::imap::session::Imap;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when everything asked for was deleted (or, with --dry-run, could be); 1 when a \
folder or an account was refused or failed, or the question was answered no.")]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub account: Vec<String>,
    /// The first sync point whose copies are deleted (`status` lists them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), required_unless_present = "cutover")]
    pub since: Option<u64>,
    /// Undo this domain's cutover instead: put back the records its zone held before, wait
    /// until every authoritative server answers them, and resume its accounts' syncs.
    #[arg(long, value_name = "DOMAIN", conflicts_with_all = ["since", "account", "limit"])]
    pub cutover: Option<String>,
    /// Only show what would be deleted.
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Delete without asking (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Messages (or contacts, events, tasks) listed per folder (or collection) and kind (to
    /// delete, left alone); the counts are complete.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

/// One account's survey, with its open destination connection.
struct AccountWork {
    address: String,
    id: String,
    dst: Imap,
    folders: Vec<FolderSurvey>,
}

/// One account's contacts, calendars or tasks survey, with its open destination.
struct DavWork {
    address: String,
    id: String,
    /// `contacts`, `calendars` or `tasks`.
    kind: &'static str,
    /// What one object is called ("contact", "event", "task").
    noun: &'static str,
    dest: Side,
    collections: Vec<CollectionSurvey>,
}

/// Counts per kind of item, in the order they are shown: messages, then contacts, events, tasks.
#[derive(Default)]
struct Counts {
    /// Some account asked for has mail in the plan.
    mail: bool,
    messages: usize,
    dav: Vec<(&'static str, usize)>,
}

impl Counts {
    fn add_dav(&mut self, noun: &'static str, n: usize) {
        match self.dav.iter_mut().find(|(k, _)| *k == noun) {
            Some((_, c)) => *c += n,
            None => {
                self.dav.push((noun, n));
                // Contacts, events, tasks: the plan's order of content kinds.
                let rank = |k: &str| ["contact", "event", "task"].iter().position(|x| *x == k);
                self.dav.sort_by_key(|(k, _)| rank(k));
            }
        }
    }

    fn total(&self) -> usize {
        self.messages + self.dav.iter().map(|(_, n)| n).sum::<usize>()
    }

    /// "3 messages", or "3 messages and 2 contacts, 1 event" when the plan has such content.
    fn text(&self) -> String {
        let mail = plural(self.messages, "message");
        if self.dav.is_empty() {
            return mail;
        }
        let dav = self
            .dav
            .iter()
            .map(|(k, n)| plural(*n, k))
            .collect::<Vec<_>>()
            .join(", ");
        if self.mail || self.messages > 0 {
            format!("{mail} and {dav}")
        } else {
            dav
        }
    }
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(domain) = &args.cutover {
        return cutover::exec(
            loaded,
            domain,
            args.dry_run,
            args.yes,
            args.shard.resolve()?,
        );
    }
    let Some(since) = args.since else {
        return Err(CliError("give `--since N` or `--cutover DOMAIN`".into()));
    };
    let targets: Vec<String> = args
        .account
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    // A typo must not silently select nothing.
    if let Some(t) = targets.iter().find(|t| {
        !loaded
            .plan
            .accounts
            .iter()
            .any(|a| a.address.eq_ignore_ascii_case(t))
    }) {
        return Err(CliError(format!(
            "--account {t}: no such account in {}",
            loaded.file_name()
        )));
    }
    let store = crate::state::shards::open_store(&loaded, args.shard.resolve()?)?;
    let runtime = super::runtime()?;
    let loaded = runtime.block_on(super::detect_servers(loaded));
    let resources = compile(&loaded.plan);
    let mut failed = false;
    let mut work: Vec<AccountWork> = Vec::new();
    for a in &loaded.plan.accounts {
        let address = a.address.to_ascii_lowercase();
        if !targets.is_empty() && !targets.contains(&address) {
            continue;
        }
        let Some(r) = resources.iter().find(|r| {
            r.kind == ResourceKind::Mail && r.account.as_deref() == Some(address.as_str())
        }) else {
            continue;
        };
        let todo = candidates(&store, r.id(), since)?;
        if todo.is_empty() {
            println!("{address}: nothing copied in sync point {} or later", since);
            continue;
        }
        let result = runtime.block_on(async {
            let spec = AccountSpec::of(&loaded.plan, a)
                .ok_or("unknown platform (the plan validator should have refused this)")?;
            if spec.dest.kind == crate::plan::model::PlatformKind::Gmail {
                return Err(no_gmail());
            }
            // Only the destination: a source that is down, or mail files, does not matter here.
            let dest = crate::apply::imap_adapter::target(
                &loaded,
                &spec.dest,
                &spec.account.destination,
                crate::model::dest_login(&spec.account),
            )
            .map_err(|e| format!("destination: {e}"))?;
            let mut dst = Imap::connect(&dest).await.map_err(|e| e.to_string())?;
            if !dst.caps.uidplus {
                return Err(no_uidplus());
            }
            // A plan that calls it plain IMAP: the server says what it is.
            if dst.caps.gmail {
                return Err(no_gmail());
            }
            let mut folders = Vec::new();
            for (folder, record, mine, pending) in &todo {
                let s = survey(&mut dst, folder, record, mine, pending.as_ref())
                    .await
                    .map_err(|e| format!("destination folder {:?}: {e}", record.dest_folder))?;
                folders.push(s);
            }
            Ok::<_, String>((dst, folders))
        });
        match result {
            Ok((dst, folders)) => work.push(AccountWork {
                address,
                id: r.id().to_string(),
                dst,
                folders,
            }),
            Err(e) => {
                failed = true;
                println!("{address}: refused: {e}");
            }
        }
    }
    let mut totals = Counts {
        mail: loaded.plan.accounts.iter().any(|a| {
            let address = a.address.to_ascii_lowercase();
            (targets.is_empty() || targets.contains(&address))
                && resources.iter().any(|r| {
                    r.kind == ResourceKind::Mail && r.account.as_deref() == Some(address.as_str())
                })
        }),
        ..Counts::default()
    };
    let dav = survey_dav(&loaded, &store, &runtime, &resources, &targets, since)?;
    failed |= dav.failed;
    for noun in dav.nouns {
        totals.add_dav(noun, 0);
    }
    let dav_work = dav.work;
    for w in &work {
        for s in &w.folders {
            failed |= show(&w.address, s, args.limit);
            if s.refused.is_none() {
                totals.messages += s.delete.len();
            }
        }
    }
    for w in &dav_work {
        for s in &w.collections {
            failed |= show_dav(w, s, args.limit);
            if s.refused.is_none() {
                totals.add_dav(w.noun, s.delete.len());
            }
        }
    }
    if args.dry_run {
        println!(
            "Dry run: {} would be deleted (sync point {} and later); nothing was changed.",
            totals.text(),
            since
        );
        return Ok(exit(failed));
    }
    let pending_only = work
        .iter()
        .any(|w| w.folders.iter().any(|s| !s.gone.is_empty()))
        || dav_work
            .iter()
            .any(|w| w.collections.iter().any(|s| s.has_work()));
    let total = totals.total();
    if total == 0 && !pending_only {
        println!("Nothing to delete.");
        return Ok(exit(failed));
    }
    if !args.yes && total > 0 && !confirm(&totals)? {
        println!("Nothing was deleted.");
        return Ok(ExitCode::from(1));
    }
    let mut deleted = Counts {
        mail: totals.mail,
        messages: 0,
        dav: totals.dav.iter().map(|(k, _)| (*k, 0)).collect(),
    };
    for w in &mut work {
        for s in &w.folders {
            match runtime.block_on(execute(&mut w.dst, &store, &w.id, since, s)) {
                Ok(()) => deleted.messages += s.delete.len(),
                Err(e) => {
                    failed = true;
                    println!("{}: {:?}: {e}", w.address, s.dest);
                }
            }
        }
    }
    for w in &dav_work {
        for s in &w.collections {
            match runtime.block_on(davrb::execute(&w.dest, &store, &w.id, since, s)) {
                Ok(done) => {
                    deleted.add_dav(w.noun, done.deleted);
                    for k in &done.changed {
                        println!("{}  {} {:?}: {}", w.address, w.kind, s.name, kept_line(k));
                    }
                    if done.now_empty {
                        println!(
                            "{}  {} {:?} ({}) is now empty: left in place (a rollback deletes objects, never collections)",
                            w.address, w.kind, s.name, s.dest_href
                        );
                    }
                }
                Err(e) => {
                    failed = true;
                    println!("{}  {} {:?}: {e}", w.address, w.kind, s.name);
                }
            }
        }
    }
    println!(
        "Rolled back: {} deleted; the next apply copies them again if the plan still wants them.",
        deleted.text()
    );
    Ok(exit(failed))
}

/// What [`survey_dav`] found.
#[derive(Default)]
struct DavSurveys {
    work: Vec<DavWork>,
    /// What one object of each kind the plan has for these accounts is called: the report
    /// counts every one, with 0 when there is nothing.
    nouns: Vec<&'static str>,
    /// A destination was refused.
    failed: bool,
}

/// Surveys the contacts, calendars and tasks of the accounts asked for.
fn survey_dav(
    loaded: &crate::plan::Loaded,
    store: &crate::state::StateStore,
    runtime: &tokio::runtime::Runtime,
    resources: &[crate::model::Resource],
    targets: &[String],
    since: u64,
) -> Result<DavSurveys, CliError> {
    let mut out = DavSurveys::default();
    for a in &loaded.plan.accounts {
        let address = a.address.to_ascii_lowercase();
        if !targets.is_empty() && !targets.contains(&address) {
            continue;
        }
        for r in resources.iter().filter(|r| {
            matches!(
                r.kind,
                ResourceKind::Contacts | ResourceKind::Calendars | ResourceKind::Tasks
            ) && r.account.as_deref() == Some(address.as_str())
        }) {
            let (kind, noun) = (r.kind.as_str(), davrb::noun(r.kind));
            out.nouns.push(noun);
            let todo = davrb::candidates(store, r.id(), since)?;
            if todo.is_empty() {
                println!(
                    "{address}  {kind}: nothing created in sync point {} or later",
                    since
                );
                continue;
            }
            let result = runtime.block_on(async {
                let spec = AccountSpec::of(&loaded.plan, a)
                    .ok_or("unknown platform (the plan validator should have refused this)")?;
                let dest = crate::apply::content::dav::open_destination(loaded, &spec)
                    .await
                    .map_err(|e| format!("destination: {e}"))?;
                let listed =
                    davrb::dest_collections(&dest, &crate::apply::content::dav::components(r.kind))
                        .await
                        .map_err(|e| format!("destination: {e}"))?;
                let mut collections = Vec::new();
                for c in &todo {
                    collections.push(davrb::survey(&dest, &listed, c).await?);
                }
                Ok::<_, String>((dest, collections))
            });
            match result {
                Ok((dest, collections)) => out.work.push(DavWork {
                    address: address.clone(),
                    id: r.id().to_string(),
                    kind,
                    noun,
                    dest,
                    collections,
                }),
                Err(e) => {
                    out.failed = true;
                    println!("{address}  {kind}: refused: {e}");
                }
            }
        }
    }
    Ok(out)
}

/// A line naming an object left alone.
fn kept_line(k: &Kept) -> String {
    format!(
        "{}{} left alone: {}",
        k.key,
        k.summary
            .as_deref()
            .map(|s| format!("  {s:?}"))
            .unwrap_or_default(),
        k.why
    )
}

/// Prints one DAV collection's survey; true when the collection was refused.
fn show_dav(w: &DavWork, s: &CollectionSurvey, limit: usize) -> bool {
    let head = format!("{}  {} {:?} ({})", w.address, w.kind, s.name, s.dest_href);
    if let Some(why) = &s.refused {
        println!("{head}: refused: {why}");
        return true;
    }
    let mut parts = vec![format!("{} to delete", plural(s.delete.len(), w.noun))];
    if !s.gone.is_empty() {
        parts.push(format!(
            "{} no longer there (records dropped)",
            plural(s.gone.len(), w.noun)
        ));
    }
    if !s.kept.is_empty() {
        parts.push(format!("{} left alone", s.kept.len()));
    }
    println!("{head}: {}", parts.join(", "));
    for o in s.delete.iter().take(limit) {
        println!(
            "    - UID {} ({})  {:?}",
            o.uid.as_deref().unwrap_or(o.key.as_str()),
            crate::apply::human_bytes(o.size),
            o.summary.as_deref().unwrap_or_default()
        );
    }
    if s.delete.len() > limit {
        println!("    - and {} more", s.delete.len() - limit);
    }
    for k in s.kept.iter().take(limit) {
        println!("    = {}", kept_line(k));
    }
    if s.kept.len() > limit {
        println!("    = and {} more left alone", s.kept.len() - limit);
    }
    false
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints one folder's survey; true when the folder was refused.
fn show(address: &str, s: &FolderSurvey, limit: usize) -> bool {
    if let Some(why) = &s.refused {
        println!("{address}  {:?}: refused: {why}", s.dest);
        return true;
    }
    println!(
        "{address}  {:?}: {} to delete{}{}",
        s.dest,
        plural(s.delete.len(), "message"),
        if s.gone.is_empty() {
            String::new()
        } else {
            format!(
                ", {} already deleted by an interrupted rollback",
                plural(s.gone.len(), "record")
            )
        },
        if s.kept.is_empty() {
            String::new()
        } else {
            format!(", {} left alone", s.kept.len())
        }
    );
    for (_, uid, size) in s.delete.iter().take(limit) {
        let named = s.named.get(uid).cloned().unwrap_or_default();
        let field = |f: Option<String>| f.unwrap_or_else(|| "-".into());
        println!(
            "    - UID {uid} ({})  {}  {}  {:?}",
            crate::apply::human_bytes(*size),
            field(named.message_id),
            field(named.date),
            named.subject.unwrap_or_default()
        );
    }
    if s.delete.len() > limit {
        println!("    - and {} more", s.delete.len() - limit);
    }
    for (uid, why) in s.kept.iter().take(limit) {
        println!("    = UID {uid} left alone: {why}");
    }
    if s.kept.len() > limit {
        println!("    = and {} more left alone", s.kept.len() - limit);
    }
    false
}

/// Asks on the terminal; anything but yes is no.
fn confirm(totals: &Counts) -> Result<bool, CliError> {
    print!(
        "Delete {} from the destination? Type `yes` to confirm: ",
        totals.text()
    );
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_mail_and_each_kind_of_object_apart() {
        let mut c = Counts {
            mail: true,
            messages: 3,
            ..Counts::default()
        };
        assert_eq!(c.text(), "3 messages", "mail only: as before");
        c.add_dav("event", 0);
        c.add_dav("contact", 2);
        c.add_dav("event", 1);
        assert_eq!(c.text(), "3 messages and 2 contacts, 1 event");
        assert_eq!(c.total(), 6);
        // No mail in the plan for these accounts: no "0 messages".
        let mut d = Counts::default();
        d.add_dav("task", 1);
        d.add_dav("contact", 0);
        assert_eq!(d.text(), "0 contacts, 1 task");
    }
}
