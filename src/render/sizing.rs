//! The human view of `plan --refresh`'s sizing (`apply::sizing`): per account, what its copy
//! moves, the destination's room for it and how long it takes; then a warning per account
//! that will not fit. The JSON view is the same records, in `plan --json`.

use std::fmt::Write as _;

use crate::apply::human_bytes;
use crate::apply::sizing::{AccountSizing, duration};
use crate::plan::diagnostic::plural;

/// The sizing section printed after the plan; empty when no copy was sized.
pub fn sizing_human(sized: &[AccountSizing]) -> String {
    if sized.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nSizing (read from the servers now):\n");
    let (mut items, mut bytes, mut seconds) = (0u64, 0u64, 0u64);
    for a in sized {
        let _ = writeln!(out, "  {}  ({})", a.account, a.resource);
        if let Some(e) = &a.error {
            let _ = writeln!(out, "      could not be sized: {e}");
            continue;
        }
        let Some(s) = &a.size else {
            let _ = writeln!(
                out,
                "      not sized: contacts and calendars are counted in the step above only"
            );
            continue;
        };
        items += s.to_move_items;
        bytes += s.to_move_bytes;
        let _ = writeln!(
            out,
            "      to move: {} ({}) of {} ({}) on the source [{}]",
            plural(s.to_move_items as usize, s.unit),
            human_bytes(s.to_move_bytes),
            plural(s.items as usize, s.unit),
            human_bytes(s.bytes),
            s.method
        );
        if let Some(q) = &a.quota {
            let used = q.used.map_or_else(String::new, |u| {
                format!(" + {} already there", human_bytes(u))
            });
            let _ = writeln!(
                out,
                "      quota:   {}{used} of {} ({}): {}",
                human_bytes(s.to_move_bytes),
                human_bytes(q.limit),
                q.source,
                if q.fits { "fits" } else { "DOES NOT FIT" }
            );
        }
        if let Some(e) = &a.estimate {
            seconds += e.seconds;
            let days = e.days.map_or_else(String::new, |d| {
                format!("; at least {d} days at its daily limits")
            });
            let _ = writeln!(
                out,
                "      about:   {} ({}){days}",
                duration(e.seconds),
                e.basis
            );
        }
    }
    // Messages and mail files are not added up under one name.
    let mut units = sized.iter().filter_map(|a| Some(a.size.as_ref()?.unit));
    let unit = match units.next() {
        Some(first) if units.all(|u| u == first) => first,
        _ => "item",
    };
    let _ = writeln!(
        out,
        "Sizing: {} ({}) to move, about {} one account after another.",
        plural(items as usize, unit),
        human_bytes(bytes),
        duration(seconds)
    );
    for w in sized
        .iter()
        .filter_map(|a| a.quota.as_ref()?.warning.as_ref())
    {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
