//! A domain's cutover to OVHcloud Email Pro through the simulator: the zone written with
//! OVHcloud's zone API (`dns: {provider: ovh}`), the records those the Email Pro service's DNS
//! diagnosis expects (the plan lists none), the TTL lowered and waited out, the switch seen at
//! both simulated name servers (one held back until released), the TTL raised back, every
//! call within the published schema, then `rollback` puts the old Exchange records back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mailshift::cutover::{Stop, zones};
use mailshift_core::cutover::Step;
use mailshift_core::dns::RecordType;
use mailshift_core::plan::load::{Format, load_str};
use mailshift_core::state::StateStore;
use mailshift_dns::ask_each;

use crate::cutover::{NoAccounts, now};
use ovh_sim::{SimHandle, World};

const AK: &str = "cutApplicationKey";
const AS: &str = "cutApplicationSecret0123456789ab";
const CK: &str = "cutConsumerKey0123456789abcdefgh";
const ZONE: &str = "mydomain.ovh";
/// Long enough for the TTL lowering and its wait (the zone's old TTL, 3 s).
const CONVERGE: Duration = Duration::from_secs(40);

/// mydomain.ovh on the old Exchange platform, moving to an Email Pro service; short TTLs so
/// the old TTL is waited out within the test.
fn world() -> World {
    World::from_yaml(&format!(
        r#"
applications: [{{key: {AK}, secret: {AS}}}]
consumer_keys: [{{key: {CK}, application: {AK}}}]
pro:
  - service: emailpro-cut-1
    domains:
      - {{name: {ZONE}, type: authoritative}}
zones:
  - name: {ZONE}
    default_ttl: 3600
    records:
      - {{field_type: A, target: 192.0.2.10}}
      - {{field_type: MX, target: 1 ex.mail.ovh.net., ttl: 3}}
      - {{field_type: TXT, target: google-site-verification=abc, ttl: 3}}
      - {{field_type: SPF, target: v=spf1 include:mx.ovh.com ~all, ttl: 3}}
      - {{sub_domain: _autodiscover._tcp, field_type: SRV, target: 0 0 443 ex.mail.ovh.net., ttl: 3}}
"#
    ))
    .unwrap()
}

#[test]
fn an_ovh_zone_is_cut_over_to_email_pro_records_from_its_diagnosis_then_rolled_back() {
    let sim = SimHandle::spawn(world()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (file, value) in [("ak", AK), ("as", AS), ("ck", CK)] {
        std::fs::write(dir.path().join(file), value).unwrap();
    }
    let ns: Vec<SocketAddr> = sim.name_servers().iter().map(|n| n.addr).collect();
    let plan = format!(
        "version: 1
providers:
  ovh: {{type: ovh, endpoint: '{endpoint}', application_key: {{file: ak}}, application_secret: {{file: as}}, consumer_key: {{file: ck}}, poll_interval: 20ms}}
platforms:
  pro: {{type: ovh-email-pro, provider: ovh, service: emailpro-cut-1}}
domains:
  - name: {ZONE}
    platform: pro
    mode: authoritative
    dns: {{provider: ovh, nameservers: ['{ns0}', '{ns1}']}}
    cutover: {{at: '2020-01-01T00:00:00Z', low_ttl: 1}}
",
        endpoint = sim.base_url(),
        ns0 = ns[0],
        ns1 = ns[1],
    );
    let loaded = load_str(
        &plan,
        Format::Yaml,
        dir.path().join("p.yaml").as_path(),
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let domain = &loaded.plan.domains[0];
    let store = StateStore::open(&dir.path().join("state.redb")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(zones::cutover(&loaded, domain)).unwrap();
    let opened = rt.block_on(zones::open(&loaded, domain)).unwrap();
    let mx_at = |i: usize| -> Vec<String> {
        match rt
            .block_on(ask_each(&ns[i..=i], ZONE, RecordType::Mx))
            .remove(0)
            .result
        {
            Ok(Some(s)) => s.data,
            other => panic!("name server {i}: {other:?}"),
        }
    };
    let new_mx = [
        "1 mx1.mail.ovh.net",
        "100 mx3.mail.ovh.net",
        "5 mx2.mail.ovh.net",
    ];
    assert_eq!(mx_at(0), ["1 ex.mail.ovh.net"]);

    // The second name server lags: the cutover waits at the propagation check for it.
    sim.hold_name_server(1).unwrap();
    let run = |until: fn(&Stop) -> bool, what: &str| {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let r = rt
                .block_on(c.advance(
                    opened.zone.as_ref(),
                    opened.propagation.as_ref(),
                    &NoAccounts,
                    &store,
                    now(),
                ))
                .unwrap();
            if until(&r.stop) {
                return r.stop;
            }
            match r.stop {
                Stop::Waiting { .. } if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => panic!("{what}: the cutover stopped: {other:?}"),
            }
        }
    };
    run(
        |s| {
            matches!(
                s,
                Stop::Waiting {
                    step: Step::Propagation,
                    ..
                }
            )
        },
        "waiting for the held name server",
    );
    let record = store.cutover(ZONE).unwrap().unwrap();
    assert!(record.is_done(Step::LowerTtl).is_some());
    assert!(record.is_done(Step::Switch).is_some());
    assert!(record.is_done(Step::Propagation).is_none());
    assert_eq!(mx_at(0), new_mx);
    assert_eq!(mx_at(1), ["1 ex.mail.ovh.net"]);
    sim.release_name_server(1).unwrap();
    run(|s| matches!(s, Stop::Done), "after the release");
    assert_eq!(mx_at(0), new_mx);
    assert_eq!(mx_at(1), new_mx);
    let record = store.cutover(ZONE).unwrap().unwrap();
    assert!(record.is_done(Step::RaiseTtl).is_some());

    // The zone holds the diagnosis's records with the zone's TTL back; the other TXT string kept.
    let read = |name: &str, rtype| rt.block_on(opened.zone.read(name, rtype)).unwrap().unwrap();
    let mx = read(ZONE, RecordType::Mx);
    assert_eq!(mx.ttl, 3);
    let txt = read(ZONE, RecordType::Txt);
    assert!(
        txt.data
            .iter()
            .any(|d| d.contains("google-site-verification=abc")),
        "{txt:?}"
    );
    assert!(txt.data.iter().any(|d| d.contains("v=spf1")), "{txt:?}");
    let srv = read(&format!("_autodiscover._tcp.{ZONE}"), RecordType::Srv);
    assert_eq!(srv.data, ["0 0 443 mx1.mail.ovh.net"]);
    // A second run changes nothing.
    let writes = sim.writes().len();
    run(|s| matches!(s, Stop::Done), "a second run");
    assert_eq!(sim.writes().len(), writes);

    // Rollback: the old Exchange records back at both name servers.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let r = rt
            .block_on(c.rollback(
                opened.zone.as_ref(),
                opened.propagation.as_ref(),
                &store,
                now(),
            ))
            .unwrap();
        match r.stop {
            Stop::Done => break,
            Stop::Waiting { .. } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => panic!("the rollback stopped: {other:?}"),
        }
    }
    assert_eq!(mx_at(0), ["1 ex.mail.ovh.net"]);
    assert_eq!(mx_at(1), ["1 ex.mail.ovh.net"]);
    let srv = read(&format!("_autodiscover._tcp.{ZONE}"), RecordType::Srv);
    assert_eq!(srv.data, ["0 0 443 ex.mail.ovh.net"]);
    let violations = sim.violations();
    assert!(
        violations.is_empty(),
        "calls outside the schema: {violations:?}"
    );
}
