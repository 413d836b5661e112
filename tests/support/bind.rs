//! Private BIND 9 servers for the DNS tests: a primary holding a test zone that accepts
//! RFC 2136 updates signed with a TSIG key, and a secondary that transfers the zone from it
//! (AXFR/IXFR signed with a second key). Each runs in the foreground (`named -g`) in its own
//! temporary directory and is stopped when dropped.
//!
//! Both listen on the same port, the primary on 127.0.0.1 and the secondary on ::1, so the
//! zone's NS records (`ns1` A, `ns2` AAAA) can name them by address: the propagation check
//! finds them as it would on the Internet, with only the port given by the test. (BIND listens
//! on interface addresses only, and loopback has just these two unless one adds more.)
//!
//! `notify: false` holds the secondary back: the primary sends no NOTIFY and the SOA refresh is
//! an hour, so after a change the secondary really serves the old answer until the test calls
//! [`BindPair::transfer_now`] (`rndc retransfer`). With `notify: true` it follows within
//! moments, as a real secondary does.
//!
//! Set `MAILSHIFT_KEEP_BIND=1` to keep a failed test's directories (configs, zone, log).

use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

const NAMED: &str = "/usr/sbin/named";
const RNDC: &str = "/usr/sbin/rndc";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const PORT_ATTEMPTS: usize = 8;
pub const PRIMARY_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const SECONDARY_IP: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
/// The key allowed to update the zone.
pub const UPDATE_KEY: &str = "mailshift-update";
/// The key the secondary transfers with.
const TRANSFER_KEY: &str = "transfer";

pub struct BindConfig<'a> {
    /// The zone's apex (`example.test`).
    pub zone: &'a str,
    /// Zone-file lines added after the SOA, NS and name-server addresses, relative to the apex.
    pub records: &'a str,
    /// Whether the primary tells the secondary of each change (see the module doc).
    pub notify: bool,
}

/// One `named` process.
pub struct Named {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    addr: SocketAddr,
    rndc_port: u16,
}

/// A primary and its secondary, serving one test zone.
pub struct BindPair {
    pub primary: Named,
    pub secondary: Named,
    zone: String,
    /// The update key's secret (decoded).
    pub secret: Vec<u8>,
    /// The transfer key's secret: a key the server knows but does not let update the zone.
    pub transfer_secret: Vec<u8>,
}

impl BindPair {
    pub fn start(config: &BindConfig<'_>) -> BindPair {
        assert!(
            Path::new(NAMED).exists(),
            "{NAMED} is missing: run scripts/install-deps.sh (Debian's bind9)"
        );
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = shared_free_port();
            match BindPair::try_start(config, port) {
                Ok(pair) => return pair,
                Err(e) if e.contains("address in use") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("BIND could not get a free port: {last_error}");
    }

    fn try_start(config: &BindConfig<'_>, port: u16) -> Result<BindPair, String> {
        let secret = random_bytes(32);
        let transfer_secret = random_bytes(32);
        let rndc_secret = random_bytes(32);
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let keys = format!(
            "key \"{UPDATE_KEY}\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n\
             key \"{TRANSFER_KEY}\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n\
             key \"rndc\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n",
            b64(&secret),
            b64(&transfer_secret),
            b64(&rndc_secret)
        );
        let zone = config.zone;
        let zone_file = format!(
            "$TTL 3600\n\
             @ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n\
             @ IN NS ns1.{zone}.\n\
             @ IN NS ns2.{zone}.\n\
             ns1 IN A {PRIMARY_IP}\n\
             ns2 IN AAAA {SECONDARY_IP}\n\
             {}\n",
            config.records
        );
        let notify = if config.notify {
            format!("notify explicit; also-notify {{ {SECONDARY_IP} port {port}; }};")
        } else {
            "notify no;".to_string()
        };
        let primary_zone = format!(
            "zone \"{zone}\" {{\n  type primary;\n  file \"zone.db\";\n  \
             update-policy {{ grant {UPDATE_KEY} zonesub ANY; }};\n  \
             allow-transfer {{ key {TRANSFER_KEY}; }};\n  {notify}\n}};\n"
        );
        let secondary_zone = format!(
            "zone \"{zone}\" {{\n  type secondary;\n  file \"zone.db\";\n  \
             primaries {{ {PRIMARY_IP} port {port} key {TRANSFER_KEY}; }};\n  notify no;\n  \
             allow-notify {{ {PRIMARY_IP}; {SECONDARY_IP}; }};\n}};\n"
        );
        // The primary serves the zone before the secondary asks for it: a first transfer
        // refused by a primary still loading is retried only minutes later, which two pairs
        // starting at once on a busy machine made happen.
        let mut primary = Named::start(PRIMARY_IP, port, &keys, &primary_zone, Some(&zone_file))?;
        primary.wait_loaded(zone, 1)?;
        let mut secondary = Named::start(SECONDARY_IP, port, &keys, &secondary_zone, None)?;
        secondary.wait_loaded(zone, 1)?;
        Ok(BindPair {
            primary,
            secondary,
            zone: zone.to_string(),
            secret,
            transfer_secret,
        })
    }

    /// The secondary transfers the zone now, whatever its refresh timer says.
    pub fn transfer_now(&self) {
        self.secondary.rndc(&["retransfer", &self.zone]);
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }
}

impl Named {
    fn start(
        ip: IpAddr,
        port: u16,
        keys: &str,
        zone: &str,
        zone_file: Option<&str>,
    ) -> Result<Named, String> {
        let dir = tempfile::Builder::new()
            .prefix("mailshift-bind-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let path = dir.path();
        let rndc_port = free_tcp_port();
        if let Some(text) = zone_file {
            fs::write(path.join("zone.db"), text).unwrap();
        }
        // The primary's NOTIFY reaches the secondary over IPv6, from ::1, not from the address
        // the secondary knows its primary by: hence the secondary's `allow-notify`.
        let listen = match ip {
            IpAddr::V4(_) => {
                format!("listen-on port {port} {{ {ip}; }};\n  listen-on-v6 {{ none; }};")
            }
            IpAddr::V6(_) => {
                format!("listen-on {{ none; }};\n  listen-on-v6 port {port} {{ {ip}; }};")
            }
        };
        let conf = format!(
            "options {{\n  directory \"{dir}\";\n  pid-file \"{dir}/named.pid\";\n  \
             session-keyfile \"{dir}/session.key\";\n  managed-keys-directory \"{dir}\";\n  \
             {listen}\n  \
             recursion no;\n  dnssec-validation no;\n  \
             allow-query {{ any; }};\n}};\n\
             {keys}\
             controls {{ inet 127.0.0.1 port {rndc_port} allow {{ 127.0.0.1; }} keys {{ rndc; }}; }};\n\
             {zone}",
            dir = path.display()
        );
        fs::write(path.join("named.conf"), conf).unwrap();
        let rndc_key = keys
            .lines()
            .find(|l| l.starts_with("key \"rndc\""))
            .unwrap()
            .to_string();
        fs::write(
            path.join("rndc.conf"),
            format!(
                "{rndc_key}\noptions {{ default-server 127.0.0.1; default-port {rndc_port}; \
                 default-key rndc; }};\n"
            ),
        )
        .unwrap();
        let log = fs::File::create(path.join("named.log")).unwrap();
        // `-g`: foreground, log to stderr (the file); `-n 1`: one worker thread, the machine is
        // shared; run as the current user (no `-u`), files stay ours.
        let child = Command::new(NAMED)
            .args(["-g", "-n", "1", "-c"])
            .arg(path.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {NAMED}: {e}"))?;
        Ok(Named {
            dir: Some(dir),
            child: Some(child),
            addr: SocketAddr::from((ip, port)),
            rndc_port,
        })
    }

    /// Where it answers DNS.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("named.log")).unwrap_or_default()
    }

    /// Runs `rndc` against this server; panics with its output when it fails.
    pub fn rndc(&self, args: &[&str]) -> String {
        self.try_rndc(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_rndc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(RNDC)
            .arg("-c")
            .arg(self.dir().join("rndc.conf"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running rndc: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("rndc {} at {}: {text}", args.join(" "), self.addr))
        }
    }

    /// The zone's SOA serial as this server holds it.
    pub fn serial(&self, zone: &str) -> u32 {
        let status = self.rndc(&["zonestatus", zone]);
        status
            .lines()
            .find_map(|l| l.strip_prefix("serial: "))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no serial in rndc zonestatus: {status}"))
    }

    /// Waits until the zone is loaded with at least `serial` (the secondary: transferred).
    fn wait_loaded(&mut self, zone: &str, serial: u32) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child_exited() {
                let log = self.log();
                let why = if log.contains("address in use") {
                    "address in use"
                } else {
                    "exited"
                };
                return Err(format!("named at {} {why} ({child}):\n{log}", self.addr));
            }
            if let Ok(status) = self.try_rndc(&["zonestatus", zone])
                && let Some(s) = status.lines().find_map(|l| l.strip_prefix("serial: "))
                && s.trim().parse::<u32>().is_ok_and(|s| s >= serial)
                && answers_udp(self.addr)
            {
                return Ok(());
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "named at {} did not load {zone} within {START_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child_exited(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `named -g` does not fork: its own process is all there is to stop.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking()
            && std::env::var_os("MAILSHIFT_KEEP_BIND").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping BIND directory {}", dir.keep().display());
        }
    }
}

/// Whether something answers a DNS query on `addr` (any reply will do: the listener is up).
fn answers_udp(addr: SocketAddr) -> bool {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    };
    let Ok(socket) = UdpSocket::bind(local) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    // id 0x4d53, no flags, one question: `. NS IN`.
    let query = [0x4d, 0x53, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
    if socket.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 2 && buf[..2] == [0x4d, 0x53])
}

/// A port free for TCP and UDP on both servers' addresses.
fn shared_free_port() -> u16 {
    loop {
        let first = TcpListener::bind((PRIMARY_IP, 0)).expect("binding 127.0.0.1");
        let port = first.local_addr().unwrap().port();
        let free = TcpListener::bind((SECONDARY_IP, port)).is_ok()
            && UdpSocket::bind((PRIMARY_IP, port)).is_ok()
            && UdpSocket::bind((SECONDARY_IP, port)).is_ok();
        if free {
            return port;
        }
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("reading /dev/urandom");
    buf
}
