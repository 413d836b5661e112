//! EwsStore against the EWS simulator (Microsoft's published definitions): each Store
//! operation for contacts, tasks and a series, with no request outside the schema and no
//! invitation sent.

use ews_sim::EwsSim;
use mailshift_dav::store::{Component, Precondition, PutOutcome, Store};
use mailshift_ews::{Auth, EwsConfig, EwsStore, Secret};

const MAILBOX: &str = "jane@example.com";

fn sim() -> EwsSim {
    let sim = EwsSim::spawn().unwrap();
    sim.add_mailbox(MAILBOX, "pw");
    sim
}

async fn store(sim: &EwsSim) -> EwsStore {
    let mut config = EwsConfig::new(
        sim.url(),
        MAILBOX,
        Auth::Basic {
            login: MAILBOX.into(),
            password: Secret::new("pw"),
        },
    );
    config.backoff = std::time::Duration::from_millis(1);
    EwsStore::connect(config).await.unwrap()
}

const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann-1\r\nFN:Ann Doe\r\nN:Doe;Ann;;;\r\nEMAIL:ann@example.com\r\nTEL;TYPE=cell:+33 6 00\r\nNOTE:hello\r\nEND:VCARD\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn contacts_are_created_once_updated_at_their_change_key_and_deleted() {
    let sim = sim();
    let store = store(&sim).await;
    let books = store.collections(Component::Card).await.unwrap();
    assert_eq!(books.len(), 1, "{books:?}");
    let book = &books[0];
    let href = store.href_for(book, "ann-1", Component::Card);
    let written = store
        .put(book, &href, CARD.as_bytes(), Precondition::Absent)
        .await
        .unwrap();
    let PutOutcome::Written { etag: Some(etag) } = written else {
        panic!("{written:?}")
    };
    // A second create of the same name adopts instead of duplicating.
    assert_eq!(
        store
            .put(book, &href, CARD.as_bytes(), Precondition::Absent)
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    let listed = store.list(book).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].href.as_str(), listed[0].etag.as_deref()),
        (href.as_str(), Some(etag.as_str()))
    );
    let fetched = store
        .fetch(book, std::slice::from_ref(&href))
        .await
        .unwrap();
    let text = String::from_utf8(fetched[0].data.clone()).unwrap();
    assert!(
        text.contains("UID:ann-1\r\n") && text.contains("EMAIL:ann@example.com\r\n"),
        "{text}"
    );
    let changed = CARD.replace("NOTE:hello", "NOTE:bye");
    let updated = store
        .put(
            book,
            &href,
            changed.as_bytes(),
            Precondition::Matches(etag.clone()),
        )
        .await
        .unwrap();
    let PutOutcome::Written { etag: Some(new) } = updated else {
        panic!("{updated:?}")
    };
    assert_ne!(new, etag);
    // The old ChangeKey no longer matches.
    assert_eq!(
        store
            .put(
                book,
                &href,
                CARD.as_bytes(),
                Precondition::Matches(etag.clone())
            )
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    // A delete at a stale ChangeKey leaves the item alone.
    assert!(!store.delete(&href, Some(&etag)).await.unwrap());
    assert_eq!(store.list(book).await.unwrap().len(), 1);
    assert!(store.delete(&href, Some(&new)).await.unwrap());
    assert!(store.list(book).await.unwrap().is_empty());
    assert_eq!(sim.violations(), Vec::<String>::new());
}

/// In UTC: the simulator places occurrences from a Start with an offset, and does not read
/// local times in the request's TimeZoneContext as Exchange does (the unit tests cover zones).
const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261128T100000Z\r\nSUMMARY:Stand-up\r\n\
DTSTART:20261202T080000Z\r\nDTEND:20261202T081500Z\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=10\r\nEXDATE:20261207T080000Z\r\n\
ORGANIZER:mailto:jane@example.com\r\n\
ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT:mailto:bob@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261128T100000Z\r\nRECURRENCE-ID:20261209T080000Z\r\n\
SUMMARY:Stand-up (long)\r\nDTSTART:20261209T090000Z\r\nDTEND:20261209T100000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_series_is_written_and_read_as_one_unit_without_invitations() {
    let sim = sim();
    let store = store(&sim).await;
    let calendars = store.collections(Component::Event).await.unwrap();
    assert_eq!(calendars.len(), 1, "{calendars:?}");
    let cal = &calendars[0];
    let href = store.href_for(cal, "standup-1", Component::Event);
    let written = store
        .put(cal, &href, SERIES.as_bytes(), Precondition::Absent)
        .await
        .unwrap();
    assert!(
        matches!(written, PutOutcome::Written { etag: Some(_) }),
        "{written:?}"
    );
    assert_eq!(store.losses(), Vec::<String>::new());
    let fetched = store.fetch(cal, std::slice::from_ref(&href)).await.unwrap();
    let text = String::from_utf8(fetched[0].data.clone())
        .unwrap()
        .replace("\r\n ", "");
    for expected in [
        "UID:standup-1",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=10",
        "EXDATE",
        "RECURRENCE-ID",
        "SUMMARY:Stand-up (long)",
        "mailto:bob@example.com",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    assert_eq!(sim.invitations_sent(), 0);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

const TODO: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VTODO\r\nUID:taxes\r\nDTSTAMP:20261128T100000Z\r\nSUMMARY:File taxes\r\nDUE;VALUE=DATE:20270415\r\nSTATUS:IN-PROCESS\r\nPERCENT-COMPLETE:50\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn tasks_and_new_folders() {
    let sim = sim();
    let store = store(&sim).await;
    let lists = store.collections(Component::Task).await.unwrap();
    let like = lists[0].clone();
    let work = store.create_collection("Work", &like).await.unwrap();
    assert_eq!(work.name, "Work");
    assert_eq!(
        store.create_collection("Work", &like).await.unwrap().href,
        work.href
    );
    let href = store.href_for(&work, "taxes", Component::Task);
    let written = store
        .put(&work, &href, TODO.as_bytes(), Precondition::Absent)
        .await
        .unwrap();
    assert!(matches!(written, PutOutcome::Written { .. }), "{written:?}");
    let text =
        String::from_utf8(store.fetch(&work, &[href]).await.unwrap()[0].data.clone()).unwrap();
    for expected in [
        "UID:taxes",
        "DUE;VALUE=DATE:20270415",
        "STATUS:IN-PROCESS",
        "PERCENT-COMPLETE:50",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_autodiscover_and_busy_answers() {
    let sim = sim();
    sim.add_token("tok3n", MAILBOX);
    // Autodiscover finds the EWS URL the simulator serves.
    let mut config = EwsConfig::new("", MAILBOX, Auth::Bearer(Secret::new("tok3n")));
    config.backoff = std::time::Duration::from_millis(1);
    let found = mailshift_ews::autodiscover::discover_at(&config, &[sim.autodiscover_url()])
        .await
        .unwrap();
    assert_eq!(found, sim.url());
    config.url = found;
    let store = EwsStore::connect(config).await.unwrap();
    // Two ErrorServerBusy answers are waited out (their BackOffMilliseconds), then answered.
    sim.fail_next_busy(2, 5);
    assert_eq!(store.collections(Component::Card).await.unwrap().len(), 1);
    // A bare 503 with Retry-After too.
    sim.fail_next_status(1, 503, Some(0));
    assert_eq!(store.collections(Component::Task).await.unwrap().len(), 1);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

/// A store on an NTLM-only simulator, logging in as `login` with `password`.
async fn ntlm_store(
    sim: &EwsSim,
    login: &str,
    password: &str,
    scheme: mailshift_ews::AuthScheme,
) -> Result<EwsStore, mailshift_dav::store::StoreError> {
    let mut config = EwsConfig::new(
        sim.url(),
        MAILBOX,
        Auth::Basic {
            login: login.into(),
            password: Secret::new(password),
        },
    );
    config.auth_scheme = scheme;
    config.attempts = 2;
    config.backoff = std::time::Duration::from_millis(1);
    EwsStore::connect(config).await
}

#[tokio::test(flavor = "multi_thread")]
async fn ntlm_authenticates_one_connection_once_for_many_requests() {
    use mailshift_ews::AuthScheme;
    let sim = sim();
    sim.require_ntlm(true);
    for (login, scheme) in [
        (MAILBOX, AuthScheme::Ntlm),
        ("EXAMPLE\\jane", AuthScheme::Ntlm),
        (MAILBOX, AuthScheme::Auto),
    ] {
        let before = sim.ntlm_logins().len();
        let store = ntlm_store(&sim, login, "pw", scheme).await.unwrap();
        for _ in 0..3 {
            assert_eq!(store.collections(Component::Card).await.unwrap().len(), 1);
        }
        let logins = sim.ntlm_logins();
        // One handshake served every request of the session: its connection was reused.
        assert_eq!(logins.len(), before + 1, "{login} {scheme:?}: {logins:?}");
        assert_eq!(logins[before].mailbox, MAILBOX);
    }
    let refusals = sim.ntlm_refusals();
    // `auto` tried Basic once, and only once; `ntlm` never sent it.
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].contains("Basic refused"), "{refusals:?}");
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ntlm_password_is_an_auth_error_naming_the_login_not_the_secret() {
    let sim = sim();
    sim.require_ntlm(true);
    let store = ntlm_store(
        &sim,
        MAILBOX,
        "wrong-s3cret",
        mailshift_ews::AuthScheme::Ntlm,
    )
    .await;
    let failure = match store {
        Err(e) => e,
        Ok(store) => store.collections(Component::Card).await.unwrap_err(),
    };
    assert_eq!(
        failure.kind,
        mailshift_dav::error::ErrorKind::Auth,
        "{failure:?}"
    );
    assert!(failure.message.contains(MAILBOX), "{failure:?}");
    assert!(failure.message.contains("NTLM"), "{failure:?}");
    assert!(failure.message.contains("password"), "{failure:?}");
    assert!(!failure.message.contains("wrong-s3cret"), "{failure:?}");
    assert!(sim.ntlm_logins().is_empty());
    assert!(
        sim.ntlm_refusals()
            .iter()
            .any(|r| r.contains("wrong password")),
        "{:?}",
        sim.ntlm_refusals()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_or_forgotten_ntlm_connection_authenticates_again() {
    let sim = sim();
    sim.require_ntlm(true);
    // The first handshake loses its connection after the challenge.
    sim.ntlm_close_after_challenge(1);
    let store = ntlm_store(&sim, MAILBOX, "pw", mailshift_ews::AuthScheme::Ntlm)
        .await
        .unwrap();
    assert_eq!(store.collections(Component::Card).await.unwrap().len(), 1);
    assert_eq!(sim.ntlm_challenges(), 2);
    assert_eq!(sim.ntlm_logins().len(), 1);
    // The server forgets the authenticated connection: the next request's 401 makes the
    // client authenticate that connection again.
    sim.ntlm_forget_connections();
    assert_eq!(store.collections(Component::Card).await.unwrap().len(), 1);
    let logins = sim.ntlm_logins();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert_eq!(logins[0].connection, logins[1].connection, "{logins:?}");
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn autodiscover_speaks_ntlm_too() {
    let sim = sim();
    sim.require_ntlm(true);
    let mut config = EwsConfig::new(
        "",
        MAILBOX,
        Auth::Basic {
            login: MAILBOX.into(),
            password: Secret::new("pw"),
        },
    );
    config.auth_scheme = mailshift_ews::AuthScheme::Auto;
    let found = mailshift_ews::autodiscover::discover_at(&config, &[sim.autodiscover_url()])
        .await
        .unwrap();
    assert_eq!(found, sim.url());
    assert_eq!(sim.ntlm_logins().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ntlm_only_simulator_offers_ntlm_and_negotiate_never_basic() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim();
    sim.require_ntlm(true);
    let mut tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    // Basic credentials (jane@example.com:pw), which the simulator must refuse.
    tcp.write_all(
        b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
          Authorization: Basic amFuZUBleGFtcGxlLmNvbTpwdw==\r\nContent-Length: 4\r\n\r\n<x/>",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    let offered: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("www-authenticate: "))
        .collect();
    assert_eq!(offered, ["NTLM", "Negotiate"], "{raw}");
    assert!(sim.ntlm_refusals()[0].contains("Basic refused"));
}
