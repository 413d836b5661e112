//! The folder mapping (`map_folders`): any LIST answers on both sides and any `folders`
//! rules give a mapping or an error, never a panic; what it asks to CREATE is never a folder
//! the destination already lists, and a non-empty source name maps to a non-empty one.
//!
//! Input: lines. `S`/`D` + a delimiter byte (`/`, `.`, else none) + a name: a source or
//! destination folder (attributes `\Noselect` when the name ends in `!`, `\Sent` when it
//! ends in `>`). `I`/`E` + glob: include/exclude. `M` + `from=to`: a `map` entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::transfer::imap::folders::{FolderRules, RemoteFolder, map_folders};
use mailshift::transfer::imap::mutf7;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    let mut rules = FolderRules::default();
    for line in text.split('\n') {
        let mut chars = line.chars();
        let kind = chars.next();
        let rest = chars.as_str();
        match kind {
            Some('S' | 'D') => {
                let mut chars = rest.chars();
                let delimiter = match chars.next() {
                    Some(c @ ('/' | '.')) => Some(c),
                    Some(_) => None,
                    None => continue,
                };
                let name = chars.as_str().to_string();
                let mut attributes = Vec::new();
                if name.ends_with('!') {
                    attributes.push("\\Noselect".to_string());
                }
                if name.ends_with('>') {
                    attributes.push("\\Sent".to_string());
                }
                let f = RemoteFolder {
                    name,
                    delimiter,
                    attributes,
                };
                if kind == Some('S') {
                    src.push(f)
                } else {
                    dst.push(f)
                }
            }
            Some('I') => rules.include.push(rest.to_string()),
            Some('E') => rules.exclude.push(rest.to_string()),
            Some('M') => {
                if let Some((from, to)) = rest.split_once('=') {
                    rules.map.insert(from.to_string(), to.to_string());
                }
            }
            _ => {}
        }
    }
    let Ok(mapping) = map_folders(&src, &dst, &rules) else {
        return;
    };
    for name in &mapping.create {
        assert!(
            !dst.iter().any(|d| &d.name == name),
            "asked to create {name:?}, which the destination lists"
        );
    }
    for f in &mapping.copy {
        // A destination name is either modified UTF-7 or kept as the server sent it.
        let _ = mutf7::decode(&f.dest);
        // A folder listed with an empty name is skipped with a note; every copied one maps
        // to a real name.
        assert!(
            !f.source.is_empty() && !f.dest.is_empty(),
            "empty destination name for {:?}",
            f.source
        );
    }
});
