//! What `plan --refresh` says of a mail copy before it runs, from a look at both mailboxes:
//! messages a destination folder already holds that the state knows nothing of (they will be
//! adopted, not copied), and folders whose destination changed with the plan's folder mapping
//! (their copied messages will move). Read-only on both sides: LIST and STATUS. What the copy
//! moves, in messages and bytes, is [`crate::sizing`]'s.

use std::collections::BTreeMap;

use super::folders::{FolderRules, map_folders};
use super::journal::FolderRecord;
use super::plural;
use super::session::{Imap, Target};

/// The sentences to add to the copy step's reason; empty when there is nothing to say.
pub async fn preview(
    source: &Target,
    dest: &Target,
    rules: &FolderRules,
    records: &BTreeMap<String, FolderRecord>,
) -> Result<Vec<String>, String> {
    let mut src = Imap::connect(source)
        .await
        .map_err(|e| format!("source: {e}"))?;
    let mut dst = Imap::connect(dest)
        .await
        .map_err(|e| format!("destination: {e}"))?;
    let source_folders = src.list().await.map_err(|e| e.to_string())?;
    let dest_folders = dst.list().await.map_err(|e| e.to_string())?;
    let mapping = map_folders(&source_folders, &dest_folders, rules).map_err(|e| e.to_string())?;
    src.logout().await;
    let existing: std::collections::HashSet<&str> =
        dest_folders.iter().map(|f| f.name.as_str()).collect();
    let mut lines = Vec::new();
    let (mut adopt_msgs, mut adopt_folders) = (0u64, 0usize);
    for f in &mapping.copy {
        match records.get(&f.path) {
            Some(r) if r.dest_folder != f.dest => lines.push(format!(
                "{}: the folder mapping now sends it to {:?}: {} copied will move there on the \
                 destination, not be uploaded again",
                f.path,
                f.dest_path,
                plural(r.messages as usize, "message")
            )),
            Some(_) => {}
            None if existing.contains(f.dest.as_str()) => {
                let held = dst.status(&f.dest).await.map_err(|e| e.to_string())?.exists;
                if held > 0 {
                    adopt_msgs += u64::from(held);
                    adopt_folders += 1;
                }
            }
            None => {}
        }
    }
    dst.logout().await;
    if adopt_msgs > 0 {
        lines.insert(
            0,
            format!(
                "the destination already holds {} in {} the state knows nothing of: those \
                 matching the source will be adopted, not copied again",
                plural(adopt_msgs as usize, "message"),
                plural(adopt_folders, "folder")
            ),
        );
    }
    Ok(lines)
}
