//! The token store: refresh tokens obtained by `mailshift auth login`, one per client and
//! login at a token endpoint, in a JSON file of mode 0600 apart from the state (which is
//! shared, backed up, and never holds a secret). Microsoft hands out a new refresh token at
//! each refresh, so the file is rewritten during runs: always whole, through a temporary file
//! renamed over it, so that a crash leaves the old or the new file, never half of one. A file
//! that group or others can read is refused, not used.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Writers of this process take turns: a read-modify-write must not lose another's entry.
static WRITE: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The refresh token. Never printed.
    pub refresh_token: String,
    pub login: String,
    pub client_id: String,
    pub token_url: String,
    /// The flow that obtained it (`device-code`, `loopback`).
    pub flow: String,
    /// When it was obtained or last rotated (RFC 3339, UTC).
    pub updated: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    tokens: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    pub fn new(path: PathBuf) -> TokenStore {
        TokenStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry under `key`, if the store has one.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, String> {
        Ok(self.read()?.tokens.remove(key))
    }

    /// Every entry, by key.
    pub fn entries(&self) -> Result<BTreeMap<String, Entry>, String> {
        Ok(self.read()?.tokens)
    }

    /// Sets the entry under `key` and rewrites the file atomically.
    pub fn put(&self, key: &str, entry: Entry) -> Result<(), String> {
        let _turn = WRITE.lock().unwrap_or_else(|e| e.into_inner());
        // Other processes too (a watch daemon and an `auth login`, two plans sharing a
        // store): an advisory lock on a file beside it, held for the read-modify-write, so
        // neither writes over the entry the other just rotated. Released when dropped.
        let _other_processes = self.lock()?;
        let mut file = self.read()?;
        file.version = 1;
        file.tokens.insert(key.to_string(), entry);
        self.write(&file)
    }

    fn lock(&self) -> Result<fs::File, String> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(lock)
    }

    fn read(&self) -> Result<File, String> {
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
            Err(e) => {
                return Err(format!(
                    "cannot read the token store {}: {e}",
                    self.path.display()
                ));
            }
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the token store {} can be read by other users (mode {mode:04o}); it holds refresh tokens: run `chmod 600 {}` (and think about whether they were copied)",
                self.path.display(),
                self.path.display()
            ));
        }
        let text = fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read the token store {}: {e}", self.path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "the token store {} is damaged ({e}): move it away and run `mailshift auth login` again",
                self.path.display()
            )
        })
    }

    fn write(&self, file: &File) -> Result<(), String> {
        let fail = |what: &str, e: std::io::Error| {
            format!("cannot {what} the token store {}: {e}", self.path.display())
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("create the directory of", e))?;
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens.json".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(file).map_err(|e| e.to_string())? + "\n";
        let result = (|| {
            // Created 0600: the tokens are never readable by others, not even for a moment.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename is durable once the directory is.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            fail("write", e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rt: &str) -> Entry {
        Entry {
            refresh_token: rt.into(),
            login: "alice@example.com".into(),
            client_id: "app".into(),
            token_url: "https://login.example/token".into(),
            flow: "device-code".into(),
            updated: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn entries_are_kept_in_a_0600_file_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("sub/tokens.json"));
        assert_eq!(store.get("k").unwrap(), None);
        store.put("k", entry("one")).unwrap();
        store.put("other", entry("two")).unwrap();
        store.put("k", entry("three")).unwrap();
        assert_eq!(store.get("k").unwrap().unwrap().refresh_token, "three");
        assert_eq!(store.get("other").unwrap().unwrap().refresh_token, "two");
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The store and its lock file, nothing else (no temporary file left behind).
        let mut leftovers: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        leftovers.sort();
        assert_eq!(leftovers, ["tokens.json", "tokens.json.lock"]);
        let lock = dir.path().join("sub/tokens.json.lock");
        assert_eq!(
            fs::metadata(lock).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_store_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::new(path.clone());
        store.put("k", entry("secret-refresh")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.get("k").unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("0644"), "{err}");
        assert!(!err.contains("secret-refresh"), "{err}");
        assert!(store.put("k", entry("x")).is_err());
    }
}
