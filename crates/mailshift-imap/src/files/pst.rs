//! Outlook `.pst` files in a files tree: each of the file's mail folders (IPF.Note) is one
//! folder of the tree, named by its path inside the file under the directory that holds the
//! file (`Inbox` → `INBOX`, `Inbox/Sub`, `Sent Items`, …), its messages rebuilt by
//! `mailshift-pst` (RFC 5322 bytes, flags, internal date).
//!
//! Identity is the folder's stable order, as for mbox files: a folder's messages in
//! increasing node id (NID). The rebuilt bytes are a pure function of the item, so their
//! content hash is stable and the import's adopt-by-content rules apply unchanged (a PST
//! exported again has other NIDs and maybe another order: its messages pair by hash with what
//! was recorded, or with what the destination holds, and nothing is sent twice). The
//! message's place is its NID, kept in [`Scanned::offset`]; `line` is 0.
//!
//! The last file opened stays open on its thread ([`open`]), keyed by its path, size and
//! modification time, so sending a folder's messages one by one does not parse the file's
//! B-trees each time; a file replaced meanwhile is opened anew.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use mailshift_pst::{FolderKind as PstKind, Pst};

use super::{FileKind, Scanned, folder_path, levels_of};

type Key = (PathBuf, u64, Option<SystemTime>);

thread_local! {
    /// The PST last opened on this thread (`outlook-pst` is `Rc`-based: one per thread).
    static OPEN: RefCell<Option<(Key, Rc<Pst>)>> = const { RefCell::new(None) };
}

/// `path` opened, or the copy this thread already has open when the file is unchanged.
fn open(path: &Path) -> Result<Rc<Pst>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(pst) = OPEN.with(|o| {
        o.borrow()
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
    }) {
        return Ok(pst);
    }
    let pst = Rc::new(Pst::open(path)?);
    OPEN.with(|o| *o.borrow_mut() = Some((key, pst.clone())));
    Ok(pst)
}

/// Drops this thread's open file (its reader panicked).
fn forget() {
    OPEN.with(|o| *o.borrow_mut() = None);
}

/// Adds the mail folders of the `.pst` at `child` (relative) to `found`; a file that cannot
/// be opened, or a folder that cannot be read, is named in `problems`.
pub(super) fn list(
    root: &Path,
    rel_dir: &Path,
    child: &Path,
    found: &mut Vec<(String, FileKind, PathBuf)>,
    problems: &mut Vec<String>,
) {
    let pst = match open(&root.join(child)) {
        Ok(p) => p,
        Err(e) => {
            problems.push(format!("{}: {e}", child.display()));
            return;
        }
    };
    let (folders, trouble) = pst.folders();
    problems.extend(trouble);
    let mut levels = levels_of(rel_dir);
    for f in folders.into_iter().filter(|f| f.kind == PstKind::Mail) {
        let depth = levels.len();
        levels.extend(f.path.split('/').map(str::to_string));
        found.push((
            folder_path(&levels),
            FileKind::Pst(f.nid),
            child.to_path_buf(),
        ));
        levels.truncate(depth);
    }
}

/// Every message of the PST folder `nid`, in NID order. An item that cannot be read is
/// returned in its place with its `problem` (file, folder, item).
pub(super) fn scan(
    path: &Path,
    name: &str,
    file: usize,
    nid: u32,
    folder: &str,
) -> Result<Vec<Scanned>, String> {
    let mut pst = open(path).map_err(|e| format!("{name}: {e}"))?;
    let f = pst.folder(nid)?;
    let mut out = Vec::with_capacity(f.items.len());
    for item in f.items {
        let base = Scanned {
            file,
            line: 0,
            offset: u64::from(item),
            range: (u64::from(item), 0),
            size: 0,
            hash: [0; 32],
            flags: Vec::new(),
            internal_date: None,
            message_id: None,
            problem: None,
            deleted: false,
        };
        if pst.needs_reopen() {
            // A damaged block made the reader panic: its lock is poisoned; read on afresh.
            forget();
            pst = open(path).map_err(|e| format!("{name}: {e}"))?;
        }
        out.push(match pst.mail(folder, item) {
            Ok(m) => Scanned {
                size: m.bytes.len() as u64,
                hash: crate::copy::content_hash(&m.bytes),
                flags: m.flags,
                internal_date: m.date.map(mailshift_pst::mail::imap_date),
                message_id: m.message_id,
                ..base
            },
            Err(e) => Scanned {
                problem: Some(format!("{e}; skipped")),
                ..base
            },
        });
    }
    Ok(out)
}

/// The bytes of one scanned message, rebuilt again.
pub(super) fn read(path: &Path, folder: &str, m: &Scanned) -> Result<Vec<u8>, String> {
    let pst = open(path)?;
    let item = u32::try_from(m.offset).map_err(|_| "not a PST item".to_string())?;
    let r = pst.mail(folder, item);
    if pst.needs_reopen() {
        forget();
    }
    Ok(r?.bytes)
}
