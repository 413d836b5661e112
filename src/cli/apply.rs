//! `mailshift apply PLAN`: run the steps `plan` shows, with progress on stderr and a report
//! (both rendered by `crate::render`).
//!
//! Exit codes: 0 done, 1 a step failed or the run was stopped, [`EXIT_PAUSED`] (75) a copy
//! paused (at a platform's daily limit, or by a person: `paused: true`) or a step waits for
//! another shard (`--shard`: run by `mailshift watch` once done there), and nothing failed,
//! 130 a second Ctrl-C.
//!
//! Ctrl-C (or SIGTERM) stops at the next checkpoint: the batch in hand is finished and
//! recorded, then the run ends; a second Ctrl-C exits at once. The state is valid either way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::CliError;
use crate::apply::{ApplyOptions, apply};
use crate::render::progress::Printer;
use crate::render::report::apply_report;

/// Nothing failed, but a copy paused at a platform's daily limit (run `apply` again after the
/// time the report gives) or by a person (`paused: true`: not converged until it is lifted). 75 is sysexits' EX_TEMPFAIL ("try again later"); 2 is clap's for a
/// bad command line, and 1 a failure.
pub const EXIT_PAUSED: u8 = 75;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Read the live platforms first and repair drift (see `plan --refresh`).
    #[arg(long)]
    pub refresh: bool,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = super::shard::load(&args.plan, &args.shard)? else {
        return Ok(ExitCode::from(1));
    };
    let targets = super::targets(&loaded, &args.target)?;
    let store = Arc::new(crate::state::shards::open_store(
        &loaded,
        args.shard.resolve()?,
    )?);
    let runtime = super::runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let printer = Arc::new(Printer::new());
    let started = Instant::now();
    let report = runtime.block_on(async {
        let loaded = super::detect_servers(loaded).await;
        let stop2 = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("\nStopping at the next checkpoint (press Ctrl-C again to exit now)...");
            stop2.store(true, Ordering::Relaxed);
            wait_for_signal().await;
            eprintln!("Exiting now; the state is valid and the next apply resumes.");
            std::process::exit(130);
        });
        apply(
            loaded,
            store,
            ApplyOptions {
                targets,
                refresh: args.refresh,
                ..ApplyOptions::default()
            },
            printer.clone(),
            stop.clone(),
        )
        .await
    });
    let report = report.map_err(|e| CliError(e.message))?;
    printer.finish();
    print!("{}", apply_report(&report, started.elapsed().as_secs_f64()));
    Ok(if report.failed() || report.stopped {
        ExitCode::from(1)
    } else if report.paused_until().is_some() || report.held() > 0 || report.waiting() > 0 {
        ExitCode::from(EXIT_PAUSED)
    } else {
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
