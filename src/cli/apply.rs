//! `mailshift apply PLAN`: run the steps `plan` shows, with progress on stderr and a report.
//!
//! Ctrl-C (or SIGTERM) stops at the next checkpoint: the batch in hand is finished and
//! recorded, then the run ends; a second Ctrl-C exits at once. The state is valid either way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{CliError, load_plan};
use crate::apply::{ApplyOptions, Hooks, Outcome, StepResult, apply, human_bytes};
use crate::diff::Change;
use crate::state::StateStore;
use crate::transfer::imap::copy::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let targets: Vec<String> = args.target.iter().map(|t| t.to_ascii_lowercase()).collect();
    if let Some(t) = targets.iter().find(|t| {
        !loaded
            .plan
            .accounts
            .iter()
            .any(|a| a.address.eq_ignore_ascii_case(t))
    }) {
        return Err(CliError(format!(
            "--target {t}: no such account in {}",
            loaded.file_name()
        )));
    }
    let store = Arc::new(StateStore::open(&loaded.state_path())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let printer = Arc::new(Printer::new());
    let started = Instant::now();
    let report = runtime.block_on(async {
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
            Arc::new(loaded),
            store,
            ApplyOptions { targets },
            printer.clone(),
            stop.clone(),
        )
        .await
    });
    let report = report.map_err(CliError)?;
    printer.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let mut failed = 0;
    let mut manual = 0;
    println!();
    for s in &report.steps {
        let (mark, text) = match &s.outcome {
            Outcome::Done(t) => ("done   ", t.clone()),
            Outcome::Failed(t) => {
                failed += 1;
                ("FAILED ", t.clone())
            }
            Outcome::Skipped(t) => {
                failed += 1;
                ("skipped", t.clone())
            }
            Outcome::Manual(t) => {
                manual += 1;
                ("manual ", t.clone())
            }
            Outcome::Conflict(t) => {
                failed += 1;
                ("CONFLICT", t.clone())
            }
        };
        println!("{mark} {}: {text}", s.id);
    }
    for (account, c) in &report.copies {
        for f in &c.folders {
            for (uid, size) in &f.too_large {
                println!(
                    "note    {account}: message UID {uid} in {:?} ({}) skipped: larger than max_message_size",
                    f.path,
                    human_bytes(u64::from(*size))
                );
            }
            if f.rematched > 0 {
                println!(
                    "note    {account}: {} message(s) in {:?} were already on the destination after an interruption, not copied again",
                    f.rematched, f.path
                );
            }
        }
    }
    let (msgs, bytes): (u64, u64) = report
        .copies
        .values()
        .fold((0, 0), |(m, b), c| (m + c.copied(), b + c.bytes()));
    println!(
        "\nApply {}: {} steps, {} failed, {} manual; {} messages ({}) copied in {:.1} s.",
        if report.stopped {
            "stopped"
        } else if failed > 0 {
            "incomplete"
        } else {
            "complete"
        },
        report.steps.len(),
        failed,
        manual,
        msgs,
        human_bytes(bytes),
        elapsed
    );
    Ok(if failed > 0 || report.stopped {
        ExitCode::from(1)
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

/// Progress lines on stderr, at most one a second per account, with rates.
struct Printer {
    state: Mutex<PrinterState>,
}

struct PrinterState {
    started: Instant,
    last: Instant,
    accounts: std::collections::BTreeMap<String, (u64, u64, u64)>,
}

impl Printer {
    fn new() -> Self {
        let now = Instant::now();
        Printer {
            state: Mutex::new(PrinterState {
                started: now,
                last: now,
                accounts: Default::default(),
            }),
        }
    }

    fn line(st: &PrinterState) {
        let secs = st.started.elapsed().as_secs_f64().max(0.001);
        for (account, (done, total, bytes)) in &st.accounts {
            eprintln!(
                "  {account}: {done}/{total} messages, {} ({:.0} msg/s, {}/s)",
                human_bytes(*bytes),
                *done as f64 / secs,
                human_bytes((*bytes as f64 / secs) as u64)
            );
        }
    }

    fn finish(&self) {
        let st = self.state.lock().expect("printer lock");
        if !st.accounts.is_empty() {
            Self::line(&st);
        }
    }
}

impl Progress for Printer {
    fn folder_started(&self, account: &str, _folder: &str, to_copy: u64) {
        let mut st = self.state.lock().expect("printer lock");
        st.accounts.entry(account.to_string()).or_default().1 += to_copy;
    }
    fn copied(&self, account: &str, messages: u64, bytes: u64) {
        let mut st = self.state.lock().expect("printer lock");
        let e = st.accounts.entry(account.to_string()).or_default();
        e.0 += messages;
        e.2 += bytes;
        if st.last.elapsed().as_secs_f64() >= 1.0 {
            st.last = Instant::now();
            Self::line(&st);
        }
    }
    fn note(&self, account: &str, text: &str) {
        eprintln!("  {account}: {text}");
    }
}

impl Hooks for Printer {
    fn step_started(&self, change: &Change) {
        eprintln!("{} {} ...", verb(change), change.id);
    }
    fn step_finished(&self, _result: &StepResult) {}
}

fn verb(c: &Change) -> &'static str {
    use crate::diff::Action::*;
    match c.action {
        Create => "Creating",
        Update => "Updating",
        Delete => "Removing",
        Sync => "Syncing",
        Manual => "Manual step",
        Conflict => "Conflict",
        Orphaned => "Orphaned",
    }
}
