//! `mailshift verify PLAN`: per account and folder, counts and sizes on both sides, and
//! messages missing or extra by content. Exit 1 on any mismatch.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::apply::{account_targets, copy_options, human_bytes};
use crate::plan::model::Content;
use crate::verify::{AccountCheck, verify_account};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let targets = super::targets(&loaded, &args.target)?;
    let runtime = super::runtime()?;
    let mut checks: Vec<AccountCheck> = Vec::new();
    for a in &loaded.plan.accounts {
        let address = a.address.to_ascii_lowercase();
        if !targets.is_empty() && !targets.contains(&address) {
            continue;
        }
        if !a
            .content
            .as_ref()
            .is_none_or(|c| c.contains(&Content::Mail))
        {
            continue;
        }
        // Hashing every message of a large mailbox takes a while: say what is being read.
        eprintln!("Verifying {address} ...");
        let check = match account_targets(&loaded, a) {
            Ok((s, d)) => runtime.block_on(verify_account(
                &address,
                &s,
                &d,
                &a.folders.clone().unwrap_or_default(),
                &copy_options(&loaded.plan, a),
            )),
            Err(e) => AccountCheck {
                account: address.clone(),
                folders: Vec::new(),
                error: Some(e.message),
            },
        };
        checks.push(check);
    }
    let ok = checks.iter().all(AccountCheck::ok);
    if args.json {
        let doc = serde_json::json!({"format_version": 1, "ok": ok, "accounts": checks});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializes")
        );
    } else {
        for c in &checks {
            println!(
                "{} {}",
                if c.ok() { "ok      " } else { "MISMATCH" },
                c.account
            );
            if let Some(e) = &c.error {
                println!("    error: {e}");
            }
            for f in &c.folders {
                println!(
                    "    {:<28} source {:>6} ({:>9})  destination {:>6} ({:>9}){}{}",
                    f.folder,
                    f.source_messages,
                    human_bytes(f.source_bytes),
                    f.dest_messages,
                    human_bytes(f.dest_bytes),
                    if f.missing > 0 {
                        format!("  missing {}", f.missing)
                    } else {
                        String::new()
                    },
                    if f.extra > 0 {
                        format!("  extra {}", f.extra)
                    } else {
                        String::new()
                    },
                );
            }
        }
        println!(
            "\nVerify: {} of {} accounts match.",
            checks.iter().filter(|c| c.ok()).count(),
            checks.len()
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
