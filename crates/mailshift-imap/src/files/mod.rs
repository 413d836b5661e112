//! Mail from files: one account's tree of `.mbox` files and `.eml` directories imported into
//! an IMAP mailbox, exactly once, through the same [`Journal`](crate::journal::Journal) and
//! the same APPEND path as the IMAP copy.
//!
//! # The tree
//! - `X.mbox` files, files named `mbox`, and Apple Mail / Thunderbird export directories
//!   (`X.mbox/mbox`) are mbox files ([`mbox`]); every other directory holding `*.eml` files
//!   (one message each, a Maildir `:2,FS` suffix giving flags) is a folder of them.
//! - A folder's path is the file's relative path with `/` between levels, without the `.mbox`
//!   (or Thunderbird `.sbd`) extensions: `Archive/2019.mbox` → `Archive/2019`; `mbox` and
//!   `.eml` files at the top, and `Inbox.mbox` in any case, are `INBOX`. The paths then go
//!   through the same [`map_folders`](crate::folders::map_folders) as an IMAP source's names,
//!   so the plan's include/exclude/map and the special-use mapping apply unchanged.
//! - An Outlook `.pst` file gives its mail folders, named by their path inside the file under
//!   the directory that holds it ([`pst`]).
//! - Several files may make one folder (`Archive.mbox` beside an `Archive/` of `.eml` files):
//!   their messages follow each other, mbox files first, each group in name order.
//!
//! # Identity (see [`import`] for the protocol)
//! A file has no UIDs, so each message gets a synthetic one: its position (from 1) in the
//! folder's stable order above. The folder's "UIDVALIDITY" is derived from its path alone and
//! never changes: what protects the map is the content hash every record keeps. Each run
//! reads and hashes the whole folder (local disk, cheap next to the network), then:
//! - every recorded (UID, hash) still matches the file → the file is the same, or grew at
//!   the end: only the UIDs the map lacks are sent (re-importing adds nothing, an appended
//!   mbox sends only the new messages);
//! - some record does not match (messages removed, reordered, edited, a file inserted before
//!   another) → the file was rewritten: the records are re-paired with the current messages
//!   by content hash, as a multiset (two identical messages stay two), and the map is
//!   replaced by that pairing; only messages left unpaired are sent. A crash between
//!   forgetting the old map and writing the new one leaves no record: the next run then
//!   adopts what the destination holds by content, as below, so nothing is sent twice.
//! - no record, yet the destination folder holds messages (a lost state, an import by
//!   another tool) → they are hashed (only those whose Message-ID is among the messages to
//!   send, or that have none) and matched by content before anything is sent.
//!
//! Malformed input never stops more than it must: a file that cannot be read, or is not an
//! mbox, fails its folder (reported as a failed folder, the others go on); a message without
//! header fields, or an `.eml` that cannot be read, is skipped in its place (its position is
//! kept, so the others keep their identity) and named, with its file and line, in the
//! folder's failure after the rest of the folder is imported. A message Thunderbird marked
//! deleted (`X-Mozilla-Status` 0x0008, kept in the file until the folder is compacted) keeps
//! its position too, and is not imported: the user deleted it.

pub mod headers;
mod import;
mod mbox;
mod pst;

use std::path::{Path, PathBuf};

pub(crate) use import::settle;
pub use import::{FilesJob, import_account};

/// One message found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Index of its file in [`SourceFolder::files`].
    pub file: usize,
    /// Where it starts: 1-based line and byte offset (the `From ` line of an mbox).
    pub line: u64,
    pub offset: u64,
    /// The message's bytes in the file (an mbox's still quoted), end excluded.
    pub range: (u64, u64),
    /// Size as sent (line ends made CRLF).
    pub size: u64,
    /// [`crate::copy::content_hash`] of the message.
    pub hash: [u8; 32],
    pub flags: Vec<String>,
    /// In APPEND's form; `None` when the file gives no usable date.
    pub internal_date: Option<String>,
    pub message_id: Option<String>,
    /// Why it cannot be imported (named with its file and line); it keeps its position.
    pub problem: Option<String>,
    /// Deleted in the mail client that wrote the file (Thunderbird keeps a deleted message
    /// until the folder is compacted): not imported, not a problem; it keeps its position.
    pub deleted: bool,
}

impl Scanned {
    /// Whether it is to be imported.
    pub fn importable(&self) -> bool {
        self.problem.is_none() && !self.deleted
    }
}

/// The kind of one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Mbox,
    Eml,
    /// One mail folder of an Outlook `.pst` file, by its node id ([`pst`]).
    Pst(u32),
}

/// One folder of the tree and the files it is read from, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFolder {
    /// Path with `/` between levels (`INBOX`, `Archive/2019`).
    pub path: String,
    /// (kind, path relative to the account's directory).
    pub files: Vec<(FileKind, PathBuf)>,
}

/// One account's directory, listed.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub root: PathBuf,
    pub folders: Vec<SourceFolder>,
    /// Directories that could not be listed (named, with why).
    pub problems: Vec<String>,
}

impl Tree {
    /// Lists `root` (the account's directory). Only a missing or unreadable `root` is an
    /// error; an unreadable subdirectory is noted in `problems`.
    pub fn scan(root: &Path) -> Result<Tree, String> {
        let mut tree = Tree {
            root: root.to_path_buf(),
            ..Tree::default()
        };
        let mut found: Vec<(String, FileKind, PathBuf)> = Vec::new();
        let top = std::fs::read_dir(root)
            .map_err(|e| format!("cannot read the mail directory {}: {e}", root.display()))?;
        drop(top);
        walk(root, Path::new(""), &mut found, &mut tree.problems);
        // mbox files first, then .eml, each in name order: the order synthetic UIDs follow.
        found.sort_by(|a, b| {
            (&a.0, a.1 == FileKind::Eml, &a.2).cmp(&(&b.0, b.1 == FileKind::Eml, &b.2))
        });
        for (path, kind, rel) in found {
            match tree.folders.last_mut() {
                Some(f) if f.path == path => f.files.push((kind, rel)),
                _ => tree.folders.push(SourceFolder {
                    path,
                    files: vec![(kind, rel)],
                }),
            }
        }
        Ok(tree)
    }

    /// The folders as a LIST answer would name them (modified UTF-7, `/` between levels), in
    /// the order of [`Tree::folders`]: what [`crate::folders::map_folders`] reads.
    pub fn remote_folders(&self) -> Vec<crate::folders::RemoteFolder> {
        self.folders
            .iter()
            .map(|f| crate::folders::RemoteFolder {
                name: crate::mutf7::encode(&f.path),
                delimiter: Some('/'),
                attributes: Vec::new(),
            })
            .collect()
    }

    /// Bytes of every source file: what the destination will have to take, near enough.
    pub fn bytes(&self) -> u64 {
        // A `.pst` is listed once per mail folder in it: counted once.
        let files: std::collections::BTreeSet<&PathBuf> = self
            .folders
            .iter()
            .flat_map(|f| &f.files)
            .map(|(_, rel)| rel)
            .collect();
        files
            .into_iter()
            .filter_map(|rel| std::fs::metadata(self.root.join(rel)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Every message of `folder`, in UID order (UID = index + 1). An error fails the folder:
    /// an mbox that cannot be read or is not one. Unreadable `.eml` files and malformed
    /// messages are returned in their place with their `problem` set.
    pub fn read_folder(&self, folder: &SourceFolder) -> Result<Vec<Scanned>, String> {
        let mut out = Vec::new();
        for (i, (kind, rel)) in folder.files.iter().enumerate() {
            let name = rel.display().to_string();
            let path = self.root.join(rel);
            match kind {
                FileKind::Mbox => out.extend(mbox::scan(&path, &name, i)?),
                FileKind::Eml => out.push(scan_eml(&path, &name, i)),
                FileKind::Pst(nid) => out.extend(pst::scan(&path, &name, i, *nid, &folder.path)?),
            }
        }
        Ok(out)
    }

    /// The bytes of one message as they are sent (line ends made CRLF), checked against the
    /// hash it was scanned with: a file changed since fails the folder rather than send
    /// something else under the scanned identity.
    pub fn message(&self, folder: &SourceFolder, m: &Scanned) -> Result<Vec<u8>, String> {
        let (kind, rel) = &folder.files[m.file];
        let path = self.root.join(rel);
        let raw = match kind {
            FileKind::Mbox => mbox::read(&path, m.range),
            FileKind::Eml => std::fs::read(&path),
            FileKind::Pst(_) => pst::read(&path, &folder.path, m).map_err(std::io::Error::other),
        }
        .map_err(|e| format!("{}: cannot read: {e}", rel.display()))?;
        if crate::copy::content_hash(&raw) != m.hash {
            return Err(format!(
                "{}: line {}: changed while being imported; the next run reads it again",
                rel.display(),
                m.line
            ));
        }
        Ok(to_crlf(raw))
    }
}

/// Line ends made CRLF (RFC 5322; strict servers refuse bare LF).
fn to_crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = memchr::memchr_iter(b'\n', &raw)
        .filter(|&i| i == 0 || raw[i - 1] != b'\r')
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', &raw) {
        if i == 0 || raw[i - 1] != b'\r' {
            out.extend_from_slice(&raw[start..i]);
            out.extend_from_slice(b"\r\n");
            start = i + 1;
        }
    }
    out.extend_from_slice(&raw[start..]);
    out
}

fn scan_eml(path: &Path, name: &str, file: usize) -> Scanned {
    let base = Scanned {
        file,
        line: 1,
        offset: 0,
        range: (0, 0),
        size: 0,
        hash: [0; 32],
        flags: Vec::new(),
        internal_date: None,
        message_id: None,
        problem: None,
        deleted: false,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Scanned {
                problem: Some(format!("{name}: cannot read: {e}; skipped")),
                ..base
            };
        }
    };
    let head = headers::read_header(&bytes[..bytes.len().min(256 * 1024)]);
    let mut flags = head.flags;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    flags.extend(headers::maildir_flags(file_name.as_deref().unwrap_or("")));
    flags.sort();
    flags.dedup();
    let problem = if bytes.is_empty() {
        Some(format!("{name}: an empty file; skipped"))
    } else if head.fields == 0 {
        Some(format!(
            "{name}: line 1: not a message (no header fields); skipped"
        ))
    } else {
        None
    };
    Scanned {
        range: (0, bytes.len() as u64),
        size: bytes.len() as u64
            + memchr::memchr_iter(b'\n', &bytes)
                .filter(|&i| i == 0 || bytes[i - 1] != b'\r')
                .count() as u64,
        hash: crate::copy::content_hash(&bytes),
        flags,
        internal_date: head.date,
        message_id: head.message_id,
        problem,
        deleted: head.expunged,
        ..base
    }
}

/// A directory level's name as a folder name: without `.mbox` / `.sbd`.
fn level(name: &str) -> &str {
    for ext in [".mbox", ".sbd"] {
        let cut = name.len().saturating_sub(ext.len());
        if cut > 0
            && let (Some(stem), Some(tail)) = (name.get(..cut), name.get(cut..))
            && tail.eq_ignore_ascii_case(ext)
        {
            return stem;
        }
    }
    name
}

/// The folder path of directory `dir` (relative): its levels, `INBOX` when empty or when the
/// first level is Inbox in any case.
fn folder_path(levels: &[String]) -> String {
    let mut levels: Vec<String> = levels.to_vec();
    match levels.first_mut() {
        None => return "INBOX".to_string(),
        Some(first) if first.eq_ignore_ascii_case("inbox") => *first = "INBOX".to_string(),
        Some(_) => {}
    }
    levels.join("/")
}

fn levels_of(rel: &Path) -> Vec<String> {
    rel.components()
        .map(|c| level(&c.as_os_str().to_string_lossy()).to_string())
        .collect()
}

fn is_eml(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.split(":2,").next().unwrap_or(&lower);
    stem.ends_with(".eml") || (lower.contains(":2,") && lower.ends_with(".eml"))
}

/// Collects (folder path, kind, relative file path) under `dir`. Symbolic links to
/// directories are not followed (a loop would never end); hidden entries are skipped.
fn walk(
    root: &Path,
    rel: &Path,
    found: &mut Vec<(String, FileKind, PathBuf)>,
    problems: &mut Vec<String>,
) {
    let dir = root.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{}: cannot list: {e}", rel.display()));
            return;
        }
    };
    let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let child = rel.join(entry.file_name());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let is_dir = kind.is_dir();
        let is_file = kind.is_file()
            || (kind.is_symlink()
                && std::fs::metadata(root.join(&child)).is_ok_and(|m| m.is_file()));
        if is_dir {
            walk(root, &child, found, problems);
        } else if is_file {
            let lower = name.to_ascii_lowercase();
            if lower == "mbox" {
                found.push((folder_path(&levels_of(rel)), FileKind::Mbox, child));
            } else if lower.ends_with(".mbox") {
                found.push((folder_path(&levels_of(&child)), FileKind::Mbox, child));
            } else if is_eml(&name) {
                found.push((folder_path(&levels_of(rel)), FileKind::Eml, child));
            } else if lower.ends_with(".pst") {
                pst::list(root, rel, &child, found, problems);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_names_its_folders() {
        let dir = std::env::temp_dir().join(format!("mailshift-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let put = |p: &str, body: &[u8]| {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        };
        let m = b"From a Mon Jan  1 10:00:00 2024\nSubject: a\n\nx\n";
        put("Inbox.mbox", m);
        put("Archive/2019.mbox", m);
        put("Archive.sbd/2020.mbox", m);
        put("Apple.mbox/mbox", m);
        put("Apple.mbox/Info.plist", b"<plist/>");
        put("Projets été/b.eml", b"Subject: b\n\nb\n");
        put("Projets été/a.eml:2,S", b"Subject: a\n\na\n");
        put("top.eml", b"Subject: t\n\nt\n");
        put(".hidden/x.mbox", m);
        let tree = Tree::scan(&dir).unwrap();
        let got: Vec<(String, Vec<String>)> = tree
            .folders
            .iter()
            .map(|f| {
                let files = f
                    .files
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect();
                (f.path.clone(), files)
            })
            .collect();
        let want = |p: &str, files: &[&str]| {
            (
                p.to_string(),
                files.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            got,
            vec![
                want("Apple", &["Apple.mbox/mbox"]),
                want("Archive/2019", &["Archive/2019.mbox"]),
                want("Archive/2020", &["Archive.sbd/2020.mbox"]),
                want("INBOX", &["Inbox.mbox", "top.eml"]),
                want(
                    "Projets été",
                    &["Projets été/a.eml:2,S", "Projets été/b.eml"]
                ),
            ]
        );
        let inbox = tree.read_folder(&tree.folders[3]).unwrap();
        assert_eq!(inbox.len(), 2);
        let projets = tree.read_folder(&tree.folders[4]).unwrap();
        assert_eq!(projets[0].flags, vec!["\\Seen"]);
        let sent = tree.message(&tree.folders[4], &projets[1]).unwrap();
        assert_eq!(sent, b"Subject: b\r\n\r\nb\r\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
