//! A DNS zone hosted at OVHcloud, through `OvhZone` against the simulator: every call matches
//! the published `/domain` description, a second write of the same sets only reads, a write
//! stopped between two calls converges when run again, and nothing reaches the name servers
//! before the zone's refresh (one of them held back stays on the old answers until released).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType as WireType};
use mailshift::plan::secret::Secret;
use mailshift::providers::ovh::ops::OvhZone;
use mailshift::providers::ovh::{Credentials, OvhClient};
use mailshift_core::dns::{RecordSet, RecordType, Zone};
use ovh_sim::{Fault, SimHandle, World};
use serde_json::json;

const AK: &str = "zoneApplicationKey";
const AS: &str = "zoneApplicationSecret0123456789ab";
const CK: &str = "zoneConsumerKey0123456789abcdefgh";

/// mydomain.ovh as it is on the old Exchange platform (the demo world's zone).
fn world() -> World {
    World::from_yaml(&format!(
        r#"
applications: [{{key: {AK}, secret: {AS}}}]
consumer_keys: [{{key: {CK}, application: {AK}}}]
zones:
  - name: mydomain.ovh
    default_ttl: 3600
    records:
      - {{field_type: A, target: 192.0.2.10}}
      - {{field_type: MX, target: 1 ex.mail.ovh.net.}}
      - {{field_type: SPF, target: v=spf1 include:mx.ovh.com ~all, ttl: 600}}
      - {{sub_domain: _autodiscover._tcp, field_type: SRV, target: 0 0 443 ex.mail.ovh.net.}}
"#
    ))
    .unwrap()
}

fn zone(sim: &SimHandle) -> OvhZone {
    let client = OvhClient::new(
        &sim.base_url(),
        Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(CK),
        },
    )
    .unwrap();
    OvhZone::new(Arc::new(client), "MyDomain.ovh.")
}

/// What Email Pro needs in the zone.
fn email_pro() -> Vec<RecordSet> {
    vec![
        RecordSet::new(
            "mydomain.ovh",
            RecordType::Mx,
            3600,
            vec![
                "1 mx1.mail.ovh.net.".into(),
                "5 mx2.mail.ovh.net.".into(),
                "100 mx3.mail.ovh.net.".into(),
            ],
        ),
        RecordSet::new(
            "mydomain.ovh",
            RecordType::Txt,
            3600,
            vec!["v=spf1 include:mx.ovh.com ~all".into()],
        ),
        RecordSet::new(
            "_autodiscover._tcp.mydomain.ovh",
            RecordType::Srv,
            3600,
            vec!["0 0 443 pro1.mail.ovh.net.".into()],
        ),
        RecordSet::new(
            "autodiscover.mydomain.ovh",
            RecordType::Cname,
            600,
            vec!["autodiscover.mail.ovh.net".into()],
        ),
    ]
}

/// The answer of one name server to `name` and `rtype`, asked directly over UDP: sorted
/// `TTL TYPE DATA` lines.
fn ask(server: SocketAddr, name: &str, rtype: WireType) -> Vec<String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut query = Message::query();
    query.metadata.id = 4242;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    socket.send_to(&query.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, 4242);
    assert!(answer.metadata.authoritative, "{answer:?}");
    let mut lines: Vec<String> = answer
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.ttl, r.record_type(), r.data))
        .collect();
    lines.sort();
    lines
}

fn mx_at(sim: &SimHandle, index: usize) -> Vec<String> {
    ask(
        sim.name_servers()[index].addr,
        "mydomain.ovh.",
        WireType::MX,
    )
}

const OLD_MX: &str = "3600 MX 1 ex.mail.ovh.net.";

fn new_mx() -> Vec<String> {
    vec![
        "3600 MX 1 mx1.mail.ovh.net.".to_string(),
        "3600 MX 100 mx3.mail.ovh.net.".to_string(),
        "3600 MX 5 mx2.mail.ovh.net.".to_string(),
    ]
}

/// The record calls, without the query strings: `POST /domain/zone/{}/record` and such.
fn writes(sim: &SimHandle) -> Vec<String> {
    sim.writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.operation.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn zone_sets_conform_to_the_schema_and_a_second_write_only_reads() {
    let sim = SimHandle::spawn(world()).unwrap();
    let z = zone(&sim);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(z.apex(), "mydomain.ovh");
        // What the old platform has, as sets: the SPF-typed record is part of the TXT set, a
        // record with the zone's default TTL reads with that TTL.
        let txt = z.read("mydomain.ovh", RecordType::Txt).await.unwrap();
        assert_eq!(
            txt,
            Some(RecordSet::new(
                "mydomain.ovh",
                RecordType::Txt,
                600,
                vec!["\"v=spf1 include:mx.ovh.com ~all\"".into()]
            ))
        );
        let mx = z
            .read("mydomain.ovh", RecordType::Mx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mx.ttl, 3600);
        assert_eq!(mx.data, ["1 ex.mail.ovh.net"]);
        // That TTL is the SOA's, read once.
        let soa = |r: &ovh_sim::RequestRecord| {
            r.operation.as_deref() == Some("/domain/zone/{zoneName}/soa")
        };
        assert_eq!(sim.requests().iter().filter(|r| soa(r)).count(), 1);
        assert_eq!(
            z.read("autodiscover.mydomain.ovh", RecordType::Cname)
                .await
                .unwrap(),
            None
        );

        for set in email_pro() {
            z.write(&set).await.unwrap();
        }
        for set in email_pro() {
            assert_eq!(
                z.read(&set.name, set.rtype).await.unwrap().as_ref(),
                Some(&set)
            );
        }
        // The MX record was changed in place, the others added; the SPF record kept with a
        // new TTL; one refresh per set written.
        let w = writes(&sim);
        assert_eq!(
            w.iter()
                .filter(|c| *c == "PUT /domain/zone/{zoneName}/record/{id}")
                .count(),
            3,
            "{w:#?}"
        );
        assert_eq!(
            w.iter()
                .filter(|c| *c == "POST /domain/zone/{zoneName}/record")
                .count(),
            3,
            "{w:#?}"
        );
        assert_eq!(
            w.iter()
                .filter(|c| *c == "POST /domain/zone/{zoneName}/refresh")
                .count(),
            4,
            "{w:#?}"
        );
        assert!(!w.iter().any(|c| c.starts_with("DELETE")), "{w:#?}");

        sim.clear_requests();
        for set in email_pro() {
            z.write(&set).await.unwrap();
        }
        assert_eq!(writes(&sim), Vec::<String>::new());
        assert!(sim.requests().iter().all(|r| r.method == "GET"));

        // A set with fewer records loses the extra ones; removing a set leaves nothing.
        let one = RecordSet::new(
            "mydomain.ovh",
            RecordType::Mx,
            300,
            vec!["5 mx2.mail.ovh.net".into()],
        );
        z.write(&one).await.unwrap();
        assert_eq!(
            z.read("mydomain.ovh", RecordType::Mx).await.unwrap(),
            Some(one)
        );
        z.remove("autodiscover.mydomain.ovh", RecordType::Cname)
            .await
            .unwrap();
        assert_eq!(
            z.read("autodiscover.mydomain.ovh", RecordType::Cname)
                .await
                .unwrap(),
            None
        );
        sim.clear_requests();
        z.remove("autodiscover.mydomain.ovh", RecordType::Cname)
            .await
            .unwrap();
        assert_eq!(writes(&sim), Vec::<String>::new());

        // A name outside the zone is refused before any call, naming both.
        let e = z
            .read("mydomain.ovh.example", RecordType::Mx)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("mydomain.ovh.example is not in the DNS zone mydomain.ovh"),
            "{e}"
        );
        // A zone the account does not have says so and where to look.
        let client = OvhClient::new(
            &sim.base_url(),
            Credentials {
                application_key: Secret::new(AK),
                application_secret: Secret::new(AS),
                consumer_key: Secret::new(CK),
            },
        )
        .unwrap();
        let other = OvhZone::new(Arc::new(client), "elsewhere.example");
        let e = other
            .read("elsewhere.example", RecordType::Mx)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("GET /domain/zone lists"), "{e}");
    });
    let requests = sim.requests();
    assert!(requests.iter().all(|r| r.operation.is_some()));
    assert_eq!(sim.violations(), vec![]);
}

#[test]
fn nothing_is_served_before_the_refresh_and_a_stopped_write_converges() {
    let sim = SimHandle::spawn(world()).unwrap();
    let z = zone(&sim);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mx = email_pro().remove(0);
    assert_eq!(mx_at(&sim, 0), [OLD_MX]);
    assert_eq!(mx_at(&sim, 1), [OLD_MX]);

    // Stopped before the refresh: the API has the new records, the name servers the old.
    sim.inject(Fault::reply(
        "POST",
        "/domain/zone/*/refresh",
        400,
        json!({"class": "Client::BadRequest", "message": "injected"}),
    ))
    .unwrap();
    rt.block_on(z.write(&mx)).unwrap_err();
    sim.clear_faults();
    assert_eq!(
        rt.block_on(z.read("mydomain.ovh", RecordType::Mx)).unwrap(),
        Some(mx.clone())
    );
    assert_eq!(mx_at(&sim, 0), [OLD_MX]);
    assert_eq!(mx_at(&sim, 1), [OLD_MX]);

    // Run again: no record to change, but the zone is not deployed: refreshed, and only that.
    sim.hold_name_server(1).unwrap();
    sim.clear_requests();
    rt.block_on(z.write(&mx)).unwrap();
    assert_eq!(writes(&sim), ["POST /domain/zone/{zoneName}/refresh"]);
    assert_eq!(mx_at(&sim, 0), new_mx());
    // The held server has not caught up; released, it has.
    assert_eq!(mx_at(&sim, 1), [OLD_MX]);
    sim.release_name_server(1).unwrap();
    assert_eq!(mx_at(&sim, 1), new_mx());

    // Stopped between two record calls: the second POST of the SRV and MX sets fails.
    let sets = [
        RecordSet::new(
            "mydomain.ovh",
            RecordType::Mx,
            60,
            vec![
                "10 mx.new.example".into(),
                "20 mx2.new.example".into(),
                "30 mx3.new.example".into(),
                "40 mx4.new.example".into(),
            ],
        ),
        RecordSet::new(
            "_autodiscover._tcp.mydomain.ovh",
            RecordType::Srv,
            60,
            vec!["0 0 443 new.example".into()],
        ),
    ];
    sim.inject(
        Fault::reply(
            "POST",
            "/domain/zone/*/record",
            400,
            json!({"class": "Client::BadRequest", "message": "injected"}),
        )
        .times(1),
    )
    .unwrap();
    rt.block_on(z.write(&sets[0])).unwrap_err();
    sim.clear_faults();
    for set in &sets {
        rt.block_on(z.write(set)).unwrap();
        assert_eq!(
            rt.block_on(z.read(&set.name, set.rtype)).unwrap().as_ref(),
            Some(set)
        );
    }
    // Exactly the wanted records, no duplicate left by the stopped run.
    let world = sim.world();
    let records = &world.zones[0].records;
    assert_eq!(records.iter().filter(|r| r.field_type == "MX").count(), 4);
    assert_eq!(records.iter().filter(|r| r.field_type == "SRV").count(), 1);
    assert_eq!(
        mx_at(&sim, 1),
        [
            "60 MX 10 mx.new.example.",
            "60 MX 20 mx2.new.example.",
            "60 MX 30 mx3.new.example.",
            "60 MX 40 mx4.new.example.",
        ]
    );
    assert_eq!(
        ask(
            sim.name_servers()[0].addr,
            "_autodiscover._tcp.mydomain.ovh.",
            WireType::SRV
        ),
        ["60 SRV 0 0 443 new.example."]
    );
    assert_eq!(sim.violations(), vec![]);
}
