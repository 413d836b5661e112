//! A cache of large plans already checked, so the commands of a big migration (every shard's
//! `plan`, `apply`, `status`, each `watch` start) do not each parse and check a 100,000-account
//! plan again: YAML parsing alone is about 3 s for 17 MB here, and no YAML parser tried was
//! under 1.5 s (serde-saphyr, libyaml, yaml-rust2).
//!
//! What is kept is the plan as deserialized, written as JSON (what serde_json reads back fastest
//! of the formats already in the tree), under a name that is the SHA-256 of the plan's text,
//! its format and the running binary (version, size and modification time): a plan changed by
//! one byte, or read by another build, is loaded the full way again. Only plans that loaded
//! with nothing to say (no warning, hence no literal secret) and of at least
//! [`CACHE_MIN_BYTES`] are kept: a small plan loads in milliseconds. Validation reads nothing
//! but the text, so a plan checked once is checked for good. Everything about the cache is
//! best effort: a directory that cannot be written, a file that cannot be read back, and the
//! plan is simply loaded the full way.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::load::{Format, LoadError, Loaded, load_str, read_source};
use super::model::Plan;

/// Plans smaller than this are not cached: they load in well under a tenth of a second.
pub const CACHE_MIN_BYTES: usize = 1024 * 1024;

/// The environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "MAILSHIFT_CACHE_DIR";

/// How many cached plans a directory keeps (the most recently written).
const KEEP: usize = 4;

/// Where plans are cached: `MAILSHIFT_CACHE_DIR` (empty: no cache), else
/// `$XDG_CACHE_HOME/mailshift`, else `$HOME/.cache/mailshift`.
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_from(|k| std::env::var_os(k))
}

fn cache_dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(dir) = env(CACHE_DIR_ENV) {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = env("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("mailshift"));
    }
    env("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("mailshift"))
}

/// [`load_file`](super::load_file), through the cache in `dir` (none: no cache).
pub fn load_file_cached(path: &Path, dir: Option<&Path>) -> Result<Loaded, LoadError> {
    let (source, format, base_dir) = read_source(path)?;
    let Some(dir) = dir.filter(|_| source.len() >= CACHE_MIN_BYTES) else {
        return load_str(&source, format, path, &base_dir);
    };
    let file = dir.join(format!("plan-{}.json", key(&source, format)));
    if let Some(plan) = read(&file) {
        return Ok(Loaded {
            plan,
            path: path.to_path_buf(),
            base_dir,
            source,
            warnings: Vec::new(),
            shard: crate::shard::Shard::WHOLE,
        });
    }
    let loaded = load_str(&source, format, path, &base_dir)?;
    if loaded.warnings.is_empty() {
        write(dir, &file, &loaded.plan);
    }
    Ok(loaded)
}

fn key(source: &str, format: Format) -> String {
    let mut h = Sha256::new();
    h.update(build_id().as_bytes());
    h.update([0, format as u8, 0]);
    h.update(source.as_bytes());
    hex(&h.finalize())
}

/// What tells this build from another: a cached plan is the model of the build that wrote it.
fn build_id() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{mtime}", m.len())
        })
        .unwrap_or_default();
    format!("{} {exe}", env!("CARGO_PKG_VERSION"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(file: &Path) -> Option<Plan> {
    let bytes = std::fs::read(file).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes through a temporary file renamed into place, so a reader never sees half a plan;
/// then forgets all but the [`KEEP`] newest.
fn write(dir: &Path, file: &Path, plan: &Plan) {
    let Ok(json) = serde_json::to_vec(plan) else {
        return;
    };
    if create_private_dir(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".plan-{}.tmp", std::process::id()));
    if write_private(&tmp, &json).is_err() || std::fs::rename(&tmp, file).is_err() {
        let _ = std::fs::remove_file(&tmp);
        return;
    }
    prune(dir);
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

// The plan names every mailbox: readable by its owner only, like the state.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)
}

fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("plan-") && name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, path) in files.into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of `n` accounts, over the size a cache keeps from about 6,000.
    fn big_plan(n: usize, extra: &str) -> String {
        let mut s = format!(
            "version: 1\n{extra}platforms:\n  old: {{type: imap, imap: {{host: imap.old.example, security: tls}}}}\n  new: {{type: imap, imap: {{host: imap.new.example, security: tls}}}}\naccounts:\n"
        );
        for i in 0..n {
            s.push_str(&format!(
                "  - address: user{i}@example.com\n    from: old\n    to: new\n    source: {{login: user{i}, password: {{env: OLD_PW}}}}\n    destination: {{login: user{i}, password: {{env: NEW_PW}}}}\n"
            ));
        }
        s
    }

    fn cached(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_large_clean_plan_is_read_back_the_same_and_a_change_is_not_served_stale() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let path = dir.path().join("plan.yaml");
        let text = big_plan(7_000, "");
        assert!(text.len() >= CACHE_MIN_BYTES);
        std::fs::write(&path, &text).unwrap();
        let first = load_file_cached(&path, Some(&cache)).unwrap();
        assert_eq!(cached(&cache).len(), 1, "the first load keeps it");
        let second = load_file_cached(&path, Some(&cache)).unwrap();
        assert_eq!(second.plan, first.plan, "read back as it was checked");
        assert_eq!(second.source, text);
        assert!(second.warnings.is_empty());
        // One byte different: loaded (and checked) the full way, not taken from the cache.
        let changed = text.replace("user6999@example.com", "user6999@example.org");
        std::fs::write(&path, &changed).unwrap();
        let third = load_file_cached(&path, Some(&cache)).unwrap();
        assert_eq!(
            third.plan.accounts.last().unwrap().address,
            "user6999@example.org"
        );
        assert_eq!(cached(&cache).len(), 2);
        // An invalid plan is never served from anywhere: its errors come back.
        std::fs::write(&path, changed.replace("to: new\n", "to: nowhere\n")).unwrap();
        assert!(load_file_cached(&path, Some(&cache)).is_err());
    }

    #[test]
    fn small_plans_plans_with_warnings_and_unreadable_caches_are_loaded_the_full_way() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, big_plan(3, "")).unwrap();
        load_file_cached(&path, Some(&cache)).unwrap();
        assert!(cached(&cache).is_empty(), "small: not cached");
        // A literal secret (allowed, hence warned about) is never written to the cache.
        let inline =
            big_plan(7_000, "allow_inline_secrets: true\n").replacen("{env: OLD_PW}", "hunter2", 1);
        std::fs::write(&path, &inline).unwrap();
        let loaded = load_file_cached(&path, Some(&cache)).unwrap();
        assert!(!loaded.warnings.is_empty());
        assert!(cached(&cache).is_empty(), "warned about: not cached");
        // A cache file that does not read back is passed over.
        std::fs::write(&path, big_plan(7_000, "")).unwrap();
        load_file_cached(&path, Some(&cache)).unwrap();
        let [file] = cached(&cache).try_into().unwrap();
        std::fs::write(&file, b"{\"version\": ").unwrap();
        let loaded = load_file_cached(&path, Some(&cache)).unwrap();
        assert_eq!(loaded.plan.accounts.len(), 7_000);
        // A cache directory that cannot be made costs nothing but the cache.
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, b"").unwrap();
        let loaded = load_file_cached(&path, Some(&blocked.join("cache"))).unwrap();
        assert_eq!(loaded.plan.accounts.len(), 7_000);
    }

    #[test]
    fn only_the_newest_few_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let path = dir.path().join("plan.yaml");
        let text = big_plan(7_000, "");
        for i in 0..KEEP + 2 {
            std::fs::write(&path, text.replace("user0@", &format!("first{i}@"))).unwrap();
            load_file_cached(&path, Some(&cache)).unwrap();
        }
        assert_eq!(cached(&cache).len(), KEEP);
    }

    #[test]
    fn every_example_reads_back_from_json_as_it_was() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "toml")
            ) {
                continue;
            }
            let Ok(loaded) = super::super::load_file(&path) else {
                continue;
            };
            let json = serde_json::to_vec(&loaded.plan).unwrap();
            let back: Plan =
                serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(back, loaded.plan, "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} examples");
    }

    #[test]
    fn the_directory_comes_from_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            cache_dir_from(env(&[("MAILSHIFT_CACHE_DIR", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            cache_dir_from(env(&[("MAILSHIFT_CACHE_DIR", ""), ("HOME", "/h")])),
            None
        );
        assert_eq!(
            cache_dir_from(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/mailshift"))
        );
        assert_eq!(
            cache_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/mailshift"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }
}
