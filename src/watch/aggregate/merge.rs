//! The merge itself, pure: the `/api/status` documents of N shards (or why a shard gave none)
//! in, one document of the same shape out, with a health entry per shard and the problems that
//! make the merged view wrong or incomplete. No I/O, no clock: `fetch` asks, this decides.

use std::collections::{BTreeMap, BTreeSet};

use mailshift_core::shard::Shard;

use crate::render::time::rfc3339;
use crate::watch::status::{AccountView, PlanView, ShardHealth, Snapshot, SummaryView, UnitView};

/// What asking one shard gave.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The `/api/status` URL asked.
    pub url: String,
    /// Its document, or why there is none (unreachable, refused, not a status document).
    pub result: Result<Snapshot, String>,
    /// Unix seconds: when the last good answer arrived (this one's, if it is good).
    pub answered_at: Option<u64>,
    /// Milliseconds the last good answer took.
    pub latency_ms: Option<u64>,
    /// The shard this URL said it was last time it answered (an aggregator remembers it, so
    /// that an unreachable shard keeps its number on the page).
    pub last_shard: Option<Shard>,
}

/// Merges the answers, in the order the URLs were given, as seen at `now` (Unix seconds).
pub fn merge(answers: Vec<Answer>, now: u64) -> Snapshot {
    let mut shards = Vec::with_capacity(answers.len());
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut docs: Vec<(String, Snapshot)> = Vec::new();
    for a in answers {
        let health = match &a.result {
            Ok(s) => ShardHealth {
                url: a.url.clone(),
                shard: Some(s.shard),
                reachable: true,
                answered_at: a.answered_at.map(rfc3339),
                latency_ms: a.latency_ms,
                version: Some(s.version.clone()),
                plan_sha256: s.plan.sha256.clone(),
                plan_generation: Some(s.plan.generation),
                error: None,
                accounts: s.summary.accounts,
                failing: s.summary.failing,
            },
            Err(e) => {
                problems.push(format!(
                    "{} is unreachable: {e}; its accounts are missing from this view",
                    name(a.last_shard, &a.url)
                ));
                ShardHealth {
                    url: a.url.clone(),
                    shard: a.last_shard,
                    reachable: false,
                    answered_at: a.answered_at.map(rfc3339),
                    latency_ms: a.latency_ms,
                    version: None,
                    plan_sha256: None,
                    plan_generation: None,
                    error: Some(e.clone()),
                    accounts: 0,
                    failing: 0,
                }
            }
        };
        shards.push(health);
        if let Ok(s) = a.result {
            docs.push((a.url, s));
        }
    }
    check_shards(&shards, &mut problems);

    // Plans: the same file everywhere, except while a new one rolls out.
    let hashes: BTreeSet<&str> = docs
        .iter()
        .filter_map(|(_, s)| s.plan.sha256.as_deref())
        .collect();
    if hashes.len() > 1 {
        let by: Vec<String> = docs
            .iter()
            .map(|(url, s)| {
                format!(
                    "{} runs {}",
                    name(Some(s.shard), url),
                    s.plan.sha256.as_deref().unwrap_or("an unknown plan")
                )
            })
            .collect();
        notes.push(format!(
            "the shards do not run the same plan ({}): expected while a plan change reaches \
             them one by one, wrong if it lasts",
            by.join(", ")
        ));
    }
    let plan = PlanView {
        path: docs
            .iter()
            .map(|(_, s)| s.plan.path.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        sha256: (hashes.len() == 1)
            .then(|| hashes.iter().next().map(|h| h.to_string()))
            .flatten(),
        generation: docs
            .iter()
            .map(|(_, s)| s.plan.generation)
            .max()
            .unwrap_or(0),
        loaded_at: docs
            .iter()
            .filter_map(|(_, s)| s.plan.loaded_at.clone())
            .max(),
        error: {
            let errors: Vec<String> = docs
                .iter()
                .filter_map(|(url, s)| {
                    s.plan
                        .error
                        .as_ref()
                        .map(|e| format!("{}: {}", name(Some(s.shard), url), e.trim_end()))
                })
                .collect();
            (!errors.is_empty()).then(|| errors.join("\n"))
        },
        error_at: docs
            .iter()
            .filter_map(|(_, s)| s.plan.error_at.clone())
            .max(),
    };

    let mut summary = SummaryView {
        accounts: 0,
        failing: 0,
        running: 0,
        synced: 0,
        paused: 0,
        messages_migrated: 0,
        bytes_migrated: 0,
    };
    let mut accounts: Vec<AccountView> = Vec::new();
    let mut resources = Vec::new();
    let mut platform: Option<UnitView> = None;
    let mut owners: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let started_at = docs.iter().map(|(_, s)| s.started_at.clone()).min();
    let stopping = docs.iter().any(|(_, s)| s.stopping);
    // Cutovers are the platform unit's, so shard 0's (a split run refuses them anyway):
    // passed through as they come; a domain reported twice (an old and a new N while
    // resharding) keeps the first shard's view.
    let mut cutovers: Vec<crate::cutover::view::CutoverView> = Vec::new();
    for (_, s) in &docs {
        for c in &s.cutovers {
            if !cutovers.iter().any(|x| x.domain == c.domain) {
                cutovers.push(c.clone());
            }
        }
    }
    for (_, s) in docs {
        let index = s.shard.index;
        let t = &s.summary;
        summary.accounts += t.accounts;
        summary.failing += t.failing;
        summary.running += t.running;
        summary.synced += t.synced;
        summary.paused += t.paused;
        summary.messages_migrated += t.messages_migrated;
        summary.bytes_migrated += t.bytes_migrated;
        for mut a in s.accounts {
            owners.entry(a.address.clone()).or_default().push(index);
            a.shard = Some(index);
            accounts.push(a);
        }
        for mut r in s.resources {
            r.shard = Some(index);
            resources.push(r);
        }
        if let Some(p) = s.platform {
            platform = Some(match platform {
                None => p,
                Some(q) => merge_units(q, p),
            });
        }
    }
    for (address, shards) in owners.iter().filter(|(_, s)| s.len() > 1) {
        let list: Vec<String> = shards.iter().map(|i| i.to_string()).collect();
        problems.push(format!(
            "account {address} is claimed by shards {}: two processes copy it; check that every \
             shard runs with the same number of shards (--shard I/N) and its own state",
            list.join(" and ")
        ));
    }
    accounts.sort_by(|a, b| {
        (a.health.rank(), &a.address, a.shard).cmp(&(b.health.rank(), &b.address, b.shard))
    });
    resources.sort_by(|a, b| (&a.id, a.shard).cmp(&(&b.id, b.shard)));
    Snapshot {
        version: env!("CARGO_PKG_VERSION").to_string(),
        shard: Shard::WHOLE,
        now: rfc3339(now),
        started_at: started_at.unwrap_or_else(|| rfc3339(now)),
        stopping,
        plan,
        summary,
        accounts,
        platform,
        resources,
        shards,
        problems,
        notes,
        cutovers,
    }
}

/// Platform steps belong to shard 0; should two shards report some (an old and a new N while
/// resharding), their counts add up and the first error stays.
fn merge_units(a: UnitView, b: UnitView) -> UnitView {
    UnitView {
        state: if a.state == crate::watch::status::RunState::Idle {
            b.state
        } else {
            a.state
        },
        failures: a.failures.max(b.failures),
        last_error: a.last_error.or(b.last_error),
        error_kind: a.error_kind.or(b.error_kind),
        next_run: match (a.next_run, b.next_run) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        steps_total: a.steps_total + b.steps_total,
        steps_done: a.steps_done + b.steps_done,
    }
}

/// The shards must be 0..N of one N, each once.
fn check_shards(shards: &[ShardHealth], problems: &mut Vec<String>) {
    let reachable: Vec<(&ShardHealth, Shard)> = shards
        .iter()
        .filter(|h| h.reachable)
        .filter_map(|h| h.shard.map(|s| (h, s)))
        .collect();
    let counts: BTreeSet<u32> = reachable.iter().map(|(_, s)| s.count).collect();
    if counts.len() > 1 {
        let by: Vec<String> = reachable
            .iter()
            .map(|(h, s)| format!("{} says {}/{}", h.url, s.index, s.count))
            .collect();
        problems.push(format!(
            "the shards disagree on their number ({}): accounts may be copied twice or not at \
             all; give every shard the same N (--shard I/N, or MAILSHIFT_SHARDS)",
            by.join(", ")
        ));
        return;
    }
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (h, s) in &reachable {
        if let Some(first) = seen.insert(s.index, &h.url) {
            problems.push(format!(
                "{first} and {} both say they are shard {} of {}: give each its own index",
                h.url, s.index, s.count
            ));
        }
    }
    let unreachable = shards.iter().any(|h| !h.reachable);
    if let Some(&n) = counts.iter().next()
        && !unreachable
    {
        let missing: Vec<String> = (0..n)
            .filter(|i| !seen.contains_key(i))
            .map(|i| i.to_string())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "shard {} of {n} was not asked: this view lacks its accounts; give every \
                 shard's URL",
                missing.join(", ")
            ));
        }
    }
}

/// How a shard is named in a sentence: its number when known, with its URL.
fn name(shard: Option<Shard>, url: &str) -> String {
    match shard {
        Some(s) => format!("shard {}/{} ({url})", s.index, s.count),
        None => format!("the shard at {url}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned `/api/status` of a watch (shard 2 of 10), as a shard would serve it.
    fn doc(index: u32, count: u32, addresses: &[&str]) -> Snapshot {
        let mut s: Snapshot =
            serde_json::from_str(include_str!("../status/testdata/status.json")).unwrap();
        s.shard = Shard::new(index, count).unwrap();
        let template = s.accounts[1].clone();
        s.accounts = addresses
            .iter()
            .map(|a| {
                let mut v = template.clone();
                v.address = a.to_string();
                v.messages_migrated = 10;
                v
            })
            .collect();
        s.summary.accounts = addresses.len();
        s.summary.failing = 0;
        s.summary.messages_migrated = 10 * addresses.len() as u64;
        s
    }

    fn answer(url: &str, result: Result<Snapshot, String>) -> Answer {
        Answer {
            url: url.into(),
            result,
            answered_at: Some(1_800_000_000),
            latency_ms: Some(3),
            last_shard: None,
        }
    }

    #[test]
    fn the_pinned_status_document_reads_back_as_written() {
        let text = include_str!("../status/testdata/status.json");
        let s: Snapshot = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string_pretty(&s).unwrap(), text);
    }

    #[test]
    fn accounts_and_totals_of_every_shard_are_merged() {
        let m = merge(
            vec![
                answer(
                    "http://a/api/status",
                    Ok(doc(0, 2, &["x@e.org", "y@e.org"])),
                ),
                answer("http://b/api/status", Ok(doc(1, 2, &["z@e.org"]))),
            ],
            1_800_000_000,
        );
        assert_eq!(m.shard, Shard::WHOLE);
        assert_eq!(m.summary.accounts, 3);
        assert_eq!(m.summary.messages_migrated, 30);
        let rows: Vec<(&str, Option<u32>)> = m
            .accounts
            .iter()
            .map(|a| (a.address.as_str(), a.shard))
            .collect();
        assert_eq!(
            rows,
            [
                ("x@e.org", Some(0)),
                ("y@e.org", Some(0)),
                ("z@e.org", Some(1))
            ]
        );
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert_eq!(m.shards.len(), 2);
        assert!(m.shards.iter().all(|h| h.reachable));
        assert_eq!(m.resources.len(), 6, "both shards' resources, each marked");
        assert!(m.resources.iter().any(|r| r.shard == Some(1)));
    }

    /// Shard 0's cutovers (a JSON document as a watch serves it) pass through the merge, to
    /// the text `status --from` prints; an older shard's document without them still parses.
    #[test]
    fn shard_zeros_cutovers_pass_through_the_merged_view() {
        let mut text: serde_json::Value =
            serde_json::from_str(include_str!("../status/testdata/status.json")).unwrap();
        assert!(
            text.get("cutovers").is_none(),
            "the pinned document is an older shard's"
        );
        text["cutovers"] = serde_json::json!([{
            "domain": "example.com",
            "zone": "example.com",
            "provider": "rfc2136",
            "steps": [
                {"id": "cutover/example.com/lower-ttl", "state": "done",
                 "at": "2025-12-04T21:00:00Z", "text": "done 2025-12-04 21:00:00 UTC"},
                {"id": "cutover/example.com/switch", "state": "drift",
                 "detail": "example.com MX was changed", "text": "drift awaiting ack"}
            ]
        }]);
        let mut zero: Snapshot = serde_json::from_value(text).unwrap();
        zero.shard = Shard::new(0, 2).unwrap();
        let m = merge(
            vec![
                answer("http://a/api/status", Ok(zero)),
                answer("http://b/api/status", Ok(doc(1, 2, &["z@e.org"]))),
            ],
            1_800_000_000,
        );
        assert_eq!(m.cutovers.len(), 1);
        assert_eq!(m.cutovers[0].steps[1].state, "drift");
        assert!(m.cutovers[0].problem());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json["cutovers"][0]["steps"][1]["detail"],
            "example.com MX was changed"
        );
        let out = crate::watch::aggregate::text::render(&m);
        assert!(
            out.contains(
                "example.com  cutover 1/2 steps done (zone: example.com, rfc2136)\n  cutover:\n    \
                 = cutover/example.com/lower-ttl: done 2025-12-04 21:00:00 UTC\n    \
                 ! cutover/example.com/switch: drift awaiting ack\n"
            ),
            "{out}"
        );
        let page = crate::watch::page::render(&m);
        assert!(page.contains("<h2>Cutover of example.com</h2>"), "{page}");
        assert!(
            page.contains("data-waiting=\"cutover/example.com/switch\""),
            "{page}"
        );
    }

    #[test]
    fn an_unreachable_shard_and_a_doubly_claimed_account_are_problems() {
        let m = merge(
            vec![
                answer("http://a/api/status", Ok(doc(0, 3, &["x@e.org"]))),
                answer("http://b/api/status", Err("connection refused".into())),
                answer("http://c/api/status", Ok(doc(2, 3, &["x@e.org"]))),
            ],
            1_800_000_000,
        );
        assert_eq!(m.problems.len(), 2, "{:?}", m.problems);
        assert!(m.problems[0].contains("http://b/api/status is unreachable: connection refused"));
        assert!(
            m.problems[1].contains("account x@e.org is claimed by shards 0 and 2"),
            "{:?}",
            m.problems
        );
        assert!(!m.shards[1].reachable);
        assert_eq!(m.shards[1].error.as_deref(), Some("connection refused"));
        assert_eq!(m.accounts.len(), 2, "both claims shown, neither hidden");
    }

    #[test]
    fn shards_must_agree_on_n_and_be_each_asked_once() {
        let m = merge(
            vec![
                answer("http://a/api/status", Ok(doc(0, 3, &[]))),
                answer("http://b/api/status", Ok(doc(1, 4, &[]))),
            ],
            0,
        );
        assert!(
            m.problems[0].contains("disagree on their number"),
            "{:?}",
            m.problems
        );
        let m = merge(
            vec![
                answer("http://a/api/status", Ok(doc(1, 3, &[]))),
                answer("http://b/api/status", Ok(doc(1, 3, &[]))),
            ],
            0,
        );
        assert_eq!(m.problems.len(), 2, "{:?}", m.problems);
        assert!(m.problems[0].contains("both say they are shard 1 of 3"));
        assert!(m.problems[1].contains("shard 0, 2 of 3 was not asked"));
    }

    #[test]
    fn different_plans_are_a_note_not_a_problem() {
        let mut b = doc(1, 2, &[]);
        b.plan.sha256 = Some("0123456789abcdef".into());
        let m = merge(
            vec![
                answer("http://a/api/status", Ok(doc(0, 2, &[]))),
                answer("http://b/api/status", Ok(b)),
            ],
            0,
        );
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert!(
            m.notes[0].contains("do not run the same plan"),
            "{:?}",
            m.notes
        );
        assert_eq!(m.plan.sha256, None);
    }
}
