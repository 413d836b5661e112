//! Outlook `.pst` files in a source directory: each contacts, calendar or tasks folder of the
//! file reads as one more file of the directory, `FILE.pst/FOLDER.vcf` (contacts) or
//! `FILE.pst/FOLDER.ics` (appointments, tasks), its objects converted by `mailshift-pst`
//! (UIDs from the items' own ids, see `mailshift_pst::pim`). These files are read-only: a
//! write to one is refused.
//!
//! An item that cannot be read (a damaged file) is left out and listed among the file's
//! problems with its folder and NID; distribution lists and other item classes not carried
//! are listed there too, so nothing is dropped silently.

use std::path::Path;

use mailshift_pst::pim::PimItem;
use mailshift_pst::{FolderKind, Pst};

use crate::object::ParseError;

/// The marker between a PST's path and a folder's in a virtual file's path.
const MARK: &str = ".pst/";

/// Whether `rel` names a folder inside a PST.
pub(super) fn is_virtual(rel: &str) -> bool {
    split(rel).is_some()
}

/// (`dir/outlook.pst`, `Contacts/Sub`, `vcf`).
fn split(rel: &str) -> Option<(&str, &str, &str)> {
    let lower = rel.to_ascii_lowercase();
    let at = lower.find(MARK)?;
    let file = &rel[..at + MARK.len() - 1];
    let rest = &rel[at + MARK.len()..];
    let (folder, ext) = rest.rsplit_once('.')?;
    Some((file, folder, ext))
}

/// A flat collection name for a virtual file (a `/` would nest the destination collection):
/// `dir/outlook.pst/Contacts/Work.vcf` → `outlook-Contacts-Work`; `None` for a real file.
pub(super) fn collection_name(rel: &str) -> Option<String> {
    let (file, folder, _) = split(rel)?;
    let stem = file.rsplit('/').next().unwrap_or(file);
    let stem = &stem[..stem.len() - ".pst".len()];
    Some(format!("{stem}-{}", folder.replace('/', "-")))
}

/// The virtual files of the PST at `rel` (relative, `/`-separated); a PST that cannot be
/// opened is one problem (line 0).
pub(super) fn list(root: &Path, rel: &str) -> Result<Vec<String>, String> {
    let pst = Pst::open(&path_of(root, rel))?;
    let (folders, _) = pst.folders();
    Ok(folders
        .into_iter()
        .filter_map(|f| {
            let ext = match f.kind {
                FolderKind::Contacts => "vcf",
                FolderKind::Calendar | FolderKind::Tasks => "ics",
                _ => return None,
            };
            Some(format!("{rel}/{}.{ext}", f.path))
        })
        .collect())
}

fn path_of(root: &Path, rel: &str) -> std::path::PathBuf {
    rel.split('/')
        .fold(root.to_path_buf(), |p, seg| p.join(seg))
}

/// The virtual file `rel` as objects (each a whole vCard or VCALENDAR), and what could not
/// be read.
pub(super) fn read(root: &Path, rel: &str) -> Result<(Vec<Vec<u8>>, Vec<ParseError>), String> {
    let (file, folder, _) = split(rel).ok_or_else(|| format!("{rel}: not inside a PST"))?;
    let mut pst = Pst::open(&path_of(root, file))?;
    let (folders, trouble) = pst.folders();
    let Some(f) = folders.into_iter().find(|f| f.path == folder) else {
        return Err(format!(
            "{file}: folder {folder} cannot be found{}",
            if trouble.is_empty() {
                String::new()
            } else {
                format!(" ({})", trouble.join("; "))
            }
        ));
    };
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for nid in f.items {
        if pst.needs_reopen() {
            // A damaged block made the reader panic: its lock is poisoned; read on afresh.
            pst = Pst::open(&path_of(root, file))?;
        }
        match pst.pim(folder, nid) {
            Ok(PimItem::Contact { vcard: data, .. } | PimItem::Calendar { ical: data, .. }) => {
                objects.push(data.into_bytes())
            }
            Ok(PimItem::Skipped(class)) => problems.push(ParseError {
                line: 0,
                message: format!("item {nid:#x}: a {class}, which is not carried"),
            }),
            Err(e) => problems.push(ParseError {
                line: 0,
                message: e,
            }),
        }
    }
    Ok((objects, problems))
}
