//! IMAP on the wire, as much as the Gmail proxy must understand: whole commands and responses
//! (a line, and for each `{n}` that ends it, n bytes and the rest of the line), and their
//! arguments as tokens the proxy can edit and write back. Response text (`OK [...] words`)
//! is never tokenized: only LIST, STATUS, FETCH and SEARCH data are.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A literal larger than this is refused (Gmail's APPENDLIMIT, with room for a FETCH answer).
const MAX_LITERAL: usize = 64 * 1024 * 1024;

/// Reads one command or response: its line, and every literal it announces with what follows.
/// `continuation`: for a client's synchronizing literal (`{n}` without `+`), the proxy says
/// `+` itself before reading it. `None` at a clean end of stream.
pub(super) async fn read_unit<R, W>(
    r: &mut R,
    mut continuation: Option<&mut W>,
) -> io::Result<Option<Vec<u8>>>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    loop {
        let start = out.len();
        let n = r.read_until(b'\n', &mut out).await?;
        if n == 0 {
            return if out.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-command",
                ))
            };
        }
        let Some((len, sync)) = literal_at_end(&out[start..]) else {
            return Ok(Some(out));
        };
        if len > MAX_LITERAL {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("literal of {len} bytes is over the limit"),
            ));
        }
        if sync && let Some(w) = continuation.as_deref_mut() {
            w.write_all(b"+ Ready for literal data\r\n").await?;
            w.flush().await?;
        }
        let at = out.len();
        out.resize(at + len, 0);
        r.read_exact(&mut out[at..]).await?;
    }
}

/// `{n}` or `{n+}` (or `{n-}`...) at the end of a line: its length and whether it waits for `+`.
fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits.last() {
        Some(b'+') | Some(b'-') => {
            digits = &digits[..digits.len() - 1];
            false
        }
        _ => true,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, sync))
}

/// One argument of a command, or one item of response data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// Sent as it is: atoms, numbers, flags, `NIL`, `BODY[HEADER.FIELDS (X)]<0.10>`.
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Literal(Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    pub fn atom(s: &str) -> Tok {
        Tok::Atom(s.as_bytes().to_vec())
    }

    /// An astring for `s`: quoted, or a literal when it holds what a quoted string cannot.
    pub fn string(s: &[u8]) -> Tok {
        if s.iter().any(|&b| b == b'\r' || b == b'\n' || b >= 0x80) {
            Tok::Literal(s.to_vec())
        } else {
            Tok::Quoted(s.to_vec())
        }
    }

    /// The text of an atom, quoted string or literal.
    pub fn text(&self) -> Option<&[u8]> {
        match self {
            Tok::Atom(b) | Tok::Quoted(b) | Tok::Literal(b) => Some(b),
            Tok::List(_) => None,
        }
    }

    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(self.text().unwrap_or_default()).into_owned()
    }

    pub fn is_atom(&self, s: &str) -> bool {
        matches!(self, Tok::Atom(b) if b.eq_ignore_ascii_case(s.as_bytes()))
    }
}

/// Parses arguments up to the end of `bytes` (a final CRLF is allowed).
pub(super) fn parse(bytes: &[u8]) -> Result<Vec<Tok>, String> {
    let mut p = Parser { b: bytes, i: 0 };
    let toks = p.seq(false)?;
    Ok(toks)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn seq(&mut self, in_list: bool) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        loop {
            while self.i < self.b.len() && self.b[self.i] == b' ' {
                self.i += 1;
            }
            match self.b.get(self.i) {
                None | Some(b'\r') | Some(b'\n') if !in_list => return Ok(out),
                None => return Err("unterminated list".into()),
                Some(b')') if in_list => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'(') => {
                    self.i += 1;
                    out.push(Tok::List(self.seq(true)?));
                }
                Some(b'"') => out.push(self.quoted()?),
                Some(b'{') => out.push(self.literal()?),
                Some(b'~') if self.b.get(self.i + 1) == Some(&b'{') => {
                    self.i += 1;
                    out.push(self.literal()?);
                }
                Some(b'\r') | Some(b'\n') => return Err("line ends inside a list".into()),
                Some(_) => out.push(self.atom()?),
            }
        }
    }

    fn quoted(&mut self) -> Result<Tok, String> {
        self.i += 1;
        let mut s = Vec::new();
        loop {
            match self.b.get(self.i) {
                None => return Err("unterminated quoted string".into()),
                Some(b'\\') => {
                    s.push(*self.b.get(self.i + 1).ok_or("bad escape")?);
                    self.i += 2;
                }
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Tok::Quoted(s));
                }
                Some(&c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Tok, String> {
        let close = self.b[self.i..]
            .iter()
            .position(|&c| c == b'}')
            .ok_or("unterminated literal length")?;
        let digits: String = String::from_utf8_lossy(&self.b[self.i + 1..self.i + close])
            .trim_end_matches(['+', '-'])
            .to_string();
        let len: usize = digits.parse().map_err(|_| "bad literal length")?;
        self.i += close + 1;
        if self.b.get(self.i) == Some(&b'\r') {
            self.i += 1;
        }
        if self.b.get(self.i) == Some(&b'\n') {
            self.i += 1;
        }
        let end = self.i + len;
        let data = self.b.get(self.i..end).ok_or("literal cut short")?.to_vec();
        self.i = end;
        Ok(Tok::Literal(data))
    }

    /// An atom; a `[` inside it runs to its `]` whatever it holds (`BODY[HEADER.FIELDS (A B)]`).
    fn atom(&mut self) -> Result<Tok, String> {
        let start = self.i;
        let mut depth = 0usize;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' | b'\r' | b'\n' if depth == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        if self.i == start {
            return Err(format!("unexpected byte {:?}", self.b[start] as char));
        }
        Ok(Tok::Atom(self.b[start..self.i].to_vec()))
    }
}

/// Writes tokens separated by spaces. `plus`: literals as `{n+}` (to Dovecot, which takes
/// LITERAL+), else `{n}` (in responses).
pub(super) fn write(toks: &[Tok], plus: bool, out: &mut Vec<u8>) {
    for (i, t) in toks.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        match t {
            Tok::Atom(b) => out.extend_from_slice(b),
            Tok::Quoted(b) => {
                out.push(b'"');
                for &c in b {
                    if c == b'"' || c == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
                out.push(b'"');
            }
            Tok::Literal(b) => {
                out.extend_from_slice(
                    format!("{{{}{}}}\r\n", b.len(), if plus { "+" } else { "" }).as_bytes(),
                );
                out.extend_from_slice(b);
            }
            Tok::List(items) => {
                out.push(b'(');
                write(items, plus, out);
                out.push(b')');
            }
        }
    }
}

/// A whole command line from tokens, CRLF-terminated.
pub(super) fn command(toks: &[Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    write(toks, true, &mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// The tag and status word of a tagged response (`a1 OK ...` → ("a1", "OK")).
pub(super) fn tagged(resp: &[u8]) -> Option<(&[u8], String)> {
    let sp = resp.iter().position(|&b| b == b' ')?;
    let tag = &resp[..sp];
    if tag == b"*" || tag == b"+" {
        return None;
    }
    let rest = &resp[sp + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(rest.len());
    Some((
        tag,
        String::from_utf8_lossy(&rest[..end]).to_ascii_uppercase(),
    ))
}

/// The response text after `TAG STATUS ` (with any `[CODE]`), without the line end.
pub(super) fn tagged_text(resp: &[u8]) -> String {
    let text = String::from_utf8_lossy(resp);
    text.trim_end()
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

/// `* <n> <WORD> <rest>` → (n, WORD, rest) for numbered untagged data (FETCH, EXISTS...).
pub(super) fn numbered(resp: &[u8]) -> Option<(u32, String, &[u8])> {
    let rest = resp.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let n: u32 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let rest = &rest[sp + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(rest.len());
    let word = String::from_utf8_lossy(&rest[..end]).to_ascii_uppercase();
    Some((n, word, rest.get(end + 1..).unwrap_or_default()))
}

/// `* WORD rest` → (WORD, rest) for unnumbered untagged data (LIST, STATUS, SEARCH...).
pub(super) fn untagged(resp: &[u8]) -> Option<(String, &[u8])> {
    let rest = resp.strip_prefix(b"* ")?;
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(rest.len());
    let word = String::from_utf8_lossy(&rest[..end]).to_ascii_uppercase();
    Some((word, rest.get(end + 1..).unwrap_or_default()))
}

/// The items of a FETCH response's list as (name, value) pairs.
pub(super) fn fetch_items(rest: &[u8]) -> Option<Vec<(Tok, Tok)>> {
    let toks = parse(rest).ok()?;
    let Some(Tok::List(items)) = toks.into_iter().next() else {
        return None;
    };
    let mut out = Vec::new();
    let mut it = items.into_iter();
    while let Some(name) = it.next() {
        out.push((name, it.next()?));
    }
    Some(out)
}

/// A FETCH response from its items.
pub(super) fn fetch_response(seq: u32, items: &[(Tok, Tok)]) -> Vec<u8> {
    let flat: Vec<Tok> = items
        .iter()
        .flat_map(|(n, v)| [n.clone(), v.clone()])
        .collect();
    let mut out = format!("* {seq} FETCH ").into_bytes();
    write(&[Tok::List(flat)], false, &mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// The Message-ID in a header block, without folding or surrounding space.
pub(super) fn message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            if value.is_some() {
                break;
            }
            continue;
        }
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line.trim()),
            Some(_) => break,
            None => {
                if let Some((name, rest)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("message-id")
                {
                    value = Some(rest.trim().to_string());
                }
            }
        }
    }
    value.filter(|v| !v.is_empty())
}

/// The header block of a message (up to the first empty line).
pub(super) fn header_block(message: &[u8]) -> &[u8] {
    let crlf = message.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = message.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => &message[..a.min(b) + 2],
        (Some(a), None) => &message[..a + 2],
        (None, Some(b)) => &message[..b + 1],
        (None, None) => message,
    }
}

/// Decodes standard base64 (SASL responses), ignoring anything outside the alphabet.
pub(super) fn base64_decode(text: &[u8]) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for v in text.iter().filter_map(|&c| value(c)) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Whether an IMAP LIST pattern (`*` anything, `%` anything but the delimiter) matches.
pub(super) fn list_match(pattern: &[u8], name: &[u8], delimiter: u8) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| list_match(rest, &name[i..], delimiter)),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != delimiter)
            .any(|i| list_match(rest, &name[i..], delimiter)),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, nr)| n == c && list_match(rest, nr, delimiter)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_write_back() {
        let raw =
            b"a1 UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)] X-GM-LABELS)\r\n";
        let toks = parse(raw).unwrap();
        assert_eq!(toks.len(), 5);
        let Tok::List(items) = &toks[4] else {
            panic!("{toks:?}")
        };
        assert_eq!(
            items[1],
            Tok::atom("BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)]")
        );
        assert_eq!(command(&toks), raw.to_vec());
        let append = b"a2 APPEND \"[Gmail]/All Mail\" (\\Seen) {5}\r\nhello\r\n";
        let toks = parse(append).unwrap();
        assert_eq!(toks[2], Tok::Quoted(b"[Gmail]/All Mail".to_vec()));
        assert_eq!(toks[4], Tok::Literal(b"hello".to_vec()));
        assert_eq!(
            command(&toks),
            b"a2 APPEND \"[Gmail]/All Mail\" (\\Seen) {5+}\r\nhello\r\n".to_vec()
        );
    }

    #[test]
    fn literal_lengths_are_read_from_line_ends() {
        assert_eq!(literal_at_end(b"a APPEND x {12}\r\n"), Some((12, true)));
        assert_eq!(literal_at_end(b"a APPEND x {12+}\r\n"), Some((12, false)));
        assert_eq!(literal_at_end(b"a NOOP\r\n"), None);
        assert_eq!(literal_at_end(b"* OK {x}\r\n"), None);
    }

    #[test]
    fn message_ids_unfold() {
        let h = b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\nDate: y\r\n\r\nbody";
        assert_eq!(message_id(header_block(h)).as_deref(), Some("<a@b>"));
        assert_eq!(message_id(b"Subject: x\r\n\r\n"), None);
    }

    #[test]
    fn patterns_match_like_list() {
        assert!(list_match(b"*", b"[Gmail]/All Mail", b'/'));
        assert!(list_match(b"[Gmail]/%", b"[Gmail]/All Mail", b'/'));
        assert!(!list_match(b"%", b"[Gmail]/All Mail", b'/'));
        assert!(list_match(b"INBOX", b"INBOX", b'/'));
    }

    #[test]
    fn base64_decodes_sasl() {
        assert_eq!(base64_decode(b"AGFsaWNlAHB3"), b"\0alice\0pw".to_vec());
    }
}
