//! The `ovh-sim` binary as the demo runs it: the base URL on the first stdout line, served
//! until SIGTERM, a bad world refused with exit 1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A tiny HTTP/1.1 GET: the answer's status and body.
fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

#[test]
fn serves_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.yaml");
    std::fs::write(
        &world,
        "applications: [{key: ak, secret: as}]\n\
         pro:\n\
         - service: pro-demo\n  domains: [{name: demo.example}]\n  placeholders: 3\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovh-sim"))
        .arg("--world")
        .arg(&world)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first.trim();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/1.0"),
        "{first:?}"
    );

    let (status, time) = http_get(&format!("{base}/auth/time"));
    assert_eq!(status, 200);
    assert!(time.parse::<i64>().is_ok(), "a bare integer: {time}");
    let root = base.strip_suffix("/1.0").unwrap();
    let (status, world) = http_get(&format!("{root}/_sim/world"));
    assert_eq!(status, 200);
    let world: Value = serde_json::from_str(&world).unwrap();
    assert_eq!(world["pro"][0]["accounts"].as_array().unwrap().len(), 3);
    // The zones' name servers, for a demo's propagation check.
    let (status, dns) = http_get(&format!("{root}/_sim/dns"));
    assert_eq!(status, 200);
    let dns: Value = serde_json::from_str(&dns).unwrap();
    let names: Vec<&str> = dns
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dns200.ovh.net", "ns200.ovh.net"]);
    assert!(
        dns[1]["addr"].as_str().unwrap().starts_with("127.0.0.1:") && dns[1]["held"] == false,
        "{dns}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the simulator did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("test/demo tool"), "{stderr}");
    assert!(
        stderr.contains(
            "name server ns200.ovh.net of the simulated DNS zones answering on 127.0.0.1:"
        ),
        "{stderr}"
    );
}

#[test]
fn rejects_a_bad_world() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.yaml");
    std::fs::write(&world, "pro: [{service: s, acounts: []}]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ovh-sim"))
        .arg("--world")
        .arg(&world)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("world.yaml") && stderr.contains("acounts"),
        "{stderr}"
    );
}
