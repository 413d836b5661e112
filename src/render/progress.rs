//! `apply`'s progress on stderr while it runs: on a terminal, an overall bar and one bar per
//! account (indicatif), with messages/s and MB/s; elsewhere (CI, a log file), a line per
//! account every few seconds. Also the verbs that name a step as it starts, which the watch
//! daemon's log lines share.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Hooks, StepResult, human_bytes};
use crate::diff::{Action, Change};
use crate::transfer::imap::copy::Progress;

/// What a step does as it starts, in lower case: `creating account/a@example.com/alias/b`.
pub fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Delete => "removing",
        Action::Sync => "syncing",
        Action::Manual => "manual step",
        Action::Conflict => "conflict",
        Action::Orphaned => "orphaned",
        Action::Paused => "paused",
    }
}

/// `verb` at the start of a line.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The progress view of one `apply`: its [`Hooks`].
pub struct Printer {
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
    /// (account, kind) → contacts, events or tasks written, and when they were last shown.
    items: BTreeMap<(String, String), u64>,
    items_shown: Option<Instant>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid progress template")
        .progress_chars("=> ")
}

impl Printer {
    pub fn new() -> Self {
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

    /// Ends the bars, or prints the lines not printed yet.
    pub fn finish(&self) {
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

impl Default for Printer {
    fn default() -> Self {
        Printer::new()
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
    /// A line every few seconds while contacts, events or tasks are written: a large address
    /// book takes minutes (the server's pace), and the bars count messages only.
    fn items_copied(&self, account: &str, kind: &str, items: u64, _bytes: u64) {
        let mut lines = self.lines.lock().expect("printer lock");
        let total = {
            let n = lines
                .items
                .entry((account.to_string(), kind.to_string()))
                .or_default();
            *n += items;
            *n
        };
        if lines.items_shown.is_some_and(|t| t.elapsed().as_secs() < 5) {
            return;
        }
        lines.items_shown = Some(Instant::now());
        drop(lines);
        let what = match kind {
            "calendars" => "event",
            "contacts" => "contact",
            "tasks" => "task",
            other => other,
        };
        let count = crate::plan::diagnostic::plural(total as usize, what);
        self.note(account, &format!("{count} written"));
    }

    fn step_started(&self, change: &Change) {
        let line = format!("{} {}", capitalized(verb(change.action)), change.id);
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
    fn step_finished(&self, _result: &StepResult) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_start_with_the_capitalized_verb() {
        let all = [
            (Action::Create, "Creating"),
            (Action::Update, "Updating"),
            (Action::Delete, "Removing"),
            (Action::Sync, "Syncing"),
            (Action::Manual, "Manual step"),
            (Action::Conflict, "Conflict"),
            (Action::Orphaned, "Orphaned"),
            (Action::Paused, "Paused"),
        ];
        for (action, line) in all {
            assert_eq!(capitalized(verb(action)), line);
        }
    }

    #[test]
    fn long_addresses_are_shortened_in_the_middle() {
        assert_eq!(short("a@example.com"), "a@example.com");
        assert_eq!(
            short("someone.with.a.long.name@example.com"),
            "someone.wit…@example.com"
        );
    }
}
