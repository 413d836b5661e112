//! `mailshift verify PLAN`: per account and destination folder, counts and sizes on both
//! sides, then each message that is missing, extra or changed, and each one whose flags,
//! keywords or internal date differ, named by folder, UID, Message-ID, date and subject; per
//! address book and calendar, the contacts, events and tasks missing, extra or changed.
//! The comparison lives in `crate::verify`, its views (text or `--json`, whose shape
//! docs/verify-json.md describes) in `crate::render::verify`; this file wires them and sets
//! the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliError;
use crate::apply::content::dav::DavCheck;
use crate::apply::content::rules::RulesCheck;
use crate::apply::content::{Checked, Prepared, engine};
use crate::error::StepError;
use crate::model::{AccountSpec, ResourceKind};
use crate::plan::model::Content;
use crate::render::verify::{verify_json, verify_text};
use crate::verify::{AccountCheck, DEFAULT_LIST_LIMIT};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when every account matches; 1 when a message (or a contact, event or task) is \
missing, extra or changed, \
when flags, keywords or internal dates differ on messages whose content matches (a summary \
line says which kind), or when an account could not be compared.")]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Print the result as JSON (docs/verify-json.md).
    #[arg(long)]
    pub json: bool,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Messages listed per folder and kind of difference; the counts are always complete.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = super::shard::load(&args.plan, &args.shard)? else {
        return Ok(ExitCode::from(1));
    };
    let targets = super::targets(&loaded, &args.target)?;
    let runtime = super::runtime()?;
    let loaded = runtime.block_on(super::detect_servers(loaded));
    let reader = crate::state::shards::open_reader(&loaded, args.shard.resolve()?)?;
    let mut checks: Vec<AccountCheck> = Vec::new();
    let mut groupware: Vec<DavCheck> = Vec::new();
    let mut rules: Vec<RulesCheck> = Vec::new();
    for a in loaded.accounts() {
        let address = a.address.to_ascii_lowercase();
        if !targets.is_empty() && !targets.contains(&address) {
            continue;
        }
        let content = a.content.clone().unwrap_or_else(|| vec![Content::Mail]);
        for c in content {
            // Hashing every message of a large mailbox takes a while: say what is being read.
            eprintln!("Verifying {address} ({}) ...", c.as_str());
            let kind = match c {
                Content::Mail => ResourceKind::Mail,
                Content::Contacts => ResourceKind::Contacts,
                Content::Calendars => ResourceKind::Calendars,
                Content::Tasks => ResourceKind::Tasks,
                Content::Rules => ResourceKind::Rules,
            };
            let checked = match prepare(&loaded, a, kind) {
                Ok(sides) => runtime.block_on(sides.verify(Some(&reader), args.limit))?,
                Err(e) if kind == ResourceKind::Mail => Checked::Mail(AccountCheck {
                    account: address.clone(),
                    folders: Vec::new(),
                    error: Some(e.message),
                }),
                Err(e) if kind == ResourceKind::Rules => {
                    Checked::Rules(RulesCheck::unreachable(&address, e.message))
                }
                Err(e) => Checked::Dav(DavCheck::unreachable(&address, kind, e.message)),
            };
            match checked {
                Checked::Mail(check) => checks.push(check),
                Checked::Dav(check) => groupware.push(check),
                Checked::Rules(check) => rules.push(check),
            }
        }
    }
    let ok = checks.iter().all(AccountCheck::ok)
        && groupware.iter().all(|c| c.check.equal())
        && rules.iter().all(RulesCheck::equal);
    if args.json {
        print!("{}", verify_json(&checks, &groupware, &rules, args.limit));
    } else {
        print!("{}", verify_text(&checks, &groupware, &rules, args.limit));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Both sides of an account for one kind of content, secrets read.
fn prepare(
    loaded: &crate::plan::Loaded,
    a: &crate::plan::model::Account,
    kind: ResourceKind,
) -> Result<Box<dyn Prepared>, StepError> {
    let spec = AccountSpec::of(&loaded.plan, a).ok_or_else(|| {
        StepError::bug("unknown platform (the plan validator should have refused this)")
    })?;
    engine(kind)
        .ok_or_else(|| StepError::bug(format!("no engine for {}", kind.as_str())))?
        .prepare(&spec, loaded)
}
