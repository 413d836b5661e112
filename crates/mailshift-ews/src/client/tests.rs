//! The client against scripted answers: what the EWS simulator is not made to send (a bare
//! 503, a 500 fault with BackOffMilliseconds) and how each answer is taken.

use super::*;
use crate::config::Secret;
use crate::scripted::{answer, scripted};

fn client(url: &str, auth: Auth) -> Client {
    Client::new(&EwsConfig {
        url: format!("{url}/EWS/Exchange.asmx"),
        auth,
        attempts: 3,
        backoff: Duration::from_millis(1),
        ..EwsConfig::default()
    })
    .unwrap()
}

fn soap(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP11}" xmlns:m="{MESSAGES}" xmlns:t="{TYPES}"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

const BUSY_FAULT: &str = r#"<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">busy</e:Message><t:MessageXml><t:Value Name="BackOffMilliseconds">5</t:Value></t:MessageXml></detail></s:Fault>"#;

const DELETED: &str = r#"<m:DeleteItemResponse><m:ResponseMessages><m:DeleteItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:DeleteItemResponseMessage><m:DeleteItemResponseMessage ResponseClass="Error"><m:MessageText>The specified object was not found in the store.</m:MessageText><m:ResponseCode>ErrorItemNotFound</m:ResponseCode></m:DeleteItemResponseMessage></m:ResponseMessages></m:DeleteItemResponse>"#;

#[tokio::test]
async fn busy_and_unavailable_are_retried_then_answered_per_item() {
    let server = scripted(vec![
        answer(
            "500 Internal Server Error",
            &["Content-Type: text/xml"],
            &soap(BUSY_FAULT),
        ),
        answer("503 Service Unavailable", &["Retry-After: 0"], ""),
        answer("200 OK", &["Content-Type: text/xml"], &soap(DELETED)),
    ]);
    let client = client(
        &server.url,
        Auth::Basic {
            login: "alice@example.com".into(),
            password: Secret::new("hunter2"),
        },
    );
    let messages = client.call("DeleteItem", "<m:DeleteItem/>").await.unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages[0].is_success());
    assert_eq!(messages[1].code, "ErrorItemNotFound");
    let failure = messages[1].to_error("DeleteItem of contact x");
    assert_eq!(failure.kind, ErrorKind::Refused);
    assert!(
        failure.message.contains("not found in the store"),
        "{failure:?}"
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for request in seen.iter() {
        assert!(request.starts_with("POST /EWS/Exchange.asmx "), "{request}");
        assert!(request.to_ascii_lowercase().contains("soapaction: \"http://schemas.microsoft.com/exchange/services/2006/messages/deleteitem\""), "{request}");
        assert!(request.contains("<t:RequestServerVersion Version=\"Exchange2013_SP1\"/>"));
    }
}

#[tokio::test]
async fn busy_beyond_the_attempts_is_throttled_with_the_server_s_wait() {
    let fault = soap(BUSY_FAULT);
    let server = scripted(vec![answer("500 Internal Server Error", &[], &fault); 3]);
    let failure = client(&server.url, Auth::None)
        .call("FindFolder", "<m:FindFolder/>")
        .await
        .unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Throttled);
    assert_eq!(failure.retry_after, Some(Duration::from_millis(5)));
    assert!(failure.message.contains("after 3 attempts"), "{failure:?}");
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error_without_the_secret() {
    let server = scripted(vec![answer("401 Unauthorized", &[], "")]);
    let failure = client(&server.url, Auth::Bearer(Secret::new("tok3n")))
        .call("FindFolder", "<m:FindFolder/>")
        .await
        .unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Auth);
    assert!(!failure.message.contains("tok3n"));
    assert!(failure.message.contains("OAuth token"), "{failure:?}");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_schema_fault_is_final_and_named() {
    let fault = r#"<s:Fault><faultcode>a:ErrorSchemaValidation</faultcode><faultstring>The request failed schema validation.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorSchemaValidation</e:ResponseCode></detail></s:Fault>"#;
    let server = scripted(vec![answer("500 Internal Server Error", &[], &soap(fault))]);
    let failure = client(&server.url, Auth::None)
        .call("FindFolder", "<m:FindFolder/>")
        .await
        .unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Bug);
    assert!(
        failure.message.contains("ErrorSchemaValidation"),
        "{failure:?}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[test]
fn an_unknown_version_is_refused_with_the_known_ones() {
    let failure = Client::new(&EwsConfig {
        url: "https://ex.example.com/EWS/Exchange.asmx".into(),
        version: "Exchange2003".into(),
        ..EwsConfig::default()
    })
    .unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Config);
    assert!(failure.message.contains("Exchange2013_SP1"), "{failure:?}");
}
