//! The simulator (`ovh-sim`) driven by the real client (`OvhClient`), with tasks moved by
//! hand (`manual_tasks`) so that every state in between can be asserted without timing
//! anything. Each test ends by checking that neither the client's calls nor the simulator's
//! answers strayed from the published schema. Here rather than in the simulator's crate, which
//! depends on no mailshift crate: these tests need both.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use mailshift::plan::secret::Secret;
use mailshift::providers::ovh::client::Auth;
use mailshift::providers::ovh::signing::signature;
use mailshift::providers::ovh::{ClientOptions, Credentials, OvhClient, OvhError, RetryPolicy};
use ovh_sim::world::{
    AccessRule, Account, Application, ConsumerKey, Domain, DomainType, ExchangeOffer,
    FreshPassword, LegacyAccount, LegacyDomain, Service,
};
use ovh_sim::{Fault, SimHandle, Simulator, World};

const AK: &str = "simAppKey0123";
const AS: &str = "simAppSecret0123456789abcdefghij";
const CK: &str = "simConsumerKey0123456789abcdefgh";

fn domain(name: &str) -> Domain {
    Domain {
        name: name.into(),
        kind: DomainType::Authoritative,
        mx_relay: None,
        mx_valid: true,
        spf_valid: true,
        srv_valid: true,
        disclaimer: None,
    }
}

fn service(name: &str, domains: &[&str], accounts: &[&str]) -> Service {
    Service {
        organization: None,
        service: name.into(),
        hostname: None,
        offer: None,
        domains: domains.iter().map(|d| domain(d)).collect(),
        accounts: accounts
            .iter()
            .map(|a| Account::new(*a, "initial-pw"))
            .collect(),
        placeholders: 0,
        mailing_lists: vec![],
        external_contacts: vec![],
        dovecot: None,
    }
}

/// One Email Pro service with two accounts and two ordered placeholders.
fn world() -> World {
    let mut pro = service(
        "pro-1",
        &["example.com", "other.example"],
        &["john@example.com", "jane@example.com"],
    );
    pro.placeholders = 2;
    World {
        applications: vec![Application {
            key: AK.into(),
            secret: AS.into(),
        }],
        consumer_keys: vec![ConsumerKey {
            key: CK.into(),
            application: AK.into(),
            rules: AccessRule::everything(),
            validated: true,
        }],
        manual_tasks: true,
        fresh_password: FreshPassword::Refusals(1),
        pro: vec![pro],
        ..World::default()
    }
}

fn client_with(sim: &SimHandle, ak: &str, secret: &str, ck: &str) -> OvhClient {
    let credentials = Credentials {
        application_key: Secret::new(ak),
        application_secret: Secret::new(secret),
        consumer_key: Secret::new(ck),
    };
    let options = ClientOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        // One attempt: the tests look at every answer, retries would hide them.
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
    };
    OvhClient::with_options(&sim.base_url(), credentials, options).unwrap()
}

async fn start(world: World) -> (SimHandle, OvhClient) {
    let sim = Simulator::start(world).await.unwrap();
    let client = client_with(&sim, AK, AS, CK);
    (sim, client)
}

async fn get(client: &OvhClient, path: &str) -> Value {
    client
        .get(path, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn api_error(result: Result<Value, OvhError>) -> (u16, String, String) {
    match result {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => {
            let api = e.api().unwrap_or_else(|| panic!("not an API error: {e}"));
            let code = api
                .error_code
                .clone()
                .or(api.class.clone())
                .unwrap_or_default();
            (api.status, code, api.message.clone())
        }
    }
}

fn assert_clean(sim: &SimHandle) {
    assert_eq!(
        sim.violations(),
        vec![],
        "calls or answers outside the schema"
    );
}

/// A raw HTTP/1.1 call, for requests the client would never make (tampered, unsigned).
async fn raw(
    sim: &SimHandle,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        sim.addr(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn signed_headers(
    sim: &SimHandle,
    method: &str,
    target: &str,
    body: &str,
    ts: i64,
) -> Vec<(&'static str, String)> {
    let url = format!("http://{}{target}", sim.addr());
    vec![
        ("X-Ovh-Application", AK.into()),
        ("X-Ovh-Consumer", CK.into()),
        ("X-Ovh-Timestamp", ts.to_string()),
        (
            "X-Ovh-Signature",
            signature(AS, CK, method, &url, body, ts as u64),
        ),
    ]
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn the_clients_signature_is_accepted_and_a_tampered_one_refused() {
    let (sim, client) = start(world()).await;
    let service = get(&client, "/email/pro/pro-1").await;
    assert_eq!(service["offer"], "emailpro");
    assert!(
        get(&client, "/email/pro/pro-1/billingMigrated")
            .await
            .as_bool()
            .unwrap()
    );

    // Every answer names its query, errors included.
    let target = "/1.0/email/pro/pro-1/account/john@example.com";
    let body = r#"{"displayName":"John"}"#;
    let headers = signed_headers(&sim, "PUT", target, body, now());
    let (status, answer) = raw(&sim, "PUT", target, &headers, r#"{"displayName":"Eve"}"#).await;
    assert_eq!(
        (status, answer["errorCode"].as_str()),
        (400, Some("INVALID_SIGNATURE"))
    );
    // The same headers with the body they signed go through.
    let (status, _) = raw(&sim, "PUT", target, &headers, body).await;
    assert_eq!(status, 200);

    let wrong_secret = client_with(&sim, AK, "not-the-secret", CK);
    let (status, code, _) = api_error(wrong_secret.get("/email/pro/pro-1", None).await);
    assert_eq!((status, code.as_str()), (400, "INVALID_SIGNATURE"));

    let stale = signed_headers(&sim, "GET", "/1.0/email/pro/pro-1", "", now() - 3600);
    let (status, answer) = raw(&sim, "GET", "/1.0/email/pro/pro-1", &stale, "").await;
    assert_eq!(
        (status, answer["errorCode"].as_str()),
        (400, Some("QUERY_TIME_OUT"))
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.query_id.starts_with("SIM."))
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn the_client_follows_a_skewed_server_clock() {
    let mut w = world();
    w.clock_offset_secs = 7200;
    let (sim, client) = start(w).await;
    let delta = client.time_delta().await.unwrap();
    assert!((7190..=7210).contains(&delta), "{delta}");
    get(&client, "/email/pro/pro-1").await;
    assert_clean(&sim);
}

#[tokio::test]
async fn keys_credentials_and_access_rules() {
    let mut w = world();
    w.consumer_keys.push(ConsumerKey {
        key: "readOnlyKey".into(),
        application: AK.into(),
        rules: vec![AccessRule {
            method: "GET".into(),
            path: "/email/pro/*".into(),
        }],
        validated: true,
    });
    let (sim, _) = start(w).await;

    let unknown_app = client_with(&sim, "nope", AS, CK);
    let (status, code, _) = api_error(unknown_app.get("/email/pro/pro-1", None).await);
    assert_eq!((status, code.as_str()), (403, "INVALID_KEY"));
    let unknown_ck = client_with(&sim, AK, AS, "nope");
    let (status, code, _) = api_error(unknown_ck.get("/email/pro/pro-1", None).await);
    assert_eq!((status, code.as_str()), (403, "INVALID_CREDENTIAL"));

    let read_only = client_with(&sim, AK, AS, "readOnlyKey");
    get(&read_only, "/email/pro/pro-1/account").await;
    let body = json!({"alias": "jj@example.com"});
    let (status, code, _) = api_error(
        read_only
            .post(
                "/email/pro/pro-1/account/john@example.com/alias",
                Some(&body),
            )
            .await,
    );
    assert_eq!((status, code.as_str()), (403, "NOT_GRANTED_CALL"));
    let (status, code, _) = api_error(read_only.get("/email/domain", None).await);
    assert_eq!((status, code.as_str()), (403, "NOT_GRANTED_CALL"));
    let current = get(&read_only, "/auth/currentCredential").await;
    assert_eq!(current["status"], "validated");
    assert_eq!(
        current["rules"],
        json!([{"method": "GET", "path": "/email/pro/*"}])
    );

    // A new key: pending until its validation URL is visited.
    let anonymous = client_with(&sim, AK, AS, "");
    let request = json!({"accessRules": [{"method": "GET", "path": "/*"}], "redirection": "https://example.com/done"});
    let credential: Value = anonymous
        .call(
            reqwest::Method::POST,
            "/auth/credential",
            Some(&request),
            Auth::Unsigned,
        )
        .await
        .unwrap();
    assert_eq!(credential["state"], "pendingValidation");
    let key = credential["consumerKey"].as_str().unwrap();
    let fresh = client_with(&sim, AK, AS, key);
    let (status, code, _) = api_error(fresh.get("/email/pro/pro-1", None).await);
    assert_eq!((status, code.as_str()), (403, "NOT_CREDENTIAL"));
    let url = credential["validationUrl"].as_str().unwrap();
    assert!(
        !url.contains(key),
        "the key must not travel in a URL: {url}"
    );
    let target = url.split_once(&sim.addr().to_string()).unwrap().1;
    let (status, _) = raw(&sim, "GET", target, &[], "").await;
    assert_eq!(
        status, 303,
        "the validation page sends the user to the redirection"
    );
    get(&fresh, "/email/pro/pro-1").await;
    let (status, code, _) = api_error(
        fresh
            .post(
                "/email/pro/pro-1/account/john@example.com/alias",
                Some(&body),
            )
            .await,
    );
    assert_eq!((status, code.as_str()), (403, "NOT_GRANTED_CALL"));

    let () = fresh.post("/auth/logout", None).await.unwrap();
    let (status, code, _) = api_error(fresh.get("/email/pro/pro-1", None).await);
    assert_eq!((status, code.as_str()), (403, "INVALID_CREDENTIAL"));
    assert_clean(&sim);
}

#[tokio::test]
async fn calls_outside_the_schema_are_refused_and_recorded() {
    let (sim, client) = start(world()).await;
    let account = "/email/pro/pro-1/account/john@example.com";
    // Email Pro accounts have no forwarding address (Exchange ones do).
    let (status, class, message) = api_error(
        client
            .put(
                account,
                Some(&json!({"forwardingEmail": "x@elsewhere.example"})),
            )
            .await,
    );
    assert_eq!((status, class.as_str()), (400, "Client::BadRequest"));
    assert!(message.contains("not in the published schema"), "{message}");
    let body = json!({"name": "new.example", "type": "master"});
    let (status, _, message) = api_error(client.post("/email/pro/pro-1/domain", Some(&body)).await);
    assert_eq!(status, 400);
    assert!(
        message.contains("\"master\" is not one of email.pro.DomainTypeEnum"),
        "{message}"
    );
    let (status, _, _) = api_error(client.get("/email/pro/pro-1/mailingList", None).await);
    assert_eq!(status, 400);
    let (status, _, _) = api_error(
        client
            .get("/email/pro/pro-1/account?login=john", None)
            .await,
    );
    assert_eq!(status, 400);

    let violations = sim.violations();
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
    assert_eq!(violations.len(), 4, "{reasons:#?}");
    assert!(reasons[0].contains("email.pro.Account has no property \"forwardingEmail\""));
    assert!(reasons[2].contains("no operation has the path /email/pro/pro-1/mailingList"));
    assert!(reasons[3].contains("no query parameter \"login\""));
    assert_eq!(violations[0].method, "PUT");
    assert_eq!(violations[0].path, account);
    // Nothing was changed by the refused calls.
    assert!(sim.writes().iter().all(|w| w.status == 400));
}

#[tokio::test]
async fn a_rename_shows_up_only_when_its_task_is_done() {
    let (sim, client) = start(world()).await;
    let old = "/email/pro/pro-1/account/john@example.com";
    let before = get(&client, old).await;
    let id = before["id"].clone();
    let () = client
        .put(
            old,
            Some(&json!({"login": "johnny", "displayName": "Johnny"})),
        )
        .await
        .unwrap();

    let pending = get(&client, old).await;
    assert_ne!(pending["state"], "ok");
    let task_id = pending["taskPendingId"].as_u64().unwrap();
    assert_ne!(task_id, 0);
    assert_eq!(pending["displayName"], Value::Null);
    let new = "/email/pro/pro-1/account/johnny@example.com";
    assert_eq!(api_error(client.get(new, None).await).0, 404);
    let task_path = format!("/email/pro/pro-1/task/{task_id}");
    assert_eq!(get(&client, &task_path).await["status"], "todo");

    assert_eq!(sim.advance_tasks(), 1);
    assert_eq!(get(&client, &task_path).await["status"], "doing");
    assert_eq!(get(&client, old).await["taskPendingId"], task_id);

    assert_eq!(sim.advance_tasks(), 1);
    let task = get(&client, &task_path).await;
    assert_eq!(task["status"], "done");
    assert!(task["finishDate"].is_string());
    let renamed = get(&client, new).await;
    assert_eq!(renamed["state"], "ok");
    assert_eq!(renamed["taskPendingId"], 0);
    assert_eq!(renamed["id"], id, "a rename keeps the account id");
    assert_eq!(renamed["displayName"], "Johnny");
    assert_eq!(api_error(client.get(old, None).await).0, 404);
    let account_tasks = get(&client, "/email/pro/pro-1/account/johnny@example.com/tasks").await;
    assert_eq!(account_tasks, json!([task_id]));
    assert_clean(&sim);
}

#[tokio::test]
async fn a_busy_object_answers_409_until_its_task_ends() {
    let (sim, client) = start(world()).await;
    let account = "/email/pro/pro-1/account/jane@example.com";
    let body = json!({"password": "s3cret-pw"});
    let task = client
        .post::<Value>(&format!("{account}/changePassword"), Some(&body))
        .await
        .unwrap();
    assert_eq!(task["function"], "changePassword");
    let err = client
        .post::<Value>(&format!("{account}/changePassword"), Some(&body))
        .await
        .unwrap_err();
    assert!(err.api().unwrap().is_busy(), "{err}");
    let err = client
        .put::<Value>(account, Some(&json!({"displayName": "J"})))
        .await
        .unwrap_err();
    assert!(err.api().unwrap().is_busy(), "{err}");
    sim.advance_tasks();
    sim.advance_tasks();
    let () = client
        .put(account, Some(&json!({"displayName": "J"})))
        .await
        .unwrap();
    let world = sim.world();
    let jane = world.pro[0]
        .accounts
        .iter()
        .find(|a| a.email == "jane@example.com")
        .unwrap();
    assert_eq!(jane.password, "s3cret-pw");
    assert_clean(&sim);
}

#[tokio::test]
async fn a_used_address_is_refused() {
    let (sim, client) = start(world()).await;
    let john = "/email/pro/pro-1/account/john@example.com";
    let (status, class, message) = api_error(
        client
            .post(
                &format!("{john}/alias"),
                Some(&json!({"alias": "jane@example.com"})),
            )
            .await,
    );
    assert_eq!(
        (status, class.as_str(), message.as_str()),
        (400, "Client::BadRequest", "Email address is already used.")
    );
    client
        .post::<Value>(
            &format!("{john}/alias"),
            Some(&json!({"alias": "jj@example.com"})),
        )
        .await
        .unwrap();
    // Taken from the moment it is asked for, not only once the alias exists.
    let jane = "/email/pro/pro-1/account/jane@example.com";
    let (status, _, message) = api_error(client.put(jane, Some(&json!({"login": "jj"}))).await);
    assert_eq!(
        (status, message.as_str()),
        (400, "Email address is already used.")
    );
    let (status, _, message) = api_error(
        client
            .put(
                jane,
                Some(&json!({"login": "x", "domain": "unattached.example"})),
            )
            .await,
    );
    assert_eq!(status, 400);
    assert!(message.contains("not attached"), "{message}");
    sim.advance_tasks();
    sim.advance_tasks();
    assert_eq!(
        get(&client, &format!("{john}/alias")).await,
        json!(["jj@example.com"])
    );
    assert_eq!(
        get(&client, &format!("{john}/alias/jj@example.com")).await["taskPendingId"],
        0
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn an_authoritative_domain_blocks_it_elsewhere() {
    let mut w = world();
    w.pro.push(service("pro-2", &["dest.example"], &[]));
    let (sim, client) = start(w).await;
    let attach = |kind: &str, relay: Option<&str>| {
        let mut body = json!({"name": "example.com", "type": kind});
        if let Some(r) = relay {
            body["mxRelay"] = json!(r);
        }
        body
    };
    let dest = "/email/pro/pro-2/domain";
    let (status, _, message) = api_error(
        client
            .post(dest, Some(&attach("authoritative", None)))
            .await,
    );
    assert_eq!(status, 400);
    assert!(
        message.contains("authoritative on another service"),
        "{message}"
    );
    let (status, _, _) = api_error(
        client
            .post(
                dest,
                Some(&attach("nonAuthoritative", Some("mx.a.example"))),
            )
            .await,
    );
    assert_eq!(status, 400, "both sides must be non-authoritative");
    let (status, _, message) = api_error(
        client
            .post(dest, Some(&attach("nonAuthoritative", None)))
            .await,
    );
    assert_eq!(status, 400);
    assert!(message.contains("mxRelay"), "{message}");

    // Source first: non-authoritative, relaying to the destination.
    let source_domain = "/email/pro/pro-1/domain/example.com";
    let body = json!({"type": "nonAuthoritative", "mxRelay": "mx.dest.example"});
    let () = client.put(source_domain, Some(&body)).await.unwrap();
    assert_ne!(get(&client, source_domain).await["state"], "ok");
    sim.advance_tasks();
    sim.advance_tasks();
    let settled = get(&client, source_domain).await;
    assert_eq!(
        (settled["type"].as_str(), settled["state"].as_str()),
        (Some("nonAuthoritative"), Some("ok"))
    );

    let (status, _, message) = api_error(
        client
            .post(dest, Some(&attach("authoritative", None)))
            .await,
    );
    assert_eq!(status, 400, "held elsewhere, even non-authoritatively");
    assert!(message.contains("attached to another service"), "{message}");
    let task = client
        .post::<Value>(
            dest,
            Some(&attach("nonAuthoritative", Some("mx.src.example"))),
        )
        .await
        .unwrap();
    assert_eq!(task["function"], "addDomain");
    assert_eq!(
        get(&client, "/email/pro/pro-2/domain/example.com").await["state"],
        "creating"
    );
    sim.advance_tasks();
    sim.advance_tasks();
    // The move ends with the destination authoritative; the source cannot take it back.
    let () = client
        .put(
            "/email/pro/pro-2/domain/example.com",
            Some(&json!({"type": "authoritative"})),
        )
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    let (status, _, _) = api_error(
        client
            .put(source_domain, Some(&json!({"type": "authoritative"})))
            .await,
    );
    assert_eq!(status, 400);
    assert_clean(&sim);
}

#[tokio::test]
async fn configuring_an_ordered_account() {
    let (sim, client) = start(world()).await;
    let list = "/email/pro/pro-1/account?primaryEmailAddress=%25configureme.me%25";
    let placeholders: Vec<String> = client.get(list, None).await.unwrap();
    assert_eq!(placeholders.len(), 2);
    let path = format!("/email/pro/pro-1/account/{}", placeholders[0]);
    let placeholder = get(&client, &path).await;
    assert_eq!(placeholder["configured"], false);
    let by_id = format!("/email/pro/pro-1/account?id={}", placeholder["id"]);
    assert_eq!(get(&client, &by_id).await, json!([placeholders[0]]));

    let body = json!({"login": "new", "domain": "other.example", "displayName": "New"});
    let () = client.put(&path, Some(&body)).await.unwrap();
    assert_eq!(get(&client, &path).await["state"], "creating");
    sim.advance_tasks();
    sim.advance_tasks();
    let account = get(&client, "/email/pro/pro-1/account/new@other.example").await;
    assert_eq!(account["configured"], true);
    assert_eq!(account["id"], placeholder["id"]);
    let remaining: Vec<String> = client.get(list, None).await.unwrap();
    assert_eq!(remaining, placeholders[1..]);

    // A new mailbox takes its password only after a moment (one refusal in this world).
    let change = "/email/pro/pro-1/account/new@other.example/changePassword";
    let pw = json!({"password": "n3w-password"});
    let err = client.post::<Value>(change, Some(&pw)).await.unwrap_err();
    assert!(err.api().unwrap().is_busy(), "{err}");
    let task = client.post::<Value>(change, Some(&pw)).await.unwrap();
    assert_eq!(task["status"], "todo");
    assert_clean(&sim);
}

fn exchange(offer: ExchangeOffer) -> Service {
    let mut s = service("ex-svc", &["corp.example"], &["boss@corp.example"]);
    s.organization = Some("org-1".into());
    s.offer = Some(offer);
    s.placeholders = 1;
    s
}

#[tokio::test]
async fn exchange_offers_create_and_delete_accounts_their_own_way() {
    let mut w = world();
    w.pro.clear();
    w.exchange = vec![exchange(ExchangeOffer::Hosted)];
    // Its own domain: two services cannot both hold one authoritatively.
    let mut dedicated = exchange(ExchangeOffer::Dedicated);
    dedicated.organization = Some("org-2".into());
    dedicated.domains = vec![domain("dedicated.example")];
    dedicated.accounts = vec![Account::new("boss@dedicated.example", "pw")];
    w.exchange.push(dedicated);
    let (sim, client) = start(w).await;
    let create = json!({"login": "new", "domain": "dedicated.example", "password": "pw-123456", "license": "standard"});
    let hosted = "/email/exchange/org-1/service/ex-svc";
    let (status, _, message) = api_error(
        client
            .post(&format!("{hosted}/account"), Some(&create))
            .await,
    );
    assert_eq!(status, 400);
    assert!(
        message.contains("configure an ordered account"),
        "{message}"
    );

    let dedicated = "/email/exchange/org-2/service/ex-svc";
    let task = client
        .post::<Value>(&format!("{dedicated}/account"), Some(&create))
        .await
        .unwrap();
    assert_eq!(task["function"], "addAccount");
    assert_eq!(
        get(
            &client,
            &format!("{dedicated}/account/new@dedicated.example")
        )
        .await["state"],
        "creating"
    );
    sim.advance_tasks();
    sim.advance_tasks();
    let forwarding = json!({"forwardingEmail": "boss@elsewhere.example", "storeCopyOfEmail": true});
    let () = client
        .put(
            &format!("{dedicated}/account/boss@dedicated.example"),
            Some(&forwarding),
        )
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    let boss = get(
        &client,
        &format!("{dedicated}/account/boss@dedicated.example"),
    )
    .await;
    assert_eq!(boss["forwardingEmail"], "boss@elsewhere.example");

    // Hosted: the slot stays, as a fresh placeholder. Dedicated: the account goes.
    client
        .delete::<Value>(&format!("{hosted}/account/boss@corp.example"), None)
        .await
        .unwrap();
    client
        .delete::<Value>(&format!("{dedicated}/account/boss@dedicated.example"), None)
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    let hosted_accounts: Vec<String> = client
        .get(&format!("{hosted}/account"), None)
        .await
        .unwrap();
    assert_eq!(hosted_accounts.len(), 2);
    assert!(
        hosted_accounts
            .iter()
            .all(|a| a.ends_with("@configureme.me")),
        "{hosted_accounts:?}"
    );
    let dedicated_accounts: Vec<String> = client
        .get(&format!("{dedicated}/account"), None)
        .await
        .unwrap();
    assert_eq!(dedicated_accounts.len(), 2, "{dedicated_accounts:?}");
    assert!(dedicated_accounts.contains(&"new@dedicated.example".to_string()));
    assert_clean(&sim);
}

#[tokio::test]
async fn delegations_groups_contacts_and_disclaimers() {
    let mut w = world();
    w.pro.clear();
    let mut ex = exchange(ExchangeOffer::Hosted);
    ex.accounts.push(Account::new("aide@corp.example", "pw"));
    w.exchange = vec![ex];
    let (sim, client) = start(w).await;
    let root = "/email/exchange/org-1/service/ex-svc";
    let aide_id = get(&client, &format!("{root}/account/aide@corp.example")).await["id"].clone();
    let send_as = format!("{root}/account/boss@corp.example/sendAs");
    client
        .post::<Value>(&send_as, Some(&json!({"allowAccountId": aide_id})))
        .await
        .unwrap();
    let (status, _, _) = api_error(
        client
            .post(&send_as, Some(&json!({"allowAccountId": 999_999})))
            .await,
    );
    assert_eq!(status, 400, "unknown account ids are refused");
    let full = format!("{root}/account/boss@corp.example/fullAccess");
    client
        .post::<Value>(&full, Some(&json!({"allowedAccountId": aide_id})))
        .await
        .unwrap();

    let contact =
        json!({"externalEmailAddress": "partner@elsewhere.example", "displayName": "Partner"});
    client
        .post::<Value>(&format!("{root}/externalContact"), Some(&contact))
        .await
        .unwrap();
    let group = json!({"mailingListAddress": "team@corp.example", "departRestriction": "closed",
                       "joinRestriction": "approvalRequired", "displayName": "Team"});
    client
        .post::<Value>(&format!("{root}/mailingList"), Some(&group))
        .await
        .unwrap();
    let disclaimer = json!({"content": "<p>Footer</p>", "outsideOnly": true});
    client
        .post::<Value>(
            &format!("{root}/domain/corp.example/disclaimer"),
            Some(&disclaimer),
        )
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();

    assert_eq!(get(&client, &send_as).await, json!([aide_id]));
    let entry = get(&client, &format!("{send_as}/{aide_id}")).await;
    assert_eq!(entry["taskPendingId"], 0);
    let contact = get(
        &client,
        &format!("{root}/externalContact/partner@elsewhere.example"),
    )
    .await;
    let members = format!("{root}/mailingList/team@corp.example/member");
    client
        .post::<Value>(
            &format!("{members}/account"),
            Some(&json!({"memberAccountId": aide_id})),
        )
        .await
        .unwrap();
    client
        .post::<Value>(
            &format!("{members}/contact"),
            Some(&json!({"memberContactId": contact["id"]})),
        )
        .await
        .unwrap();
    client
        .post::<Value>(
            &format!("{root}/mailingList/team@corp.example/manager/account"),
            Some(&json!({"managerAccountId": aide_id})),
        )
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    let member = get(&client, &format!("{members}/account/{aide_id}")).await;
    assert_eq!(member["memberEmailAddress"], "aide@corp.example");
    let footer = get(&client, &format!("{root}/domain/corp.example/disclaimer")).await;
    assert_eq!(
        (footer["content"].as_str(), footer["outsideOnly"].as_bool()),
        (Some("<p>Footer</p>"), Some(true))
    );
    let filtered = get(
        &client,
        &format!("{root}/externalContact?displayName=Part%25"),
    )
    .await;
    assert_eq!(filtered, json!(["partner@elsewhere.example"]));

    let exported = sim.world();
    let ex = &exported.exchange[0];
    assert_eq!(
        ex.mailing_lists[0].members,
        ["aide@corp.example", "partner@elsewhere.example"]
    );
    assert_eq!(ex.mailing_lists[0].managers, ["aide@corp.example"]);
    let boss = ex
        .accounts
        .iter()
        .find(|a| a.email == "boss@corp.example")
        .unwrap();
    assert_eq!((boss.send_as.len(), boss.full_access.len()), (1, 1));
    assert_clean(&sim);
}

fn legacy_world() -> World {
    let mut w = world();
    w.pro.clear();
    w.legacy_domains.push(LegacyDomain {
        domain: "old.example".into(),
        accounts: vec![LegacyAccount {
            account_name: "bob".into(),
            password: "pw".into(),
            size: 5_000_000_000,
            description: String::new(),
            current_usage: Some(4_000_000_000),
            filters: vec![],
        }],
        redirections: vec![],
        mailing_lists: vec![],
        mx_valid: false,
        spf_valid: true,
        dovecot: None,
    });
    w
}

#[tokio::test]
async fn legacy_tasks_vanish_when_done() {
    let (sim, client) = start(legacy_world()).await;
    let root = "/email/domain/old.example";
    let domain = get(&client, root).await;
    assert_eq!(
        (domain["isMXValid"].as_str(), domain["isSPFValid"].as_str()),
        (Some("invalid"), Some("valid"))
    );
    assert_eq!(
        get(&client, &format!("{root}/account/bob/usage")).await["quota"],
        4_000_000_000u64
    );

    let body = json!({"accountName": "carol", "password": "pw-123456", "size": 2_500_000_000u64, "description": "Carol"});
    let task = client
        .post::<Value>(&format!("{root}/account"), Some(&body))
        .await
        .unwrap();
    assert_eq!(
        (task["action"].as_str(), task["name"].as_str()),
        (Some("addAccount"), Some("carol"))
    );
    let tasks = format!("{root}/task/account?name=carol");
    assert_eq!(get(&client, &tasks).await, json!([task["id"]]));
    assert_eq!(
        api_error(client.get(&format!("{root}/account/carol"), None).await).0,
        404
    );
    let (status, _, message) =
        api_error(client.post(&format!("{root}/account"), Some(&body)).await);
    assert_eq!(
        (status, message.as_str()),
        (400, "Email address is already used.")
    );
    sim.advance_tasks();
    assert_eq!(
        get(&client, &format!("{root}/task/account/{}", task["id"])).await["id"],
        task["id"]
    );
    sim.advance_tasks();
    assert_eq!(get(&client, &tasks).await, json!([]));
    assert_eq!(
        api_error(
            client
                .get(&format!("{root}/task/account/{}", task["id"]), None)
                .await
        )
        .0,
        404
    );
    assert_eq!(
        get(&client, &format!("{root}/account/carol")).await["email"],
        "carol@old.example"
    );

    let change = format!("{root}/account/bob/changePassword");
    client
        .post::<Value>(&change, Some(&json!({"password": "new-pw"})))
        .await
        .unwrap();
    let err = client
        .post::<Value>(&change, Some(&json!({"password": "x"})))
        .await
        .unwrap_err();
    assert!(err.api().unwrap().is_busy(), "{err}");

    let redirection =
        json!({"from": "bob@old.example", "to": "bob@new.example", "localCopy": false});
    let task = client
        .post::<Value>(&format!("{root}/redirection"), Some(&redirection))
        .await
        .unwrap();
    assert_eq!(task["type"], "forward");
    let list = json!({"name": "club", "ownerEmail": "bob@old.example", "language": "fr",
                      "options": {"moderatorMessage": false, "subscribeByModerator": false, "usersPostOnly": true}});
    client
        .post::<Value>(&format!("{root}/mailingList"), Some(&list))
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    assert!(
        sim.world().legacy_domains[0]
            .accounts
            .iter()
            .any(|a| a.account_name == "bob" && a.password == "new-pw")
    );
    let ids: Vec<String> = client
        .get(&format!("{root}/redirection?from=bob%40old.example"), None)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let r = get(&client, &format!("{root}/redirection/{}", ids[0])).await;
    assert_eq!(r["to"], "bob@new.example");
    assert_eq!(
        get(&client, &format!("{root}/mailingList/club")).await["options"]["usersPostOnly"],
        true
    );
    assert_eq!(
        get(&client, &format!("{root}/task/redirection")).await,
        json!([])
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn faults_replace_answers_or_fail_tasks() {
    let (sim, client) = start(world()).await;
    let alias = "/email/pro/pro-1/account/john@example.com/alias";
    sim.inject(
        Fault::reply(
            "POST",
            "/email/pro/*/alias",
            503,
            json!({"message": "down"}),
        )
        .times(1),
    )
    .unwrap();
    let (status, _, message) = api_error(
        client
            .post(alias, Some(&json!({"alias": "a@example.com"})))
            .await,
    );
    assert_eq!((status, message.as_str()), (503, "down"));

    sim.inject(Fault::fail_task("POST", "/email/pro/*/alias").times(1))
        .unwrap();
    let task = client
        .post::<Value>(alias, Some(&json!({"alias": "a@example.com"})))
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    let task = get(&client, &format!("/email/pro/pro-1/task/{}", task["id"])).await;
    assert_eq!(task["status"], "error");
    assert_eq!(
        get(&client, alias).await,
        json!([]),
        "a failed task changes nothing"
    );
    // Both faults are used up: the call now works.
    client
        .post::<Value>(alias, Some(&json!({"alias": "a@example.com"})))
        .await
        .unwrap();
    let writes = sim.writes();
    assert_eq!(
        writes.iter().map(|w| w.status).collect::<Vec<_>>(),
        [503, 200, 200]
    );
    assert!(
        writes
            .iter()
            .all(|w| w.operation.as_deref() == Some("/email/pro/{service}/account/{email}/alias"))
    );
    assert!(
        sim.inject(Fault {
            fail_task: false,
            ..Fault::fail_task("GET", "/x")
        })
        .is_err()
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn the_control_api_steers_a_simulator_in_another_process() {
    let (sim, client) = start(world()).await;
    let fault = r#"{"method": "GET", "path": "/email/pro/pro-1", "times": 1, "reply": {"status": 500, "body": {"message": "boom"}}}"#;
    let (status, added) = raw(&sim, "POST", "/_sim/faults", &[], fault).await;
    assert_eq!((status, added["added"].as_u64()), (200, Some(1)));
    assert_eq!(api_error(client.get("/email/pro/pro-1", None).await).0, 500);
    get(&client, "/email/pro/pro-1").await;
    let (status, bad) = raw(&sim, "POST", "/_sim/faults", &[], r#"{"path": "/x"}"#).await;
    assert_eq!(status, 400, "{bad}");

    client
        .post::<Value>(
            "/email/pro/pro-1/account/john@example.com/alias",
            Some(&json!({"alias": "b@example.com"})),
        )
        .await
        .unwrap();
    let (_, writes) = raw(&sim, "GET", "/_sim/writes", &[], "").await;
    assert_eq!(writes.as_array().unwrap().len(), 1);
    assert_eq!(writes[0]["body"], json!({"alias": "b@example.com"}));
    let (_, advanced) = raw(&sim, "POST", "/_sim/tasks/advance", &[], "").await;
    assert_eq!(advanced["advanced"], 1);
    raw(&sim, "POST", "/_sim/tasks/advance", &[], "").await;
    let (_, world) = raw(&sim, "GET", "/_sim/world", &[], "").await;
    let john = &world["pro"][0]["accounts"][0];
    assert_eq!(
        (john["email"].as_str(), john["aliases"].clone()),
        (Some("john@example.com"), json!(["b@example.com"]))
    );
    let (_, requests) = raw(&sim, "GET", "/_sim/requests", &[], "").await;
    assert_eq!(requests.as_array().unwrap().len(), sim.requests().len());
    let (_, violations) = raw(&sim, "GET", "/_sim/violations", &[], "").await;
    assert_eq!(violations, json!([]));
    assert_eq!(raw(&sim, "GET", "/_sim/nope", &[], "").await.0, 404);
}

#[tokio::test]
async fn timed_tasks_finish_by_themselves() {
    let mut w = world();
    w.manual_tasks = false;
    w.task_delay_ms = 20;
    let (sim, client) = start(w).await;
    let task = client
        .post::<Value>(
            "/email/pro/pro-1/account/john@example.com/alias",
            Some(&json!({"alias": "t@example.com"})),
        )
        .await
        .unwrap();
    let path = format!("/email/pro/pro-1/task/{}", task["id"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let outcome = mailshift::providers::ovh::wait_task(
        &client,
        &path,
        deadline,
        Duration::from_millis(5),
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, mailshift::providers::ovh::TaskOutcome::Done(_)),
        "{outcome:?}"
    );
    let alias = get(
        &client,
        "/email/pro/pro-1/account/john@example.com/alias/t@example.com",
    )
    .await;
    assert_eq!(alias["taskPendingId"], 0);
    assert_clean(&sim);
}

#[test]
fn a_spawned_simulator_serves_synchronous_tests() {
    let sim = SimHandle::spawn(world()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client_with(&sim, AK, AS, CK);
    let accounts: Vec<String> = runtime
        .block_on(client.get("/email/pro/pro-1/account", None))
        .unwrap();
    assert_eq!(accounts.len(), 4);
    assert_eq!(sim.requests().len(), 2, "the clock and the list");
    sim.shutdown();
}

#[test]
fn the_demo_world_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ovh-sim/demo-world.yaml");
    let sim = SimHandle::spawn(World::load(&path).unwrap()).unwrap();
    let world = sim.world();
    assert_eq!(
        (
            world.exchange.len(),
            world.pro.len(),
            world.mxplan.len(),
            world.legacy_domains.len()
        ),
        (1, 1, 1, 1)
    );
}

#[tokio::test]
async fn the_passwd_file_changes_when_tasks_finish() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::create_dir(dir.path().join("mail")).unwrap();
    let backend = ovh_sim::world::DovecotBackend {
        users_file: users.clone(),
        mail_root: dir.path().join("mail"),
        uid: None,
        gid: None,
    };
    let mut w = legacy_world();
    w.legacy_domains[0].dovecot = Some(backend.clone());
    let mut pro = service("pro-1", &["example.com"], &["john@example.com"]);
    pro.dovecot = Some(backend);
    w.pro.push(pro);
    let (sim, client) = start(w).await;
    let lines = || {
        let text = std::fs::read_to_string(&users).unwrap();
        let mut users: Vec<String> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                format!("{} {}", f[0], f[1])
            })
            .collect();
        users.sort();
        users
    };
    assert_eq!(
        lines(),
        [
            "bob@old.example {PLAIN}pw",
            "john@example.com {PLAIN}initial-pw"
        ]
    );

    let root = "/email/domain/old.example";
    let body = json!({"accountName": "carol", "password": "pw-c"});
    client
        .post::<Value>(&format!("{root}/account"), Some(&body))
        .await
        .unwrap();
    client
        .delete::<Value>(&format!("{root}/account/bob"), None)
        .await
        .unwrap();
    let pw = json!({"password": "pw-j"});
    client
        .post::<Value>(
            "/email/pro/pro-1/account/john@example.com/changePassword",
            Some(&pw),
        )
        .await
        .unwrap();
    sim.advance_tasks();
    assert_eq!(
        lines(),
        [
            "bob@old.example {PLAIN}pw",
            "john@example.com {PLAIN}initial-pw"
        ],
        "nothing before done"
    );
    sim.advance_tasks();
    assert_eq!(
        lines(),
        [
            "carol@old.example {PLAIN}pw-c",
            "john@example.com {PLAIN}pw-j"
        ]
    );

    client
        .delete::<Value>("/email/pro/pro-1/account/john@example.com", None)
        .await
        .unwrap();
    sim.advance_tasks();
    sim.advance_tasks();
    assert_eq!(lines(), ["carol@old.example {PLAIN}pw-c"]);
    let accounts: Vec<String> = client.get("/email/pro/pro-1/account", None).await.unwrap();
    assert!(
        accounts.len() == 1 && accounts[0].ends_with("@configureme.me"),
        "reset to a placeholder: {accounts:?}"
    );
    assert!(dir.path().join("mail/carol@old.example").is_dir());
    assert_clean(&sim);
}

/// Reads every kind of object of every family in the demo world, with tasks of each kind
/// under way: the simulator's answers must all fit the published response types.
#[tokio::test]
async fn every_answer_fits_the_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ovh-sim/demo-world.yaml");
    let mut w = World::load(&path).unwrap();
    w.manual_tasks = true;
    let sim = Simulator::start(w).await.unwrap();
    let client = client_with(
        &sim,
        "demo-application-key",
        "demo-application-secret",
        "demo-consumer-key",
    );
    let ex = "/email/exchange/hosted-ab12345-1/service/hosted-ab12345-1";
    let pro = "/email/pro/emailpro-ab12345-1";
    let mx = "/email/mxplan/mydomain.ovh";
    let legacy = "/email/domain/legacy.example";

    // Tasks of every kind, left under way.
    let alias = json!({"alias": "al@example.com"});
    let ex_task = client
        .post::<Value>(
            &format!("{ex}/account/alice@example.com/alias"),
            Some(&alias),
        )
        .await
        .unwrap();
    let placeholders: Vec<String> = client.get(&format!("{mx}/account"), None).await.unwrap();
    let mx_account = format!("{mx}/account/{}", placeholders[0]);
    let () = client
        .put(
            &mx_account,
            Some(&json!({"login": "sales", "domain": "mydomain.ovh"})),
        )
        .await
        .unwrap();
    let mx_task = get(&client, &mx_account).await["taskPendingId"].clone();
    client
        .post::<Value>(
            &format!("{legacy}/account/carol/changePassword"),
            Some(&json!({"password": "x-pw"})),
        )
        .await
        .unwrap();
    let redirection =
        json!({"from": "sales@legacy.example", "to": "sales@mydomain.ovh", "localCopy": true});
    let special = client
        .post::<Value>(&format!("{legacy}/redirection"), Some(&redirection))
        .await
        .unwrap();
    let ml = client
        .post::<Value>(
            &format!("{legacy}/mailingList/club/subscriber"),
            Some(&json!({"email": "x@y.example"})),
        )
        .await
        .unwrap();

    let alice = get(&client, &format!("{ex}/account/alice@example.com")).await;
    let bob = format!("{ex}/account/bob@example.com");
    let contact = get(
        &client,
        &format!("{ex}/externalContact/partner@elsewhere.example"),
    )
    .await;
    let members = format!("{ex}/mailingList/team@example.com/member");
    let redirections: Vec<String> = client
        .get(&format!("{legacy}/redirection"), None)
        .await
        .unwrap();
    let reads = [
        "/email/exchange".to_string(),
        "/email/exchange/hosted-ab12345-1/service".into(),
        ex.into(),
        format!("{ex}/domain"),
        format!("{ex}/domain/example.com"),
        format!("{ex}/account?primaryEmailAddress=%25configureme.me%25"),
        format!("{ex}/account/alice@example.com/alias"),
        format!("{ex}/account/alice@example.com/alias/a@example.com"),
        format!("{bob}/sendAs"),
        format!("{bob}/sendAs/{}", alice["id"]),
        format!("{bob}/tasks"),
        format!("{ex}/externalContact"),
        format!("{ex}/mailingList"),
        format!("{ex}/mailingList/team@example.com"),
        format!("{members}/account"),
        format!("{members}/account/{}", alice["id"]),
        format!("{ex}/task"),
        format!("{ex}/task/{}", ex_task["id"]),
        "/email/pro".into(),
        pro.into(),
        format!("{pro}/billingMigrated"),
        format!("{pro}/domain/mydomain.ovh"),
        format!("{pro}/account/sales@mydomain.ovh"),
        format!("{pro}/account/sales@mydomain.ovh/alias/orders@mydomain.ovh"),
        "/email/mxplan".into(),
        mx.into(),
        format!("{mx}/domain/mydomain.ovh"),
        mx_account.clone(),
        format!("{mx_account}/task"),
        format!("{mx}/task/{mx_task}"),
        "/email/domain".into(),
        legacy.into(),
        format!("{legacy}/account"),
        format!("{legacy}/account/carol"),
        format!("{legacy}/account/carol/usage"),
        format!("{legacy}/redirection/{}", redirections[0]),
        format!("{legacy}/mailingList/club"),
        format!("{legacy}/mailingList/club/subscriber/carol@legacy.example"),
        format!("{legacy}/task/account?name=carol"),
        format!(
            "{legacy}/task/redirection/{}",
            special["id"].as_str().unwrap()
        ),
        format!("{legacy}/task/mailinglist/{}", ml["id"]),
        "/auth/currentCredential".into(),
    ];
    for path in &reads {
        get(&client, path).await;
    }
    assert_eq!(contact["displayName"], "Partner");
    let pop = get(&client, &format!("{legacy}/task/account?name=carol")).await;
    get(&client, &format!("{legacy}/task/account/{}", pop[0])).await;
    assert_clean(&sim);
}
