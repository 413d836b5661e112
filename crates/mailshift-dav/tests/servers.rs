//! The DAV client against real servers: each test starts Radicale and Xandikos on loopback
//! ports and checks one behaviour on both (or says why one differs).

use mailshift_dav::dav::{Auth, DavConfig, DavStore, Secret};
use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::{Collection, Component, Precondition, PutOutcome, Store};
use mailshift_dav::testserver::{DavServer, ServerKind};

fn servers() -> [DavServer; 2] {
    [DavServer::radicale(), DavServer::xandikos()]
}

async fn connect(server: &DavServer, user: &str) -> DavStore {
    DavStore::connect(config(&server.url(), user))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e:?}\n{}", server.kind(), server.log()))
}

fn config(url: &str, user: &str) -> DavConfig {
    DavConfig::new(
        url,
        Auth::Basic {
            login: user.into(),
            password: Secret::new("secret"),
        },
    )
}

fn card(uid: &str, name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n")
}

fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailshift//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n\
         DTEND:20260105T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// An address book of the account, created if the server has none.
async fn addressbook(server: &DavServer, store: &DavStore) -> Collection {
    let _ = server.default_addressbook("alice");
    store
        .collections(Component::Card)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("an address book")
}

async fn calendar(server: &DavServer, store: &DavStore) -> Collection {
    let _ = server.default_calendar("alice");
    store
        .collections(Component::Event)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a calendar")
}

#[tokio::test]
async fn discovery_finds_the_homes_from_the_bare_url() {
    for server in servers() {
        let store = connect(&server, "alice").await;
        assert_eq!(
            store.principal(),
            Some(server.principal("alice").as_str()),
            "{:?}",
            server.kind()
        );
        assert!(!store.schedules(), "{:?}", server.kind());
        // Xandikos starts with one of each; Radicale with none.
        let cards = store.collections(Component::Card).await.unwrap();
        let expected = usize::from(server.kind() == ServerKind::Xandikos);
        assert_eq!(cards.len(), expected, "{:?}: {cards:?}", server.kind());
    }
}
