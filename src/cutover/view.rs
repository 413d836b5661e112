//! How `plan` shows a domain's cutover: each step with its address, whether it is done, and
//! when it may run; the records it writes; and a forced switch, loudly.

use mailshift_core::cutover::{CutoverRecord, LastStop, Step, StopKind};

use super::Cutover;
use crate::render::time::{human, minute};

fn when(secs: i64) -> String {
    human(u64::try_from(secs).unwrap_or(0))
}

/// Every domain's cutover section, for `plan`: the domains with a `dns:` zone.
pub fn plan_sections(
    plan: &mailshift_core::plan::model::Plan,
    records: &std::collections::BTreeMap<String, CutoverRecord>,
) -> String {
    let mut out = String::new();
    for d in &plan.domains {
        let Some(zone) = &d.dns else { continue };
        let name = d.name.to_ascii_lowercase();
        let apex = zone.zone.clone().unwrap_or_else(|| name.clone());
        let where_ = format!("{apex}, {}", zone.provider.as_str());
        match Cutover::from_plan(plan, d) {
            Ok(c) => out.push_str(&human_view(&c, &where_, records.get(&name))),
            Err(e) => out.push_str(&format!("\nCutover of {name}: cannot be planned: {e}\n")),
        }
    }
    out
}

/// `plan --refresh`: for each domain whose cutover wrote or read its zone, the records changed
/// by hand there since (drift), which the next step will not overwrite.
pub async fn drift_lines(
    loaded: &crate::plan::Loaded,
    records: &std::collections::BTreeMap<String, CutoverRecord>,
) -> String {
    let mut out = String::new();
    for d in loaded.plan.domains.iter().filter(|d| d.dns.is_some()) {
        let name = d.name.to_ascii_lowercase();
        let Some(record) = records.get(&name) else {
            continue;
        };
        let found = async {
            let c = super::zones::cutover(loaded, d).await?;
            let opened = super::zones::open(loaded, d).await?;
            c.drift(opened.zone.as_ref(), record).await
        }
        .await;
        match found {
            Ok(drift) if drift.is_empty() => {}
            Ok(drift) => {
                out.push_str(&format!(
                    "\nDrift in the zone of {name} (not overwritten: put it back, or `mailshift ack PLAN cutover/{name}/switch` to keep it):\n"
                ));
                for d in drift {
                    out.push_str(&format!("  ! {d}\n"));
                }
            }
            Err(e) => out.push_str(&format!("\nThe zone of {name} could not be read: {e}\n")),
        }
    }
    out
}

/// Where one step of a cutover stands: from the plan and the state's record, and, for
/// `status` and the watch's page, where the last run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    Done(i64),
    /// Not done; may run from then.
    MayRunFrom(i64),
    /// The lowering and the switch without `cutover.at`.
    NotScheduled,
    /// The step after the last one done.
    Next,
    /// Behind a step not done yet.
    AfterAbove,
    /// The last run stopped here: waiting, refused, drift, failed.
    Stopped(LastStop),
}

impl StepState {
    /// The `state` of `/api/status` and `status --json`.
    pub fn label(&self) -> &'static str {
        match self {
            StepState::Done(_) => "done",
            StepState::MayRunFrom(_) => "due",
            StepState::NotScheduled => "not-scheduled",
            StepState::Next => "next",
            StepState::AfterAbove => "pending",
            StepState::Stopped(l) => l.kind.as_str(),
        }
    }

    /// Done at, may run from, or asked again at (Unix seconds).
    pub fn at(&self) -> Option<i64> {
        match self {
            StepState::Done(t) | StepState::MayRunFrom(t) => Some(*t),
            StepState::Stopped(l) => l.until,
            _ => None,
        }
    }

    /// Whether a person must act: `status` exits 1, the page shows it as failing.
    pub fn is_problem(&self) -> bool {
        matches!(self, StepState::Stopped(l) if l.kind.is_problem())
    }

    /// `=` done, `!` a person must act, `~` not yet.
    pub fn marker(&self) -> char {
        match self {
            StepState::Done(_) => '=',
            s if s.is_problem() => '!',
            _ => '~',
        }
    }

    /// The line people read after the step's address (`address`: what `ack` takes).
    pub fn text(&self, address: &str) -> String {
        match self {
            StepState::Done(at) => format!("done {}", when(*at)),
            StepState::MayRunFrom(due) => format!("may run from {}", when(*due)),
            StepState::NotScheduled => "not scheduled (no `cutover.at`)".into(),
            StepState::Next => "next".into(),
            StepState::AfterAbove => "after the step above".into(),
            StepState::Stopped(l) => match l.kind {
                StopKind::Waiting => match l.until {
                    Some(u) => format!(
                        "waits until {}: {}",
                        minute(u64::try_from(u).unwrap_or(0)),
                        l.why
                    ),
                    None => format!("waits: {}", l.why),
                },
                StopKind::Refused => format!(
                    "refused since {}: accounts are not whole: {}; fix them, or set `cutover: {{force: true}}` on the domain",
                    when(l.since),
                    l.why
                ),
                StopKind::Drift => format!(
                    "drift awaiting ack since {}: {}; put the record back, or keep it with `mailshift ack PLAN {address}`",
                    when(l.since),
                    l.why
                ),
                StopKind::Failed => format!("failed {}: {}", when(l.since), l.why),
            },
        }
    }
}

/// Each step's [`StepState`], in order; `last_stop`: with where the last run stopped.
pub fn step_states(
    c: &Cutover,
    record: Option<&CutoverRecord>,
    last_stop: bool,
) -> Vec<(Step, StepState)> {
    // A stop older than a rollback is the rolled-back cutover's: not shown.
    let stop = record.filter(|_| last_stop).and_then(|r| {
        r.last_stop
            .as_ref()
            .filter(|l| r.rolled_back.is_none_or(|(at, _)| l.since >= at))
    });
    let mut before_done = true;
    c.schedule(record)
        .into_iter()
        .map(|(step, done, due)| {
            let state = match (done, due) {
                (Some(at), _) => StepState::Done(at),
                (None, _) if stop.is_some_and(|l| l.step == step) => {
                    StepState::Stopped(stop.cloned().expect("checked above"))
                }
                (None, Some(due)) => StepState::MayRunFrom(due),
                (None, None) if step == Step::LowerTtl || step == Step::Switch => {
                    StepState::NotScheduled
                }
                (None, None) if before_done => StepState::Next,
                (None, None) => StepState::AfterAbove,
            };
            before_done = done.is_some();
            (step, state)
        })
        .collect()
}

fn rolled_back_text(at: i64) -> String {
    format!(
        "rolled back at {}: give `cutover.at` a new time to cut over again",
        when(at)
    )
}

fn forced_text(accounts: &[String]) -> String {
    format!("switched although not whole: {}", accounts.join(", "))
}

/// Why a switch was refused, as [`LastStop::why`] keeps it: each account and why.
pub fn refused_why(accounts: &[super::NotWhole]) -> String {
    accounts
        .iter()
        .map(|n| format!("{} {}", n.account, n.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One step of a domain's cutover in `/api/status` and `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepView {
    /// `cutover/example.com/switch`.
    pub id: String,
    /// done, due, not-scheduled, next, pending, waiting, refused, drift, failed.
    pub state: String,
    /// Done at, may run from, or asked again at (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What it waits for, why it is refused, the drift, the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The line `status` prints after the id (the page shows it too).
    pub text: String,
}

/// A domain's cutover in `/api/status` and `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CutoverView {
    pub domain: String,
    /// The zone's apex.
    pub zone: String,
    /// ovh, rfc2136, manual.
    pub provider: String,
    pub steps: Vec<StepView>,
    /// A forced switch, a rollback, a cutover that cannot be planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl CutoverView {
    /// A step refused, in drift, or failed: `status` exits 1.
    pub fn problem(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.state.as_str(), "refused" | "drift" | "failed"))
    }

    /// What it waits for now: the first step not done, with its line.
    pub fn waiting_for(&self) -> Option<&StepView> {
        self.steps.iter().find(|s| s.state != "done")
    }

    /// `status`'s section: the domain, then a `cutover:` block with a line per step.
    pub fn text(&self) -> String {
        let done = self.steps.iter().filter(|s| s.state == "done").count();
        let mut out = format!(
            "{}  cutover {done}/{} steps done (zone: {}, {})\n  cutover:\n",
            self.domain,
            self.steps.len(),
            self.zone,
            self.provider
        );
        for s in &self.steps {
            let marker = match s.state.as_str() {
                "done" => '=',
                "refused" | "drift" | "failed" => '!',
                _ => '~',
            };
            out.push_str(&format!("    {marker} {}: {}\n", s.id, s.text));
        }
        for n in &self.notes {
            out.push_str(&format!("    !! {n}\n"));
        }
        out
    }
}

/// Every domain's cutover (the domains with a `dns:` zone) as `status` and `/api/status`
/// show it: each step's state, with where the last run stopped.
pub fn cutover_views(
    plan: &mailshift_core::plan::model::Plan,
    records: &std::collections::BTreeMap<String, CutoverRecord>,
) -> Vec<CutoverView> {
    let mut out = Vec::new();
    for d in &plan.domains {
        let Some(zone) = &d.dns else { continue };
        let name = d.name.to_ascii_lowercase();
        let record = records.get(&name);
        let mut view = CutoverView {
            zone: zone.zone.clone().unwrap_or_else(|| name.clone()),
            provider: zone.provider.as_str().to_string(),
            domain: name,
            steps: Vec::new(),
            notes: Vec::new(),
        };
        match Cutover::from_plan(plan, d) {
            Ok(c) => {
                for (step, state) in step_states(&c, record, true) {
                    let id = step.address(&c.domain);
                    view.steps.push(StepView {
                        text: state.text(&id),
                        state: state.label().to_string(),
                        at: state
                            .at()
                            .map(|t| crate::render::time::rfc3339(u64::try_from(t).unwrap_or(0))),
                        detail: match &state {
                            StepState::Stopped(l) => Some(l.why.clone()),
                            _ => None,
                        },
                        id,
                    });
                }
            }
            Err(e) => view.notes.push(format!("cannot be planned: {e}")),
        }
        if let Some(r) = record {
            if !r.forced.is_empty() && r.is_done(Step::Switch).is_some() {
                view.notes.push(forced_text(&r.forced));
            }
            if let Some((at, _)) = r.rolled_back {
                view.notes.push(rolled_back_text(at));
            }
        }
        out.push(view);
    }
    out
}

/// The cutover's section of `plan`'s human view.
pub fn human_view(c: &Cutover, zone: &str, record: Option<&CutoverRecord>) -> String {
    let mut out = format!("\nCutover of {} (zone: {zone}):\n", c.domain);
    if c.timing.force {
        out.push_str(
            "  !! FORCED: the records switch even if an account failed its last sync or misses messages\n",
        );
    }
    if let Some(r) = record
        && let Some((at, _)) = r.rolled_back
    {
        out.push_str(&format!("  {}\n", rolled_back_text(at)));
    }
    // `plan` shows when each step may run; where the last run stopped is `status`'s.
    for (step, state) in step_states(c, record, false) {
        let address = step.address(&c.domain);
        let done = match state {
            StepState::Done(at) => Some(at),
            _ => None,
        };
        out.push_str(&format!(
            "  {} {address}: {}\n",
            state.marker(),
            state.text(&address)
        ));
        if step == Step::Switch && done.is_none() {
            if c.desired.is_empty() {
                out.push_str(
                    "      the records OVHcloud's DNS diagnosis expects for the domain (read at the switch)\n",
                );
            }
            for d in &c.desired {
                out.push_str(&format!(
                    "      {} {} -> {}{}\n",
                    d.set.name,
                    d.set.rtype,
                    d.set.data.join(" | "),
                    if d.spf_only {
                        " (the name's other TXT strings kept)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if step == Step::Switch
            && done.is_some()
            && let Some(r) = record.filter(|r| !r.forced.is_empty())
        {
            out.push_str(&format!("      !! {}\n", forced_text(&r.forced)));
        }
    }
    out.push_str(&format!(
        "  accounts: {}\n",
        if c.accounts.is_empty() {
            "none of the plan's".to_string()
        } else {
            c.accounts.join(", ")
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use mailshift_core::cutover::{Desired, Timing};
    use mailshift_core::dns::{RecordSet, RecordType};

    use super::*;

    #[test]
    fn plan_shows_each_step_and_when_it_may_run() {
        let c = Cutover {
            domain: "example.com".into(),
            desired: vec![Desired {
                set: RecordSet::new(
                    "example.com",
                    RecordType::Mx,
                    0,
                    vec!["10 mx.new.example.net".into()],
                ),
                spf_only: false,
            }],
            timing: Timing {
                at: Some(1_764_968_400),
                lower_ttl_ahead: 86_400,
                low_ttl: 300,
                force: true,
            },
            accounts: vec!["a@example.com".into()],
        };
        let text = human_view(&c, "example.com (rfc2136)", None);
        assert_eq!(
            text,
            "
Cutover of example.com (zone: example.com (rfc2136)):
  !! FORCED: the records switch even if an account failed its last sync or misses messages
  ~ cutover/example.com/lower-ttl: may run from 2025-12-04 21:00:00 UTC
  ~ cutover/example.com/switch: may run from 2025-12-05 21:00:00 UTC
      example.com MX -> 10 mx.new.example.net
  ~ cutover/example.com/propagation: after the step above
  ~ cutover/example.com/final-sync: after the step above
  ~ cutover/example.com/mark-cut-over: after the step above
  ~ cutover/example.com/raise-ttl: after the step above
  accounts: a@example.com
"
        );
        let record = CutoverRecord {
            done: vec![
                (Step::LowerTtl, 1_764_882_000),
                (Step::Switch, 1_764_968_400),
            ],
            forced: vec!["a@example.com".into()],
            ..CutoverRecord::default()
        };
        let text = human_view(&c, "example.com", Some(&record));
        assert!(text.contains("  = cutover/example.com/switch: done 2025-12-05 21:00:00 UTC\n      !! switched although not whole: a@example.com\n  ~ cutover/example.com/propagation: next\n"), "{text}");
    }

    fn plan() -> mailshift_core::plan::model::Plan {
        use mailshift_core::plan::load::{Format, load_str};
        let text = "version: 1
platforms:
  old: {type: imap, imap: {host: old.example.net}}
  new: {type: imap, imap: {host: new.example.net}}
domains:
  - name: example.com
    platform: new
    mode: authoritative
    dns: {provider: manual, server: 127.0.0.1:53}
    records:
      - {name: '@', type: MX, values: ['10 mx.new.example.net.']}
    cutover: {at: '2025-12-05T21:00:00Z'}
accounts:
  - {address: a@example.com, from: old, to: new, source: {password: {env: A}}, destination: {password: {env: A}}}
";
        load_str(
            text,
            Format::Yaml,
            std::path::Path::new("p.yaml"),
            std::path::Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{}", e.render()))
        .plan
    }

    fn stop(step: Step, kind: StopKind, until: Option<i64>, why: &str) -> LastStop {
        LastStop {
            step,
            kind,
            since: 1_764_968_400,
            until,
            why: why.into(),
        }
    }

    fn views(record: CutoverRecord) -> CutoverView {
        let records = std::collections::BTreeMap::from([("example.com".to_string(), record)]);
        let mut v = cutover_views(&plan(), &records);
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    /// `status` mid-cutover: the switch done, the propagation waiting for a server.
    #[test]
    fn status_shows_steps_done_and_what_the_next_waits_for() {
        let v = views(CutoverRecord {
            done: vec![
                (Step::LowerTtl, 1_764_882_000),
                (Step::Switch, 1_764_968_400),
            ],
            last_stop: Some(stop(
                Step::Propagation,
                StopKind::Waiting,
                Some(1_764_968_430),
                "127.0.0.1:5301 still answers example.com MX with 10 mx.old.example.net",
            )),
            ..CutoverRecord::default()
        });
        assert!(!v.problem());
        assert_eq!(
            v.text(),
            "example.com  cutover 2/6 steps done (zone: example.com, manual)
  cutover:
    = cutover/example.com/lower-ttl: done 2025-12-04 21:00:00 UTC
    = cutover/example.com/switch: done 2025-12-05 21:00:00 UTC
    ~ cutover/example.com/propagation: waits until 2025-12-05 21:01 UTC: 127.0.0.1:5301 still answers example.com MX with 10 mx.old.example.net
    ~ cutover/example.com/final-sync: after the step above
    ~ cutover/example.com/mark-cut-over: after the step above
    ~ cutover/example.com/raise-ttl: after the step above
"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["domain"], "example.com");
        assert_eq!(json["provider"], "manual");
        assert_eq!(json["steps"][1]["id"], "cutover/example.com/switch");
        assert_eq!(json["steps"][1]["state"], "done");
        assert_eq!(json["steps"][1]["at"], "2025-12-05T21:00:00Z");
        assert_eq!(json["steps"][2]["state"], "waiting");
        assert_eq!(json["steps"][2]["at"], "2025-12-05T21:00:30Z");
        assert!(
            json["steps"][2]["detail"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:5301 still answers")
        );
        assert_eq!(json["steps"][3]["state"], "pending");
        assert!(json["steps"][3].get("detail").is_none(), "{json}");
        // What the page and older readers parse back.
        let back: CutoverView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
        assert_eq!(
            v.waiting_for().unwrap().id,
            "cutover/example.com/propagation"
        );
    }

    /// A refused switch and a drift are problems (`status` exits 1), with the fix; a cutover
    /// not started shows when each step may run.
    #[test]
    fn refused_and_drift_are_problems_with_their_fix() {
        let fresh = views(CutoverRecord::default());
        assert!(!fresh.problem());
        assert_eq!(fresh.steps[0].state, "due");
        assert_eq!(fresh.steps[0].text, "may run from 2025-12-04 21:00:00 UTC");
        assert_eq!(fresh.steps[2].state, "pending");

        let refused = views(CutoverRecord {
            done: vec![(Step::LowerTtl, 1_764_882_000)],
            last_stop: Some(stop(
                Step::Switch,
                StopKind::Refused,
                None,
                "a@example.com its last sync failed: connection refused",
            )),
            ..CutoverRecord::default()
        });
        assert!(refused.problem());
        assert_eq!(refused.steps[1].state, "refused");
        assert!(refused.text().contains(
            "    ! cutover/example.com/switch: refused since 2025-12-05 21:00:00 UTC: accounts are not whole: a@example.com its last sync failed: connection refused; fix them, or set `cutover: {force: true}` on the domain\n"
        ), "{}", refused.text());

        let drift = views(CutoverRecord {
            done: vec![(Step::LowerTtl, 1_764_882_000)],
            last_stop: Some(stop(
                Step::Switch,
                StopKind::Drift,
                None,
                "example.com MX was changed in the zone",
            )),
            ..CutoverRecord::default()
        });
        assert!(drift.problem());
        assert_eq!(drift.steps[1].state, "drift");
        assert!(
            drift.steps[1]
                .text
                .ends_with("keep it with `mailshift ack PLAN cutover/example.com/switch`"),
            "{}",
            drift.steps[1].text
        );
        // A rollback since: the stop was the rolled-back cutover's.
        let rolled = views(CutoverRecord {
            rolled_back: Some((1_764_968_401, None)),
            last_stop: Some(stop(Step::Switch, StopKind::Drift, None, "x")),
            ..CutoverRecord::default()
        });
        assert!(!rolled.problem());
        assert!(rolled.notes[0].starts_with("rolled back at "), "{rolled:?}");
        // `plan` keeps showing when the step may run, not the last run's stop.
        let c = Cutover::from_plan(&plan(), &plan().domains[0]).unwrap();
        let record = CutoverRecord {
            last_stop: Some(stop(Step::LowerTtl, StopKind::Drift, None, "x")),
            ..CutoverRecord::default()
        };
        assert!(
            human_view(&c, "example.com", Some(&record)).contains(
                "  ~ cutover/example.com/lower-ttl: may run from 2025-12-04 21:00:00 UTC\n"
            )
        );
    }
}
