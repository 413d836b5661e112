//! A scripted HTTP/1.1 server on 127.0.0.1 for the client's tests: it records each request
//! exactly as received and answers from a fixed script, so the tests check what actually went
//! on the wire, with no external network.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::{ClientOptions, Credentials, OvhClient, RetryPolicy};
use mailshift_core::plan::secret::Secret;

pub const AK: &str = "appKeyAK0123456789";
pub const AS: &str = "appSecretAS9ufkBmLaTQ9nz5yMUlg79t";
pub const CK: &str = "consumerCK5mBuy6SUQcRw2ZUxg0cG68";

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Request target as sent: path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, body, extra headers.
    Json(u16, String, Vec<(String, String)>),
    /// Never answer (for timeouts).
    Hang,
    /// Close the connection without answering (a network error).
    Drop,
}

pub fn ok(body: &str) -> Reply {
    Reply::Json(200, body.to_string(), Vec::new())
}

pub fn status(code: u16, body: &str) -> Reply {
    Reply::Json(code, body.to_string(), Vec::new())
}

/// `GET /auth/time` answer: the server's clock, `offset` seconds ahead of ours.
pub fn time(offset: i64) -> Reply {
    ok(&(now() + offset).to_string())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub struct Server {
    /// `http://127.0.0.1:port`: what a request target is appended to.
    pub root: String,
    /// API base with the `/1.0` prefix, as a plan's `endpoint` would give it.
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn client(&self, attempts: u32, timeout: Duration) -> OvhClient {
        let credentials = Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(CK),
        };
        let options = ClientOptions {
            timeout,
            connect_timeout: timeout,
            retry: RetryPolicy {
                max_attempts: attempts,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
            },
        };
        OvhClient::with_options(&self.base, credentials, options).unwrap()
    }
}

pub async fn start(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(stream, log.clone(), script.clone()));
        }
    });
    let root = format!("http://{addr}");
    Server {
        base: format!("{root}/1.0"),
        root,
        received,
    }
}

async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
) {
    loop {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        log.lock().unwrap().push(request);
        // An unscripted request gets a final (non-retried) status so the test fails loudly.
        let reply = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| status(418, r#"{"message":"unscripted request"}"#));
        match reply {
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Reply::Drop => return,
            Reply::Json(code, body, headers) => {
                let mut head = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        method,
        target,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}
