//! Reads Outlook PST files for the `files` platform: the folder tree, and each item as what
//! the rest of mailshift already imports (an RFC 5322 message with flags and a date for the
//! mail engine, a vCard or an iCalendar object for the contacts/calendars engine).
//!
//! # Reader
//! Microsoft's `outlook-pst` (MS-PST, read-only and low-level: this crate maps the MAPI
//! properties itself), with one fix vendored in `vendor/outlook-pst` (see PATCHES.md there):
//! 1.2.0 refused to open any message without a sub-node tree, which is most contacts.
//! Its API is `Rc`-based (not `Send`): a [`Pst`] lives on one thread, opened where it is read.
//!
//! # Identity
//! An item is named by its node id (NID) within its file; with the file's name that is
//! stable for as long as the file is. A PST exported again gets other NIDs: the engines then
//! adopt by content on the destination (the mail engine matches what a folder holds by
//! Message-ID and content hash, the DAV engine by UID, which [`pim`] derives from the item's
//! own PR_SEARCH_KEY / global object id, not from the NID, when the item has one).
//!
//! # Damaged files
//! Every read returns an error naming the file, the folder and the item, never panics
//! through this API: `outlook-pst` reports bad blocks as errors, and the few places where a
//! damaged length could still make it panic (slice bounds) are guarded by `catch_unwind` in
//! [`guard`], so one unreadable item is reported and the others go on. A caught panic leaves
//! the reader's file lock poisoned: [`Pst::needs_reopen`] then tells the caller to open the
//! file again before the next item.

pub mod mail;
pub mod pim;
mod props;
pub mod recur;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use outlook_pst::messaging::folder::Folder;
use outlook_pst::messaging::message::Message;
use outlook_pst::messaging::store::{Store, UnicodeStore};
use outlook_pst::ndb::node_id::NodeId;
use outlook_pst::{AnsiPstFile, UnicodePstFile};

pub use props::Props;

/// What a folder holds, from its PR_CONTAINER_CLASS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    /// `IPF.Note` (and folders without a class, as Outlook's own Inbox often is).
    Mail,
    /// `IPF.Contact`.
    Contacts,
    /// `IPF.Appointment`.
    Calendar,
    /// `IPF.Task`.
    Tasks,
    /// Journal, notes, RSS feeds, …: not carried.
    Other,
}

/// One folder of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PstFolder {
    /// Names from the top of the personal folders down, `/` between levels (`Inbox/Sub`).
    pub path: String,
    pub kind: FolderKind,
    pub nid: u32,
    /// Its items' NIDs, in increasing order (the stable order a mail folder's synthetic UIDs
    /// follow).
    pub items: Vec<u32>,
}

/// An open PST file.
pub struct Pst {
    path: PathBuf,
    store: Rc<dyn Store>,
    /// The concrete Unicode store, for attachments (outlook-pst opens them only from the
    /// concrete message type); `None` for an ANSI (Outlook 97–2002) file, whose attachments
    /// are then reported as not read.
    unicode: Option<Rc<UnicodeStore>>,
    named: props::Named,
    /// Set when a read panicked inside `outlook-pst`: its file lock is then poisoned and
    /// every later read of this `Pst` would fail; the caller opens the file again
    /// ([`Pst::needs_reopen`]).
    panicked: std::cell::Cell<bool>,
}

/// Runs `f`, turning a panic inside `outlook-pst` (a damaged length used as a slice bound)
/// into an error: the one place this crate catches unwinding, so a damaged item is reported
/// rather than ending the run.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{what}: the file is damaged here (the reader gave up)"
        )),
    }
}

impl Pst {
    /// Opens `path`; an error names the file and why (not a PST, damaged header, …).
    pub fn open(path: &Path) -> Result<Pst, String> {
        let name = path.display().to_string();
        guard(&name, || {
            let (store, unicode): (Rc<dyn Store>, _) = match UnicodePstFile::open(path) {
                Ok(file) => {
                    let store = UnicodeStore::read(Rc::new(file))
                        .map_err(|e| format!("{name}: cannot read the PST store: {e}"))?;
                    (store.clone(), Some(store))
                }
                Err(unicode_err) => match AnsiPstFile::open(path) {
                    Ok(file) => (
                        outlook_pst::messaging::store::AnsiStore::read(Rc::new(file))
                            .map_err(|e| format!("{name}: cannot read the PST store: {e}"))?,
                        None,
                    ),
                    Err(_) => {
                        return Err(format!(
                            "{name}: not a readable PST file ({unicode_err}); export it again \
                             from Outlook or repair it with scanpst.exe"
                        ));
                    }
                },
            };
            let named = props::Named::read(store.as_ref());
            Ok(Pst {
                path: path.to_path_buf(),
                store,
                unicode,
                named,
                panicked: std::cell::Cell::new(false),
            })
        })
    }

    /// [`guard`] for a read of this file: a panic also marks it for reopening.
    pub(crate) fn guarded<T>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let r = guard(what, f);
        if matches!(&r, Err(e) if e.ends_with("(the reader gave up)")) {
            self.panicked.set(true);
        }
        r
    }

    /// Whether a read panicked (a damaged block): the reader's lock is poisoned, so the file
    /// must be opened again for the next item to be read.
    pub fn needs_reopen(&self) -> bool {
        self.panicked.get()
    }

    /// The file's name as errors show it.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Every folder under the top of the personal folders, parents before children, siblings
    /// in name order; folders that could not be read are in the second list, named, and their
    /// subtrees skipped.
    pub fn folders(&self) -> (Vec<PstFolder>, Vec<String>) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let name = self.name();
        let root = self.guarded(&name, || {
            let id = self
                .store
                .properties()
                .ipm_sub_tree_entry_id()
                .map_err(|e| format!("{name}: no top of personal folders: {e}"))?;
            self.store
                .open_folder(&id)
                .map_err(|e| format!("{name}: cannot open the top of personal folders: {e}"))
        });
        match root {
            Ok(root) => self.walk(&root, "", &mut out, &mut problems),
            Err(e) => problems.push(e),
        }
        (out, problems)
    }

    fn walk(
        &self,
        folder: &Rc<dyn Folder>,
        prefix: &str,
        out: &mut Vec<PstFolder>,
        problems: &mut Vec<String>,
    ) {
        let name = self.name();
        let Some(table) = folder.hierarchy_table() else {
            return;
        };
        let mut children = Vec::new();
        for row in table.rows_matrix() {
            let nid = u32::from(row.id());
            let child = self.guarded(&name, || {
                let id = self
                    .store
                    .properties()
                    .make_entry_id(NodeId::from(nid))
                    .map_err(|e| e.to_string())?;
                let f = self.store.open_folder(&id).map_err(|e| e.to_string())?;
                let title = f.properties().display_name().map_err(|e| e.to_string())?;
                Ok((title, f))
            });
            match child {
                Ok((title, f)) => children.push((title, nid, f)),
                Err(e) => problems.push(format!(
                    "{name}: folder {nid:#x} under {}: cannot be read: {e}; skipped with its \
                     subfolders",
                    if prefix.is_empty() { "the top" } else { prefix }
                )),
            }
        }
        children.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        for (title, nid, f) in children {
            // A `/` inside a name would split the level in two on the destination.
            let title = title.replace('/', "_");
            let path = if prefix.is_empty() {
                title
            } else {
                format!("{prefix}/{title}")
            };
            let class = props::folder_class(f.as_ref());
            let kind = match class.as_deref() {
                None | Some("") => FolderKind::Mail,
                Some(c) if c.eq_ignore_ascii_case("IPF.Note") => FolderKind::Mail,
                Some(c) if c.starts_with("IPF.Note.") => FolderKind::Other,
                Some(c) if c.starts_with("IPF.Contact") => FolderKind::Contacts,
                Some(c) if c.starts_with("IPF.Appointment") => FolderKind::Calendar,
                Some(c) if c.starts_with("IPF.Task") => FolderKind::Tasks,
                Some(_) => FolderKind::Other,
            };
            let mut items: Vec<u32> = f
                .contents_table()
                .map(|t| t.rows_matrix().map(|r| u32::from(r.id())).collect())
                .unwrap_or_default();
            items.sort_unstable();
            out.push(PstFolder {
                path: path.clone(),
                kind,
                nid,
                items,
            });
            self.walk(&f, &path, out, problems);
        }
    }

    /// The folder `nid` as [`Pst::folders`] lists it (its items read again).
    pub fn folder(&self, nid: u32) -> Result<PstFolder, String> {
        let (folders, _) = self.folders();
        folders
            .into_iter()
            .find(|f| f.nid == nid)
            .ok_or_else(|| format!("{}: folder {nid:#x} is gone", self.name()))
    }

    /// The item `nid`'s properties; `what` names it in errors (folder and item).
    pub(crate) fn open_item(&self, nid: u32) -> Result<Rc<dyn Message>, String> {
        let id = self
            .store
            .properties()
            .make_entry_id(NodeId::from(nid))
            .map_err(|e| e.to_string())?;
        self.store
            .open_message(&id, None)
            .map_err(|e| e.to_string())
    }

    /// The item `nid`'s properties, with the file's named-property map to read them.
    pub fn props(&self, nid: u32) -> Result<Props, String> {
        self.guarded(&self.name(), || {
            let m = self.open_item(nid)?;
            Ok(Props::of_message(m.as_ref(), &self.named))
        })
    }
}
