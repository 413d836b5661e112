//! The DNS end against real servers: RFC 2136 updates signed with TSIG at a BIND primary,
//! read back, made idempotent (the SOA serial does not move when nothing changes), and the
//! propagation check at the primary and a secondary that transfers from it.

use std::time::{Duration, Instant};

use mailshift_core::dns::{RecordSet, RecordType, Zone};
use mailshift_core::error::ErrorKind;
use mailshift_dns::{
    ManualZone, Rfc2136Config, Rfc2136Zone, TsigKey, ask_each, authoritative_servers_on_port,
};

use crate::support::bind::{BindConfig, BindPair, UPDATE_KEY};

const ZONE: &str = "example.test";
const CONVERGE: Duration = Duration::from_secs(30);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start(notify: bool) -> BindPair {
    BindPair::start(&BindConfig {
        zone: ZONE,
        records: "@ 3600 IN MX 10 mx.old-host.example.net.\n\
                  @ 3600 IN TXT \"v=spf1 include:old-host.example.net ~all\"",
        notify,
    })
}

fn config(bind: &BindPair, key: Option<TsigKey>) -> Rfc2136Config {
    Rfc2136Config {
        zone: ZONE.into(),
        server: bind.primary.addr(),
        tsig: key,
        timeout: Duration::from_secs(5),
    }
}

fn key(bind: &BindPair) -> TsigKey {
    TsigKey {
        name: UPDATE_KEY.into(),
        algorithm: "hmac-sha256".into(),
        secret: bind.secret.clone(),
    }
}

fn zone(bind: &BindPair) -> Rfc2136Zone {
    Rfc2136Zone::new(config(bind, Some(key(bind))))
}

fn mx(ttl: u32) -> RecordSet {
    RecordSet::new(
        ZONE,
        RecordType::Mx,
        ttl,
        vec!["1 mx0.mail.ovh.net".into(), "5 mx1.mail.ovh.net.".into()],
    )
}

/// Waits until every server answers `want` for its name and type.
async fn converged(bind: &BindPair, want: Option<&RecordSet>, name: &str, rtype: RecordType) {
    let servers = [bind.primary.addr(), bind.secondary.addr()];
    let start = Instant::now();
    loop {
        let answers = ask_each(&servers, name, rtype).await;
        if answers
            .iter()
            .all(|a| a.result.as_ref().ok() == Some(&want.cloned()))
        {
            return;
        }
        assert!(
            start.elapsed() < CONVERGE,
            "the servers did not converge on {want:?}: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn records_written_read_back_and_rewriting_changes_nothing() {
    let bind = start(true);
    let zone = zone(&bind);
    let txt = RecordSet::new(
        ZONE,
        RecordType::Txt,
        3600,
        vec!["v=spf1 include:mx.ovh.com ~all".into()],
    );
    // Longer than one TXT string: stored as two, compared equal to what was asked.
    let dkim = RecordSet::new(
        &format!("ovhmo-selector-1._domainkey.{ZONE}"),
        RecordType::Txt,
        3600,
        vec![format!("v=DKIM1; k=rsa; p={}", "A".repeat(300))],
    );
    let srv = RecordSet::new(
        &format!("_autodiscover._tcp.{ZONE}"),
        RecordType::Srv,
        3600,
        vec!["0 0 443 mailconfig.ovh.net".into()],
    );
    rt().block_on(async {
        let before = zone.read(ZONE, RecordType::Mx).await.unwrap().unwrap();
        assert_eq!(before.data, vec!["10 mx.old-host.example.net".to_string()]);
        assert_eq!(
            zone.read("nothing.example.test", RecordType::Mx)
                .await
                .unwrap(),
            None
        );

        for set in [&mx(3600), &txt, &dkim, &srv] {
            zone.write(set).await.unwrap();
            assert_eq!(
                zone.read(&set.name, set.rtype).await.unwrap().as_ref(),
                Some(set)
            );
        }
        converged(&bind, Some(&mx(3600)), ZONE, RecordType::Mx).await;

        // The same sets again: nothing is sent, so the zone's serial stays.
        let serial = bind.primary.serial(ZONE);
        for set in [&mx(3600), &txt, &dkim, &srv] {
            zone.write(set).await.unwrap();
        }
        assert_eq!(bind.primary.serial(ZONE), serial);

        // Only the TTL: one update, the data unchanged.
        zone.write(&mx(300)).await.unwrap();
        assert_eq!(
            zone.read(ZONE, RecordType::Mx).await.unwrap(),
            Some(mx(300))
        );
        assert_eq!(bind.primary.serial(ZONE), serial + 1);

        // Removing, twice: the second finds nothing to remove.
        zone.remove(&srv.name, RecordType::Srv).await.unwrap();
        assert_eq!(zone.read(&srv.name, RecordType::Srv).await.unwrap(), None);
        zone.remove(&srv.name, RecordType::Srv).await.unwrap();
        assert_eq!(bind.primary.serial(ZONE), serial + 2);
        converged(&bind, None, &srv.name, RecordType::Srv).await;
        converged(&bind, Some(&mx(300)), ZONE, RecordType::Mx).await;
    });
}

#[test]
fn a_swap_from_a_stale_set_is_a_conflict_and_changes_nothing() {
    let bind = start(true);
    let zone = zone(&bind);
    rt().block_on(async {
        let original = zone.read(ZONE, RecordType::Mx).await.unwrap();
        // Someone changed the records since mailshift remembered them: nothing is overwritten.
        let err = zone
            .replace_if(ZONE, RecordType::Mx, Some(&mx(300)), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
        assert!(
            err.message.contains("10 mx.old-host.example.net"),
            "{}",
            err.message
        );
        assert_eq!(zone.read(ZONE, RecordType::Mx).await.unwrap(), original);
        assert_eq!(bind.primary.serial(ZONE), 1);

        // From what the zone holds: swapped. Again (a retry after a lost reply): already done.
        zone.replace_if(ZONE, RecordType::Mx, original.as_ref(), Some(&mx(300)))
            .await
            .unwrap();
        assert_eq!(
            zone.read(ZONE, RecordType::Mx).await.unwrap(),
            Some(mx(300))
        );
        zone.replace_if(ZONE, RecordType::Mx, original.as_ref(), Some(&mx(300)))
            .await
            .unwrap();
        assert_eq!(bind.primary.serial(ZONE), 2);

        // Back to none at all, only from the set written.
        zone.replace_if(ZONE, RecordType::Mx, Some(&mx(300)), None)
            .await
            .unwrap();
        assert_eq!(zone.read(ZONE, RecordType::Mx).await.unwrap(), None);
    });
}

#[test]
fn a_set_too_large_for_one_datagram_is_read_over_tcp() {
    let bind = start(true);
    let zone = zone(&bind);
    // 40 strings of 80 bytes: about 3.5 kB, more than the 1232-byte UDP payload offered, so
    // the server truncates the UDP answer and the read must go again over TCP.
    let big = RecordSet::new(
        &format!("big.{ZONE}"),
        RecordType::Txt,
        600,
        (0..40)
            .map(|i| format!("record {i:02} {}", "x".repeat(70)))
            .collect(),
    );
    rt().block_on(async {
        zone.write(&big).await.unwrap();
        assert_eq!(
            zone.read(&big.name, RecordType::Txt).await.unwrap(),
            Some(big.clone())
        );
        converged(&bind, Some(&big), &big.name, RecordType::Txt).await;
    });
}

#[test]
fn a_held_back_secondary_keeps_the_old_answer_until_it_transfers() {
    let bind = start(false);
    let zone = zone(&bind);
    rt().block_on(async {
        let old = zone.read(ZONE, RecordType::Mx).await.unwrap();
        zone.write(&mx(300)).await.unwrap();

        let answers = ask_each(
            &[bind.primary.addr(), bind.secondary.addr()],
            ZONE,
            RecordType::Mx,
        )
        .await;
        assert_eq!(answers[0].server, bind.primary.addr());
        assert_eq!(answers[0].result, Ok(Some(mx(300))));
        assert_eq!(answers[1].server, bind.secondary.addr());
        assert_eq!(
            answers[1].result,
            Ok(old),
            "the secondary already has the change"
        );

        bind.transfer_now();
        converged(&bind, Some(&mx(300)), ZONE, RecordType::Mx).await;
    });
}

#[test]
fn the_zones_name_servers_come_from_its_ns_records() {
    let bind = start(true);
    rt().block_on(async {
        let port = bind.primary.addr().port();
        let servers = authoritative_servers_on_port(ZONE, Some(bind.primary.addr()), port)
            .await
            .unwrap();
        assert_eq!(servers, vec![bind.primary.addr(), bind.secondary.addr()]);

        let err = authoritative_servers_on_port("other.test", Some(bind.primary.addr()), port)
            .await
            .unwrap_err();
        assert!(err.contains("other.test"), "{err}");

        // A server that does not serve the zone is not an answer.
        let answers = ask_each(&[bind.primary.addr()], "example.org", RecordType::Mx).await;
        assert!(answers[0].result.is_err(), "{answers:?}");
    });
}

#[test]
fn refused_keys_and_secrets_say_which_and_how_to_fix() {
    let bind = start(true);
    rt().block_on(async {
        // A secret that is not the server's: BADSIG, at the first read already.
        let mut wrong = key(&bind);
        wrong.secret[0] ^= 0xff;
        let err = Rfc2136Zone::new(config(&bind, Some(wrong)))
            .write(&mx(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
        assert!(err.message.contains(UPDATE_KEY), "{}", err.message);
        assert!(err.message.contains("secret"), "{}", err.message);
        assert!(err.message.contains(ZONE), "{}", err.message);

        // A key the server does not know: BADKEY.
        let mut unknown = key(&bind);
        unknown.name = "nobody".into();
        let err = Rfc2136Zone::new(config(&bind, Some(unknown)))
            .read(ZONE, RecordType::Mx)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
        assert!(
            err.message.contains("does not know TSIG key `nobody`"),
            "{}",
            err.message
        );

        // The transfer key is known but not allowed to update: REFUSED, named.
        let transfer = TsigKey {
            name: "transfer".into(),
            algorithm: "hmac-sha256".into(),
            secret: bind.transfer_secret.clone(),
        };
        let err = Rfc2136Zone::new(config(&bind, Some(transfer)))
            .write(&mx(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
        assert!(
            err.message
                .contains("the key `transfer` is not allowed to update example.test MX"),
            "{}",
            err.message
        );

        // No key: reads work, updates are refused with the way out.
        let unsigned = Rfc2136Zone::new(config(&bind, None));
        assert!(unsigned.read(ZONE, RecordType::Mx).await.unwrap().is_some());
        let err = unsigned.write(&mx(300)).await.unwrap_err();
        assert!(err.message.contains("only when signed"), "{}", err.message);

        // Nothing of it reached the zone, and no secret reached a message.
        assert_eq!(bind.primary.serial(ZONE), 1);
        assert!(!format!("{:?}", key(&bind)).contains(&format!("{:?}", bind.secret)));
    });
}

#[test]
fn a_manual_zone_reads_and_names_the_change_it_leaves_to_a_person() {
    let bind = start(true);
    let manual = ManualZone::new(config(&bind, None));
    rt().block_on(async {
        assert!(!manual.writable());
        assert!(manual.read(ZONE, RecordType::Txt).await.unwrap().is_some());
        let err = manual.write(&mx(300)).await.unwrap_err();
        assert!(
            err.message
                .contains("set example.test MX 300 1 mx0.mail.ovh.net, 5 mx1.mail.ovh.net"),
            "{}",
            err.message
        );
        assert_eq!(bind.primary.serial(ZONE), 1);
    });
}
