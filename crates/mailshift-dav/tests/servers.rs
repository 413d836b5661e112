//! The DAV client against real servers: each test starts Radicale and Xandikos on loopback
//! ports and checks one behaviour on both (or says why one differs).

use mailshift_dav::dav::{Auth, DavConfig, DavStore, Secret};
use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::{Collection, Component, Precondition, PutOutcome, Store};
use mailshift_dav::testserver::{DavServer, Options, ServerKind};

fn servers() -> [DavServer; 2] {
    [DavServer::radicale(), DavServer::xandikos()]
}

async fn connect(server: &DavServer, user: &str) -> DavStore {
    DavStore::connect(server.dav_config(user))
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
        if let Some(book) = cards.first() {
            assert_eq!(book.vcard_versions, vec!["3.0".to_string()], "{book:?}");
            assert!(book.ctag.is_some() && book.sync_token.is_some(), "{book:?}");
        }
    }
}

#[tokio::test]
async fn a_url_without_dav_is_a_config_error_naming_the_setting() {
    // Anything that answers HTTP but not DAV: a server's page that does not exist.
    let server = DavServer::xandikos();
    let url = format!("{}/no/dav/here/", server.url());
    let err = DavStore::connect(config(&url, "alice")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
    assert!(
        err.message.contains("no CardDAV/CalDAV service at URL"),
        "{}",
        err.message
    );
    assert!(err.message.contains("dav.url"), "{}", err.message);
    assert!(!err.message.contains("secret"), "{}", err.message);
}

#[tokio::test]
async fn plain_http_to_another_machine_is_refused_before_any_request() {
    let err = DavStore::connect(config("http://dav.example.com/", "alice"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
    assert!(err.message.contains("https://"), "{}", err.message);
}

#[tokio::test]
async fn an_unreachable_server_is_a_network_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config(&format!("http://127.0.0.1:{port}/"), "alice");
    config.attempts = 1;
    let err = DavStore::connect(config).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err:?}");
}

#[tokio::test]
async fn collections_are_created_with_their_properties_and_listed_back() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let book_like = Collection {
            name: "work".into(),
            href: String::new(),
            display_name: Some("Work & co — Zürich".into()),
            color: None,
            description: Some("Colleagues".into()),
            components: vec![Component::Card],
            sync_token: None,
            ctag: None,
            vcard_versions: Vec::new(),
            max_size: None,
        };
        let book = store.create_collection("work", &book_like).await.unwrap();
        assert_eq!(book.name, "work", "{kind:?}");
        assert!(book.href.ends_with("/work/"), "{kind:?}: {book:?}");
        assert_eq!(book.display_name, book_like.display_name, "{kind:?}");
        assert_eq!(book.description, book_like.description, "{kind:?}");
        assert_eq!(book.components, vec![Component::Card], "{kind:?}");

        let tasks_like = Collection {
            name: "todo".into(),
            display_name: Some("To do".into()),
            color: Some("#FF8800FF".into()),
            description: Some("Chores".into()),
            components: vec![Component::Task],
            ..book_like.clone()
        };
        let tasks = store.create_collection("todo", &tasks_like).await.unwrap();
        assert_eq!(tasks.display_name.as_deref(), Some("To do"), "{kind:?}");
        assert_eq!(tasks.color.as_deref(), Some("#FF8800FF"), "{kind:?}");
        if kind == ServerKind::Radicale {
            // Xandikos 0.2.8 refuses calendar-description (409) and makes every calendar
            // hold every component.
            assert_eq!(tasks.description.as_deref(), Some("Chores"), "{kind:?}");
            assert_eq!(tasks.components, vec![Component::Task], "{kind:?}");
            // A task list is not where events go.
            let calendars = store.collections(Component::Event).await.unwrap();
            assert!(!calendars.iter().any(|c| c.href == tasks.href), "{kind:?}");
        }
        // Creating it again returns it.
        let listed = store.collections(Component::Task).await.unwrap();
        assert!(listed.contains(&tasks), "{kind:?}: {listed:?}");
        let again = store.create_collection("todo", &tasks_like).await.unwrap();
        assert_eq!(again.href, tasks.href, "{kind:?}");
        let again = store.create_collection("work", &book_like).await.unwrap();
        assert_eq!(again.href, book.href, "{kind:?}");
    }
}

#[tokio::test]
async fn puts_honour_their_preconditions() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let book = addressbook(&server, &store).await;
        let href = store.href_for(&book, "ann", Component::Card);
        assert!(
            href.starts_with(&book.href) && href.ends_with("/ann.vcf"),
            "{href}"
        );
        let first = card("ann-uid", "Ann");
        let created = store
            .put(&book, &href, first.as_bytes(), Precondition::Absent)
            .await
            .unwrap();
        let PutOutcome::Written { etag: Some(etag) } = created else {
            panic!("{kind:?}: {created:?}");
        };
        let again = store
            .put(&book, &href, first.as_bytes(), Precondition::Absent)
            .await
            .unwrap();
        assert_eq!(again, PutOutcome::PreconditionFailed, "{kind:?}");

        let second = card("ann-uid", "Ann Smith");
        let updated = store
            .put(
                &book,
                &href,
                second.as_bytes(),
                Precondition::Matches(etag.clone()),
            )
            .await
            .unwrap();
        let PutOutcome::Written {
            etag: Some(new_etag),
        } = updated
        else {
            panic!("{kind:?}: {updated:?}");
        };
        assert_ne!(new_etag, etag, "{kind:?}");
        let stale = store
            .put(&book, &href, first.as_bytes(), Precondition::Matches(etag))
            .await
            .unwrap();
        assert_eq!(stale, PutOutcome::PreconditionFailed, "{kind:?}");
        assert!(
            server.get_raw(&href).unwrap().contains("Ann Smith"),
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn the_same_uid_at_another_href_is_a_uid_conflict() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let calendar = calendar(&server, &store).await;
        let a = store.href_for(&calendar, "a", Component::Event);
        let b = store.href_for(&calendar, "b", Component::Event);
        let data = event("same-uid", "Meeting");
        let first = store
            .put(&calendar, &a, data.as_bytes(), Precondition::Absent)
            .await
            .unwrap();
        assert!(
            matches!(first, PutOutcome::Written { .. }),
            "{kind:?}: {first:?}"
        );
        let second = store
            .put(&calendar, &b, data.as_bytes(), Precondition::Absent)
            .await
            .unwrap();
        // Radicale answers 409, Xandikos a 207 holding a 412; both name no-uid-conflict.
        assert!(
            matches!(second, PutOutcome::UidConflict { .. }),
            "{kind:?}: {second:?}"
        );
        assert!(server.get_raw(&b).is_none(), "{kind:?}");
    }
}

#[tokio::test]
async fn an_object_the_server_cannot_read_is_refused_alone() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let calendar = calendar(&server, &store).await;
        let href = store.href_for(&calendar, "bad", Component::Event);
        let outcome = store
            .put(
                &calendar,
                &href,
                b"BEGIN:VCALENDAR\r\nthis is not",
                Precondition::Absent,
            )
            .await
            .unwrap();
        let PutOutcome::Refused { status, .. } = outcome else {
            panic!("{kind:?}: {outcome:?}");
        };
        assert!((400..500).contains(&status), "{kind:?}: {status}");
    }
}

#[tokio::test]
async fn listing_gives_every_object_with_its_etag_and_nothing_else() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let book = addressbook(&server, &store).await;
        let mut written = Vec::new();
        for name in ["a", "b c", "Jérôme"] {
            let href = store.href_for(&book, name, Component::Card);
            let outcome = store
                .put(
                    &book,
                    &href,
                    card(name, name).as_bytes(),
                    Precondition::Absent,
                )
                .await
                .unwrap();
            let PutOutcome::Written { etag } = outcome else {
                panic!("{kind:?}: {outcome:?}");
            };
            written.push((href, etag));
        }
        let mut listed = store.list(&book).await.unwrap();
        listed.sort_by(|x, y| x.href.cmp(&y.href));
        written.sort();
        assert_eq!(
            listed.iter().map(|l| &l.href).collect::<Vec<_>>(),
            written.iter().map(|(h, _)| h).collect::<Vec<_>>(),
            "{kind:?}"
        );
        for (l, (_, etag)) in listed.iter().zip(&written) {
            assert!(l.etag.is_some(), "{kind:?}: {l:?}");
            if etag.is_some() {
                assert_eq!(&l.etag, etag, "{kind:?}");
            }
        }
    }
}

#[tokio::test]
async fn multiget_returns_the_objects_as_written_and_skips_missing_ones() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let calendar = calendar(&server, &store).await;
        let mut hrefs = Vec::new();
        for (i, name) in ["e0", "e 1", "été+2"].iter().enumerate() {
            let href = store.href_for(&calendar, name, Component::Event);
            let data = event(&format!("uid-{i}"), &format!("Event {i} & more"));
            store
                .put(&calendar, &href, data.as_bytes(), Precondition::Absent)
                .await
                .unwrap();
            hrefs.push(href);
        }
        hrefs.sort();
        let missing = store.href_for(&calendar, "gone", Component::Event);
        let mut asked = hrefs.clone();
        asked.push(missing.clone());
        let mut fetched = store.fetch(&calendar, &asked).await.unwrap();
        fetched.sort_by(|a, b| a.href.cmp(&b.href));
        assert_eq!(
            fetched.iter().map(|f| &f.href).collect::<Vec<_>>(),
            hrefs.iter().collect::<Vec<_>>(),
            "{kind:?}"
        );
        for f in &fetched {
            let text = String::from_utf8(f.data.clone()).unwrap();
            assert!(text.starts_with("BEGIN:VCALENDAR"), "{kind:?}: {text:?}");
            assert!(text.contains("& more"), "{kind:?}: {text:?}");
            assert!(f.etag.is_some(), "{kind:?}");
            // As the server serves it on its own.
            assert_eq!(Some(text), server.get_raw(&f.href), "{kind:?}");
        }
    }
}

#[tokio::test]
async fn sync_collection_gives_the_changes_since_a_token() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let book = addressbook(&server, &store).await;
        let token = book.sync_token.clone().expect("a sync token");
        let a = store.href_for(&book, "a", Component::Card);
        let b = store.href_for(&book, "b", Component::Card);
        for (href, uid) in [(&a, "a"), (&b, "b")] {
            store
                .put(&book, href, card(uid, uid).as_bytes(), Precondition::Absent)
                .await
                .unwrap();
        }
        let delta = store
            .changes(&book, &token)
            .await
            .unwrap()
            .expect("a delta");
        let mut changed: Vec<_> = delta.changed.iter().map(|l| l.href.clone()).collect();
        changed.sort();
        assert_eq!(changed, vec![a.clone(), b.clone()], "{kind:?}");
        assert!(delta.removed.is_empty(), "{kind:?}");
        assert!(delta.changed.iter().all(|l| l.etag.is_some()), "{kind:?}");

        assert!(store.delete(&a, None).await.unwrap(), "{kind:?}");
        let next = store
            .changes(&book, &delta.token)
            .await
            .unwrap()
            .expect("a delta");
        assert_eq!(next.removed, vec![a.clone()], "{kind:?}: {next:?}");
        assert!(next.changed.is_empty(), "{kind:?}: {next:?}");

        let nothing = store
            .changes(&book, &next.token)
            .await
            .unwrap()
            .expect("a delta");
        assert!(
            nothing.changed.is_empty() && nothing.removed.is_empty(),
            "{kind:?}"
        );

        let invalid = store
            .changes(&book, "http://invalid.example/sync/nonsense")
            .await
            .unwrap();
        assert_eq!(invalid, None, "{kind:?}");
    }
}

#[tokio::test]
async fn deletes_only_the_version_asked_for() {
    for server in servers() {
        let kind = server.kind();
        let store = connect(&server, "alice").await;
        let book = addressbook(&server, &store).await;
        let href = store.href_for(&book, "d", Component::Card);
        let outcome = store
            .put(
                &book,
                &href,
                card("d", "D").as_bytes(),
                Precondition::Absent,
            )
            .await
            .unwrap();
        let PutOutcome::Written { etag: Some(etag) } = outcome else {
            panic!("{kind:?}: {outcome:?}");
        };
        assert!(
            !store.delete(&href, Some("\"stale\"")).await.unwrap(),
            "{kind:?}"
        );
        assert!(server.get_raw(&href).is_some(), "{kind:?}");
        assert!(store.delete(&href, Some(&etag)).await.unwrap(), "{kind:?}");
        assert!(server.get_raw(&href).is_none(), "{kind:?}");
        assert!(!store.delete(&href, None).await.unwrap(), "{kind:?}");
    }
}

#[tokio::test]
async fn a_well_known_redirect_is_followed_with_its_method() {
    // Radicale answers PROPFIND on /.well-known/caldav with a 301 to its root.
    let server = DavServer::radicale();
    let url = format!("{}/.well-known/caldav", server.url());
    let store = DavStore::connect(config(&url, "alice")).await.unwrap();
    assert_eq!(store.principal(), Some("/alice/"));
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error_without_the_password() {
    let options = Options {
        users: vec![("alice".into(), "right".into())],
        ..Options::default()
    };
    let server = DavServer::start_with(ServerKind::Radicale, options).unwrap();
    DavStore::connect(server.dav_config("alice")).await.unwrap();
    let err = DavStore::connect(config(&server.url(), "alice"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
    assert!(err.message.contains("alice"), "{}", err.message);
    assert!(!err.message.contains("secret"), "{}", err.message);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_unless_its_ca_is_given() {
    let options = Options {
        tls: true,
        ..Options::default()
    };
    let server = DavServer::start_with(ServerKind::Radicale, options).unwrap();
    let mut plain = config(&server.url(), "alice");
    plain.attempts = 1;
    let err = DavStore::connect(plain.clone()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Tls, "{err:?}");
    assert!(err.message.contains("ca_file"), "{}", err.message);

    let trusted = server.dav_config("alice");
    let store = DavStore::connect(trusted)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", server.log()));
    assert_eq!(store.principal(), Some("/alice/"));

    let insecure = DavConfig {
        insecure_skip_verify: true,
        ..plain
    };
    DavStore::connect(insecure).await.unwrap();
}
