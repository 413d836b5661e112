//! A plan's state files, one per shard: which file a shard opens (the plan's `state:` path with
//! `{shard}` replaced by its index, `plan::Loaded::state_path_for`), and the checks that keep
//! shards of different splits apart. The store itself checks the file's own stamp
//! ([`StateStore::open_as`]); here a shard starting a new file also looks at its siblings, so
//! that growing N without `mailshift state reshard` is refused rather than starting the new
//! shards empty while their accounts' records sit in the old files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::record::ResourceRecord;
use super::store::{StateError, StateReader, StateStore, read_resources_as};
use crate::plan::Loaded;
use crate::shard::Shard;

/// Opens the state of `shard` for writing (`apply`, `watch`, `rollback`, `ack`, `state forget`).
pub fn open_store(loaded: &Loaded, shard: Shard) -> Result<StateStore, StateError> {
    check_siblings(loaded, shard)?;
    StateStore::open_as(&loaded.state_path_for(shard), shard)
}

/// Opens the state of `shard` for reading, beside a running writer (`plan`, `status`, `verify`).
pub fn open_reader(loaded: &Loaded, shard: Shard) -> Result<StateReader, StateError> {
    check_siblings(loaded, shard)?;
    StateReader::open_as(&loaded.state_path_for(shard), shard)
}

/// The resource records of `shard`'s state.
pub fn read_resources(
    loaded: &Loaded,
    shard: Shard,
) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
    check_siblings(loaded, shard)?;
    read_resources_as(&loaded.state_path_for(shard), shard)
}

/// The paths of every shard's file in a split into `count`.
pub fn shard_paths(loaded: &Loaded, count: u32) -> Vec<PathBuf> {
    (0..count)
        .map(|index| loaded.state_path_for(Shard { index, count }))
        .collect()
}

/// When `shard`'s file does not exist yet, refuses if a sibling's file (same template, another
/// index) was written by a split into another N: the accounts this shard now owns may have
/// their records there. Only then: an existing file's own stamp says enough.
fn check_siblings(loaded: &Loaded, shard: Shard) -> Result<(), StateError> {
    let own = loaded.state_path_for(shard);
    if !loaded.state_path_is_per_shard() || std::fs::metadata(&own).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    for path in shard_paths(loaded, shard.count) {
        if path == own {
            continue;
        }
        if let Some(found) = StateReader::open(&path)?.shard()?
            && found.count != shard.count
        {
            return Err(StateError::WrongShard {
                path,
                found,
                wanted: shard,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::{Format, load_str};

    pub(crate) fn plan_in(dir: &Path, state: &str) -> Loaded {
        let text = format!(
            "version: 1\nstate: {state}\nplatforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: 10143, security: none}}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: 10144, security: none}}}}\naccounts:\n  - {{address: a@example.com, from: old, to: new, source: {{login: a, password: {{env: A}}}}, destination: {{login: a, password: {{env: A}}}}}}\n"
        );
        load_str(&text, Format::Yaml, &dir.join("p.yaml"), dir)
            .unwrap_or_else(|e| panic!("{}", e.render()))
    }

    #[test]
    fn a_new_shard_file_is_refused_while_its_siblings_are_of_another_split() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = plan_in(dir.path(), "st/state-{shard}.redb");
        let s = |i, n| Shard::new(i, n).unwrap();
        for i in 0..2 {
            drop(open_store(&loaded, s(i, 2)).unwrap());
        }
        assert!(dir.path().join("st/state-1.redb").is_file());
        // Growing to 3 without a reshard: shard 2's file would start empty.
        for err in [
            open_store(&loaded, s(2, 3)).unwrap_err(),
            open_reader(&loaded, s(2, 3)).map(drop).unwrap_err(),
            read_resources(&loaded, s(2, 3)).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.contains("state-0.redb belongs to shard 0/2"), "{msg}");
            assert!(msg.contains("reshard PLAN --to 3"), "{msg}");
        }
        assert!(!dir.path().join("st/state-2.redb").exists());
        // The shards of the split the files are from still open theirs.
        drop(open_store(&loaded, s(1, 2)).unwrap());
        // Shard 0 of 3 has a file of its own, refused by its own stamp.
        let msg = open_store(&loaded, s(0, 3)).unwrap_err().to_string();
        assert!(msg.contains("state-0.redb belongs to shard 0/2"), "{msg}");
    }
}
