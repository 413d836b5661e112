//! Mailbox names on the wire: the one encoder every command carrying a name goes through, and
//! the parsers for the LIST and STATUS responses that carry names back.
//!
//! Pure byte-level code, no I/O. A name is the server's own bytes (modified UTF-7, or UTF-8 from
//! a server that sends it raw); turning it into something readable is [`super::mutf7`]'s job.
//!
//! Why our own parser rather than imap-proto's parsed LIST/STATUS: imap-proto 0.17 returns a
//! quoted string's *escaped* content (`Back\\slash` stays two backslashes) and a literal's raw
//! content through the same `&str`, so once parsed the two can no longer be told apart, and
//! names holding `"` or `\` come out wrong. The session hands us the raw bytes of each
//! response (async-imap's `ResponseData::borrow_owner()`, literals included), and we read the
//! name from those with the grammar of RFC 3501: quoted strings unescaped, literals taken as
//! they are, atoms as they are. That does not depend on what imap-proto does with names, and
//! it is the same function the fuzz target drives.
//!
//! Encoding: a quoted string (with `"` and `\` escaped) whenever it can carry the name, which
//! is every name of 7-bit bytes without CR, LF or NUL; otherwise a literal, whose bytes are
//! sent as they are (the session sends `{n+}` with LITERAL+, else waits for the continuation).

use std::fmt;

/// How a name must be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A complete quoted string, quotes included: sent as it is.
    Quoted(Vec<u8>),
    /// The name's bytes, to be sent as a literal (`{n}` or `{n+}`, CRLF, then the bytes).
    Literal(Vec<u8>),
}

impl Encoded {
    /// The whole token as one run of bytes; a literal with `{n+}` (LITERAL+) when
    /// `non_synchronizing`, else `{n}` (whose sender must wait for `+` after the CRLF).
    pub fn to_wire(&self, non_synchronizing: bool) -> Vec<u8> {
        match self {
            Encoded::Quoted(q) => q.clone(),
            Encoded::Literal(bytes) => {
                let mut out = literal_head(bytes.len(), non_synchronizing);
                out.extend_from_slice(bytes);
                out
            }
        }
    }
}

/// `{n}\r\n` or `{n+}\r\n`.
pub fn literal_head(len: usize, non_synchronizing: bool) -> Vec<u8> {
    format!("{{{len}{}}}\r\n", if non_synchronizing { "+" } else { "" }).into_bytes()
}

/// Encodes a mailbox name for any command argument (SELECT, EXAMINE, STATUS, CREATE,
/// APPEND, COPY/MOVE targets...). The only encoder of names: never escape a name elsewhere.
pub fn encode(name: &[u8]) -> Encoded {
    // A quoted string carries TEXT-CHARs only: 7-bit, no CR, LF or NUL (RFC 3501 §9).
    if name
        .iter()
        .any(|&b| b == 0 || b == b'\r' || b == b'\n' || b >= 0x80)
    {
        return Encoded::Literal(name.to_vec());
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    out.push(b'"');
    for &b in name {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Encoded::Quoted(out)
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// Byte offset in the input where reading stopped.
    pub at: usize,
    pub expected: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {} at byte {}", self.expected, self.at)
    }
}

impl std::error::Error for NameError {}

/// One `* LIST` (or `* LSUB`) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// As sent, e.g. `\HasNoChildren`, `\Sent`.
    pub attributes: Vec<String>,
    /// `None` for `NIL` (a flat name).
    pub delimiter: Option<char>,
    /// The name's bytes, unescaped.
    pub name: Vec<u8>,
}

/// One `* STATUS` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// The name's bytes, unescaped.
    pub name: Vec<u8>,
    /// Item names upper-cased (`MESSAGES`, `UIDNEXT`...) with their values.
    pub items: Vec<(String, u64)>,
}

/// A cursor over one response's bytes.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, expected: &'static str) -> Result<T, NameError> {
        Err(NameError {
            at: self.pos,
            expected,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        &self.input[self.pos..]
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), NameError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(expected)
        }
    }

    fn space(&mut self) -> Result<(), NameError> {
        self.expect(b' ', "a space")
    }

    /// A run of bytes up to a space, parenthesis, CR or LF (atoms, flags, numbers).
    fn word(&mut self, expected: &'static str) -> Result<&'a [u8], NameError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return self.fail(expected);
        }
        Ok(&self.input[start..self.pos])
    }

    fn keyword(&mut self, words: &[&'static str]) -> Result<(), NameError> {
        let start = self.pos;
        let w = self.word("a response name")?;
        if words.iter().any(|k| w.eq_ignore_ascii_case(k.as_bytes())) {
            Ok(())
        } else {
            self.pos = start;
            self.fail(words[0])
        }
    }

    fn number(&mut self) -> Result<u64, NameError> {
        let start = self.pos;
        let w = self.word("a number")?;
        match std::str::from_utf8(w).ok().and_then(|s| s.parse().ok()) {
            Some(n) if w.iter().all(u8::is_ascii_digit) => Ok(n),
            _ => {
                self.pos = start;
                self.fail("a number")
            }
        }
    }

    /// astring: an atom, a quoted string or a literal.
    fn astring(&mut self) -> Result<Vec<u8>, NameError> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => {
                // Lenient about what an atom holds: some servers send 8-bit names unquoted.
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"' | b'{') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return self.fail("a mailbox name");
                }
                Ok(self.input[start..self.pos].to_vec())
            }
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, NameError> {
        self.expect(b'"', "a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    // RFC 3501 escapes only `"` and `\`; take whatever follows as itself.
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b != b'\r' && b != b'\n' => {
                            out.push(b);
                            self.pos += 1;
                        }
                        _ => return self.fail("an escaped character"),
                    }
                }
                Some(b'\r' | b'\n') | None => return self.fail("the end of a quoted string"),
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, NameError> {
        self.expect(b'{', "a literal")?;
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let len: usize = match std::str::from_utf8(&self.input[start..self.pos])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(n) => n,
            None => return self.fail("a literal's length"),
        };
        if self.peek() == Some(b'+') {
            self.pos += 1;
        }
        self.expect(b'}', "`}` after a literal's length")?;
        self.expect(b'\r', "CRLF after a literal's length")?;
        self.expect(b'\n', "CRLF after a literal's length")?;
        if self.rest().len() < len {
            return self.fail("the literal's bytes");
        }
        let bytes = self.rest()[..len].to_vec();
        self.pos += len;
        Ok(bytes)
    }

    /// `* ` at the start of an untagged response.
    fn untagged(&mut self) -> Result<(), NameError> {
        self.expect(b'*', "`*`")?;
        self.space()
    }

    /// The response's end: optional trailing spaces, then CRLF (or the end of the input).
    /// What follows is not ours (see [`parse_list`]).
    fn end(&mut self) -> Result<(), NameError> {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        match self.peek() {
            None | Some(b'\r' | b'\n') => Ok(()),
            _ => self.fail("the end of the response"),
        }
    }
}

/// Parses one astring (atom, quoted string or literal) at the start of `input`: the name's
/// bytes and what follows it.
pub fn parse_astring(input: &[u8]) -> Result<(Vec<u8>, &[u8]), NameError> {
    let mut r = Reader { input, pos: 0 };
    let name = r.astring()?;
    Ok((name, r.rest()))
}

/// Parses the `* LIST ...` or `* LSUB ...` response at the start of `response` (raw bytes,
/// literals included). Extended data after the name (LIST-EXTENDED's `("CHILDINFO" ...)`)
/// and anything after the response's CRLF are ignored: the buffer async-imap hands over may
/// already hold the next responses.
pub fn parse_list(response: &[u8]) -> Result<ListEntry, NameError> {
    let mut r = Reader {
        input: response,
        pos: 0,
    };
    r.untagged()?;
    r.keyword(&["LIST", "LSUB"])?;
    r.space()?;
    r.expect(b'(', "`(` before the attributes")?;
    let mut attributes = Vec::new();
    loop {
        match r.peek() {
            Some(b')') => {
                r.pos += 1;
                break;
            }
            Some(b' ') => r.pos += 1,
            _ => {
                let a = r.word("an attribute")?;
                attributes.push(String::from_utf8_lossy(a).into_owned());
            }
        }
    }
    r.space()?;
    let delimiter = match r.peek() {
        Some(b'"') => {
            let d = r.quoted()?;
            let d = String::from_utf8_lossy(&d).into_owned();
            let mut chars = d.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => return r.fail("a one-character delimiter"),
            }
        }
        _ => {
            r.keyword(&["NIL"])?;
            None
        }
    };
    r.space()?;
    let name = r.astring()?;
    Ok(ListEntry {
        attributes,
        delimiter,
        name,
    })
}

/// Parses the `* STATUS name (ITEM n ...)` response at the start of `response` (raw bytes,
/// literals included; anything after its CRLF is ignored, as in [`parse_list`]).
pub fn parse_status(response: &[u8]) -> Result<StatusEntry, NameError> {
    let mut r = Reader {
        input: response,
        pos: 0,
    };
    r.untagged()?;
    r.keyword(&["STATUS"])?;
    r.space()?;
    let name = r.astring()?;
    r.space()?;
    r.expect(b'(', "`(` before the status items")?;
    let mut items = Vec::new();
    loop {
        match r.peek() {
            Some(b')') => {
                r.pos += 1;
                break;
            }
            Some(b' ') => r.pos += 1,
            _ => {
                let item = String::from_utf8_lossy(r.word("a status item")?).to_ascii_uppercase();
                r.space()?;
                items.push((item, r.number()?));
            }
        }
    }
    r.end()?;
    Ok(StatusEntry { name, items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quoted_names_escape_quote_and_backslash_once() {
        assert_eq!(
            encode(br#"Quote "this""#),
            Encoded::Quoted(br#""Quote \"this\"""#.to_vec())
        );
        assert_eq!(
            encode(br"Back\slash"),
            Encoded::Quoted(br#""Back\\slash""#.to_vec())
        );
        assert_eq!(encode(b""), Encoded::Quoted(b"\"\"".to_vec()));
        assert_eq!(
            encode(b"100% *done*"),
            Encoded::Quoted(b"\"100% *done*\"".to_vec())
        );
    }

    #[test]
    fn names_a_quoted_string_cannot_carry_go_as_literals() {
        assert_eq!(
            encode("Año".as_bytes()),
            Encoded::Literal("Año".as_bytes().to_vec())
        );
        assert_eq!(encode(b"a\r\nb"), Encoded::Literal(b"a\r\nb".to_vec()));
        assert_eq!(
            Encoded::Literal(b"a\"b".to_vec()).to_wire(true),
            b"{3+}\r\na\"b".to_vec()
        );
        assert_eq!(
            Encoded::Literal(b"ab".to_vec()).to_wire(false),
            b"{2}\r\nab".to_vec()
        );
    }

    #[test]
    fn list_responses_give_the_name_unescaped() {
        let e = parse_list(b"* LIST (\\HasNoChildren) \"/\" \"Back\\\\slash\"\r\n").unwrap();
        assert_eq!(e.name, br"Back\slash");
        assert_eq!(e.delimiter, Some('/'));
        assert_eq!(e.attributes, vec!["\\HasNoChildren".to_string()]);

        let e = parse_list(b"* LIST () \".\" {12}\r\nQuote \"this\"\r\n").unwrap();
        assert_eq!(e.name, br#"Quote "this""#);

        let e = parse_list(b"* LIST (\\Noselect \\HasChildren) NIL INBOX\r\n").unwrap();
        assert_eq!((e.delimiter, e.name), (None, b"INBOX".to_vec()));

        let e = parse_list(b"* LIST () \"\\\\\" \" lead \" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n")
            .unwrap();
        assert_eq!((e.delimiter, e.name), (Some('\\'), b" lead ".to_vec()));

        let e = parse_list(b"* lsub () \"/\" \"\"\r\n").unwrap();
        assert_eq!(e.name, b"");
    }

    #[test]
    fn status_responses_give_name_and_items() {
        let e = parse_status(
            b"* STATUS \"100% *done*\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 17 HIGHESTMODSEQ 99999999999)\r\n",
        )
        .unwrap();
        assert_eq!(e.name, b"100% *done*");
        assert_eq!(
            e.items,
            vec![
                ("MESSAGES".to_string(), 3),
                ("UIDNEXT".to_string(), 4),
                ("UIDVALIDITY".to_string(), 17),
                ("HIGHESTMODSEQ".to_string(), 99_999_999_999),
            ]
        );
        let e = parse_status(b"* STATUS {3}\r\na\\b (messages 0) \r\n").unwrap();
        assert_eq!(e.name, br"a\b");
        assert_eq!(e.items, vec![("MESSAGES".to_string(), 0)]);
        assert_eq!(parse_status(b"* STATUS x ()").unwrap().items, vec![]);
        let e =
            parse_status(b"* STATUS \"a\" (UIDNEXT 2)\r\n* STATUS \"b\" (UIDNEXT 3)\r\n").unwrap();
        assert_eq!(
            (e.name, e.items),
            (b"a".to_vec(), vec![("UIDNEXT".to_string(), 2)])
        );
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"* LIST",
            b"* LIST (",
            b"* LIST () \"/\"",
            b"* LIST () \"/\" \"open",
            b"* LIST () \"/\" {10}\r\nshort",
            b"* LIST () \"ab\" x",
            b"* LIST () \"/\" {99999999999999999999}\r\n",
            b"* STATUS x (MESSAGES)",
            b"* STATUS x (MESSAGES -1)",
            b"* STATUS x (MESSAGES 1) junk",
            b"* FETCH 1 (UID 1)",
            b"* STATUS \"a\\",
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
            assert!(parse_status(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(name in proptest::collection::vec(any::<u8>(), 0..300), plus: bool) {
            let wire = encode(&name).to_wire(plus);
            let (back, rest) = parse_astring(&wire).unwrap();
            prop_assert_eq!(back, name.clone());
            prop_assert!(rest.is_empty());

            let mut list = b"* LIST (\\HasNoChildren) \"/\" ".to_vec();
            list.extend_from_slice(&wire);
            list.extend_from_slice(b"\r\n");
            prop_assert_eq!(parse_list(&list).unwrap().name, name.clone());

            let mut status = b"* STATUS ".to_vec();
            status.extend_from_slice(&wire);
            status.extend_from_slice(b" (MESSAGES 1)\r\n");
            prop_assert_eq!(parse_status(&status).unwrap().name, name);
        }

        #[test]
        fn text_names_round_trip(name in "\\PC{0,200}") {
            let wire = encode(name.as_bytes()).to_wire(false);
            prop_assert_eq!(parse_astring(&wire).unwrap().0, name.as_bytes().to_vec());
        }

        #[test]
        fn parsers_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_list(&input);
            let _ = parse_status(&input);
            let _ = parse_astring(&input);
        }
    }
}
