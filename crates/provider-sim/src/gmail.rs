//! Gmail-shaped IMAP server: a proxy in front of Dovecot (labels as folders, X-GM-EXT-1, a
//! virtual All Mail), following Google's description of Gmail's IMAP
//! (developers.google.com/workspace/gmail/imap/imap-extensions) and what migration tools
//! observe of it (shared/reference/gmail-m365.md, §1).
//!
//! # The model
//!
//! A Gmail message with N labels is **one physical copy in each label's folder** of Dovecot
//! (INBOX, `[Gmail]/Sent Mail`, `[Gmail]/Drafts`, `[Gmail]/Important`, user labels), or, with
//! no label at all (archived), one copy in a hidden folder `[Gmail]/_archived`. Copies are one
//! Gmail message when they share a Message-ID. On top:
//!
//! - `[Gmail]/All Mail` is a Dovecot **virtual** mailbox (the virtual plugin, as Debian's
//!   dovecot-core ships it: doc.dovecot.org/2.3/configuration_manual/virtual_plugin) over every
//!   folder but Trash and Spam. It holds one entry per *copy*; the proxy shows each Gmail
//!   message once there (the copy with the lowest virtual UID), as Gmail does.
//!   `[Gmail]/Starred` is another virtual mailbox (`flagged`), shown as it is.
//! - One FETCH on the virtual All Mail, with Dovecot's `X-MAILBOX` and `X-REAL-UID`, tells
//!   the proxy every copy's folder: that is the **label index** (read on a side connection
//!   logged in through Dovecot's master user, so the client's selected folder is untouched).
//! - `X-GM-MSGID` (and `X-GM-THRID`, the same here) is a hash of the Message-ID: the same in
//!   every folder, stable across restarts, no state to keep. `X-GM-LABELS` lists the labels of
//!   the folders holding a copy (`\Inbox`, `\Sent`, `\Draft`, `\Important`, user labels) and
//!   `\Starred` when the message is `\Flagged` (Gmail shows starred messages as `\Flagged`).
//! - APPEND de-duplicates by Message-ID, as Gmail does: into a label the message already has
//!   elsewhere it adds that label; into the same label again it stores the new copy and the
//!   old UID is gone (Gmail "accepts a duplicate APPEND, drops it, and returns a new UID each
//!   time" per imapsync's FAQ); into All Mail it adds nothing for a known message and stores
//!   an unknown one without a label. `UID STORE ±X-GM-LABELS` copies into or expunges from
//!   label folders (a message losing its last label goes to the hidden archive).
//!
//! Why not one physical All Mail with label folders as virtual views on keywords: every
//! APPEND into a label would then need its APPENDUID translated from All Mail to the view,
//! and INBOX itself would have to be a view; with physical label folders the hot path (APPEND,
//! SELECT, FETCH of bodies in INBOX and labels) goes to Dovecot untouched, UIDs and
//! APPENDUID are Dovecot's own, and only All Mail needs the de-duplication.
//!
//! # What else it says like Gmail
//!
//! The capability list after login ([`CAPABILITIES`], without MULTIAPPEND), SPECIAL-USE
//! attributes on `[Gmail]/...` folders, `ID`, and `NO [OVERQUOTA] Account exceeded command or
//! bandwidth limits` once the bytes appended plus fetched pass a set volume
//! ([`GmailSim::set_quota`]). Every client command is logged ([`GmailSim::commands`]).
//!
//! Not modelled: X-GM-RAW searches, flag changes spreading to a message's other copies,
//! EXPUNGE in a label keeping the message in All Mail, threads.

mod backend;
mod index;
mod session;
mod wire;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use self::backend::Backend;
use self::index::Index;
use self::wire::Tok;

/// What Gmail advertises after login (MailKit #1396's log of imap.gmail.com, in
/// shared/reference/gmail-m365.md §1; X-GM-EXT-1 from Google's IMAP extensions page). No
/// MULTIAPPEND; LITERAL- only (so clients send synchronizing literals above 4 KiB).
pub const CAPABILITIES: &str = "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN \
X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED \
LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584";

/// The words of Gmail's bandwidth refusal (ha-email-sensor #16).
pub const OVERQUOTA: &str = "Account exceeded command or bandwidth limits.";

pub const ALL_MAIL: &str = "[Gmail]/All Mail";
pub const STARRED: &str = "[Gmail]/Starred";
pub const SENT: &str = "[Gmail]/Sent Mail";
pub const DRAFTS: &str = "[Gmail]/Drafts";
pub const IMPORTANT: &str = "[Gmail]/Important";
pub const SPAM: &str = "[Gmail]/Spam";
pub const TRASH: &str = "[Gmail]/Trash";
/// Where label-less (archived) messages are kept; never listed.
const ARCHIVED: &str = "[Gmail]/_archived";
/// The hidden namespace of the virtual mailboxes.
const VIRTUAL_PREFIX: &str = ".gmail-virtual/";
const VIRTUAL_ALL: &str = ".gmail-virtual/All Mail";
const VIRTUAL_STARRED: &str = ".gmail-virtual/Starred";

/// The physical folders every Gmail account has.
const SYSTEM_FOLDERS: [&str; 6] = [SENT, DRAFTS, IMPORTANT, SPAM, TRASH, ARCHIVED];

/// The SPECIAL-USE attribute Gmail gives a folder.
pub fn special_use(name: &str) -> Option<&'static str> {
    Some(match name {
        ALL_MAIL => "\\All",
        STARRED => "\\Flagged",
        SENT => "\\Sent",
        DRAFTS => "\\Drafts",
        IMPORTANT => "\\Important",
        SPAM => "\\Junk",
        TRASH => "\\Trash",
        _ => return None,
    })
}

/// The X-GM-LABELS label of a folder; `None` for the hidden archive.
pub fn mailbox_label(mailbox: &str) -> Option<String> {
    Some(
        match mailbox {
            "INBOX" => "\\Inbox",
            SENT => "\\Sent",
            DRAFTS => "\\Draft",
            IMPORTANT => "\\Important",
            SPAM => "\\Spam",
            TRASH => "\\Trash",
            ARCHIVED => return None,
            other => other,
        }
        .to_string(),
    )
}

/// The folder of a label (`\Inbox` → INBOX, a user label → its folder).
pub fn label_mailbox(label: &str) -> String {
    let system = [
        ("\\Inbox", "INBOX"),
        ("\\Sent", SENT),
        ("\\Draft", DRAFTS),
        ("\\Drafts", DRAFTS),
        ("\\Important", IMPORTANT),
        ("\\Spam", SPAM),
        ("\\Trash", TRASH),
    ];
    system
        .iter()
        .find(|(l, _)| l.eq_ignore_ascii_case(label))
        .map_or_else(|| label.to_string(), |(_, m)| m.to_string())
}

/// The X-GM-MSGID of a message with this Message-ID (`<...>` included): FNV-1a, kept in
/// the range of Gmail's own ids (19 digits, below 2^63).
pub fn msgid_of(message_id: &str) -> u64 {
    msgid(&index::key(Some(message_id), "", 0))
}

fn msgid(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & 0x0fff_ffff_ffff_ffff) | 0x1000_0000_0000_0000
}

/// Where the proxy finds its Dovecot, and how it may look across a user's folders.
#[derive(Debug, Clone)]
pub struct GmailConfig {
    /// Dovecot's IMAP port, configured with [`dovecot_config`].
    pub backend: SocketAddr,
    /// The master user and password written by [`dovecot_config`].
    pub master_user: String,
    pub master_password: String,
    /// Bytes appended plus fetched after which APPEND and FETCH get `NO [OVERQUOTA]`.
    pub quota_bytes: Option<u64>,
}

/// One client command as the proxy received it (passwords and SASL answers left out,
/// literals shown as `{n}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub user: Option<String>,
    /// The folder the client had open (its Gmail name).
    pub selected: Option<String>,
    pub line: String,
}

/// A Gmail message as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailMessage {
    pub msgid: u64,
    pub message_id: Option<String>,
    /// X-GM-LABELS, sorted (`\Starred` when flagged).
    pub labels: Vec<String>,
    /// Physical copies (one per label; one for an archived message).
    pub copies: usize,
}

/// A message to put into the account before a test, as it would be in Gmail.
#[derive(Debug, Clone)]
pub struct Seed {
    pub raw: Vec<u8>,
    /// Labels (`\Inbox`, `\Sent`, user labels); empty: archived.
    pub labels: Vec<String>,
    /// Flags (`\Seen`, `\Flagged` = starred...), the same on every copy.
    pub flags: Vec<String>,
    /// IMAP internal date, e.g. `01-Mar-2024 10:00:00 +0000`.
    pub internal_date: Option<String>,
}

pub(crate) struct Shared {
    backend: SocketAddr,
    master: (String, String),
    log: Mutex<Vec<Logged>>,
    volume: AtomicU64,
    quota: Mutex<Option<u64>>,
    ensured: Mutex<HashSet<String>>,
}

impl Shared {
    fn log(&self, user: Option<&str>, selected: Option<&str>, line: String) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Logged {
                user: user.map(str::to_string),
                selected: selected.map(str::to_string),
                line,
            });
    }

    /// Creates the folders every Gmail account has, once per user.
    async fn ensure_folders(&self, side: &mut Backend, user: &str) -> io::Result<()> {
        if self
            .ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user)
        {
            return Ok(());
        }
        for f in SYSTEM_FOLDERS {
            // Already there: fine.
            side.run(&[Tok::atom("CREATE"), Tok::string(f.as_bytes())])
                .await?;
        }
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_string());
        Ok(())
    }
}

/// The running proxy, on a loopback port, with its own runtime; stopped when dropped.
pub struct GmailSim {
    port: u16,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl GmailSim {
    /// Starts the proxy on `127.0.0.1` (a free port).
    pub fn start(config: GmailConfig) -> io::Result<GmailSim> {
        GmailSim::start_on(config, "127.0.0.1:0".parse().expect("an address"))
    }

    pub fn start_on(config: GmailConfig, listen: SocketAddr) -> io::Result<GmailSim> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            backend: config.backend,
            master: (config.master_user, config.master_password),
            log: Mutex::new(Vec::new()),
            volume: AtomicU64::new(0),
            quota: Mutex::new(config.quota_bytes),
            ensured: Mutex::new(HashSet::new()),
        });
        let listener = runtime.block_on(TcpListener::bind(listen))?;
        let port = listener.local_addr()?.port();
        let accepting = shared.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move {
                    // A client that goes away, or a broken command, ends its session only.
                    let _ = session::Session::run(shared, client).await;
                });
            }
        });
        Ok(GmailSim {
            port,
            shared,
            runtime: Some(runtime),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets (or lifts) the volume, in bytes appended plus fetched, after which APPEND and
    /// FETCH are refused with `NO [OVERQUOTA]`.
    pub fn set_quota(&self, bytes: Option<u64>) {
        *self.shared.quota.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
    }

    /// Bytes appended plus fetched so far.
    pub fn volume(&self) -> u64 {
        self.shared
            .volume
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts counting the volume from zero again (a new quota window).
    pub fn reset_volume(&self) {
        self.shared
            .volume
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every client command so far, in arrival order.
    pub fn commands(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
        self.runtime.as_ref().expect("running").block_on(f)
    }

    /// `user`'s Gmail messages (one per X-GM-MSGID), by X-GM-MSGID. Trash and Spam are not
    /// in All Mail, so not here.
    pub fn messages(&self, user: &str) -> io::Result<Vec<GmailMessage>> {
        let shared = self.shared.clone();
        let user = user.to_string();
        self.block_on(async move {
            let mut side = Backend::side(shared.backend, &user, &shared.master).await?;
            shared.ensure_folders(&mut side, &user).await?;
            let index = Index::read(&mut side).await?;
            side.logout().await;
            let mut out: Vec<GmailMessage> = index
                .messages()
                .into_iter()
                .map(|(key, copies)| GmailMessage {
                    msgid: msgid(key),
                    message_id: key.strip_prefix("mid:").map(str::to_string),
                    labels: index.labels(key, &[]),
                    copies: copies.len(),
                })
                .collect();
            out.sort_by_key(|m| m.msgid);
            Ok(out)
        })
    }

    /// Puts messages into `user`'s account as Gmail would hold them: a copy per label (the
    /// label's folder created when new), or one in the hidden archive for none.
    pub fn seed(&self, user: &str, messages: &[Seed]) -> io::Result<()> {
        let shared = self.shared.clone();
        let user = user.to_string();
        let messages = messages.to_vec();
        self.block_on(async move {
            let mut side = Backend::side(shared.backend, &user, &shared.master).await?;
            shared.ensure_folders(&mut side, &user).await?;
            let mut created = HashSet::new();
            for m in &messages {
                let folders: Vec<String> = if m.labels.is_empty() {
                    vec![ARCHIVED.to_string()]
                } else {
                    m.labels.iter().map(|l| label_mailbox(l)).collect()
                };
                for folder in folders {
                    if created.insert(folder.clone()) {
                        side.run(&[Tok::atom("CREATE"), Tok::string(folder.as_bytes())])
                            .await?;
                    }
                    let mut args = vec![
                        Tok::atom("APPEND"),
                        Tok::string(folder.as_bytes()),
                        Tok::List(m.flags.iter().map(|f| Tok::atom(f)).collect()),
                    ];
                    if let Some(d) = &m.internal_date {
                        args.push(Tok::Quoted(d.as_bytes().to_vec()));
                    }
                    args.push(Tok::Literal(m.raw.clone()));
                    side.must(&args).await?;
                }
            }
            side.logout().await;
            Ok(())
        })
    }
}

impl Drop for GmailSim {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The lines to add to a Dovecot configuration (2.3, namespace separator `/`) for the proxy:
/// the virtual plugin with a hidden namespace holding All Mail and Starred (their definitions
/// are written under `dir`), and a master user (written to `dir/gmail-masters`) for the
/// proxy's side connections.
pub fn dovecot_config(dir: &Path, master_user: &str, master_password: &str) -> io::Result<String> {
    let virt = dir.join("gmail-virtual");
    let not_trash = format!("-{TRASH}\n-{TRASH}/*\n-{SPAM}\n-{SPAM}/*\n-{VIRTUAL_PREFIX}*\n");
    for (name, search) in [("All Mail", "all"), ("Starred", "flagged")] {
        std::fs::create_dir_all(virt.join(name))?;
        std::fs::write(
            virt.join(name).join("dovecot-virtual"),
            format!("*\n{not_trash}  {search}\n"),
        )?;
    }
    std::fs::write(
        dir.join("gmail-masters"),
        format!("{master_user}:{{PLAIN}}{master_password}\n"),
    )?;
    Ok(format!(
        "
# Gmail-shaped server (provider-sim gmail): the virtual plugin for All Mail and Starred, and
# a master user for the proxy's side connections.
mail_plugins = $mail_plugins virtual
auth_master_user_separator = *
namespace gmail_virtual {{
  prefix = {VIRTUAL_PREFIX}
  separator = /
  location = virtual:{virt}:INDEX=~/gmail-virtual
  hidden = yes
  list = no
  subscriptions = no
}}
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN {masters}
}}
",
        virt = virt.display(),
        masters = dir.join("gmail-masters").display(),
    ))
}
