//! Views of a computed plan: the human one (Terraform-style, grouped by account) and the
//! JSON one (stable, documented in `docs/plan-json.md`); `apply`'s progress and report
//! (`progress`, `report`), `verify`'s result (`verify`), times (`time`). Rendering never
//! computes anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::diff::{Action, Change, Summary};

pub mod progress;
pub mod report;
pub mod sizing;
pub mod time;
pub mod verify;

/// Version of the JSON format; bumped on any incompatible change.
pub const PLAN_JSON_FORMAT: u32 = 1;

#[derive(Serialize)]
struct PlanJson<'a> {
    format_version: u32,
    has_changes: bool,
    summary: Summary,
    changes: &'a [Change],
    /// `plan --refresh` only: each pending copy's size, quota check and estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    sizing: Option<&'a [crate::apply::sizing::AccountSizing]>,
    /// `--shard` only: which share of the plan these changes are.
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<ShardShare>,
}

/// The share of a plan one shard runs, as `plan` shows it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ShardShare {
    pub index: u32,
    pub count: u32,
    /// The plan's accounts this shard owns.
    pub accounts: usize,
    /// All of the plan's accounts.
    pub plan_accounts: usize,
}

impl ShardShare {
    pub fn of(loaded: &crate::plan::Loaded) -> Option<ShardShare> {
        let shard = loaded.shard;
        (!shard.is_whole()).then(|| ShardShare {
            index: shard.index,
            count: shard.count,
            accounts: loaded.accounts().count(),
            plan_accounts: loaded.plan.accounts.len(),
        })
    }

    /// "shard 2/10: 4,987 of 50,000 accounts (and the platform-level steps)".
    pub fn line(&self) -> String {
        format!(
            "shard {}/{}: {} of {} accounts{}",
            self.index,
            self.count,
            thousands(self.accounts),
            thousands(self.plan_accounts),
            if self.index == 0 {
                " and the platform-level steps (domains, groups, contacts, footers, DNS)"
            } else {
                " (platform-level steps are shard 0's)"
            }
        )
    }
}

/// 50000 → "50,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn plan_json(
    changes: &[Change],
    sizing: Option<&[crate::apply::sizing::AccountSizing]>,
    shard: Option<ShardShare>,
) -> String {
    let summary = Summary::of(changes);
    let doc = PlanJson {
        format_version: PLAN_JSON_FORMAT,
        has_changes: summary.has_changes(),
        summary,
        changes,
        sizing,
        shard,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serializes");
    s.push('\n');
    s
}

fn legend_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update in place",
        Action::Delete => "remove",
        Action::Sync => "sync content",
        Action::Manual => "manual step (no API: do it by hand, then `mailshift ack PLAN ID`)",
        Action::Conflict => "conflict (needs a decision; apply will not touch it)",
        Action::Orphaned => "orphaned (in the state, not in the plan; kept)",
        Action::Paused => {
            "paused by a person (apply leaves it where it stands until it is resumed)"
        }
    }
}

/// Group heading of a change: its account, or the kind of platform-level resource.
fn group_of(c: &Change) -> (u8, String) {
    use crate::model::ResourceKind as K;
    match (&c.account, c.kind) {
        (_, K::Domain) => (0, "domains".to_string()),
        (Some(a), _) => (1, format!("account {a}")),
        (None, K::Group) => (2, "groups".to_string()),
        (None, K::ExternalContact) => (3, "external contacts".to_string()),
        (None, K::Footer) => (4, "footers".to_string()),
        (None, K::DnsCheck) => (5, "DNS checks".to_string()),
        (None, _) => (6, "other".to_string()),
    }
}

/// The human view. `dry_run_note` names what was compared (plan and state files).
pub fn plan_human(changes: &[Change], header: &str) -> String {
    let mut out = String::new();
    let summary = Summary::of(changes);
    let _ = writeln!(out, "{header}");
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes: the platforms match the plan, as far as the state knows."
        );
        let _ = writeln!(out, "\n{}", closing_line(&summary));
        return out;
    }
    let mut used: Vec<Action> = changes.iter().map(|c| c.action).collect();
    used.sort();
    used.dedup();
    let _ = writeln!(out, "\nSymbols:");
    for a in &used {
        let _ = writeln!(out, "  {} {}", a.symbol(), legend_word(*a));
    }
    let mut groups: BTreeMap<(u8, String), Vec<&Change>> = BTreeMap::new();
    for c in changes {
        groups.entry(group_of(c)).or_default().push(c);
    }
    for ((_, title), items) in groups {
        let _ = writeln!(out, "\n  # {title}");
        for c in items {
            let _ = writeln!(out, "  {} {}", c.action.symbol(), c.id);
            match (c.action, &c.before, &c.after) {
                (Action::Update | Action::Conflict, Some(b), Some(a)) if b != a => {
                    let _ = writeln!(out, "      was: {b}");
                    let _ = writeln!(out, "      now: {a}");
                }
                (_, _, Some(a)) => {
                    let _ = writeln!(out, "      {a}");
                }
                (_, Some(b), None) => {
                    let _ = writeln!(out, "      {b}");
                }
                _ => {}
            }
            let _ = writeln!(out, "      ({})", c.reason);
            if let Some(i) = &c.instructions {
                let _ = writeln!(out, "      to do: {i}");
            }
        }
    }
    let _ = writeln!(out, "\n{}", closing_line(&summary));
    if summary.conflict > 0 {
        let _ = writeln!(
            out,
            "{} must be resolved before apply can finish: see the `x` lines above.",
            crate::plan::diagnostic::plural(summary.conflict, "conflict")
        );
    }
    if summary.paused > 0 {
        let _ = writeln!(
            out,
            "{} paused (see the `|` lines above): `apply` copies nothing of {} until {} resumed.",
            if summary.paused == 1 {
                "1 copy".to_string()
            } else {
                format!("{} copies", summary.paused)
            },
            if summary.paused == 1 { "it" } else { "them" },
            if summary.paused == 1 {
                "it is"
            } else {
                "they are"
            },
        );
    }
    if summary.orphaned > 0 {
        let _ = writeln!(
            out,
            "{} in the state but no longer in the plan (kept; see the `?` lines above).",
            crate::plan::diagnostic::plural(summary.orphaned, "resource")
        );
    }
    out
}

pub fn closing_line(s: &Summary) -> String {
    // Said only when there are some: most plans never pause anything.
    let paused = if s.paused > 0 {
        format!(", {} paused", s.paused)
    } else {
        String::new()
    };
    format!(
        "Plan: {} to add, {} to change, {} to remove, {} to sync, {} manual{paused}.",
        s.add, s.change, s.remove, s.sync, s.manual
    )
}
