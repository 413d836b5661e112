//! The client against a scripted HTTP server on loopback: what every request carries, paging,
//! throttling obeyed (Retry-After, at most N in flight), a refused token renewed once, links
//! outside the API root not followed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::*;
use crate::config::{FixedToken, TokenSource};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Reply = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    seen: Vec<Seen>,
    in_flight: usize,
    most_in_flight: usize,
    arrived: usize,
}

/// A server answering from `script` in order (200 `{}` when it runs out). With `hold`, each
/// request waits until `hold` requests are in flight or `total` have arrived.
async fn serve(script: Arc<Mutex<Script>>, hold: Option<(usize, usize)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let notify = Arc::new(Notify::new());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let line = lines.next().unwrap_or_default().to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + 4 + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                {
                    let mut s = script.lock().unwrap();
                    s.seen.push(Seen { line, headers });
                    s.in_flight += 1;
                    s.arrived += 1;
                    s.most_in_flight = s.most_in_flight.max(s.in_flight);
                }
                if let Some((hold, total)) = hold {
                    loop {
                        let waiting = notify.notified();
                        {
                            let s = script.lock().unwrap();
                            if s.in_flight >= hold || s.arrived >= total {
                                break;
                            }
                        }
                        waiting.await;
                    }
                    notify.notify_waiters();
                }
                let (status, headers, body) = {
                    let mut s = script.lock().unwrap();
                    s.in_flight -= 1;
                    s.replies
                        .pop_front()
                        .unwrap_or((200, Vec::new(), "{}".into()))
                };
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                let _ = socket.write_all(out.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{address}/v1.0")
}

fn client(url: &str, tokens: Arc<dyn TokenSource>, in_flight: usize) -> GraphClient {
    let mut config = GraphConfig::new(Some(url), tokens, "ada@example.org");
    config.backoff = Duration::ZERO;
    config.max_in_flight = in_flight;
    GraphClient::new(&config).unwrap()
}

fn fixed() -> Arc<dyn TokenSource> {
    Arc::new(FixedToken("t0ken".into()))
}

#[tokio::test]
async fn every_request_carries_the_token_and_asks_for_immutable_ids_and_pages_are_followed() {
    let script = Arc::new(Mutex::new(Script::default()));
    let url = serve(script.clone(), None).await;
    let next = format!("{url}/users/ada/contacts?$skiptoken=2");
    script.lock().unwrap().replies.extend([
        (
            200,
            vec![],
            format!(r#"{{"value":[{{"id":"a"}}],"@odata.nextLink":"{next}"}}"#),
        ),
        (
            200,
            vec![],
            r#"{"value":[{"id":"b"}],"@odata.deltaLink":"d"}"#.to_string(),
        ),
    ]);
    let c = client(&url, fixed(), 4);
    let (items, delta) = c.list_all("users/ada/contacts", "listing").await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(delta.as_deref(), Some("d"));
    let seen = script.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].line.contains("skiptoken=2"), "{seen:?}");
    for s in &seen {
        assert_eq!(s.header("authorization"), ["Bearer t0ken"]);
        assert_eq!(s.header("prefer"), [r#"IdType="ImmutableId""#]);
    }
}

#[tokio::test]
async fn throttling_is_waited_out_and_a_refused_token_renewed_once() {
    struct Counting(Mutex<Vec<String>>);
    impl TokenSource for Counting {
        fn token(
            &self,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = Result<mailshift_dav::dav::Secret, StoreError>>
                    + Send
                    + '_,
            >,
        > {
            let n = self.0.lock().unwrap().len();
            Box::pin(async move { Ok(format!("tok{n}").into()) })
        }
        fn refused(&self, token: &mailshift_dav::dav::Secret) {
            self.0.lock().unwrap().push(token.expose().to_string());
        }
    }
    let script = Arc::new(Mutex::new(Script::default()));
    let url = serve(script.clone(), None).await;
    script.lock().unwrap().replies.extend([
        (
            429,
            vec![("retry-after", "0".into())],
            r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#.into(),
        ),
        (503, vec![("retry-after", "0".into())], "{}".into()),
        (401, vec![], "{}".into()),
        (200, vec![], r#"{"id":"x"}"#.into()),
    ]);
    let tokens = Arc::new(Counting(Mutex::new(Vec::new())));
    let c = client(&url, tokens.clone(), 4);
    let got = c
        .json(&Call::get("users/ada/contacts/x"), "reading")
        .await
        .unwrap();
    assert_eq!(got["id"], "x");
    assert_eq!(*tokens.0.lock().unwrap(), ["tok0"]);
    let seen = script.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].header("authorization"), ["Bearer tok1"]);

    // Throttled past the attempts: an error that says so, with the wait.
    script
        .lock()
        .unwrap()
        .replies
        .extend((0..6).map(|_| (429, vec![("retry-after", "0".into())], "{}".to_string())));
    let e = c
        .json(&Call::get("users/ada/contacts/y"), "reading")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled, "{e:?}");
    assert!(
        e.message.contains("429") && e.message.contains("6 attempts"),
        "{e:?}"
    );
}

#[tokio::test]
async fn no_more_requests_in_flight_than_the_mailbox_allows() {
    let script = Arc::new(Mutex::new(Script::default()));
    let url = serve(script.clone(), Some((4, 12))).await;
    let c = Arc::new(client(&url, fixed(), 4));
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                c.json(&Call::get(format!("users/ada/events/{i}")), "r")
                    .await
            })
        })
        .collect();
    for call in calls {
        // A guard against a deadlock only, not a measure of anything.
        tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("requests were held forever")
            .unwrap()
            .unwrap();
    }
    assert_eq!(script.lock().unwrap().most_in_flight, 4);
}

#[test]
fn links_outside_the_root_and_plain_http_elsewhere_are_refused() {
    let c = client("https://graph.microsoft.com/v1.0", fixed(), 4);
    assert!(c.url_of("https://evil.example/v1.0/users").is_err());
    assert!(c.url_of("https://graph.microsoft.com/beta/users").is_err());
    assert_eq!(
        c.url_of("users/a/contacts").unwrap().as_str(),
        "https://graph.microsoft.com/v1.0/users/a/contacts"
    );
    let mut config = GraphConfig::new(Some("http://graph.example/v1.0"), fixed(), "a");
    config.backoff = Duration::ZERO;
    let e = GraphClient::new(&config).unwrap_err();
    assert!(
        e.message.contains("`graph.url`") && e.message.contains("https"),
        "{e:?}"
    );
}
