//! Real CardDAV/CalDAV servers for tests: Radicale or Xandikos started on a free loopback port
//! over a temporary directory, killed when the handle is dropped. Used by this crate's tests
//! and by the root crate's.
//!
//! The helpers that seed or inspect a server (`put_raw`, `request`...) speak HTTP/1.1 over a
//! plain socket rather than through [`crate::dav`]: a test must be able to set a server up
//! without trusting the client it is testing.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Radicale (Debian 3.1.8): multi-user, any login accepted, principal `/<login>/`, its
    /// address books and calendars directly under the principal. Refuses a second object with
    /// the same UID in a collection (409 `no-uid-conflict`).
    Radicale,
    /// Xandikos (Debian 0.2.8): single user, principal `/user/`, started with
    /// `/user/contacts/addressbook/` and `/user/calendars/calendar/`. Accepts duplicate UIDs.
    Xandikos,
}

impl ServerKind {
    fn binary(self) -> &'static str {
        match self {
            ServerKind::Radicale => "radicale",
            ServerKind::Xandikos => "xandikos",
        }
    }
}

/// An answer to a raw request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a server is started, beyond the defaults (plain HTTP, any login accepted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The only logins and passwords accepted (Radicale's htpasswd); empty: any login, any
    /// password.
    pub users: Vec<(String, String)>,
    /// Serve HTTPS with a certificate for 127.0.0.1 and localhost, signed by a CA made for this
    /// server ([`DavServer::ca_file`]); Radicale only. The raw helpers (`request`,
    /// `put_raw`...) speak plain HTTP and cannot be used then.
    pub tls: bool,
}

/// A running server; stopped (killed) on drop.
pub struct DavServer {
    kind: ServerKind,
    options: Options,
    child: Child,
    port: u16,
    log: PathBuf,
    // Kept for its Drop: the storage lives as long as the server.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for DavServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavServer")
            .field("kind", &self.kind)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// How long a server may take to answer its first connection (a cold Python start on a busy
/// machine); only a limit, never a measure.
const START_LIMIT: Duration = Duration::from_secs(60);

impl DavServer {
    /// Starts Radicale; panics with the reason (and how to install it) if it cannot.
    pub fn radicale() -> DavServer {
        Self::start(ServerKind::Radicale).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts Xandikos; panics with the reason (and how to install it) if it cannot.
    pub fn xandikos() -> DavServer {
        Self::start(ServerKind::Xandikos).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server and waits until it accepts connections.
    pub fn start(kind: ServerKind) -> Result<DavServer, String> {
        Self::start_with(kind, Options::default())
    }

    /// Starts a server with these options and waits until it accepts connections.
    pub fn start_with(kind: ServerKind, options: Options) -> Result<DavServer, String> {
        if kind == ServerKind::Xandikos && options != Options::default() {
            return Err("Xandikos is started without authentication and TLS".into());
        }
        let mut last = String::new();
        // A free port found by binding may be taken by someone else before the server binds
        // it: try again with another.
        for _ in 0..3 {
            match Self::start_once(kind, &options) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(kind: ServerKind, options: &Options) -> Result<DavServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let port = free_port()?;
        let storage = dir.path().join("storage");
        let log = dir.path().join("server.log");
        let mut command = Command::new(kind.binary());
        match kind {
            ServerKind::Radicale => {
                let config = dir.path().join("radicale.conf");
                let mut auth = "type = none".to_string();
                if !options.users.is_empty() {
                    let file = dir.path().join("users");
                    let lines: String = options
                        .users
                        .iter()
                        .map(|(user, password)| format!("{user}:{password}\n"))
                        .collect();
                    std::fs::write(&file, lines)
                        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                    auth = format!(
                        "type = htpasswd\nhtpasswd_filename = {}\nhtpasswd_encryption = plain\n\
                         delay = 0",
                        file.display()
                    );
                }
                let mut ssl = String::new();
                if options.tls {
                    let (cert, key) = make_certificates(dir.path())?;
                    ssl = format!(
                        "ssl = True\ncertificate = {}\nkey = {}\n",
                        cert.display(),
                        key.display()
                    );
                }
                let text = format!(
                    "[server]\nhosts = 127.0.0.1:{port}\n{ssl}\n\
                     [auth]\n{auth}\n\n\
                     [rights]\ntype = owner_only\n\n\
                     [storage]\nfilesystem_folder = {}\n\n\
                     [web]\ntype = none\n\n\
                     [logging]\nlevel = warning\n",
                    storage.display()
                );
                std::fs::write(&config, text)
                    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
                command.arg("--config").arg(&config);
            }
            ServerKind::Xandikos => {
                command
                    .arg("--defaults")
                    .arg("-d")
                    .arg(&storage)
                    .arg("-l")
                    .arg("127.0.0.1")
                    .arg("-p")
                    .arg(port.to_string());
            }
        }
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "`{}` is not installed (the tests run it on a loopback port): install it: \
                     scripts/install-deps.sh",
                    kind.binary()
                )
            } else {
                format!("cannot start `{}`: {e}", kind.binary())
            }
        })?;
        let mut server = DavServer {
            kind,
            options: options.clone(),
            child,
            port,
            log,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "`{}` exited ({status}) before answering on port {}: {}",
                    self.kind.binary(),
                    self.port,
                    self.log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Listening is not answering: make sure a request goes through (over TLS,
                // listening is all that can be checked without a TLS client).
                if self.options.tls || self.request("OPTIONS", "/", &[], "").is_ok() {
                    return Ok(());
                }
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "`{}` did not answer on port {} within {START_LIMIT:?}: {}",
                    self.kind.binary(),
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`Options::tls`]; no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) that signed the server's certificate, with [`Options::tls`].
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("ca.pem"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's storage directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server printed so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The principal of `user`: `/user/` on Radicale, always `/user/` on Xandikos.
    pub fn principal(&self, user: &str) -> String {
        match self.kind {
            ServerKind::Radicale => format!("/{user}/"),
            ServerKind::Xandikos => "/user/".to_string(),
        }
    }

    /// Where `user`'s address books live.
    pub fn addressbook_home(&self, user: &str) -> String {
        match self.kind {
            ServerKind::Radicale => format!("/{user}/"),
            ServerKind::Xandikos => "/user/contacts/".to_string(),
        }
    }

    /// Where `user`'s calendars live.
    pub fn calendar_home(&self, user: &str) -> String {
        match self.kind {
            ServerKind::Radicale => format!("/{user}/"),
            ServerKind::Xandikos => "/user/calendars/".to_string(),
        }
    }

    /// How [`crate::dav::DavStore`] reaches this server as `user` (its password from
    /// [`Options::users`], the test CA with [`Options::tls`]).
    pub fn dav_config(&self, user: &str) -> crate::dav::DavConfig {
        crate::dav::DavConfig {
            ca_file: self.ca_file(),
            ..crate::dav::DavConfig::new(
                self.url(),
                crate::dav::Auth::Basic {
                    login: user.to_string(),
                    password: crate::dav::Secret::new(self.password(user)),
                },
            )
        }
    }

    fn password(&self, user: &str) -> &str {
        self.options
            .users
            .iter()
            .find(|(u, _)| u == user)
            .map_or("x", |(_, p)| p.as_str())
    }

    /// The address book the server starts with (Xandikos), or creates for `user` on first
    /// call (Radicale: `/<user>/contacts/`).
    pub fn default_addressbook(&self, user: &str) -> String {
        match self.kind {
            ServerKind::Radicale => {
                let path = format!("/{user}/contacts/");
                if self
                    .request_as(user, "PROPFIND", &path, &[("Depth", "0")], "")
                    .status
                    == 404
                {
                    self.create_addressbook(user, &path);
                }
                path
            }
            ServerKind::Xandikos => "/user/contacts/addressbook/".to_string(),
        }
    }

    /// The calendar the server starts with (Xandikos), or creates for `user` on first call
    /// (Radicale: `/<user>/calendar/`).
    pub fn default_calendar(&self, user: &str) -> String {
        match self.kind {
            ServerKind::Radicale => {
                let path = format!("/{user}/calendar/");
                if self
                    .request_as(user, "PROPFIND", &path, &[("Depth", "0")], "")
                    .status
                    == 404
                {
                    self.create_calendar(user, &path);
                }
                path
            }
            ServerKind::Xandikos => "/user/calendars/calendar/".to_string(),
        }
    }

    /// Creates an address book at `path` (extended MKCOL) for `user`; panics if refused.
    pub fn create_addressbook(&self, user: &str, path: &str) {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
</D:prop></D:set></D:mkcol>"#;
        let r = self.request_as(
            user,
            "MKCOL",
            path,
            &[("Content-Type", "application/xml; charset=utf-8")],
            body,
        );
        assert!(
            matches!(r.status, 200..=299),
            "MKCOL {path} answered {}: {}",
            r.status,
            r.body
        );
    }

    /// Creates a calendar at `path` (MKCALENDAR) for `user`; panics if refused.
    pub fn create_calendar(&self, user: &str, path: &str) {
        let r = self.request_as(user, "MKCALENDAR", path, &[], "");
        assert!(
            matches!(r.status, 200..=299),
            "MKCALENDAR {path} answered {}: {}",
            r.status,
            r.body
        );
    }

    /// PUTs `body` at `path` (decoded, as hrefs are in `store`) without conditions (content
    /// type from the extension), as the owner of the path's first segment; returns the status.
    pub fn put_raw(&self, path: &str, body: &str) -> u16 {
        let content_type = if path.ends_with(".vcf") {
            "text/vcard; charset=utf-8"
        } else {
            "text/calendar; charset=utf-8"
        };
        self.request_as(
            owner(path),
            "PUT",
            &encode(path),
            &[("Content-Type", content_type)],
            body,
        )
        .status
    }

    /// GETs `path` (decoded) as the owner of its first segment: `None` when the server
    /// answers 404.
    pub fn get_raw(&self, path: &str) -> Option<String> {
        let r = self.request_as(owner(path), "GET", &encode(path), &[], "");
        match r.status {
            404 => None,
            200 => Some(r.body),
            other => panic!("GET {path} answered {other}: {}", r.body),
        }
    }

    /// DELETEs `path` (decoded) as the owner of its first segment; returns the status.
    pub fn delete_raw(&self, path: &str) -> u16 {
        self.request_as(owner(path), "DELETE", &encode(path), &[], "")
            .status
    }

    /// One request with HTTP Basic credentials of `user` (its password from
    /// [`Options::users`], any otherwise); panics if the server cannot be reached.
    pub fn request_as(
        &self,
        user: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RawResponse {
        let credentials = basic(user, self.password(user));
        let mut all: Vec<(&str, &str)> = vec![("Authorization", &credentials)];
        all.extend_from_slice(headers);
        self.request(method, path, &all, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// One request as given (`path` already percent-encoded).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<RawResponse, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(START_LIMIT))
            .map_err(|e| e.to_string())?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        parse_response(&raw)
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// A CA and a certificate for 127.0.0.1/localhost signed by it, made with the `openssl`
/// command (P-256 keys: quick to make); returns the certificate and key paths.
fn make_certificates(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let config = dir.join("openssl.cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = mailshift test\n\
         [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [leaf]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n\
         authorityKeyIdentifier = keyid\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let cnf = path("openssl.cnf");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: Vec<Vec<String>> = vec![
        [
            &[
                "req",
                "-x509",
                "-config",
                &cnf,
                "-extensions",
                "ca",
                "-days",
                "3",
            ][..],
            &ec,
            &["-keyout", &path("ca.key"), "-out", &path("ca.pem")],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect(),
        [
            &["req", "-new", "-config", &cnf][..],
            &ec,
            &["-keyout", &path("server.key"), "-out", &path("server.csr")],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect(),
        [
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            &cnf,
            "-extensions",
            "leaf",
            "-out",
            &path("server.pem"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run `openssl` to make a test certificate: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok((dir.join("server.pem"), dir.join("server.key")))
}

/// A decoded path made into a request target. Every byte but unreserved ones and `/` is
/// escaped: stricter than the client's own encoding, so the two are checked against each other.
fn encode(path: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(path, SET).to_string()
}

/// The user a path belongs to on Radicale (its first segment); ignored by Xandikos.
fn owner(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let text = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// Reads a `Connection: close` answer: status line, headers, then the body (plain or chunked).
fn parse_response(raw: &[u8]) -> Result<RawResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk")?;
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}
