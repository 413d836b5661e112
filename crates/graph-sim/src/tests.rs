//! The simulator end to end over loopback HTTP, the way the Graph client will use it.

use serde_json::{Value, json};

use super::*;

const MB: &str = "ada@example.com";
const TOKEN: &str = "token-ada";
const IMMUTABLE: (&str, &str) = ("Prefer", "IdType=\"ImmutableId\"");
const EXT: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name mailshift-source";

async fn sim() -> GraphSim {
    let sim = GraphSim::start().await.unwrap();
    sim.add_mailbox(MB, TOKEN);
    sim
}

/// A client with ring as its TLS provider, as mailshift's own: reqwest is built without a
/// default provider, and even a plain-HTTP client needs one to be built.
fn client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

fn url(sim: &GraphSim, path: &str) -> String {
    format!("{}/users/{MB}/{path}", sim.url())
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req
        .bearer_auth(TOKEN)
        .header(IMMUTABLE.0, IMMUTABLE.1)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_without_a_valid_token_or_for_another_mailbox_are_refused() {
    let sim = sim().await;
    sim.add_mailbox("bob@example.com", "token-bob");
    let c = client();
    let r = c.get(url(&sim, "contacts")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth("token-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    sim.add_app_token("app");
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth("app")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_contact_is_created_read_updated_with_if_match_and_deleted() {
    let sim = sim().await;
    let c = client();
    let (s, folder) = send(
        c.post(url(&sim, "contactFolders"))
            .json(&json!({"displayName": "Work"})),
    )
    .await;
    assert_eq!(s, 201, "{folder}");
    let fid = folder["id"].as_str().unwrap();
    let body = json!({
        "givenName": "Ada", "surname": "Lovelace",
        "emailAddresses": [{"address": "ada@example.org", "name": "Ada"}],
        "singleValueExtendedProperties": [{"id": EXT, "value": "src-1"}]
    });
    let (s, created) = send(
        c.post(url(&sim, &format!("contactFolders/{fid}/contacts")))
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("AAkAL"), "immutable ids when asked: {id}");
    let etag = created["@odata.etag"].as_str().unwrap().to_string();

    let path = format!("contactFolders/{fid}/contacts/{id}");
    let (s, _) = send(
        c.patch(url(&sim, &path))
            .header("If-Match", &etag)
            .json(&json!({"surname": "King"})),
    )
    .await;
    assert_eq!(s, 200);
    // The first etag is now stale.
    let (s, err) = send(
        c.patch(url(&sim, &path))
            .header("If-Match", &etag)
            .json(&json!({"surname": "X"})),
    )
    .await;
    assert_eq!(s, 412, "{err}");
    let (s, got) = send(c.get(url(&sim, &path))).await;
    assert_eq!((s, got["surname"].as_str()), (200, Some("King")));
    let (s, _) = send(c.delete(url(&sim, &path)).header("If-Match", &etag)).await;
    assert_eq!(s, 412);
    let (s, _) = send(
        c.delete(url(&sim, &path))
            .header("If-Match", got["@odata.etag"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = send(c.get(url(&sim, &path))).await;
    assert_eq!(s, 404);
    let log: Vec<(String, u16)> = sim
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| (r.method.clone(), r.status))
        .collect();
    let expected = [
        ("POST", 201),
        ("POST", 201),
        ("PATCH", 200),
        ("PATCH", 412),
        ("DELETE", 412),
        ("DELETE", 204),
    ];
    assert_eq!(log, expected.map(|(m, s)| (m.to_string(), s)).to_vec());
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn default_ids_unless_immutable_ids_are_asked_for_and_such_requests_are_recorded() {
    let sim = sim().await;
    let id = sim
        .insert(MB, Collection::Contacts(None), json!({"givenName": "A"}))
        .unwrap();
    let r = client()
        .get(url(&sim, "contacts"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let shown = v["value"][0]["id"].as_str().unwrap();
    assert_ne!(shown, id);
    assert!(shown.starts_with("AAMk"));
    assert_eq!(
        sim.requests_without_immutable_ids(),
        vec![format!("GET /v1.0/users/{MB}/contacts")]
    );
    // The default id still reaches the item.
    let (s, got) = send(client().get(url(&sim, &format!("contacts/{shown}")))).await;
    assert_eq!((s, got["id"].as_str()), (200, Some(id.as_str())));
}

#[tokio::test]
async fn requests_outside_the_definition_are_refused_and_recorded_with_their_place() {
    let sim = sim().await;
    let c = client();
    let (s, _) = send(c.get(url(&sim, "messages"))).await;
    assert_eq!(s, 400);
    let (s, _) = send(c.put(url(&sim, "contacts"))).await;
    assert_eq!(s, 405);
    let (s, _) = send(c.get(url(&sim, "contacts?$bogus=1"))).await;
    assert_eq!(s, 400);
    let (s, _) = send(
        c.post(url(&sim, "events"))
            .json(&json!({"subject": 3, "iCalUId": "x", "showAs": "away"})),
    )
    .await;
    assert_eq!(s, 400);
    let at: Vec<String> = sim.violations().iter().map(|v| v.at.clone()).collect();
    assert_eq!(
        at,
        vec![
            "path",
            "path",
            "query:$bogus",
            "$.iCalUId",
            "$.showAs",
            "$.subject"
        ]
    );
    assert!(
        sim.insert(MB, Collection::Rules, json!({"displayName": 1}))
            .is_err()
    );
}

#[tokio::test]
async fn lists_are_paged_with_next_links() {
    let sim = sim().await;
    sim.set_page_size(2);
    for n in 0..5 {
        sim.insert(
            MB,
            Collection::Tasks(None),
            json!({"title": format!("t{n}")}),
        )
        .unwrap();
    }
    let lists = sim.list(MB, Collection::TaskLists).unwrap();
    let list = lists[0]["id"].as_str().unwrap();
    let mut next = Some(url(&sim, &format!("todo/lists/{list}/tasks")));
    let mut titles = Vec::new();
    while let Some(link) = next {
        let (s, page) = send(client().get(link)).await;
        assert_eq!(s, 200, "{page}");
        for t in page["value"].as_array().unwrap() {
            titles.push(t["title"].as_str().unwrap().to_string());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(titles, vec!["t0", "t1", "t2", "t3", "t4"]);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_delta_round_returns_only_changes_and_removals() {
    let sim = sim().await;
    sim.set_page_size(2);
    let a = sim
        .insert(MB, Collection::Contacts(None), json!({"givenName": "A"}))
        .unwrap();
    let b = sim
        .insert(MB, Collection::Contacts(None), json!({"givenName": "B"}))
        .unwrap();
    sim.insert(MB, Collection::Contacts(None), json!({"givenName": "C"}))
        .unwrap();
    let c = client();
    let mut link = url(&sim, "contacts/delta");
    let mut seen = 0;
    let delta_link = loop {
        let (s, page) = send(c.get(&link)).await;
        assert_eq!(s, 200, "{page}");
        seen += page["value"].as_array().unwrap().len();
        if let Some(next) = page["@odata.nextLink"].as_str() {
            link = next.to_string();
        } else {
            break page["@odata.deltaLink"].as_str().unwrap().to_string();
        }
    };
    assert_eq!(seen, 3);
    let (s, _) = send(
        c.patch(url(&sim, &format!("contacts/{a}")))
            .json(&json!({"givenName": "A2"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = send(c.delete(url(&sim, &format!("contacts/{b}")))).await;
    assert_eq!(s, 204);
    let (_, page) = send(c.get(&delta_link)).await;
    let value = page["value"].as_array().unwrap();
    assert_eq!(value.len(), 2, "{page}");
    assert_eq!(value[0]["givenName"], "A2");
    assert_eq!(value[1]["id"].as_str(), Some(b.as_str()));
    assert_eq!(value[1]["@removed"]["reason"], "deleted");
    let next_delta = page["@odata.deltaLink"].as_str().unwrap();
    let (_, page) = send(c.get(next_delta)).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn items_are_found_by_their_extended_property() {
    let sim = sim().await;
    let cal = sim
        .insert(MB, Collection::Calendars, json!({"name": "Work"}))
        .unwrap();
    for key in ["k1", "k2"] {
        sim.insert(
            MB,
            Collection::Events(Some(cal.clone())),
            json!({"subject": key, "singleValueExtendedProperties": [{"id": EXT, "value": key}]}),
        )
        .unwrap();
    }
    let filter =
        format!("singleValueExtendedProperties/Any(ep: ep/id eq '{EXT}' and ep/value eq 'k2')");
    let expand = format!("singleValueExtendedProperties($filter=id eq '{EXT}')");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("$filter", &filter)
        .append_pair("$expand", &expand)
        .finish();
    let req = client().get(url(&sim, &format!("calendars/{cal}/events?{query}")));
    let (s, page) = send(req).await;
    assert_eq!(s, 200, "{page}");
    let value = page["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["subject"], "k2");
    assert_eq!(value[0]["singleValueExtendedProperties"][0]["value"], "k2");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn creating_or_updating_an_event_with_attendees_is_recorded_as_invitations_sent() {
    let sim = sim().await;
    let c = client();
    let event = json!({
        "subject": "Review",
        "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": "bob@example.org"}, "type": "required"}]
    });
    let (s, created) = send(c.post(url(&sim, "events")).json(&event)).await;
    assert_eq!(s, 201, "{created}");
    assert!(created["iCalUId"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(created["type"], "singleInstance");
    let (s, _) = send(
        c.post(url(&sim, "events"))
            .json(&json!({"subject": "alone"})),
    )
    .await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap();
    let (s, _) = send(
        c.patch(url(&sim, &format!("events/{id}")))
            .json(&json!({"subject": "R2"})),
    )
    .await;
    assert_eq!(s, 200);
    let sent = sim.invitations_would_send();
    let kinds: Vec<InvitationKind> = sent.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, vec![InvitationKind::Request, InvitationKind::Update]);
    assert_eq!(sent[0].attendees, vec!["bob@example.org".to_string()]);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_fifth_concurrent_request_of_a_mailbox_gets_429_with_retry_after() {
    let sim = sim().await;
    sim.hold();
    let mut pending = Vec::new();
    for _ in 0..4 {
        let req = client().get(url(&sim, "contacts")).bearer_auth(TOKEN);
        pending.push(tokio::spawn(async move {
            req.send().await.map(|r| r.status().as_u16())
        }));
    }
    // Waits, without a deadline of its own, until the four hold their slots.
    while sim.in_flight(MB) < 4 {
        tokio::task::yield_now().await;
    }
    let r = client()
        .get(url(&sim, "contacts"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(sim.throttled(MB), 1);
    sim.release();
    for p in pending {
        assert_eq!(p.await.unwrap().unwrap(), 200);
    }
    assert_eq!(sim.in_flight(MB), 0);
    assert_eq!(sim.requests_this_window(MB), 5);
}

#[tokio::test]
async fn injected_faults_answer_the_next_requests_in_order() {
    let sim = sim().await;
    sim.inject(
        MB,
        [
            Fault::Status {
                status: 429,
                retry_after: 7,
            },
            Fault::Status {
                status: 503,
                retry_after: 2,
            },
            Fault::Cut,
        ],
    );
    let c = client();
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (503, "2")
    );
    let cut = async {
        c.get(url(&sim, "contacts"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .bytes()
            .await
    };
    assert!(cut.await.is_err(), "the cut connection must fail the read");
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn rules_and_photos_round_trip() {
    let sim = sim().await;
    let c = client();
    let rule = json!({
        "displayName": "From boss", "sequence": 1, "isEnabled": true,
        "conditions": {"fromAddresses": [{"emailAddress": {"address": "boss@example.org"}}]},
        "actions": {"markAsRead": true, "stopProcessingRules": true}
    });
    let (s, created) = send(
        c.post(url(&sim, "mailFolders/inbox/messageRules"))
            .json(&rule),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(sim.list(MB, Collection::Rules).unwrap().len(), 1);
    let (s, _) = send(c.get(url(&sim, "mailFolders/archive/messageRules"))).await;
    assert_eq!(s, 404);
    let id = sim
        .insert(MB, Collection::Contacts(None), json!({"givenName": "P"}))
        .unwrap();
    let r = c
        .put(url(&sim, &format!("contacts/{id}/photo/$value")))
        .bearer_auth(TOKEN)
        .header("Content-Type", "image/jpeg")
        .body(vec![0xFF, 0xD8, 0xFF])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(sim.photo(MB, &id), Some(vec![0xFF, 0xD8, 0xFF]));
    let r = c
        .get(url(&sim, &format!("contacts/{id}/photo/$value")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), vec![0xFF, 0xD8, 0xFF]);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_series_expands_into_occurrences_that_become_exceptions_or_are_cancelled() {
    let sim = sim().await;
    let c = client();
    let series = json!({
        "subject": "Weekly",
        "start": {"dateTime": "2026-12-07T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-07T10:30:00", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2026-12-07", "numberOfOccurrences": 4}
        }
    });
    let (s, master) = send(c.post(url(&sim, "events")).json(&series)).await;
    assert_eq!(
        (s, master["type"].as_str()),
        (201, Some("seriesMaster")),
        "{master}"
    );
    let id = master["id"].as_str().unwrap().to_string();
    let window = "startDateTime=2026-12-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z";
    let instances = |sim: &GraphSim| url(sim, &format!("events/{id}/instances?{window}"));

    let (s, page) = send(c.get(instances(&sim))).await;
    assert_eq!(s, 200, "{page}");
    let occurrences = page["value"].as_array().unwrap().clone();
    assert_eq!(occurrences.len(), 4);
    assert_eq!(occurrences[1]["type"], "occurrence");
    assert_eq!(
        occurrences[1]["start"]["dateTime"],
        "2026-12-14T10:00:00.0000000"
    );
    assert_eq!(occurrences[1]["seriesMasterId"].as_str(), Some(id.as_str()));

    // One occurrence moved (an exception), another deleted.
    let second = occurrences[1]["id"].as_str().unwrap();
    let moved = json!({"start": {"dateTime": "2026-12-15T09:00:00", "timeZone": "UTC"},
                       "end": {"dateTime": "2026-12-15T09:30:00", "timeZone": "UTC"}});
    let (s, exception) = send(c.patch(url(&sim, &format!("events/{second}"))).json(&moved)).await;
    assert_eq!(
        (s, exception["type"].as_str()),
        (200, Some("exception")),
        "{exception}"
    );
    assert_eq!(exception["id"].as_str(), Some(second));
    assert_eq!(exception["iCalUId"], master["iCalUId"]);
    let third = occurrences[2]["id"].as_str().unwrap();
    let (s, _) = send(c.delete(url(&sim, &format!("events/{third}")))).await;
    assert_eq!(s, 204);

    let (_, page) = send(c.get(instances(&sim))).await;
    let types: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["occurrence", "exception", "occurrence"]);
    let (_, got) = send(c.get(url(&sim, &format!("events/{id}")))).await;
    assert_eq!(got["cancelledOccurrences"].as_array().unwrap().len(), 1);
    let (_, exceptions) =
        send(c.get(url(&sim, &format!("events/{id}/exceptionOccurrences")))).await;
    assert_eq!(exceptions["value"].as_array().unwrap().len(), 1);
    // The calendar's list shows the series once, not its exception.
    let (_, list) = send(c.get(url(&sim, "events"))).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (s, _) = send(c.get(url(&sim, &format!("events/{third}")))).await;
    assert_eq!(s, 404, "a cancelled occurrence is gone");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_calendar_view_delta_shows_series_as_occurrences_in_its_window() {
    let sim = sim().await;
    let c = client();
    let cal = sim
        .insert(MB, Collection::Calendars, json!({"name": "Team"}))
        .unwrap();
    let at = |d: &str| json!({"dateTime": format!("{d}T09:00:00"), "timeZone": "UTC"});
    let until = |d: &str| json!({"dateTime": format!("{d}T10:00:00"), "timeZone": "UTC"});
    let events = Collection::Events(Some(cal.clone()));
    sim.insert(
        MB,
        events.clone(),
        json!({"subject": "in", "start": at("2026-12-02"), "end": until("2026-12-02")}),
    )
    .unwrap();
    sim.insert(
        MB,
        events.clone(),
        json!({"subject": "out", "start": at("2027-03-02"), "end": until("2027-03-02")}),
    )
    .unwrap();
    let series = json!({
        "subject": "daily", "start": at("2026-12-30"), "end": until("2026-12-30"),
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "noEnd", "startDate": "2026-12-30"}}
    });
    let master = sim.insert(MB, events, series).unwrap();
    let window = "startDateTime=2026-12-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z";
    let (s, page) = send(c.get(url(
        &sim,
        &format!("calendars/{cal}/calendarView/delta?{window}"),
    )))
    .await;
    assert_eq!(s, 200, "{page}");
    let subjects: Vec<(&str, &str)> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["subject"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        subjects,
        vec![
            ("in", "singleInstance"),
            ("daily", "occurrence"),
            ("daily", "occurrence")
        ]
    );
    let delta_link = page["@odata.deltaLink"].as_str().unwrap().to_string();
    assert!(
        delta_link.contains("startDateTime="),
        "the window is kept: {delta_link}"
    );
    let (s, _) = send(c.delete(url(&sim, &format!("events/{master}")))).await;
    assert_eq!(s, 204);
    let (_, page) = send(c.get(&delta_link)).await;
    assert_eq!(page["value"][0]["@removed"]["reason"], "deleted", "{page}");
    // Without the window the request is outside the definition.
    let (s, _) = send(c.get(url(&sim, &format!("calendars/{cal}/calendarView/delta")))).await;
    assert_eq!(s, 400);
    let at: Vec<String> = sim.violations().iter().map(|v| v.at.clone()).collect();
    assert_eq!(at, vec!["query:startDateTime", "query:endDateTime"]);
}

#[tokio::test]
async fn child_folders_nest_and_the_folder_delta_covers_them_all() {
    let sim = sim().await;
    let c = client();
    let (_, top) = send(
        c.post(url(&sim, "contactFolders"))
            .json(&json!({"displayName": "Top"})),
    )
    .await;
    let top_id = top["id"].as_str().unwrap();
    let (s, child) = send(
        c.post(url(&sim, &format!("contactFolders/{top_id}/childFolders")))
            .json(&json!({"displayName": "Child"})),
    )
    .await;
    assert_eq!(s, 201, "{child}");
    let (_, listed) = send(c.get(url(&sim, "contactFolders"))).await;
    assert_eq!(
        listed["value"].as_array().unwrap().len(),
        1,
        "only the top folder at the top"
    );
    let (_, delta) = send(c.get(url(&sim, "contactFolders/delta"))).await;
    let names: Vec<&str> = delta["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Top", "Child"]);
    assert_eq!(delta["value"][1]["parentFolderId"].as_str(), Some(top_id));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn select_keeps_the_named_properties_and_unimplemented_options_are_refused() {
    let sim = sim().await;
    sim.insert(
        MB,
        Collection::Contacts(None),
        json!({"givenName": "A", "surname": "B"}),
    )
    .unwrap();
    let (_, page) = send(client().get(url(&sim, "contacts?$select=surname"))).await;
    let item = page["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["@odata.etag", "id", "surname"]);
    // What the definition allows but the simulator does not do is refused by name.
    for query in ["$orderby=surname", "$count=true", "$expand=extensions"] {
        let (s, err) = send(client().get(url(&sim, &format!("contacts?{query}")))).await;
        assert_eq!(s, 501, "{query}: {err}");
    }
    let (s, _) = send(client().get(url(&sim, "contacts/delta?$filter=x"))).await;
    assert_eq!(s, 501);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn past_the_window_limit_requests_get_429_until_the_window_ends() {
    let sim = sim().await;
    sim.set_window_limit(Some(2));
    let c = client();
    for _ in 0..2 {
        assert_eq!(send(c.get(url(&sim, "contacts"))).await.0, 200);
    }
    let r = c
        .get(url(&sim, "contacts"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u32 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry));
    assert_eq!(sim.throttled(MB), 1);
}

#[tokio::test]
async fn a_token_resolver_admits_the_tokens_an_oauth_server_issued() {
    let sim = sim().await;
    sim.set_token_resolver(|token| match token {
        "issued-for-ada" => Some(Grant::Mailbox(MB.to_string())),
        "issued-app" => Some(Grant::App),
        _ => None,
    });
    let c = client();
    for (token, status) in [
        ("issued-for-ada", 200),
        ("issued-app", 200),
        ("expired", 401),
    ] {
        let r = c
            .get(url(&sim, "contacts"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{token}");
    }
}

#[tokio::test]
async fn a_tasks_linked_resources_are_created_inline_addressed_under_it_and_expanded() {
    let sim = sim().await;
    let c = client();
    let lists = sim.list(MB, Collection::TaskLists).unwrap();
    let list = lists[0]["id"].as_str().unwrap().to_string();
    let tasks = format!("todo/lists/{list}/tasks");
    let link = json!({"applicationName": "mailshift", "externalId": "k1", "displayName": "UID:u1"});
    let (s, task) = send(
        c.post(url(&sim, &tasks))
            .json(&json!({"title": "t", "linkedResources": [link]})),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().unwrap().to_string();
    // A navigation property is not shown unless expanded.
    let (_, plain) = send(c.get(url(&sim, &format!("{tasks}/{tid}")))).await;
    assert!(plain.get("linkedResources").is_none(), "{plain}");
    let (s, page) = send(c.get(url(&sim, &format!("{tasks}?$expand=linkedResources")))).await;
    assert_eq!(s, 200, "{page}");
    let links = page["value"][0]["linkedResources"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["externalId"], "k1");
    // One more at the task's linkedResources, then one removed there.
    let under = format!("{tasks}/{tid}/linkedResources");
    let (s, second) = send(
        c.post(url(&sim, &under))
            .json(&json!({"applicationName": "other", "externalId": "k2"})),
    )
    .await;
    assert_eq!(s, 201, "{second}");
    let (_, listed) = send(c.get(url(&sim, &under))).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 2, "{listed}");
    let first = links[0]["id"].as_str().unwrap();
    let (s, _) = send(c.delete(url(&sim, &format!("{under}/{first}")))).await;
    assert_eq!(s, 204);
    let (_, one) = send(c.get(url(&sim, &format!("{tasks}/{tid}?$expand=linkedResources")))).await;
    let left: Vec<&str> = one["linkedResources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec!["k2"]);
    // Not through a PATCH of the task, and not on other kinds.
    let (s, _) = send(
        c.patch(url(&sim, &format!("{tasks}/{tid}")))
            .json(&json!({"linkedResources": [link]})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = send(c.get(url(&sim, "contacts?$expand=linkedResources"))).await;
    assert_eq!(s, 501);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// An invalidated delta token answers 410 (start over); a round from nothing gives a new
/// one, and no delta takes `$expand` (the published definition declares none).
#[tokio::test]
async fn expired_delta_tokens_answer_410_and_deltas_take_no_expand() {
    let sim = sim().await;
    sim.insert(MB, Collection::Tasks(None), json!({"title": "t0"}))
        .unwrap();
    let lists = sim.list(MB, Collection::TaskLists).unwrap();
    let list = lists[0]["id"].as_str().unwrap();
    let c = client();
    let round = url(&sim, &format!("todo/lists/{list}/tasks/delta?$select=id"));
    let (s, page) = send(c.get(&round)).await;
    assert_eq!(s, 200, "{page}");
    let delta_link = page["@odata.deltaLink"].as_str().unwrap().to_string();
    sim.invalidate_delta_tokens(MB);
    let (s, page) = send(c.get(&delta_link)).await;
    assert_eq!(s, 410, "{page}");
    let (s, page) = send(c.get(&round)).await;
    assert_eq!(s, 200, "{page}");
    let fresh = page["@odata.deltaLink"].as_str().unwrap().to_string();
    let (s, page) = send(c.get(&fresh)).await;
    assert_eq!((s, page["value"].as_array().map(Vec::len)), (200, Some(0)));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    let expand = format!("todo/lists/{list}/tasks/delta?$expand=linkedResources");
    let (s, _) = send(c.get(url(&sim, &expand))).await;
    assert_eq!(s, 400);
    assert_eq!(
        sim.violations().len(),
        1,
        "recorded as outside the definition"
    );
}
