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
    let mut paused = 0;
    let mut waiting = 0;
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
            // Its text says which pause: a daily limit's ("paused until …") or a person's
            // ("paused by the plan", "paused from the status page").
            Outcome::Paused { text, .. } | Outcome::Held(text) => {
                paused += 1;
                ("paused ", text.clone())
            }
            // Another shard's step comes first: not a failure, run again once it is done.
            Outcome::Waiting { text, .. } => {
                waiting += 1;
                ("waiting", text.clone())
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
    for c in &report.dav_copies {
        for n in &c.notes {
            let _ = writeln!(out, "note    {}: {}s: {n}", c.account, c.noun);
        }
    }
    for f in &report.notify_failures {
        let _ = writeln!(out, "warning notification not delivered: {f}");
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
    let items: u64 = report.dav_copies.iter().map(|c| c.objects).sum();
    let items = if items > 0 {
        format!(
            "; {} (contacts, events, tasks) written",
            plural(items as usize, "item")
        )
    } else {
        String::new()
    };
    let api = if report.api_writes > 0 {
        format!("; {}", plural(report.api_writes as usize, "API write"))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\nApply {}: {}, {} failed, {} manual{}; {} ({}) copied{items}{api} in {:.1} s.",
        if report.stopped {
            "stopped"
        } else if failed > 0 {
            "incomplete"
        } else if paused > 0 {
            "paused"
        } else if waiting > 0 {
            "waiting for other shards"
        } else {
            "complete"
        },
        plural(report.steps.len(), "step"),
        failed,
        manual,
        if paused > 0 {
            format!(", {paused} paused")
        } else {
            String::new()
        } + &if waiting > 0 {
            format!(
                ", {waiting} waiting for other shards (`mailshift watch` runs them once done there)"
            )
        } else {
            String::new()
        },
        plural(msgs as usize, "message"),
        human_bytes(bytes),
        elapsed
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::StepResult;
    use crate::diff::Action;
    use crate::error::StepError;
    use crate::transfer::imap::copy::{CopyReport, FailedFolder, FolderReport};

    #[test]
    fn the_report_of_a_run_is_pinned() {
        let step = |id: &str, outcome| StepResult {
            id: id.into(),
            account: Some("a@example.com".into()),
            action: Action::Sync,
            outcome,
        };
        let folder = FolderReport {
            path: "INBOX".into(),
            dest: "Archive".into(),
            copied: 3,
            bytes: 3_500,
            rematched: 2,
            too_large: vec![(7, 30_000_000)],
            adopted: 1,
            moved: 4,
            refused: vec![(9, 1_200, "[LIMIT] too big".into())],
            ..FolderReport::default()
        };
        let copy = CopyReport {
            folders: vec![folder],
            failed: vec![FailedFolder {
                path: "Junk".into(),
                reason: "no such folder".into(),
                kind: crate::transfer::imap::ErrorKind::Refused,
            }],
            ..CopyReport::default()
        };
        let report = ApplyReport {
            steps: vec![
                step(
                    "account/a@example.com/mail",
                    Outcome::Done("3 messages".into()),
                ),
                step(
                    "account/a@example.com/create",
                    Outcome::Failed(StepError::config("no API")),
                ),
                step(
                    "account/a@example.com/rename",
                    Outcome::Manual("by hand".into()),
                ),
                step(
                    "account/a@example.com/x",
                    Outcome::Skipped("blocked".into()),
                ),
                step("account/a@example.com/y", Outcome::Conflict("taken".into())),
            ],
            copies: [("a@example.com".to_string(), copy)].into(),
            dav_copies: vec![crate::apply::content::dav::DavCopy {
                account: "a@example.com".into(),
                noun: "contact",
                objects: 2,
                bytes: 900,
                notes: vec!["work: uid:x (Bob) refused by the destination, skipped: 413".into()],
                stopped: false,
            }],
            api_writes: 2,
            stopped: false,
            notify_failures: vec![
                "notify[1], failed: webhook https://h.example/ answered 500".into(),
            ],
        };
        assert_eq!(
            apply_report(&report, 1.25),
            "\n\
             done    account/a@example.com/mail: 3 messages\n\
             FAILED  account/a@example.com/create: no API\n\
             manual  account/a@example.com/rename: by hand\n\
             skipped account/a@example.com/x: blocked\n\
             CONFLICT account/a@example.com/y: taken\n\
             note    a@example.com: message UID 7 in \"INBOX\" (30.0 MB) skipped: larger than max_message_size\n\
             note    a@example.com: 1 message in \"INBOX\" already on the destination (no record in the state: another tool's copy, or a lost state) adopted, not copied again\n\
             note    a@example.com: 4 messages of \"INBOX\" moved on the destination to \"Archive\" (the folder mapping changed), not copied again\n\
             note    a@example.com: message UID 9 in \"INBOX\" (1.2 KB) refused by the destination, skipped: [LIMIT] too big\n\
             note    a@example.com: 2 message(s) in \"INBOX\" were already on the destination after an interruption, not copied again\n\
             note    a@example.com: contacts: work: uid:x (Bob) refused by the destination, skipped: 413\n\
             warning notification not delivered: notify[1], failed: webhook https://h.example/ answered 500\n\
             FAILED  a@example.com: folder \"Junk\": no such folder\n\
             \n\
             Apply incomplete: 5 steps, 3 failed, 1 manual; 3 messages (3.5 KB) copied; 2 items (contacts, events, tasks) written; 2 API writes in 1.2 s.\n"
        );
    }
}
