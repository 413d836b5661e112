//! The few header fields `verify` shows to name a message (Message-ID, Date, Subject), read
//! from a `HEADER.FIELDS` fetch and made fit for a terminal: folded lines joined, RFC 2047
//! encoded words decoded, control and bidirectional-override characters replaced.
//!
//! Everything here reads hostile bytes (anyone can send a message with any header) and must
//! not panic on any input; what cannot be decoded is shown as it was written.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The header fields fetched for each message named in a report.
pub const FIELDS: &str = "MESSAGE-ID DATE SUBJECT";

/// Longest text kept per field, in characters: a report line stays readable whatever a
/// sender put in a subject.
const MAX_CHARS: usize = 200;
/// Bytes of a field decoded: far more than [`MAX_CHARS`] shows, bounded whatever the sender
/// wrote (a cut in a multi-byte character or an encoded word only shows past the end).
const MAX_RAW: usize = 8 * 1024;

/// The fields of one message that identify it to a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub message_id: Option<String>,
    pub date: Option<String>,
    pub subject: Option<String>,
}

/// Reads Message-ID, Date and Subject from a header block (the first of each; absent or
/// empty fields are `None`).
pub fn parse(block: &[u8]) -> Named {
    let mut named = Named::default();
    for (name, value) in fields(block) {
        let slot = if name.eq_ignore_ascii_case(b"message-id") {
            &mut named.message_id
        } else if name.eq_ignore_ascii_case(b"date") {
            &mut named.date
        } else if name.eq_ignore_ascii_case(b"subject") {
            &mut named.subject
        } else {
            continue;
        };
        if slot.is_none() {
            let cut = value.len() > MAX_RAW;
            let value = &value[..value.len().min(MAX_RAW)];
            let text = sanitize(&decode_words(&raw_text(value, cut)));
            if !text.is_empty() {
                *slot = Some(text);
            }
        }
    }
    named
}

/// The header's fields as (name, unfolded value) pairs. Lines without a colon are skipped.
fn fields(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The blank line ends the header.
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A continuation: unfolding removes the line break only (RFC 5322 2.2.3).
            if let Some((_, value)) = out.last_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii().to_vec();
            out.push((name, line[colon + 1..].to_vec()));
        }
    }
    out
}

/// Header bytes as text: UTF-8 when they are (RFC 6532), else windows-1252, the usual
/// encoding of raw 8-bit headers, which maps every byte to some character. `cut`: the bytes
/// were cut at [`MAX_RAW`], maybe inside a character.
fn raw_text(bytes: &[u8], cut: bool) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s.trim()),
        // UTF-8 cut short at the end (by `MAX_RAW`): the whole characters.
        Err(e) if cut && e.error_len().is_none() => Cow::Borrowed(
            std::str::from_utf8(&bytes[..e.valid_up_to()])
                .unwrap_or("")
                .trim(),
        ),
        Err(_) => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            Cow::Owned(text.trim().to_string())
        }
    }
}

/// One `=?charset?encoding?text?=` word, decoded to bytes.
struct Word<'a> {
    /// The charset label, without an RFC 2231 `*language` suffix.
    charset: &'a str,
    bytes: Vec<u8>,
    /// Length of the whole encoded word in the input.
    len: usize,
}

/// Parses an encoded word at the start of `s`, if there is a well-formed one.
fn word(s: &str) -> Option<Word<'_>> {
    let rest = s.strip_prefix("=?")?;
    let (charset, rest) = rest.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    // Encoded text holds no `?`: its end is the next one, which must start `?=`. Scanning no
    // further keeps a header full of `=?` linear.
    let (text, after) = rest.split_once('?')?;
    let after = after.strip_prefix('=')?;
    if charset.is_empty() || text.contains(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let charset = charset.split('*').next().unwrap_or(charset);
    let bytes = if encoding.eq_ignore_ascii_case("B") {
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        engine.decode(text).ok()?
    } else if encoding.eq_ignore_ascii_case("Q") {
        q_decode(text)?
    } else {
        return None;
    };
    Some(Word {
        charset,
        bytes,
        // `after` is the tail of `s` behind the closing `?=`.
        len: s.len() - after.len(),
    })
}

/// RFC 2047 "Q": `_` is a space, `=XX` a byte in hex. `None` on a broken escape.
fn q_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// Text in `charset`, or `None` for a charset we do not know (the word is then kept as
/// written, so nothing is shown wrongly decoded).
fn charset_decode(charset: &str, bytes: &[u8]) -> Option<String> {
    let encoding = encoding_rs::Encoding::for_label_no_replacement(charset.as_bytes())?;
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Some(text.into_owned())
}

/// Decodes the encoded words of a header value. Whitespace between two adjacent encoded
/// words is dropped (RFC 2047 6.2), and adjacent words in one charset are decoded together,
/// since encoders split multi-byte characters across words.
pub fn decode_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // Encoded bytes waiting for their charset decode, with the raw words they came from.
    let mut pending: Option<(String, Vec<u8>, String)> = None;
    let flush = |out: &mut String, pending: &mut Option<(String, Vec<u8>, String)>| {
        if let Some((charset, bytes, raw)) = pending.take() {
            match charset_decode(&charset, &bytes) {
                Some(text) => out.push_str(&text),
                None => out.push_str(&raw),
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(w) = word(rest) {
            let raw = &rest[..w.len];
            match &mut pending {
                Some((charset, bytes, raws)) if charset.eq_ignore_ascii_case(w.charset) => {
                    bytes.extend_from_slice(&w.bytes);
                    raws.push_str(raw);
                }
                _ => {
                    flush(&mut out, &mut pending);
                    pending = Some((w.charset.to_string(), w.bytes, raw.to_string()));
                }
            }
            i += w.len;
            continue;
        }
        let ws = rest.len() - rest.trim_start().len();
        if ws > 0 && pending.is_some() && word(&rest[ws..]).is_some() {
            // Only whitespace between two encoded words: it is not part of the text.
            i += ws;
            continue;
        }
        flush(&mut out, &mut pending);
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    flush(&mut out, &mut pending);
    out
}

/// Text safe to print on a terminal: control characters (C0, DEL, C1: escape sequences
/// start there) and the bidirectional overrides that reorder what a line appears to say
/// become U+FFFD; tabs and runs of spaces become one space; at most [`MAX_CHARS`].
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_CHARS * 4));
    let mut count = 0;
    let mut last_space = false;
    for c in s.trim().chars() {
        let c = match c {
            ' ' | '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
                '\u{FFFD}'
            }
            c => c,
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count == MAX_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_fields_unfolded() {
        let block = b"Message-ID: <a@example.org>\r\nDate: Fri, 01 Mar 2024\r\n 10:00:00 +0000\r\nsubject:  Hello\r\n\tworld\r\n\r\n";
        assert_eq!(
            parse(block),
            Named {
                message_id: Some("<a@example.org>".into()),
                date: Some("Fri, 01 Mar 2024 10:00:00 +0000".into()),
                subject: Some("Hello world".into()),
            }
        );
        assert_eq!(parse(b""), Named::default());
        assert_eq!(parse(b"Subject:\r\n\r\n").subject, None);
    }

    #[test]
    fn encoded_words_decode() {
        assert_eq!(
            decode_words("=?utf-8?q?Caf=C3=A9_cr=C3=A8me?="),
            "Café crème"
        );
        assert_eq!(decode_words("=?ISO-8859-1?Q?caf=E9?= ok"), "café ok");
        assert_eq!(decode_words("=?UTF-8?B?w6l0w6k=?="), "été");
        // Unpadded base64, as some encoders write it.
        assert_eq!(decode_words("=?UTF-8?B?w6l0w6k?="), "été");
        // Whitespace between adjacent words goes; around plain text it stays.
        assert_eq!(decode_words("=?utf-8?q?a?= \r\n =?utf-8?q?b?="), "ab");
        assert_eq!(decode_words("x =?utf-8?q?a?= y"), "x a y");
        // A character split across two words.
        assert_eq!(decode_words("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?="), "éé");
        assert_eq!(decode_words("=?UTF-8*fr?Q?=C3=A9?="), "é");
        assert_eq!(decode_words("=?windows-1252?q?=80?="), "€");
    }

    #[test]
    fn undecodable_words_stay_as_written() {
        for s in [
            "=?x-unknown?q?abc?=",
            "=?utf-8?x?abc?=",
            "=?utf-8?q?a=Z?=",
            "=?utf-8?q?a=+1?=",
            "=?utf-8?b?!!!?=",
            "=?utf-8?q?abc",
            "=??q?abc?=",
            "=?",
            "plain ?= text =?",
        ] {
            assert_eq!(decode_words(s), s);
        }
    }

    #[test]
    fn terminal_escapes_and_overrides_are_replaced() {
        assert_eq!(
            sanitize("\u{1b}[31mred\u{7}\u{9b}x\u{202E}abc"),
            "\u{FFFD}[31mred\u{FFFD}\u{FFFD}x\u{FFFD}abc"
        );
        // An encoded control character is caught after decoding.
        let named = parse(b"Subject: =?utf-8?q?a=1B]0;title=07b?=\r\n");
        assert_eq!(named.subject.as_deref(), Some("a\u{FFFD}]0;title\u{FFFD}b"));
        assert_eq!(sanitize("a \t  b"), "a b");
        let long = sanitize(&"x".repeat(500));
        assert_eq!(long.chars().count(), MAX_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn raw_8bit_headers_are_read() {
        assert_eq!(
            parse("Subject: Café\r\n".as_bytes()).subject.as_deref(),
            Some("Café")
        );
        assert_eq!(
            parse(b"Subject: caf\xe9\r\n").subject.as_deref(),
            Some("café")
        );
    }

    #[test]
    fn long_fields_are_cut_without_mangling_their_text() {
        let mut block = b"Subject: ".to_vec();
        block.extend("é".repeat(MAX_RAW).as_bytes());
        let subject = parse(&block).subject.unwrap();
        assert!(
            subject.starts_with("éé") && subject.ends_with('…'),
            "{subject}"
        );
    }

    #[test]
    fn hostile_input_never_panics() {
        for s in [
            "=?é?q?é?=",
            "=?utf-8?q?=é?=",
            "=?utf-8?q?=",
            "é=?",
            "=?a?b?",
        ] {
            let _ = decode_words(s);
        }
    }
}
