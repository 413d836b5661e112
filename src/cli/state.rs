//! `mailshift state list|show|forget|reshard`: inspect, repair and re-split the state store.
//!
//! `forget` is the way out of a conflict or an orphan: it drops what mailshift remembers of a
//! resource (and its folder and message records), never touching the platforms themselves.
//! `reshard` moves the records of a split into N shards into the files of a split into M
//! (`mailshift_core::state::store::reshard` does the moving; here the old and new files are
//! found from the plan's `state:` path and the old files' stamps).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use mailshift_core::shard::Shard;

use super::{CliError, load_plan};
use crate::render::time::human as human_time;
use crate::state::record::ResourceRecord;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// List every recorded resource with its status.
    List(Location),
    /// Show everything recorded about one resource.
    Show {
        /// Resource id, as `plan` and `list` print it.
        id: String,
        #[command(flatten)]
        location: Location,
    },
    /// Drop a resource (and its folder and message records) from the state. Platforms are not touched.
    Forget {
        /// Resource id, as `plan` and `list` print it.
        id: String,
        #[command(flatten)]
        location: Location,
    },
    /// Split the state into another number of shards: each account's records move to the
    /// state file of the shard that owns it under the new number, platform-level records to
    /// shard 0.
    #[command(after_help = "\
Offline: stop every shard first (each old and new file's lock is taken). The old split is read \
from shard 0's file, at the plan's `state:` path with {shard} as 0; every old shard's file must \
be there (gather them from the machines or volumes that ran them). A run killed at any moment \
is finished, or started over, by running the same command again.")]
    Reshard(ReshardArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReshardArgs {
    /// The plan file (`.yaml`, `.yml` or `.toml`); its `state:` path must hold `{shard}` to
    /// split into more than one shard.
    pub plan: PathBuf,
    /// The number of shards to split into (1: one file for the whole plan again).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub to: u32,
    /// An old shard whose file is not here has no records (it never ran). Without it a missing
    /// file is refused, so records left on another machine are never silently left behind.
    #[arg(long)]
    pub allow_missing: bool,
}

/// Which state file: the plan's (the shard's, with `--shard`), or one named directly.
#[derive(Debug, clap::Args)]
pub struct Location {
    /// The plan whose state to use.
    #[arg(long, short, value_name = "PLAN", required_unless_present = "state")]
    pub plan: Option<PathBuf>,
    /// The state file itself (when the plan is not at hand), whichever shard wrote it.
    #[arg(long, value_name = "FILE", conflicts_with = "plan")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

/// A state file found through [`Location`], with the shard it is opened as.
struct Found {
    path: PathBuf,
    /// The plan and the shard, when found through the plan; `None` for `--state FILE`.
    plan: Option<(crate::plan::Loaded, Shard)>,
}

impl Location {
    fn find(&self) -> Result<Found, CliError> {
        if let Some(s) = &self.state {
            return Ok(Found {
                path: s.clone(),
                plan: None,
            });
        }
        let plan = self.plan.as_ref().expect("clap requires --plan or --state");
        let shard = self.shard.resolve()?;
        match load_plan(plan) {
            Some(l) => Ok(Found {
                path: l.state_path_for(shard),
                plan: Some((l, shard)),
            }),
            None => Err(CliError(format!(
                "cannot find the state of an invalid plan: fix {} or name the file with --state",
                plan.display()
            ))),
        }
    }
}

impl Found {
    fn resources(&self) -> Result<BTreeMap<String, ResourceRecord>, CliError> {
        Ok(match &self.plan {
            Some((loaded, shard)) => crate::state::shards::read_resources(loaded, *shard)?,
            None => crate::state::read_resources(&self.path)?,
        })
    }

    fn open(&self) -> Result<crate::state::StateStore, CliError> {
        Ok(match &self.plan {
            Some((loaded, shard)) => crate::state::shards::open_store(loaded, *shard)?,
            // A file named directly is opened as whichever shard wrote it.
            None => {
                let shard = crate::state::StateReader::open(&self.path)?
                    .shard()?
                    .unwrap_or(Shard::WHOLE);
                crate::state::StateStore::open_as(&self.path, shard)?
            }
        })
    }
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
        StateCommand::Reshard(args) => reshard(args),
        StateCommand::List(loc) => {
            let found = loc.find()?;
            let path = &found.path;
            let records = found.resources()?;
            if records.is_empty() {
                println!("{}: no resources recorded", path.display());
                return Ok(ExitCode::SUCCESS);
            }
            let width = records.keys().map(|k| k.chars().count()).max().unwrap_or(0);
            for (id, r) in &records {
                let err = r
                    .last_error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default();
                println!(
                    "{id:width$}  {:<12} {}{err}",
                    r.status.as_str(),
                    human_time(r.updated_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Show { id, location } => {
            let found = location.find()?;
            let path = &found.path;
            let records = found.resources()?;
            match records.get(&id) {
                Some(r) => {
                    print!("{}", show(&id, r));
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(not_found(&id, path, records.keys())),
            }
        }
        StateCommand::Forget { id, location } => {
            let found = location.find()?;
            let store = found.open()?;
            let records = store.resources()?;
            if !store.forget(&id)? {
                return Err(not_found(&id, &found.path, records.keys()));
            }
            println!(
                "Forgot {id}. Nothing was changed on any platform; the next `plan` treats it as never applied."
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn reshard(args: ReshardArgs) -> Result<ExitCode, CliError> {
    use crate::state::shards::shard_paths;
    use crate::state::store::reshard::{marker_path, reshard, stamp_of};
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let per_shard = loaded.state_path_is_per_shard();
    let first = loaded.state_path_for(Shard::WHOLE);
    if args.to > 1 && !per_shard {
        return Err(CliError(format!(
            "{} keeps its state at one path ({}), and {} shards need a file each: put `{{shard}}` \
             in the plan's `state:` path (`state: state-{{shard}}.redb`), rename the state file to \
             that path with 0 for {{shard}}, and run this again",
            args.plan.display(),
            first.display(),
            args.to
        )));
    }
    let new = shard_paths(&loaded, args.to);
    if marker_path(&first).exists() {
        // An interrupted reshard: finished first, whatever it was going to.
        let done = reshard(&[], &new)?;
        println!(
            "Finished an interrupted reshard into {} shards ({}).",
            done.to,
            first.display()
        );
        if done.to != args.to {
            println!("Run this again to split into {} shards.", args.to);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(from) = stamp_of(&first)? else {
        return Err(CliError(format!(
            "no state file at {} (shard 0's): there is nothing to reshard, or the file is on \
             the machine or volume that ran shard 0: copy it here",
            first.display()
        )));
    };
    if from.count > 1 && !per_shard {
        return Err(CliError(format!(
            "{} is shard {from}'s file and the plan's `state:` path has no `{{shard}}`, so the \
             other shards' files are elsewhere: put `{{shard}}` in the path, copy each shard's \
             file here under its name, and run this again",
            first.display()
        )));
    }
    if from.count == args.to {
        println!(
            "The state is already split into {} shard{}: nothing to do.",
            args.to,
            if args.to == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut old = Vec::new();
    for (index, path) in shard_paths(&loaded, from.count).into_iter().enumerate() {
        let want = Shard {
            index: index as u32,
            count: from.count,
        };
        match stamp_of(&path)? {
            Some(found) if found == want => old.push(path),
            Some(found) => {
                return Err(crate::state::StateError::WrongShard {
                    path,
                    found,
                    wanted: want,
                }
                .into());
            }
            None if args.allow_missing => {
                println!(
                    "Shard {want} has no file at {}: no records.",
                    path.display()
                );
            }
            None => {
                return Err(CliError(format!(
                    "shard {want}'s state file {} is missing: copy it here from the machine or \
                     volume that ran it; if that shard never ran, pass --allow-missing",
                    path.display()
                )));
            }
        }
    }
    let done = reshard(&old, &new)?;
    println!(
        "Resharded the state from {} to {} shard{}:",
        from.count,
        args.to,
        if args.to == 1 { "" } else { "s" }
    );
    for (index, (path, records)) in new.iter().zip(&done.records).enumerate() {
        println!(
            "  shard {index}/{}: {records} record{} in {}",
            args.to,
            if *records == 1 { "" } else { "s" },
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found<'a>(
    id: &str,
    path: &std::path::Path,
    known: impl Iterator<Item = &'a String>,
) -> CliError {
    let known: Vec<&String> = known.collect();
    let hint = crate::plan::diagnostic::did_you_mean(id, known.iter().map(|s| s.as_str()))
        .map(|s| format!(": did you mean `{s}`?"))
        .unwrap_or_else(|| ": `mailshift state list` shows the recorded ids".to_string());
    CliError(format!(
        "no resource `{id}` in state {}{hint}",
        path.display()
    ))
}

fn show(id: &str, r: &ResourceRecord) -> String {
    let mut s = format!(
        "id:          {id}\nkind:        {}\nstatus:      {}\nsummary:     {}\n",
        r.kind,
        r.status.as_str(),
        r.summary
    );
    if let Some(a) = &r.account {
        s.push_str(&format!("account:     {a}\n"));
    }
    s.push_str(&format!(
        "fingerprint: {}\nidentity:    {}\n",
        r.fingerprint, r.identity
    ));
    if let Some(p) = r.sync_point {
        s.push_str(&format!("sync point:  {p}\n"));
    }
    if let Some(e) = &r.last_error {
        s.push_str(&format!("last error:  {e}\n"));
    }
    for (k, v) in &r.outputs {
        s.push_str(&format!("output {k}: {v}\n"));
    }
    s.push_str(&format!(
        "created:     {}\nupdated:     {}\n",
        human_time(r.created_at),
        human_time(r.updated_at)
    ));
    s
}
