//! How `plan` shows a domain's cutover: each step with its address, whether it is done, and
//! when it may run; the records it writes; and a forced switch, loudly.

use mailshift_core::cutover::{CutoverRecord, Step};

use super::Cutover;
use crate::render::time::human;

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
        out.push_str(&format!(
            "  rolled back at {}: give `cutover.at` a new time to cut over again\n",
            when(at)
        ));
    }
    let mut before_done = true;
    for (step, done, due) in c.schedule(record) {
        let address = step.address(&c.domain);
        let line = match (done, due) {
            (Some(at), _) => format!("  = {address}: done {}", when(at)),
            (None, Some(due)) => format!("  ~ {address}: may run from {}", when(due)),
            (None, None) if step == Step::LowerTtl || step == Step::Switch => {
                format!("  ~ {address}: not scheduled (no `cutover.at`)")
            }
            (None, None) if before_done => format!("  ~ {address}: next"),
            (None, None) => format!("  ~ {address}: after the step above"),
        };
        before_done = done.is_some();
        out.push_str(&line);
        out.push('\n');
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
            out.push_str(&format!(
                "      !! switched although not whole: {}\n",
                r.forced.join(", ")
            ));
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
}
