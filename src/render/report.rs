//! `apply`'s report, printed when it ends: a line per step, notes on what the copies skipped,
//! adopted or moved, and a closing summary line.

use std::fmt::Write as _;

use crate::apply::{ApplyReport, Outcome, human_bytes};
use crate::plan::diagnostic::plural;

/// The report of a run that took `elapsed` seconds (it starts with an empty line).
pub fn apply_report(report: &ApplyReport, elapsed: f64) -> String {
    let mut out = String::new();
    let mut failed = 0;
    let mut manual = 0;
    let _ = writeln!(out);
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
        let _ = writeln!(out, "{mark} {}: {text}", s.id);
    }
    for (account, c) in &report.copies {
        for f in &c.folders {
            for (uid, size) in &f.too_large {
                let _ = writeln!(
                    out,
                    "note    {account}: message UID {uid} in {:?} ({}) skipped: larger than max_message_size",
                    f.path,
                    human_bytes(u64::from(*size))
                );
            }
            if f.adopted > 0 {
                let _ = writeln!(
                    out,
                    "note    {account}: {} in {:?} already on the destination (no record in the state: another tool's copy, or a lost state) adopted, not copied again",
                    plural(f.adopted as usize, "message"),
                    f.path
                );
            }
            if f.moved > 0 {
                let _ = writeln!(
                    out,
                    "note    {account}: {} of {:?} moved on the destination to {:?} (the folder mapping changed), not copied again",
                    plural(f.moved as usize, "message"),
                    f.path,
                    f.dest
                );
            }
            for (uid, size, why) in &f.refused {
                let _ = writeln!(
                    out,
                    "note    {account}: message UID {uid} in {:?} ({}) refused by the destination, skipped: {why}",
                    f.path,
                    human_bytes(*size)
                );
            }
            if f.rematched > 0 {
                let _ = writeln!(
                    out,
                    "note    {account}: {} message(s) in {:?} were already on the destination after an interruption, not copied again",
                    f.rematched, f.path
                );
            }
        }
    }
    for (account, c) in &report.copies {
        for f in &c.failed {
            let _ = writeln!(out, "FAILED  {account}: folder {:?}: {}", f.path, f.reason);
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
    let _ = writeln!(
        out,
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
    out
}
