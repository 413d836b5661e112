//! Noticing that the plan file changed.
//!
//! The plan's directory is watched, not the file: editors save by writing a new file and
//! renaming it over the old one, `git pull` does the same, and a Kubernetes ConfigMap volume
//! swaps a symlinked directory, so a watch on the file itself would follow the old inode and
//! see nothing. Events are debounced (one burst of writes, one reload), and any event in the
//! directory other than the state's own files only asks for a re-read: the daemon compares
//! the text with the plan in force and does nothing when it is the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

/// Long enough to take in an editor's write-rename-chmod burst, short enough to feel immediate.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Keeps the watch alive; dropping it stops watching.
pub struct PlanWatcher {
    _debouncer: Box<dyn std::any::Any + Send>,
}

/// Watches the directory of `plan` and calls `changed` after each burst of changes that is not
/// only about `ignore` (paths, or directories whose contents are ignored).
pub fn watch(
    plan: &Path,
    ignore: Vec<PathBuf>,
    changed: impl Fn() + Send + 'static,
) -> Result<PlanWatcher, String> {
    let dir = absolute_dir(plan)?;
    let ignore: Vec<PathBuf> = ignore
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else {
            // Errors (a watch lost) are not acted upon here: re-reading is harmless.
            changed();
            return;
        };
        let relevant = events.iter().any(|e| {
            !matches!(
                e.kind,
                EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)
            ) && e
                .paths
                .iter()
                .any(|p| !ignore.iter().any(|i| p.starts_with(i)))
        });
        if relevant {
            changed();
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(PlanWatcher {
        _debouncer: Box::new(debouncer),
    })
}

fn absolute_dir(plan: &Path) -> Result<PathBuf, String> {
    let dir = plan
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))
}
