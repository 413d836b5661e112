//! Private Dovecot IMAP servers for integration tests: each `Dovecot` is a real server in its
//! own temporary directory on a free loopback port, torn down (with every child process) when
//! dropped. The configuration mirrors `scripts/dovecot.sh`; keep the two in step (TLS
//! instances, with their throwaway CA, exist only here).
//!
//! Set `MAILSHIFT_KEEP_DOVECOT=1` to keep a failed test's directory (config, log, maildirs).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::imap::ImapClient;

const DOVECOT_BIN: &str = "/usr/sbin/dovecot";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: usize = 8;

pub struct DovecotConfig<'a> {
    /// Hierarchy separator of the single namespace: `'/'` (folder names may contain `.`) or
    /// `'.'` (to exercise separator translation).
    pub separator: char,
    pub users: &'a [(&'a str, &'a str)],
    /// Replaces Dovecot's `imap_capability` (pre- and post-login), to test clients against
    /// servers lacking UIDPLUS, MULTIAPPEND, LITERAL+ and so on. It only changes what is
    /// advertised: Dovecot 2.3 still answers APPEND with APPENDUID and still accepts `{n+}`
    /// literals, so a test of a fallback must check what the client sends, not what fails.
    pub capabilities_override: Option<&'a str>,
    /// TLS with a certificate from a private CA made for this instance: STARTTLS on the
    /// plain port, implicit TLS on `tls_port()`, the CA at `ca_pem_path()`. Plaintext login
    /// stays allowed on the plain port (`ssl = yes`, not `required`) so the same instance
    /// also serves clients that never upgrade. Without it, `ssl = no`: no STARTTLS offered.
    pub tls: bool,
    /// `mail_max_userip_connections`: connections one user may hold from one IP (Dovecot's
    /// default is 10; tests of parallel transfers get 50 unless they test the cap itself).
    pub max_connections: u32,
    /// Raw lines appended to the generated dovecot.conf (plugins and their settings, e.g. a
    /// quota that makes one folder or one message refused).
    pub extra: &'a str,
    /// The RFC 7662 introspection URL of an OAuth2 server (`provider_sim::oauth`): adds
    /// XOAUTH2 and OAUTHBEARER logins checked by Dovecot's `oauth2` passdb, which asks that
    /// URL at every login (no cache), so a token works only while the server says it is
    /// active. Password logins keep working for the same users.
    pub oauth2: Option<&'a str>,
    /// A Gmail-shaped server in front of this one ([`Dovecot::gmail`]): Dovecot's virtual
    /// plugin for `[Gmail]/All Mail` and a master user for the proxy (see
    /// `provider_sim::gmail`). Needs separator `/`.
    pub gmail: bool,
    /// POP3 too (Debian's `dovecot-pop3d`): `protocols = imap pop3`, a plain POP3 listener on
    /// `pop3_port()` (STLS offered when `tls` is on) and, with `tls`, POP3 over TLS on
    /// `pop3s_port()`. UIDLs are Dovecot's default `%08Xu%08Xv` (UID and UIDVALIDITY), so a
    /// folder whose UIDVALIDITY changes gives every message a new UIDL.
    pub pop3: bool,
    /// ManageSieve too (Debian's `dovecot-managesieved` and `dovecot-sieve`): a plain
    /// listener on `managesieve_port()` (STARTTLS offered when `tls` is on), scripts kept in
    /// each user's `~/sieve` with the active one linked from `~/.dovecot.sieve`, and the
    /// Sieve plugin run by `dovecot-lda` ([`Dovecot::deliver`]) so a test can see a script file
    /// a message.
    pub managesieve: bool,
}

impl Default for DovecotConfig<'_> {
    fn default() -> Self {
        DovecotConfig {
            separator: '/',
            users: &[],
            capabilities_override: None,
            tls: false,
            max_connections: 50,
            extra: "",
            oauth2: None,
            gmail: false,
            pop3: false,
            managesieve: false,
        }
    }
}

/// Who owns the mail files and which accounts Dovecot's own processes run as.
struct Identity {
    mail_uid: u32,
    mail_gid: u32,
    internal_user: String,
    internal_group: String,
    login_user: String,
    root: bool,
}

impl Identity {
    fn current() -> Identity {
        let me = fs::metadata("/proc/self").expect("reading /proc/self");
        if me.uid() == 0 {
            // Dovecot refuses to run mail processes as root; `nobody` passes once
            // first_valid_uid is lowered to 1.
            let (uid, gid) = passwd_entry(|name, _| name == "nobody").unwrap_or((65534, 65534));
            Identity {
                mail_uid: uid,
                mail_gid: gid,
                internal_user: "dovecot".into(),
                internal_group: "dovecot".into(),
                login_user: "dovenull".into(),
                root: true,
            }
        } else {
            let name = passwd_name(me.uid())
                .or_else(|| std::env::var("USER").ok())
                .expect("cannot tell the current user's name");
            // Several of Dovecot's sockets are chowned to the internal group, which only root
            // may do for a group it is not in.
            let group = group_name(me.gid()).unwrap_or_else(|| me.gid().to_string());
            Identity {
                mail_uid: me.uid(),
                mail_gid: me.gid(),
                internal_user: name.clone(),
                internal_group: group,
                login_user: name,
                root: false,
            }
        }
    }
}

fn passwd_entry(pred: impl Fn(&str, u32) -> bool) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let uid = f.get(2)?.parse().ok()?;
        let gid = f.get(3)?.parse().ok()?;
        pred(f[0], uid).then_some((uid, gid))
    })
}

fn group_name(gid: u32) -> Option<String> {
    let groups = fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == gid).then(|| f[0].to_string())
    })
}

fn passwd_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    })
}

pub struct Dovecot {
    // An Option so Drop can keep it on request; Drop stops the server before it goes away.
    dir: Option<tempfile::TempDir>,
    port: u16,
    /// The implicit-TLS (imaps) port, for instances started with `tls`.
    tls_port: Option<u16>,
    /// The POP3 ports (plain with STLS, and implicit TLS), for instances started with `pop3`.
    pop3_port: Option<u16>,
    pop3s_port: Option<u16>,
    /// The ManageSieve port, for instances started with `managesieve`.
    managesieve_port: Option<u16>,
    separator: char,
    identity: Identity,
    child: Option<Child>,
    /// The master's pid, which is also the process group of every Dovecot process of this
    /// instance (spawned with `process_group(0)`, and `-F` keeps it from daemonizing).
    pgid: i32,
}

impl Dovecot {
    /// Starts a server and waits for its greeting. Panics (with the log) if it cannot: a test
    /// without its server cannot say anything useful.
    pub fn start(config: DovecotConfig<'_>) -> Dovecot {
        assert!(
            config.separator == '/' || config.separator == '.',
            "separator must be '/' or '.', got {:?}",
            config.separator
        );
        if !Path::new(DOVECOT_BIN).exists() {
            panic!("Dovecot is not installed: run scripts/install-deps.sh");
        }
        let identity = Identity::current();
        // Unix socket paths are limited to 108 bytes and Dovecot puts sockets two levels
        // below base_dir: a long $TMPDIR would break it, /tmp never does.
        let dir = tempfile::Builder::new()
            .prefix("mailshift-dovecot-")
            .tempdir_in("/tmp")
            .expect("creating the Dovecot temp dir");
        // Mail processes run as `nobody` and must traverse the (root-owned, 0700) temp dir.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.path().join("mail")).unwrap();
        fs::set_permissions(dir.path().join("mail"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(
            dir.path().join("mail"),
            Some(identity.mail_uid),
            Some(identity.mail_gid),
        )
        .unwrap();
        for sub in ["run", "state"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("users"), "").unwrap();
        if config.tls {
            make_tls_material(&dir.path().join("tls"));
        }

        let mut dovecot = Dovecot {
            dir: Some(dir),
            port: 0,
            tls_port: None,
            pop3_port: None,
            pop3s_port: None,
            managesieve_port: None,
            separator: config.separator,
            identity,
            child: None,
            pgid: 0,
        };
        for &(user, pass) in config.users {
            dovecot.write_user(user, pass);
        }

        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let wanted = 1
                + usize::from(config.tls)
                + usize::from(config.pop3) * 2
                + usize::from(config.managesieve);
            let mut ports = free_ports(wanted).into_iter();
            let port = ports.next().unwrap();
            dovecot.tls_port = if config.tls { ports.next() } else { None };
            dovecot.pop3_port = if config.pop3 { ports.next() } else { None };
            dovecot.pop3s_port = if config.pop3 && config.tls {
                ports.next()
            } else {
                None
            };
            dovecot.managesieve_port = if config.managesieve {
                ports.next()
            } else {
                None
            };
            let conf = config_text(
                dovecot.dir(),
                port,
                dovecot.tls_port,
                (dovecot.pop3_port, dovecot.pop3s_port),
                &config,
                &dovecot.identity,
            ) + config.extra
                + &gmail_config(dovecot.dir(), config.gmail)
                + &managesieve_config(dovecot.managesieve_port, dovecot.identity.root);
            fs::write(dovecot.dir().join("dovecot.conf"), conf).unwrap();
            match dovecot.spawn_and_wait(port) {
                Ok(()) => return dovecot,
                // Another process took the port between our probe and Dovecot's bind.
                Err(failure) if failure.contains("Address already in use") => {
                    last_failure = failure;
                }
                Err(failure) => panic!("Dovecot failed to start: {failure}"),
            }
        }
        panic!("Dovecot found no free port in {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    fn spawn_and_wait(&mut self, port: u16) -> Result<(), String> {
        let dir = self.dir().to_path_buf();
        let output = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("dovecot.stderr"))
            .unwrap();
        // `-F` keeps the master in the foreground so it stays our child (we can wait for it
        // and it never escapes into its own session). Its output goes to a file: a daemon
        // holding the test harness's stdout open makes the harness wait forever.
        let child = Command::new(DOVECOT_BIN)
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            // Internal dates come back in the server's zone; pin it so tests can compare.
            .env("TZ", "UTC")
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawning {DOVECOT_BIN}: {e}"))?;
        self.pgid = child.id() as i32;
        self.child = Some(child);
        self.port = port;
        let token = greeting_token(&dir);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = self.log();
                self.child = None;
                self.kill_group();
                return Err(format!("dovecot exited with {status}:\n{log}"));
            }
            // The greeting names this instance: another server that won the race for the port
            // (a parallel test's) greets too, and must not pass for ours.
            if greeting(port).is_some_and(|line| line.starts_with("* OK") && line.contains(&token))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.stop();
                return Err(format!(
                    "no IMAP greeting on 127.0.0.1:{port} after {START_TIMEOUT:?}:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The implicit-TLS (imaps) port. Panics unless the instance was started with `tls`.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("tls_port(): this Dovecot was started without `tls: true`")
    }

    /// The plain POP3 port (STLS offered with `tls`). Panics unless started with `pop3`.
    pub fn pop3_port(&self) -> u16 {
        self.pop3_port
            .expect("pop3_port(): this Dovecot was started without `pop3: true`")
    }

    /// The POP3-over-TLS port. Panics unless started with `pop3` and `tls`.
    pub fn pop3s_port(&self) -> u16 {
        self.pop3s_port
            .expect("pop3s_port(): this Dovecot was started without `pop3: true, tls: true`")
    }

    /// The ManageSieve port (STARTTLS offered with `tls`). Panics unless started with
    /// `managesieve`.
    pub fn managesieve_port(&self) -> u16 {
        self.managesieve_port
            .expect("managesieve_port(): this Dovecot was started without `managesieve: true`")
    }

    /// Delivers `message` to `user` through `dovecot-lda`, which runs the user's active Sieve
    /// script (instances started with `managesieve`). Panics with the LDA's output if it fails.
    pub fn deliver(&self, user: &str, message: &[u8]) {
        use std::io::Write as _;
        let mut child = Command::new("/usr/lib/dovecot/dovecot-lda")
            .arg("-c")
            .arg(self.dir().join("dovecot.conf"))
            .arg("-d")
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dovecot-lda");
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "dovecot-lda failed ({}): {}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The PEM certificate of the CA that signed the server's certificate (for 127.0.0.1
    /// and localhost), for clients to trust. Panics unless started with `tls`.
    pub fn ca_pem_path(&self) -> PathBuf {
        assert!(
            self.tls_port.is_some(),
            "ca_pem_path(): this Dovecot was started without `tls: true`"
        );
        self.dir().join("tls/ca.pem")
    }

    /// Starts the Gmail-shaped proxy in front of this instance (started with `gmail: true`).
    pub fn gmail(&self) -> provider_sim::gmail::GmailSim {
        assert!(
            self.dir().join("gmail-masters").exists(),
            "gmail(): this Dovecot was started without `gmail: true`"
        );
        provider_sim::gmail::GmailSim::start(provider_sim::gmail::GmailConfig {
            backend: (Ipv4Addr::LOCALHOST, self.port).into(),
            master_user: GMAIL_MASTER.0.to_string(),
            master_password: GMAIL_MASTER.1.to_string(),
            quota_bytes: None,
        })
        .unwrap_or_else(|e| panic!("starting the Gmail proxy: {e}"))
    }

    pub fn separator(&self) -> char {
        self.separator
    }

    /// The instance's directory: `dovecot.conf`, `dovecot.log`, `users`, `mail/USER/Maildir`.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("directory already removed").path()
    }

    /// Messages stored for `user`, counted from the Maildir on disk (files under `cur/` and
    /// `new/`): cheap enough to poll while a run is writing, unlike a login per poll.
    pub fn stored_messages(&self, user: &str) -> usize {
        fn walk(dir: &Path, in_box: bool) -> usize {
            let Ok(entries) = fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    let name = e.file_name();
                    let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    match (is_dir, name.to_str()) {
                        (true, Some("cur" | "new")) => walk(&path, true),
                        (true, Some("tmp")) => 0,
                        (true, _) => walk(&path, false),
                        (false, _) => usize::from(in_box),
                    }
                })
                .sum()
        }
        walk(&self.dir().join("mail").join(user).join("Maildir"), false)
    }

    /// The master process id, as written in its pid file.
    pub fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir().join("run/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Live (non-zombie) processes of this instance: the master and all its children.
    pub fn processes(&self) -> Vec<u32> {
        if self.pgid == 0 {
            return Vec::new();
        }
        process_group_members(self.pgid)
    }

    /// Adds a user (or changes their password) and waits until Dovecot accepts the login.
    pub fn add_user(&self, user: &str, pass: &str) {
        self.write_user(user, pass);
        // Dovecot re-reads the passwd-file when its mtime or size changes, but stat()s it at
        // most once per second: poll a login rather than guess.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let attempt = ImapClient::connect(self.port).and_then(|mut c| {
                c.login(user, pass)?;
                c.logout()
            });
            match attempt {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "Dovecot does not accept the new user {user}: {e}\n{}",
                    self.log()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn write_user(&self, user: &str, pass: &str) {
        assert!(
            !user.is_empty()
                && !user.starts_with('.')
                && !user.contains(['/', ':', '\n'])
                && !pass.contains([':', '\n']),
            "user and password must not contain ':', '/' or newlines: {user:?}"
        );
        let id = &self.identity;
        let home = self.dir().join("mail").join(user);
        fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(id.mail_uid), Some(id.mail_gid)).unwrap();

        let path = self.dir().join("users");
        let old = fs::read_to_string(&path).unwrap();
        let old_mtime = fs::metadata(&path).unwrap().modified().unwrap();
        let prefix = format!("{user}:");
        let mut text: String = old
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        // passwd-file: user:password:uid:gid:gecos:home:shell:extra
        text.push_str(&format!(
            "{user}:{{PLAIN}}{pass}:{}:{}::{}::\n",
            id.mail_uid,
            id.mail_gid,
            home.display()
        ));
        // Rename over the old file so Dovecot never reads half a line.
        let tmp = self.dir().join("users.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &path).unwrap();
        // Dovecot compares whole-second mtimes and sizes: a same-length password change
        // within the second would go unseen without this.
        let whole_secs =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let new_mtime = fs::metadata(&path).unwrap().modified().unwrap();
        if whole_secs(new_mtime) <= whole_secs(old_mtime) {
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old_mtime + Duration::from_secs(1))
                .unwrap();
        }
    }

    /// Logs in as `user` with the test IMAP client.
    pub fn login(&self, user: &str, pass: &str) -> ImapClient {
        let mut client = ImapClient::connect(self.port)
            .unwrap_or_else(|e| panic!("connecting to Dovecot: {e}\n{}", self.log()));
        client
            .login(user, pass)
            .unwrap_or_else(|e| panic!("login as {user}: {e}\n{}", self.log()));
        client
    }

    /// The instance's log (Dovecot's log file, then anything it wrote to stdout/stderr), for
    /// failure messages.
    pub fn log(&self) -> String {
        let Some(dir) = self.dir.as_ref() else {
            return String::new();
        };
        let mut out = String::new();
        for name in ["dovecot.log", "dovecot.stderr"] {
            if let Ok(bytes) = fs::read(dir.path().join(name))
                && !bytes.is_empty()
            {
                out.push_str(&format!("--- {name}\n{}", String::from_utf8_lossy(&bytes)));
            }
        }
        out
    }

    /// Stops the server and every process it started. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM to the whole group: every process exits at once and the master still
            // reaps its children (no zombies). SIGTERM to the master alone takes over a second.
            signal(-self.pgid, SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.wait();
        }
        self.kill_group();
    }

    /// Whatever the master left behind (it was killed, or a child ignored it) still carries
    /// the master's process group.
    fn kill_group(&mut self) {
        if self.pgid == 0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !process_group_members(self.pgid).is_empty() {
            signal(-self.pgid, SIGKILL);
            if Instant::now() > deadline {
                eprintln!(
                    "warning: Dovecot processes {:?} survived SIGKILL",
                    process_group_members(self.pgid)
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking()
            && std::env::var_os("MAILSHIFT_KEEP_DOVECOT").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping Dovecot directory {}", dir.keep().display());
        }
    }
}

/// The master user the Gmail proxy's side connections log in as.
const GMAIL_MASTER: (&str, &str) = ("gmailsim", "gmailsim-master-pw");

/// The Gmail block of the configuration (empty without `gmail`).
/// ManageSieve beside IMAP: its login service on its own port, Pigeonhole's script storage
/// in the user's home, and the Sieve plugin for local delivery. Appended after the main text,
/// so `protocols` is extended with `$protocols` rather than rewritten. Dovecot offers STARTTLS
/// on the listener by itself once ssl is on, as it does for IMAP.
fn managesieve_config(port: Option<u16>, root: bool) -> String {
    let Some(port) = port else {
        return String::new();
    };
    // chroot(2) needs root: without it the login service must not chroot.
    let chroot = if root { "" } else { "  chroot =\n" };
    format!(
        "protocols = $protocols sieve
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {port}
  }}
{chroot}}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
protocol lda {{
  mail_plugins = $mail_plugins sieve
}}
"
    )
}

fn gmail_config(dir: &Path, gmail: bool) -> String {
    if !gmail {
        return String::new();
    }
    provider_sim::gmail::dovecot_config(dir, GMAIL_MASTER.0, GMAIL_MASTER.1)
        .unwrap_or_else(|e| panic!("writing the Gmail virtual folders: {e}"))
}

/// Unique to the instance: the temp dir's random name.
fn greeting_token(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn config_text(
    dir: &Path,
    port: u16,
    tls_port: Option<u16>,
    (pop3_port, pop3s_port): (Option<u16>, Option<u16>),
    config: &DovecotConfig<'_>,
    id: &Identity,
) -> String {
    let (separator, capabilities, max_connections, oauth2) = (
        config.separator,
        config.capabilities_override,
        config.max_connections,
        config.oauth2,
    );
    let (mechanisms, oauth2_passdbs) = match oauth2 {
        Some(url) => ("plain login xoauth2 oauthbearer", oauth2_passdbs(dir, url)),
        None => ("plain login", String::new()),
    };
    let token = greeting_token(dir);
    let dir = dir.display();
    // POP3 beside IMAP: its own login service and listeners. Dovecot offers STLS on the plain
    // one by itself once ssl is on, as it does STARTTLS for IMAP.
    let (protocols, pop3_service) = match pop3_port {
        Some(pop3_port) => {
            let pop3s = match pop3s_port {
                Some(p) => format!("    address = 127.0.0.1\n    port = {p}\n    ssl = yes\n"),
                None => "    port = 0\n".to_string(),
            };
            let chroot = if id.root { "" } else { "  chroot =\n" };
            (
                "imap pop3",
                format!(
                    "service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {pop3_port}\n  }}\n  inet_listener pop3s {{\n{pop3s}  }}\n{chroot}}}\n"
                ),
            )
        }
        None => ("imap", String::new()),
    };
    let capability_line = match capabilities {
        Some(caps) => format!("imap_capability = {caps}\n"),
        None => String::new(),
    };
    let (ssl, imaps_listener) = match tls_port {
        // Dovecot offers STARTTLS on the plain listener by itself once ssl is on.
        Some(tls_port) => (
            format!(
                "ssl = yes\nssl_cert = <{dir}/tls/server.pem\nssl_key = <{dir}/tls/server.key\n"
            ),
            format!("    address = 127.0.0.1\n    port = {tls_port}\n    ssl = yes\n"),
        ),
        None => ("ssl = no\n".to_string(), "    port = 0\n".to_string()),
    };
    // chroot(2) needs root: without it the login and anvil services must not chroot.
    let (login_chroot, anvil_chroot) = if id.root {
        ("", "")
    } else {
        ("service imap-login {\n  chroot =\n}\n", "  chroot =\n")
    };
    format!(
        "# Generated by tests/support/dovecot.rs: a private instance for one test.
instance_name = mailshift-{port}
login_greeting = Dovecot ready ({token}).
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_verbose = yes
# Failed logins are otherwise answered after 2 s: real servers' manners, but they only
# slow tests down. (See also anvil-auth-penalty below.)
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
# Tests of parallel transfers open many connections per user; the default is 10.
mail_max_userip_connections = {max_connections}
# LAYOUT=fs: the default maildir++ layout cannot hold '.' in folder names.
mail_location = maildir:~/Maildir:LAYOUT=fs:INBOX=~/Maildir/INBOX
{capability_line}namespace inbox {{
  inbox = yes
  separator = {separator}
  prefix =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
  mechanisms = plain login
}}
{oauth2_passdbs}userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
{imaps_listener}  }}
}}
service doveadm {{
  inet_listener {{
    port = 0
  }}
}}
service anvil {{
  # Without this socket the auth process skips its per-IP penalty, which otherwise holds
  # every login (good ones too) 2 s, then 4, 8, 15 s after each failed one from 127.0.0.1.
  # Dovecot 2.3 has no setting for it (login_trusted_networks no longer exempts).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{anvil_chroot}}}
{login_chroot}{pop3_service}",
        internal = id.internal_user,
        internal_group = id.internal_group,
        login = id.login_user,
    )
}

/// Two `oauth2` passdbs asking the introspection URL (doc.dovecot.org/2.3, "Open
/// Authentication v2.0 database", and the settings listed in Debian's
/// /usr/share/dovecot/dovecot-oauth2.conf.ext): `introspection_mode = post` sends
/// `token=TOKEN`; `active_attribute = active` with `active_value = true` refuses an expired
/// or revoked token (`force_introspection` is needed for it, the file says). The first
/// passdb takes delegated tokens, whose `username` must be the login name (`%Lu`); the
/// second takes app-only tokens (Microsoft's client credentials, `IMAP.AccessAsApp`), which
/// name no user: their `app_tenant` attribute (`app@DOMAIN`) must be in the login's domain
/// (`%Ld`). The server answers both attributes for every token so that a refused one is a
/// plain authentication failure in both (a missing username attribute would be an internal,
/// temporary failure: "No username returned" in db-oauth2.c). Dovecot caches no passdb
/// result without `auth_cache_size`, so expiry is seen at the next login.
fn oauth2_passdbs(dir: &Path, url: &str) -> String {
    let mut out = String::new();
    for (name, attribute, format) in [("user", "username", "%Lu"), ("app", "app_tenant", "%Ld")] {
        let file = dir.join(format!("oauth2-{name}.conf.ext"));
        fs::write(
            &file,
            format!(
                "introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = {attribute}
username_format = {format}
active_attribute = active
active_value = true
timeout_msecs = 10000
"
            ),
        )
        .unwrap();
        out.push_str(&format!(
            "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
            file.display()
        ));
    }
    out
}

/// `n` distinct ports nothing listens on right now (all bound at once, so the kernel cannot
/// hand out the same one twice). Dovecot may still lose a race for them: the caller retries
/// on "Address already in use".
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Writes into `dir` a throwaway CA (`ca.key`, `ca.pem`) and a server key and certificate
/// (`server.key`, `server.pem`) for 127.0.0.1 and localhost signed by it. P-256 keys: RSA
/// key generation would add a noticeable delay to every TLS test.
pub fn make_tls_material(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let p = |name: &str| dir.join(name).display().to_string();
    // Strict verifiers (OpenSSL 3, rustls) reject a CA certificate without these extensions
    // or a leaf without the SAN.
    fs::write(
        dir.join("server.ext"),
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "7",
                "-subj",
                "/CN=mailshift test CA",
            ][..],
            &ec,
            &["-keyout", &p("ca.key"), "-out", &p("ca.pem")],
            &["-addext", "basicConstraints = critical, CA:TRUE"],
            &["-addext", "keyUsage = critical, keyCertSign, cRLSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=localhost"][..],
            &ec,
            &["-keyout", &p("server.key"), "-out", &p("server.csr")],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-days",
        "7",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-CAserial",
        &p("ca.srl"),
        "-extfile",
        &p("server.ext"),
        "-out",
        &p("server.pem"),
    ]);
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running openssl (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server's first line, if something accepts connections on the port.
fn greeting(port: u16) -> Option<String> {
    let stream = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line)
}

/// Live processes whose process group is `pgid`. Zombies do not count: a child orphaned by
/// the master is reparented to pid 1, which on some CI machines never reaps it.
fn process_group_members(pgid: i32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))) else {
                return false;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .collect()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

// std can only SIGKILL its own child; stopping Dovecot cleanly (SIGTERM) and reaching the
// children the master spawned (negative pid = process group) needs kill(2) itself.
unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        kill(pid, sig);
    }
}
