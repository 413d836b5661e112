//! `mailshift apply PLAN`: run the steps `plan` shows, with progress on stderr and a report.
//!
//! Ctrl-C (or SIGTERM) stops at the next checkpoint: the batch in hand is finished and
//! recorded, then the run ends; a second Ctrl-C exits at once. The state is valid either way.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CliError, load_plan};
use crate::apply::{ApplyOptions, Hooks, Outcome, StepResult, apply, human_bytes};
use crate::diff::Change;
use crate::plan::diagnostic::plural;
use crate::state::StateStore;
use crate::transfer::imap::copy::Progress;

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
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let targets = super::targets(&loaded, &args.target)?;
    let store = Arc::new(StateStore::open(&loaded.state_path())?);
    let runtime = super::runtime()?;
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
    let elapsed = started.elapsed().as_secs_f64();
    let mut failed = 0;
    let mut manual = 0;
    println!();
    for s in &report.steps {
        let (mark, text) = match &s.outcome {
            Outcome::Done(t) => ("done   ", t.clone()),
            Outcome::Failed(t) => {
                failed += 1;
                ("FAILED ", t.message.clone())
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
            if f.adopted > 0 {
                println!(
                    "note    {account}: {} in {:?} already on the destination (no record in the state: another tool's copy, or a lost state) adopted, not copied again",
                    plural(f.adopted as usize, "message"),
                    f.path
                );
            }
            if f.moved > 0 {
                println!(
                    "note    {account}: {} of {:?} moved on the destination to {:?} (the folder mapping changed), not copied again",
                    plural(f.moved as usize, "message"),
                    f.path,
                    f.dest
                );
            }
            for (uid, size, why) in &f.refused {
                println!(
                    "note    {account}: message UID {uid} in {:?} ({}) refused by the destination, skipped: {why}",
                    f.path,
                    human_bytes(*size)
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
    for (account, c) in &report.copies {
        for f in &c.failed {
            println!("FAILED  {account}: folder {:?}: {}", f.path, f.reason);
        }
    }
    let (msgs, bytes): (u64, u64) = report
        .copies
        .values()
        .fold((0, 0), |(m, b), c| (m + c.copied(), b + c.bytes()));
    let api = if report.api_writes > 0 {
        format!("; {}", plural(report.api_writes as usize, "API write"))
    } else {
        String::new()
    };
    println!(
        "\nApply {}: {}, {} failed, {} manual; {} ({}) copied{api} in {:.1} s.",
        if report.stopped {
            "stopped"
        } else if failed > 0 {
            "incomplete"
        } else {
            "complete"
        },
        plural(report.steps.len(), "step"),
        failed,
        manual,
        plural(msgs as usize, "message"),
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

/// Progress on stderr: on a terminal, an overall bar and one bar per account (indicatif),
/// with messages/s and MB/s; elsewhere (CI, a log file), a line per account every few seconds.
struct Printer {
    started: Instant,
    bars: Option<Bars>,
    lines: Mutex<Lines>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    accounts: Mutex<BTreeMap<String, ProgressBar>>,
    bytes: AtomicU64,
}

#[derive(Default)]
struct Lines {
    last: Option<Instant>,
    /// Whether something changed since the last lines were printed.
    dirty: bool,
    /// account → (copied, to copy, bytes)
    accounts: BTreeMap<String, (u64, u64, u64)>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid progress template")
        .progress_chars("=> ")
}

impl Printer {
    fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(style(
                "{prefix:>12.bold} [{bar:30}] {pos}/{len} messages, {msg}, eta {eta}",
            ));
            overall.set_prefix("Total");
            Bars {
                multi,
                overall,
                accounts: Mutex::new(BTreeMap::new()),
                bytes: AtomicU64::new(0),
            }
        });
        Printer {
            started: Instant::now(),
            bars,
            lines: Mutex::new(Lines::default()),
        }
    }

    fn account_bar(bars: &Bars, account: &str) -> ProgressBar {
        let mut map = bars.accounts.lock().expect("bars lock");
        map.entry(account.to_string())
            .or_insert_with(|| {
                let bar = bars.multi.add(ProgressBar::new(0));
                bar.set_style(style("{prefix:>12} [{bar:30}] {pos}/{len} {msg}"));
                bar.set_prefix(short(account));
                bar
            })
            .clone()
    }

    fn rate(&self, bytes: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{} ({}/s)",
            human_bytes(bytes),
            human_bytes((bytes as f64 / secs) as u64)
        )
    }

    fn print_lines(&self, lines: &Lines) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        for (account, (done, total, bytes)) in &lines.accounts {
            eprintln!(
                "  {account}: {done}/{total} messages, {} ({:.0} msg/s)",
                self.rate(*bytes),
                *done as f64 / secs
            );
        }
    }

    fn finish(&self) {
        match &self.bars {
            Some(b) => {
                for bar in b.accounts.lock().expect("bars lock").values() {
                    bar.finish();
                }
                b.overall.finish();
            }
            None => {
                let lines = self.lines.lock().expect("printer lock");
                if lines.dirty {
                    self.print_lines(&lines);
                }
            }
        }
    }
}

/// Bar prefixes stay aligned: long addresses are shortened in the middle.
fn short(account: &str) -> String {
    let chars: Vec<char> = account.chars().collect();
    if chars.len() <= 24 {
        account.to_string()
    } else {
        let head: String = chars[..11].iter().collect();
        let tail: String = chars[chars.len() - 12..].iter().collect();
        format!("{head}…{tail}")
    }
}

impl Progress for Printer {
    fn folder_started(&self, account: &str, _folder: &str, to_copy: u64) {
        match &self.bars {
            Some(b) => {
                Self::account_bar(b, account).inc_length(to_copy);
                b.overall.inc_length(to_copy);
            }
            None => {
                self.lines
                    .lock()
                    .expect("printer lock")
                    .accounts
                    .entry(account.to_string())
                    .or_default()
                    .1 += to_copy;
            }
        }
    }

    fn copied(&self, account: &str, messages: u64, bytes: u64) {
        match &self.bars {
            Some(b) => {
                let bar = Self::account_bar(b, account);
                bar.inc(messages);
                let total = b.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
                b.overall.inc(messages);
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                b.overall.set_message(format!(
                    "{:.0} msg/s, {}",
                    b.overall.position() as f64 / secs,
                    self.rate(total)
                ));
                bar.set_message(format!("+{}", human_bytes(bytes)));
            }
            None => {
                let mut lines = self.lines.lock().expect("printer lock");
                let e = lines.accounts.entry(account.to_string()).or_default();
                e.0 += messages;
                e.2 += bytes;
                lines.dirty = true;
                if lines.last.is_none_or(|t| t.elapsed().as_secs() >= 5) {
                    lines.last = Some(Instant::now());
                    lines.dirty = false;
                    self.print_lines(&lines);
                }
            }
        }
    }

    fn note(&self, account: &str, text: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("  {account}: {text}")),
            None => eprintln!("  {account}: {text}"),
        }
    }
}

impl Hooks for Printer {
    fn step_started(&self, change: &Change) {
        let line = format!("{} {}", verb(change), change.id);
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
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
