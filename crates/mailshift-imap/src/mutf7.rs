//! IMAP modified UTF-7 (RFC 3501 section 5.1.3), the encoding of mailbox names on the wire.
//!
//! Printable ASCII stands for itself except `&`, written `&-`; every other run of characters
//! is written `&` + base64 of its UTF-16BE code units (alphabet with `,` instead of `/`, no
//! padding) + `-`. Servers with `UTF8=ACCEPT` may send raw UTF-8 instead; that is not this
//! encoding and [`decode`] rejects it, leaving the caller to decide (the folder mapping keeps
//! such names as they are).

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Why a name is not valid modified UTF-7. Positions are byte offsets in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutf7Error {
    /// A byte outside printable ASCII (0x20-0x7e), e.g. raw UTF-8.
    NotPrintableAscii { pos: usize, byte: u8 },
    /// A character that is not in the modified base64 alphabet inside a `&...-` section.
    InvalidBase64 { pos: usize, ch: char },
    /// A `&` section with no closing `-`.
    Unterminated { pos: usize },
    /// A `&...-` section whose bits do not make whole UTF-16 code units.
    Truncated { pos: usize },
    /// A UTF-16 surrogate without its other half.
    UnpairedSurrogate { pos: usize },
}

impl fmt::Display for Mutf7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutf7Error::NotPrintableAscii { pos, byte } => write!(
                f,
                "byte 0x{byte:02x} at offset {pos} is not printable ASCII (raw UTF-8 is not modified UTF-7)"
            ),
            Mutf7Error::InvalidBase64 { pos, ch } => write!(
                f,
                "{ch:?} at offset {pos} is not a modified base64 character"
            ),
            Mutf7Error::Unterminated { pos } => {
                write!(
                    f,
                    "the `&` at offset {pos} opens a section that is never closed by `-`"
                )
            }
            Mutf7Error::Truncated { pos } => write!(
                f,
                "the section at offset {pos} does not hold whole UTF-16 code units"
            ),
            Mutf7Error::UnpairedSurrogate { pos } => {
                write!(
                    f,
                    "the section at offset {pos} holds an unpaired UTF-16 surrogate"
                )
            }
        }
    }
}

impl std::error::Error for Mutf7Error {}

/// Encodes a mailbox name for the wire.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut units: Vec<u16> = Vec::new();
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut units);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut units);
    out
}

fn flush(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in units.iter().flat_map(|u| u.to_be_bytes()) {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    out.push('-');
    units.clear();
}

/// Decodes a mailbox name from the wire.
///
/// Non-canonical but unambiguous forms (printable ASCII inside a section, two adjacent
/// sections, non-zero padding bits) are accepted: refusing them would only lose a folder.
pub fn decode(s: &str) -> Result<String, Mutf7Error> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return Err(Mutf7Error::NotPrintableAscii { pos: i, byte: b });
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if bytes.get(i) == Some(&b'-') {
            out.push('&');
            i += 1;
            continue;
        }
        let mut units: Vec<u16> = Vec::new();
        let mut acc: u32 = 0;
        let mut bits = 0;
        loop {
            let Some(&c) = bytes.get(i) else {
                return Err(Mutf7Error::Unterminated { pos: start });
            };
            if c == b'-' {
                i += 1;
                break;
            }
            let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
                return Err(if (0x20..=0x7e).contains(&c) {
                    Mutf7Error::InvalidBase64 {
                        pos: i,
                        ch: c as char,
                    }
                } else {
                    Mutf7Error::NotPrintableAscii { pos: i, byte: c }
                });
            };
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push((acc >> bits) as u16);
                acc &= (1 << bits) - 1;
            }
            i += 1;
        }
        // Leftover bits are padding; six or more would be a sextet that belongs to no unit.
        if units.is_empty() || bits >= 6 {
            return Err(Mutf7Error::Truncated { pos: start });
        }
        for r in char::decode_utf16(units) {
            out.push(r.map_err(|_| Mutf7Error::UnpairedSurrogate { pos: start })?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        let table = [
            ("", ""),
            ("INBOX", "INBOX"),
            ("&-", "&"),
            ("Tom &- Jerry", "Tom & Jerry"),
            ("&AMk-t&AOk-", "Été"),
            ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
            ("&AOk-l&AOk-ments envoy&AOk-s", "éléments envoyés"),
            ("Entw&APw-rfe", "Entwürfe"),
            // An astral character is a surrogate pair: two units in one section.
            ("&2D3eAA-", "\u{1F600}"),
            // Control characters are not printable: they go through base64 too.
            ("a&AAk-b", "a\tb"),
        ];
        for (wire, text) in table {
            assert_eq!(decode(wire).as_deref(), Ok(text), "decode {wire:?}");
            assert_eq!(encode(text), wire, "encode {text:?}");
        }
    }

    #[test]
    fn accepts_non_canonical_forms() {
        // "A" (U+0041) encoded in base64 where it should be literal, and two adjacent sections.
        assert_eq!(decode("&AEE-").as_deref(), Ok("A"));
        assert_eq!(decode("&AMk-&AOk-").as_deref(), Ok("Éé"));
    }

    #[test]
    fn rejects_malformed_input() {
        let table = [
            ("&AMk", Mutf7Error::Unterminated { pos: 0 }),
            ("ab&", Mutf7Error::Unterminated { pos: 2 }),
            ("&AM/-", Mutf7Error::InvalidBase64 { pos: 3, ch: '/' }),
            ("&AM=-", Mutf7Error::InvalidBase64 { pos: 3, ch: '=' }),
            (
                "caf\u{e9}",
                Mutf7Error::NotPrintableAscii { pos: 3, byte: 0xc3 },
            ),
            ("a\tb", Mutf7Error::NotPrintableAscii { pos: 1, byte: 0x09 }),
            // 12 bits: not a whole UTF-16 unit.
            ("&AM-", Mutf7Error::Truncated { pos: 0 }),
            // 24 bits: one unit plus a whole spare sextet.
            ("x&AMkA-", Mutf7Error::Truncated { pos: 1 }),
            // A lone high surrogate (U+D83D).
            ("&2D0-", Mutf7Error::UnpairedSurrogate { pos: 0 }),
        ];
        for (wire, err) in table {
            assert_eq!(decode(wire), Err(err), "decode {wire:?}");
        }
    }

    #[test]
    fn errors_read_clearly() {
        assert_eq!(
            decode("&AMk").unwrap_err().to_string(),
            "the `&` at offset 0 opens a section that is never closed by `-`"
        );
    }

    proptest! {
        #[test]
        fn round_trips(s in any::<String>()) {
            let wire = encode(&s);
            prop_assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&wire), Ok(s));
        }

        #[test]
        fn round_trips_mixed_names(s in "[a-z&/. ]{0,4}([\u{e9}\u{53f0}\u{1F600}-\u{1F64F}][a-z&]{0,3}){0,4}") {
            prop_assert_eq!(decode(&encode(&s)), Ok(s));
        }

        #[test]
        fn decode_never_panics(s in any::<String>()) {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_near_misses(s in "[&A-Za-z0-9+,/=-]{0,24}") {
            let _ = decode(&s);
        }
    }
}
