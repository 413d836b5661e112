//! The cutover's steps on an in-memory zone whose authoritative servers lag behind it as the
//! test says, with accounts and records in memory: order, idempotence, refusal, drift,
//! rollback, and a kill between any two writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mailshift_core::cutover::{CutoverRecord, Desired, Step, Timing};
use mailshift_core::dns::{RecordSet, RecordType, Zone};
use mailshift_core::error::{ErrorKind, StepError};
use mailshift_core::plane::PlaneResult;

use super::*;

/// A zone in memory. `served` is what the authoritative servers answer: the primary's copy
/// once `sync_servers` is called, so "one server still has the old answer" is the test's to set.
#[derive(Default)]
struct MemZone {
    sets: Mutex<BTreeMap<(String, RecordType), RecordSet>>,
    servers: Mutex<Vec<BTreeMap<(String, RecordType), RecordSet>>>,
    writes: Mutex<u32>,
    /// Writes allowed before the zone fails every write (a kill in the middle of a step).
    fail_after: Mutex<Option<u32>>,
    manual: bool,
}

impl MemZone {
    fn new(sets: &[RecordSet]) -> MemZone {
        let z = MemZone::default();
        for s in sets {
            z.put(s.clone());
        }
        *z.servers.lock().unwrap() = vec![BTreeMap::new(), BTreeMap::new()];
        z.sync_servers(2);
        z
    }

    fn put(&self, s: RecordSet) {
        self.sets
            .lock()
            .unwrap()
            .insert((s.name.clone(), s.rtype), s);
    }

    fn get(&self, name: &str, rtype: RecordType) -> Option<RecordSet> {
        self.sets
            .lock()
            .unwrap()
            .get(&(name.to_string(), rtype))
            .cloned()
    }

    /// The first `n` servers catch up with the zone.
    fn sync_servers(&self, n: usize) {
        let sets = self.sets.lock().unwrap().clone();
        for s in self.servers.lock().unwrap().iter_mut().take(n) {
            *s = sets.clone();
        }
    }

    fn writes(&self) -> u32 {
        *self.writes.lock().unwrap()
    }

    fn count_write(&self) -> Result<(), StepError> {
        let mut w = self.writes.lock().unwrap();
        if let Some(limit) = *self.fail_after.lock().unwrap()
            && *w >= limit
        {
            return Err(StepError::new(ErrorKind::Network, "killed"));
        }
        *w += 1;
        Ok(())
    }
}

impl Zone for MemZone {
    fn apex(&self) -> &str {
        "example.com"
    }

    fn read<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Option<RecordSet>> {
        Box::pin(async move { Ok(self.get(name, rtype)) })
    }

    fn write<'a>(&'a self, set: &'a RecordSet) -> PlaneResult<'a, ()> {
        Box::pin(async move {
            self.count_write()?;
            self.put(set.clone());
            Ok(())
        })
    }

    fn remove<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, ()> {
        Box::pin(async move {
            self.count_write()?;
            self.sets.lock().unwrap().remove(&(name.to_string(), rtype));
            Ok(())
        })
    }

    fn writable(&self) -> bool {
        !self.manual
    }
}

impl Propagation for MemZone {
    fn answers<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Vec<Answer>> {
        Box::pin(async move {
            Ok(self
                .servers
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, s)| Answer {
                    server: format!("127.0.0.{}:53", i + 1),
                    result: Ok(s.get(&(name.to_string(), rtype)).cloned()),
                })
                .collect())
        })
    }
}

#[derive(Default)]
struct MemAccounts {
    broken: Mutex<Vec<NotWhole>>,
    synced: Mutex<Vec<Vec<String>>>,
    /// Watch mode: the accounts' units have not synced yet (the mark they must pass is 9).
    elsewhere: Mutex<Option<String>>,
}

impl Accounts for MemAccounts {
    fn not_whole(&self, accounts: &[String]) -> Result<Vec<NotWhole>, StepError> {
        Ok(self
            .broken
            .lock()
            .unwrap()
            .iter()
            .filter(|n| accounts.contains(&n.account))
            .cloned()
            .collect())
    }

    fn final_sync<'a>(
        &'a self,
        accounts: &'a [String],
        after: &'a mut Option<u64>,
    ) -> PlaneResult<'a, Option<String>> {
        Box::pin(async move {
            if let Some(why) = self.elsewhere.lock().unwrap().clone() {
                *after = Some(9);
                return Ok(Some(why));
            }
            self.synced.lock().unwrap().push(accounts.to_vec());
            Ok(None)
        })
    }
}

#[derive(Default)]
struct MemRecords(Mutex<BTreeMap<String, CutoverRecord>>);

impl Records for MemRecords {
    fn load(&self, domain: &str) -> Result<Option<CutoverRecord>, StepError> {
        Ok(self.0.lock().unwrap().get(domain).cloned())
    }

    fn save(&self, domain: &str, record: &CutoverRecord) -> Result<(), StepError> {
        self.0
            .lock()
            .unwrap()
            .insert(domain.to_string(), record.clone());
        Ok(())
    }
}

const AT: i64 = 1_000_000;

fn old_mx() -> RecordSet {
    RecordSet::new(
        "example.com",
        RecordType::Mx,
        3600,
        vec!["1 mx0.old.example.net".into()],
    )
}

fn old_txt() -> RecordSet {
    RecordSet::new(
        "example.com",
        RecordType::Txt,
        7200,
        vec![
            "v=spf1 include:old.example.net ~all".into(),
            "site-verification=abc".into(),
        ],
    )
}

fn cutover(force: bool) -> Cutover {
    let d = |rtype, ttl, data: &str| {
        let set = RecordSet::new("example.com", rtype, ttl, vec![data.to_string()]);
        Desired {
            spf_only: rtype == RecordType::Txt,
            set,
        }
    };
    Cutover {
        domain: "example.com".into(),
        desired: vec![
            d(RecordType::Mx, 0, "10 mx.new.example.net"),
            d(RecordType::Txt, 0, "v=spf1 include:new.example.net -all"),
            Desired {
                set: RecordSet::new(
                    "autodiscover.example.com",
                    RecordType::Cname,
                    600,
                    vec!["ad.new.example.net".into()],
                ),
                spf_only: false,
            },
        ],
        timing: Timing {
            at: Some(AT),
            lower_ttl_ahead: 86_400,
            low_ttl: 300,
            force,
        },
        accounts: vec!["a@example.com".into(), "b@example.com".into()],
    }
}

struct World {
    zone: MemZone,
    accounts: MemAccounts,
    records: MemRecords,
    c: Cutover,
}

impl World {
    fn new() -> World {
        World {
            zone: MemZone::new(&[old_mx(), old_txt()]),
            accounts: MemAccounts::default(),
            records: MemRecords::default(),
            c: cutover(false),
        }
    }

    fn run(&self, now: i64) -> Report {
        self.try_run(now).unwrap()
    }

    fn try_run(&self, now: i64) -> Result<Report, StepError> {
        block_on(
            self.c
                .advance(&self.zone, &self.zone, &self.accounts, &self.records, now),
        )
    }

    fn record(&self) -> CutoverRecord {
        self.records
            .load("example.com")
            .unwrap()
            .unwrap_or_default()
    }

    fn ran(report: &Report) -> Vec<Step> {
        report.ran.iter().map(|(s, _)| *s).collect()
    }
}

fn waiting(report: &Report) -> (Step, Option<i64>) {
    match &report.stop {
        Stop::Waiting { step, until, .. } => (*step, *until),
        other => panic!("not waiting: {other:?}"),
    }
}

#[test]
fn the_steps_run_in_order_each_when_due() {
    let w = World::new();
    // Nothing before `at - lower_ttl_ahead`.
    let r = w.run(AT - 100_000);
    assert!(r.ran.is_empty());
    assert_eq!(waiting(&r), (Step::LowerTtl, Some(AT - 86_400)));

    // The TTL of the records that change is lowered; the new CNAME has nothing to lower.
    let r = w.run(AT - 86_400);
    assert_eq!(World::ran(&r), vec![Step::LowerTtl]);
    assert_eq!(w.zone.get("example.com", RecordType::Mx).unwrap().ttl, 300);
    assert_eq!(w.zone.get("example.com", RecordType::Txt).unwrap().ttl, 300);
    assert_eq!(waiting(&r), (Step::Switch, Some(AT)));

    // At `at`, with the old TTL long run out: switch, then wait for the second server.
    w.zone.sync_servers(1);
    let r = w.run(AT);
    assert_eq!(World::ran(&r), vec![Step::Switch]);
    let mx = w.zone.get("example.com", RecordType::Mx).unwrap();
    assert_eq!(mx.data, vec!["10 mx.new.example.net"]);
    assert_eq!(mx.ttl, 300);
    // The SPF is replaced; the other TXT string stays.
    assert_eq!(
        w.zone.get("example.com", RecordType::Txt).unwrap().data,
        vec![
            "\"site-verification=abc\"".to_string(),
            "\"v=spf1 include:new.example.net -all\"".to_string()
        ]
    );
    let (step, until) = waiting(&r);
    assert_eq!((step, until), (Step::Propagation, Some(AT + 30)));
    match &r.stop {
        Stop::Waiting { why, .. } => assert!(why.contains("127.0.0."), "{why}"),
        _ => unreachable!(),
    }
    assert!(w.accounts.synced.lock().unwrap().is_empty());

    // One server caught up, not the other: still waiting.
    w.zone.sync_servers(1);
    assert_eq!(waiting(&w.run(AT + 30)).0, Step::Propagation);

    // Both answer the new records; the final sync waits until resolvers that cached the old
    // answer (for the low TTL) have dropped it.
    w.zone.sync_servers(2);
    let r = w.run(AT + 60);
    assert_eq!(World::ran(&r), vec![Step::Propagation]);
    assert_eq!(waiting(&r), (Step::FinalSync, Some(AT + 360)));
    assert!(w.accounts.synced.lock().unwrap().is_empty());
    // Final sync, mark, raise the TTL back.
    let r = w.run(AT + 360);
    assert_eq!(
        World::ran(&r),
        vec![Step::FinalSync, Step::MarkCutOver, Step::RaiseTtl]
    );
    assert_eq!(r.stop, Stop::Done);
    assert_eq!(
        *w.accounts.synced.lock().unwrap(),
        vec![vec![
            "a@example.com".to_string(),
            "b@example.com".to_string()
        ]]
    );
    let record = w.record();
    assert!(record.cut_over());
    assert_eq!(record.accounts, vec!["a@example.com", "b@example.com"]);
    // Back to the old TTL where the plan gives none, the plan's where it does.
    assert_eq!(w.zone.get("example.com", RecordType::Mx).unwrap().ttl, 3600);
    assert_eq!(
        w.zone.get("example.com", RecordType::Txt).unwrap().ttl,
        7200
    );
    assert_eq!(
        w.zone
            .get("autodiscover.example.com", RecordType::Cname)
            .unwrap()
            .ttl,
        600
    );
    // The previous records are kept for a rollback.
    assert_eq!(
        CutoverRecord::held(&record.previous, "example.com", RecordType::Mx)
            .unwrap()
            .set,
        Some(old_mx())
    );
}

#[test]
fn a_second_run_changes_nothing() {
    let w = World::new();
    w.run(AT - 86_400);
    w.run(AT);
    w.zone.sync_servers(2);
    w.run(AT + 60);
    assert_eq!(w.run(AT + 360).stop, Stop::Done);
    let writes = w.zone.writes();
    let r = w.run(AT + 420);
    assert!(r.ran.is_empty());
    assert_eq!(r.stop, Stop::Done);
    assert_eq!(w.zone.writes(), writes);
    assert_eq!(w.accounts.synced.lock().unwrap().len(), 1);
}

#[test]
fn the_switch_waits_out_the_old_ttl() {
    let w = World::new();
    // Lowered late: one hour before `at`, with a two-hour TTL on the TXT.
    w.run(AT - 3600);
    let r = w.run(AT);
    assert_eq!(waiting(&r), (Step::Switch, Some(AT - 3600 + 7200)));
    assert_eq!(World::ran(&w.run(AT + 3600)), vec![Step::Switch]);
}

#[test]
fn the_switch_is_refused_while_an_account_is_not_whole() {
    let mut w = World::new();
    w.accounts.broken.lock().unwrap().push(NotWhole {
        account: "b@example.com".into(),
        why: "failed its last sync: connection refused".into(),
    });
    w.run(AT - 86_400);
    let r = w.run(AT);
    assert!(
        matches!(&r.stop, Stop::Refused { step: Step::Switch, accounts } if accounts.len() == 1)
    );
    assert_eq!(
        w.zone.get("example.com", RecordType::Mx).unwrap().data,
        vec!["1 mx0.old.example.net"]
    );
    let e = stop_error("example.com", &r.stop).unwrap();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("b@example.com") && e.message.contains("force: true"));

    // Forced: it switches, and says so.
    w.c = cutover(true);
    let r = w.run(AT + 1);
    assert_eq!(World::ran(&r), vec![Step::Switch]);
    assert!(r.warnings[0].starts_with("FORCED"), "{:?}", r.warnings);
    assert_eq!(w.record().forced, vec!["b@example.com"]);
}

#[test]
fn a_record_changed_by_hand_is_a_conflict_not_overwritten() {
    let w = World::new();
    w.run(AT - 86_400);
    let hand = RecordSet::new(
        "example.com",
        RecordType::Mx,
        300,
        vec!["5 mx.other.example.net".into()],
    );
    w.zone.put(hand.clone());
    let r = w.run(AT);
    let Stop::Conflict { step, drift } = &r.stop else {
        panic!("{r:?}")
    };
    assert_eq!(*step, Step::Switch);
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].found, Some(hand.clone()));
    assert_eq!(
        w.zone.get("example.com", RecordType::Mx),
        Some(hand.clone())
    );
    // `plan --refresh` shows the same.
    let seen = block_on(w.c.drift(&w.zone, &w.record())).unwrap();
    assert_eq!(seen, drift.clone());

    // Accepted: the switch goes on, and the rollback would restore the hand-made record.
    block_on(w.c.accept_drift(&w.zone, &w.records)).unwrap();
    assert_eq!(World::ran(&w.run(AT + 1)), vec![Step::Switch]);
    assert_eq!(
        CutoverRecord::held(&w.record().previous, "example.com", RecordType::Mx)
            .unwrap()
            .set,
        Some(hand)
    );
}

#[test]
fn a_rollback_puts_the_previous_records_back_checked_and_unmarks() {
    let w = World::new();
    w.run(AT - 86_400);
    w.run(AT);
    w.zone.sync_servers(2);
    w.run(AT + 60);
    assert_eq!(w.run(AT + 360).stop, Stop::Done);

    let roll = |now| block_on(w.c.rollback(&w.zone, &w.zone, &w.records, now)).unwrap();
    w.zone.sync_servers(0);
    let r = roll(AT + 1000);
    assert_eq!(World::ran(&r), vec![Step::Switch]);
    assert_eq!(waiting(&r).0, Step::Propagation);
    assert_eq!(w.zone.get("example.com", RecordType::Mx), Some(old_mx()));
    assert_eq!(w.zone.get("example.com", RecordType::Txt), Some(old_txt()));
    // The CNAME did not exist before: it is removed.
    assert_eq!(
        w.zone.get("autodiscover.example.com", RecordType::Cname),
        None
    );
    assert!(w.record().cut_over(), "unmarked only once propagated");

    w.zone.sync_servers(2);
    let r = roll(AT + 1100);
    assert_eq!(World::ran(&r), vec![Step::Propagation, Step::MarkCutOver]);
    assert_eq!(r.stop, Stop::Done);
    assert!(!w.record().cut_over());

    // The cutover does not start again by itself at the same `at`.
    let writes = w.zone.writes();
    let r = w.run(AT + 1200);
    assert!(r.ran.is_empty());
    assert_eq!(waiting(&r).0, Step::LowerTtl);
    assert_eq!(w.zone.writes(), writes);
}

#[test]
fn a_rollback_refuses_to_overwrite_a_hand_made_record() {
    let w = World::new();
    w.run(AT - 86_400);
    w.run(AT);
    let hand = RecordSet::new(
        "example.com",
        RecordType::Mx,
        60,
        vec!["7 mx.third.example.net".into()],
    );
    w.zone.put(hand.clone());
    let r = block_on(w.c.rollback(&w.zone, &w.zone, &w.records, AT + 10)).unwrap();
    assert!(matches!(r.stop, Stop::Conflict { .. }), "{r:?}");
    assert_eq!(w.zone.get("example.com", RecordType::Mx), Some(hand));
}

/// A run killed after each number of zone writes, then run again to the end: the same zone
/// and record as a run never killed.
#[test]
fn a_kill_between_any_two_writes_ends_the_same() {
    let reference = {
        let w = World::new();
        w.zone.sync_servers(2);
        w.run(AT - 86_400);
        w.run(AT);
        w.zone.sync_servers(2);
        w.run(AT + 60);
        w.run(AT + 360);
        (w.zone.sets.lock().unwrap().clone(), w.record().accounts)
    };
    for kill_after in 0..10 {
        let w = World::new();
        *w.zone.fail_after.lock().unwrap() = Some(kill_after);
        let mut now = AT - 86_400;
        for _ in 0..3 {
            // Killed mid-step: the error stops the run, as a kill -9 would.
            let _ = w.try_run(now);
            now = now.max(AT);
            w.zone.sync_servers(2);
        }
        *w.zone.fail_after.lock().unwrap() = None;
        // Late enough for any old TTL to have run out, whenever the TTL was lowered.
        for t in [
            AT + 8000,
            AT + 16_000,
            AT + 24_000,
            AT + 32_000,
            AT + 40_000,
        ] {
            w.zone.sync_servers(2);
            if w.run(t).stop == Stop::Done {
                break;
            }
        }
        assert_eq!(
            w.zone.sets.lock().unwrap().clone(),
            reference.0,
            "killed after {kill_after} writes"
        );
        assert_eq!(
            w.record().accounts,
            reference.1,
            "killed after {kill_after} writes"
        );
    }
}

#[test]
fn a_manual_zone_shows_the_records_and_waits_for_them() {
    let mut w = World::new();
    w.zone.manual = true;
    w.c.desired.truncate(1);
    let r = w.run(AT - 86_400);
    let Stop::Waiting { step, why, .. } = &r.stop else {
        panic!("{r:?}")
    };
    assert_eq!(*step, Step::LowerTtl);
    assert!(
        why.contains("example.com 300 MX 1 mx0.old.example.net"),
        "{why}"
    );
    assert_eq!(w.zone.writes(), 0);
    // A person lowers it: the step sees it and goes on.
    w.zone.put(RecordSet {
        ttl: 300,
        ..old_mx()
    });
    assert_eq!(World::ran(&w.run(AT - 86_000)), vec![Step::LowerTtl]);
}

#[test]
fn without_at_nothing_is_due() {
    let mut w = World::new();
    w.c.timing.at = None;
    let r = w.run(AT);
    assert_eq!(waiting(&r), (Step::LowerTtl, None));
    let schedule = w.c.schedule(None);
    assert!(
        schedule
            .iter()
            .all(|(_, done, due)| done.is_none() && due.is_none())
    );
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// A recorded cut-over stops the accounts' syncs as `cut_over: true` in the plan would.
#[test]
fn accounts_marked_cut_over_stop_syncing() {
    use crate::apply::pipeline::Planned;
    use crate::diff::Action;
    use mailshift_core::plan::load::{Format, load_str};

    let text = "version: 1
platforms:
  old: {type: imap, imap: {host: old.example.net}}
  new: {type: imap, imap: {host: new.example.net}}
accounts:
  - {address: a@example.com, from: old, to: new, source: {password: {env: A}}, destination: {password: {env: A}}}
  - {address: c@other.com, from: old, to: new, source: {password: {env: C}}, destination: {password: {env: C}}}
";
    let loaded = load_str(
        text,
        Format::Yaml,
        std::path::Path::new("p.yaml"),
        std::path::Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    // Both copied once: what follows is incremental (a first copy runs whatever the cutover).
    let state: BTreeMap<String, crate::state::ResourceRecord> =
        Planned::new(&loaded, &BTreeMap::new())
            .resources
            .iter()
            .map(|r| {
                let record = crate::state::ResourceRecord {
                    kind: r.kind.as_str().to_string(),
                    account: r.account.clone(),
                    fingerprint: r.fingerprint.clone(),
                    identity: r.identity.clone(),
                    status: crate::state::Status::Done,
                    summary: String::new(),
                    outputs: BTreeMap::new(),
                    last_error: None,
                    sync_point: Some(1),
                    created_at: 0,
                    updated_at: 0,
                };
                (r.id().to_string(), record)
            })
            .collect();
    let syncs = |p: &Planned| {
        p.changes
            .iter()
            .filter(|c| c.action == Action::Sync)
            .filter_map(|c| c.account.clone())
            .collect::<Vec<_>>()
    };
    let mut planned = Planned::new(&loaded, &state);
    assert_eq!(syncs(&planned), vec!["a@example.com", "c@other.com"]);

    let mut cutovers = BTreeMap::new();
    // Switched but not yet marked: still syncing.
    cutovers.insert(
        "example.com".to_string(),
        CutoverRecord {
            done: vec![(Step::LowerTtl, 1), (Step::Switch, 2)],
            ..CutoverRecord::default()
        },
    );
    planned.cut_over(&state, &cutovers);
    assert_eq!(syncs(&planned), vec!["a@example.com", "c@other.com"]);
    cutovers.get_mut("example.com").unwrap().done.extend([
        (Step::Propagation, 3),
        (Step::FinalSync, 4),
        (Step::MarkCutOver, 5),
    ]);
    cutovers.get_mut("example.com").unwrap().accounts = vec!["a@example.com".into()];
    planned.cut_over(&state, &cutovers);
    assert_eq!(syncs(&planned), vec!["c@other.com"]);
}

#[test]
fn a_final_sync_run_elsewhere_is_waited_for() {
    let w = World::new();
    *w.accounts.elsewhere.lock().unwrap() = Some("the accounts' next sync".into());
    w.run(AT - 86_400);
    w.run(AT);
    w.zone.sync_servers(2);
    w.run(AT + 60);
    let r = w.run(AT + 360);
    assert_eq!(waiting(&r), (Step::FinalSync, Some(AT + 390)));
    assert_eq!(
        w.record().final_after,
        Some(9),
        "the mark is kept between runs"
    );
    assert!(!w.record().cut_over());
    *w.accounts.elsewhere.lock().unwrap() = None;
    assert_eq!(w.run(AT + 390).stop, Stop::Done);
    assert!(w.record().cut_over());
}

#[test]
fn a_record_added_to_the_plan_after_the_ttl_was_lowered_can_be_rolled_back() {
    let mut w = World::new();
    let dkim = Desired {
        set: RecordSet::new(
            "sel._domainkey.example.com",
            RecordType::Txt,
            0,
            vec!["v=DKIM1; p=new".into()],
        ),
        spf_only: false,
    };
    let old_dkim = RecordSet::new(
        "sel._domainkey.example.com",
        RecordType::Txt,
        3600,
        vec!["v=DKIM1; p=old".into()],
    );
    w.zone.put(old_dkim.clone());
    w.run(AT - 86_400);
    w.c.desired.push(dkim);
    assert_eq!(World::ran(&w.run(AT)), vec![Step::Switch]);
    assert_eq!(
        CutoverRecord::held(
            &w.record().previous,
            "sel._domainkey.example.com",
            RecordType::Txt
        )
        .unwrap()
        .set,
        Some(old_dkim.clone())
    );
    block_on(w.c.rollback(&w.zone, &w.zone, &w.records, AT + 10)).unwrap();
    w.zone.sync_servers(2);
    let r = block_on(w.c.rollback(&w.zone, &w.zone, &w.records, AT + 40)).unwrap();
    assert_eq!(r.stop, Stop::Done, "{r:?}");
    assert_eq!(
        w.zone.get("sel._domainkey.example.com", RecordType::Txt),
        Some(old_dkim)
    );
}

#[test]
fn a_split_run_refuses_a_cutover_with_the_fix() {
    use mailshift_core::plan::load::{Format, load_str};
    use mailshift_core::shard::Shard;

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
accounts:
  - {address: a@example.com, from: old, to: new, source: {password: {env: A}}, destination: {password: {env: A}}}
";
    let loaded = load_str(
        text,
        Format::Yaml,
        std::path::Path::new("p.yaml"),
        std::path::Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    assert!(super::refuse_split(&loaded.plan, Shard::WHOLE).is_ok());
    let e = super::refuse_split(&loaded.plan, Shard::new(1, 3).unwrap()).unwrap_err();
    assert!(
        e.contains("example.com") && e.contains("reshard PLAN --to 1"),
        "{e}"
    );
}
