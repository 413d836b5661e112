//! Modified UTF-7 folder names: any text encodes to printable ASCII and decodes back to
//! itself; any bytes decode to a name or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::transfer::imap::mutf7::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        // What a server sends may be anything.
        let _ = decode(name);
        let wire = encode(name);
        assert!(
            wire.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{name:?} encodes to {wire:?}, not printable ASCII"
        );
        assert_eq!(
            decode(&wire).as_deref(),
            Ok(name),
            "round trip of {name:?} via {wire:?}"
        );
    }
});
