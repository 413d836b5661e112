//! `mailshift rollback PLAN --cutover DOMAIN`: the records the domain's zone held before its
//! cutover put back the way the cutover wrote them (read first; a record changed by hand since
//! is a conflict, not overwritten), then every authoritative server checked until it answers
//! them, then the accounts no longer cut over. Resumable: run it again after an interruption.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use crate::cli::CliError;
use crate::cutover::{PROPAGATION_RECHECK, Stop, stop_error, zones};
use crate::plan::Loaded;

/// How long the command waits for the authoritative servers before it leaves the rest to a
/// later run: secondaries normally follow their primary's NOTIFY within seconds.
const PROPAGATION_PATIENCE: i64 = 15 * 60;

pub(super) fn exec(
    loaded: Loaded,
    domain: &str,
    dry_run: bool,
    yes: bool,
    shard: mailshift_core::shard::Shard,
) -> Result<ExitCode, CliError> {
    let name = domain.to_ascii_lowercase();
    let Some(d) = loaded
        .plan
        .domains
        .iter()
        .find(|d| d.dns.is_some() && d.name.eq_ignore_ascii_case(&name))
    else {
        return Err(CliError(format!(
            "--cutover {domain}: no domain of {} has a `dns:` zone by that name",
            loaded.file_name()
        )));
    };
    if !shard.is_whole() {
        return Err(CliError(format!(
            "--cutover {domain} with --shard {shard}: a domain's cutover reads and marks accounts \
             of every shard, and a split run cannot do that yet; run the cutover's rollback from \
             one process over the whole plan's state (`mailshift state reshard PLAN --to 1`)"
        )));
    }
    let store = crate::state::shards::open_store(&loaded, shard)?;
    let Some(record) = store.cutover(&name)? else {
        return Err(CliError(format!(
            "--cutover {domain}: its cutover never started, there is nothing to put back"
        )));
    };
    println!("Rollback of the cutover of {name}: the zone gets back");
    for h in &record.previous {
        match &h.set {
            Some(s) => println!("  {} {} {} {}", s.name, s.ttl, s.rtype, s.data.join(" | ")),
            None => println!("  {} {}: no record (removed)", h.name, h.rtype),
        }
    }
    if !record.accounts.is_empty() {
        println!(
            "and these accounts sync again: {}",
            record.accounts.join(", ")
        );
    }
    if dry_run {
        println!("This is a dry run: nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        print!("Put these records back? Type `yes` to confirm: ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !line.trim().eq_ignore_ascii_case("yes") {
            println!("Nothing was changed.");
            return Ok(ExitCode::from(1));
        }
    }
    let runtime = crate::cli::runtime()?;
    let c = runtime.block_on(zones::cutover(&loaded, d))?;
    let opened = runtime.block_on(zones::open(&loaded, d))?;
    let started = crate::apply::quota::now();
    loop {
        let now = i64::try_from(crate::apply::quota::now()).unwrap_or(i64::MAX);
        let report = runtime.block_on(c.rollback(
            opened.zone.as_ref(),
            opened.propagation.as_ref(),
            &store,
            now,
        ))?;
        for w in &report.warnings {
            println!("{w}");
        }
        for (step, line) in &report.ran {
            println!("  = {}: {line}", step.address(&name));
        }
        match &report.stop {
            Stop::Done => return Ok(ExitCode::SUCCESS),
            Stop::Waiting { until, why, .. }
                if now - i64::try_from(started).unwrap_or(0) < PROPAGATION_PATIENCE =>
            {
                let pause = until.map_or(PROPAGATION_RECHECK, |u| (u - now).max(1));
                println!(
                    "  ~ waiting: {why} (asking again in {pause} s; Ctrl-C and a later run go on from here)"
                );
                std::thread::sleep(std::time::Duration::from_secs(
                    u64::try_from(pause).unwrap_or(1),
                ));
            }
            Stop::Waiting { why, .. } => {
                println!(
                    "  ~ still waiting after {} minutes: {why}; run the same command again to go on",
                    PROPAGATION_PATIENCE / 60
                );
                return Ok(ExitCode::from(1));
            }
            stop => {
                let e = stop_error(&name, stop).map_or_else(|| format!("{stop:?}"), |e| e.message);
                println!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
}
