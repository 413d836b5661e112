//! What a domain's cutover writes, computed from the plan alone: the desired record sets (the
//! plan's `records`, else the destination platform's published ones) and the cutover's times.
//! The steps that write them live in the `mailshift` crate (`src/cutover/`); validation asks
//! here whether a domain's records can be known, so a plan whose cutover cannot run is refused
//! before anything starts.

use crate::dns::{RecordSet, RecordType, normalize_name};
use crate::plan::model::{
    Cutover, DEFAULT_LOW_TTL, DEFAULT_LOWER_TTL_AHEAD, DnsRecord, DnsRecordType, Domain, Plan,
    PlatformKind,
};

/// The TTL a record set gets back after the cutover when neither the plan nor the zone had one.
pub const DEFAULT_TTL: u32 = 3600;

/// One record set the cutover makes the zone hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Name, type and data; its `ttl` is the plan's, 0 when the plan gives none (then the
    /// zone's TTL before the cutover is put back, else [`DEFAULT_TTL`]).
    pub set: RecordSet,
    /// Whether the set is an SPF record among the name's other TXT records: only the
    /// `v=spf1` string is replaced, the others (site verifications...) are kept.
    pub spf_only: bool,
}

/// A cutover's settings with the defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Unix seconds of `cutover.at`; `None`: never due.
    pub at: Option<i64>,
    /// Seconds before `at` that the TTLs are lowered.
    pub lower_ttl_ahead: u64,
    pub low_ttl: u32,
    pub force: bool,
}

impl Timing {
    pub fn of(c: &Cutover) -> Timing {
        Timing {
            at: c.at.as_ref().and_then(|t| t.unix()),
            lower_ttl_ahead: c
                .lower_ttl_ahead
                .as_ref()
                .and_then(|i| i.secs())
                .unwrap_or(DEFAULT_LOWER_TTL_AHEAD),
            low_ttl: c.low_ttl.unwrap_or(DEFAULT_LOW_TTL),
            force: c.force.unwrap_or(false),
        }
    }

    /// When the TTLs may be lowered.
    pub fn lower_at(&self) -> Option<i64> {
        self.at
            .map(|at| at.saturating_sub(i64::try_from(self.lower_ttl_ahead).unwrap_or(i64::MAX)))
    }
}

/// The records Microsoft 365 and Google publish for a domain they receive mail for; `None`
/// for a platform whose records the plan must list (or, for OVHcloud, its diagnosis gives).
///
/// Microsoft 365: MX `0 <domain, dots as dashes>.mail.protection.outlook.com`, SPF
/// `include:spf.protection.outlook.com`, CNAME `autodiscover` → `autodiscover.outlook.com`
/// (learn.microsoft.com, "Add DNS records to connect your domain"; the pattern checked again
/// in 2026 against setup guides that quote it, which all say the admin center's value wins: a
/// tenant can be given another host, e.g. `*.mx.microsoft` with inbound DNSSEC, and the plan's
/// `records` then says so). Google Workspace: MX
/// `1 smtp.google.com`, SPF `include:_spf.google.com` (support.google.com/a/answer/174125,
/// 10 Oct 2023 single-MX form). DKIM keys are generated per tenant or per domain in the
/// admin consoles, so they are never defaulted: add them to `records`.
pub fn platform_records(kind: PlatformKind, domain: &str) -> Option<Vec<DnsRecord>> {
    let rec = |name: &str, rtype, value: String| DnsRecord {
        name: name.to_string(),
        rtype,
        values: vec![value],
        ttl: None,
    };
    match kind {
        PlatformKind::Microsoft365 => Some(vec![
            rec(
                "@",
                DnsRecordType::Mx,
                format!(
                    "0 {}.mail.protection.outlook.com.",
                    domain.replace('.', "-")
                ),
            ),
            rec(
                "@",
                DnsRecordType::Txt,
                "v=spf1 include:spf.protection.outlook.com -all".into(),
            ),
            rec(
                "autodiscover",
                DnsRecordType::Cname,
                "autodiscover.outlook.com.".into(),
            ),
        ]),
        PlatformKind::Gmail => Some(vec![
            rec("@", DnsRecordType::Mx, "1 smtp.google.com.".into()),
            rec(
                "@",
                DnsRecordType::Txt,
                "v=spf1 include:_spf.google.com ~all".into(),
            ),
        ]),
        _ => None,
    }
}

/// `@` → the domain, `autodiscover` → `autodiscover.example.com`, `x.example.org.` as is.
pub fn absolute_name(name: &str, domain: &str) -> String {
    let name = name.trim();
    if name == "@" || name.is_empty() {
        normalize_name(domain)
    } else if name.ends_with('.') {
        normalize_name(name)
    } else {
        normalize_name(&format!("{name}.{domain}"))
    }
}

pub fn record_type(t: DnsRecordType) -> RecordType {
    match t {
        DnsRecordType::Mx => RecordType::Mx,
        DnsRecordType::Txt => RecordType::Txt,
        DnsRecordType::Srv => RecordType::Srv,
        DnsRecordType::Cname => RecordType::Cname,
    }
}

/// The platform (its key in the plan) whose DNS diagnosis gives the domain's records when
/// the cutover runs: an OVHcloud destination and no `records:` in the plan. OVHcloud says in
/// its diagnosis which MX, SPF and autodiscover records each service expects, so they are read
/// from it (an API call) rather than written into mailshift.
pub fn records_from_diagnosis<'a>(plan: &'a Plan, domain: &Domain) -> Option<&'a str> {
    if domain.records.is_some() {
        return None;
    }
    plan.platforms
        .get_key_value(&domain.platform)
        .filter(|(_, p)| p.kind.is_ovh())
        .map(|(k, _)| k.as_str())
}

/// The domain's desired record sets, or why they cannot be known. Empty for a domain whose
/// records come from its OVHcloud platform's diagnosis ([`records_from_diagnosis`]): those are
/// read when the cutover runs.
pub fn desired(plan: &Plan, domain: &Domain) -> Result<Vec<Desired>, String> {
    if records_from_diagnosis(plan, domain).is_some() {
        return Ok(Vec::new());
    }
    let listed = match &domain.records {
        Some(r) => r.clone(),
        None => {
            let kind = plan
                .platforms
                .get(&domain.platform)
                .map(|p| p.kind)
                .ok_or_else(|| format!("unknown platform `{}`", domain.platform))?;
            platform_records(kind, &domain.name).ok_or_else(|| {
                format!(
                    "mailshift knows no published records for a `{}` platform",
                    kind.as_str()
                )
            })?
        }
    };
    let mut out: Vec<Desired> = Vec::new();
    for r in &listed {
        let name = absolute_name(&r.name, &domain.name);
        let rtype = record_type(r.rtype);
        let set = RecordSet::new(&name, rtype, r.ttl.unwrap_or(0), r.values.clone());
        let spf_only = rtype == RecordType::Txt && set.data.iter().any(|d| is_spf(d));
        if let Some(same) = out
            .iter_mut()
            .find(|d| d.set.name == set.name && d.set.rtype == set.rtype)
        {
            // Two entries of one name and type are one RRset.
            let mut data = same.set.data.clone();
            data.extend(set.data);
            same.set = RecordSet::new(&name, rtype, same.set.ttl.max(set.ttl), data);
            same.spf_only |= spf_only;
        } else {
            out.push(Desired { set, spf_only });
        }
    }
    Ok(out)
}

/// Whether a TXT string (normalized, quoted) is an SPF policy.
pub fn is_spf(data: &str) -> bool {
    data.trim_start_matches('"')
        .to_ascii_lowercase()
        .starts_with("v=spf1")
}

/// What the zone must hold for `desired`, given what it holds now: for an SPF record, the
/// name's other TXT strings are kept beside the new policy.
pub fn target(desired: &Desired, current: Option<&RecordSet>, ttl: u32) -> RecordSet {
    let mut data = desired.set.data.clone();
    if desired.spf_only
        && let Some(cur) = current
    {
        data.extend(cur.data.iter().filter(|d| !is_spf(d)).cloned());
    }
    RecordSet::new(&desired.set.name, desired.set.rtype, ttl, data)
}

/// The steps of a cutover, in the order they run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The TTL of the records that will change is lowered, `lower_ttl_ahead` before `at`.
    LowerTtl,
    /// The records are switched to the destination's, once `at` has come and the old TTL has
    /// run out, and only while every account of the domain is whole (or `force`).
    Switch,
    /// Every authoritative server answers the new records.
    Propagation,
    /// A last incremental sync of every account of the domain.
    FinalSync,
    /// The accounts are recorded as cut over: their syncs stop as with `cut_over: true`.
    MarkCutOver,
    /// The TTL is raised back.
    RaiseTtl,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::LowerTtl,
        Step::Switch,
        Step::Propagation,
        Step::FinalSync,
        Step::MarkCutOver,
        Step::RaiseTtl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::LowerTtl => "lower-ttl",
            Step::Switch => "switch",
            Step::Propagation => "propagation",
            Step::FinalSync => "final-sync",
            Step::MarkCutOver => "mark-cut-over",
            Step::RaiseTtl => "raise-ttl",
        }
    }

    /// `cutover/example.com/switch`: how `plan`, `apply` and the state name the step.
    pub fn address(self, domain: &str) -> String {
        format!("cutover/{domain}/{}", self.as_str())
    }
}

/// What the zone held (or mailshift wrote) for one name and type; `set: None` is "no record".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub name: String,
    pub rtype: RecordType,
    pub set: Option<RecordSet>,
}

/// The state's record of one domain's cutover: which steps ran and when, what the zone held
/// before (for `rollback --cutover`), and what mailshift last wrote or read there (against
/// which a hand-made change is drift). Never a secret: names and record data only.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CutoverRecord {
    /// Steps done, with the Unix second each finished.
    #[serde(default)]
    pub done: Vec<(Step, i64)>,
    /// What the zone held for each name and type the cutover writes, read before its first
    /// write.
    #[serde(default)]
    pub previous: Vec<Held>,
    /// What mailshift last wrote, or read and accepted, for each of them.
    #[serde(default)]
    pub expected: Vec<Held>,
    /// The switch waits until then: the old TTL of the lowered records has run out.
    #[serde(default)]
    pub wait_until: Option<i64>,
    /// The accounts marked cut over (addresses, lower-case).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// The switch ran although an account was not whole (`force: true`).
    #[serde(default)]
    pub forced: Vec<String>,
    /// A rollback put the previous records back at this Unix second, for this `cutover.at`:
    /// the cutover does not start again until the plan gives another `at`.
    #[serde(default)]
    pub rolled_back: Option<(i64, Option<i64>)>,
    /// Watch mode's final sync: the sync point each account's copies must have passed (a
    /// run numbered higher started after the final sync became due).
    #[serde(default)]
    pub final_after: Option<u64>,
    /// Rollback's own progress: the previous records written, then propagated.
    #[serde(default)]
    pub rollback_done: Vec<(Step, i64)>,
    /// Where the last run stopped short of the end, and why: written by the executor after
    /// each run (`apply::cutover`), read by `status` and the watch's page, which contact no
    /// zone. `None`: the last run ended every due step, or none ran yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stop: Option<LastStop>,
}

/// How a cutover's last run stopped (see [`CutoverRecord::last_stop`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastStop {
    pub step: Step,
    pub kind: StopKind,
    /// Since when (Unix seconds): the first run that stopped there for the same reason.
    pub since: i64,
    /// When the step is asked again (waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// For people: what it waits for, why it is refused, the drift, the error.
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopKind {
    /// Not due yet, or waiting for something outside (propagation, a person's records).
    Waiting,
    /// The switch is refused: accounts of the domain are not whole.
    Refused,
    /// Records changed by hand: `mailshift ack PLAN cutover/DOMAIN/STEP` keeps them.
    Drift,
    /// The run failed (a zone that did not answer, ...): tried again at the next run.
    Failed,
}

impl StopKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StopKind::Waiting => "waiting",
            StopKind::Refused => "refused",
            StopKind::Drift => "drift",
            StopKind::Failed => "failed",
        }
    }

    /// Whether a person must act (a failed step counts too): `status` exits 1.
    pub fn is_problem(self) -> bool {
        self != StopKind::Waiting
    }
}

impl CutoverRecord {
    pub fn is_done(&self, step: Step) -> Option<i64> {
        self.done
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, at)| *at)
    }

    pub fn held<'a>(list: &'a [Held], name: &str, rtype: RecordType) -> Option<&'a Held> {
        list.iter().find(|h| h.name == name && h.rtype == rtype)
    }

    pub fn set_held(list: &mut Vec<Held>, held: Held) {
        match list
            .iter_mut()
            .find(|h| h.name == held.name && h.rtype == held.rtype)
        {
            Some(h) => *h = held,
            None => list.push(held),
        }
    }

    /// Whether the accounts are recorded as cut over.
    pub fn cut_over(&self) -> bool {
        self.is_done(Step::MarkCutOver).is_some() && !self.accounts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_against_the_domain() {
        assert_eq!(absolute_name("@", "Example.com"), "example.com");
        assert_eq!(
            absolute_name("autodiscover", "example.com"),
            "autodiscover.example.com"
        );
        assert_eq!(
            absolute_name("mx.example.org.", "example.com"),
            "mx.example.org"
        );
    }

    #[test]
    fn microsoft_365_mx_has_the_domain_in_dashes() {
        let r = platform_records(PlatformKind::Microsoft365, "a.example.com").unwrap();
        assert_eq!(
            r[0].values,
            vec!["0 a-example-com.mail.protection.outlook.com."]
        );
        assert!(platform_records(PlatformKind::Imap, "example.com").is_none());
    }

    #[test]
    fn spf_keeps_the_other_txt_strings() {
        let d = Desired {
            set: RecordSet::new(
                "example.com",
                RecordType::Txt,
                0,
                vec!["v=spf1 include:_spf.google.com ~all".into()],
            ),
            spf_only: true,
        };
        let cur = RecordSet::new(
            "example.com",
            RecordType::Txt,
            3600,
            vec![
                "v=spf1 include:mx.ovh.com ~all".into(),
                "google-site-verification=abc".into(),
            ],
        );
        let t = target(&d, Some(&cur), 300);
        assert_eq!(
            t.data,
            vec![
                "\"google-site-verification=abc\"".to_string(),
                "\"v=spf1 include:_spf.google.com ~all\"".to_string()
            ]
        );
        assert_eq!(t.ttl, 300);
    }
}
