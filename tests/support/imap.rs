//! A tiny synchronous IMAP client for tests: seeds and checks mailboxes independently of
//! mailshift's own IMAP code, so a bug there cannot hide itself. Deliberately plain: one
//! command at a time, synchronizing literals only, no extensions assumed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// A parsed piece of server data. Quoted strings and literals are both `Str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
}

impl Value {
    fn as_text(&self) -> Option<String> {
        match self {
            Value::Atom(a) => Some(a.clone()),
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// One server response: text pieces with the literals that followed them, in order.
#[derive(Debug, Clone)]
pub struct Response {
    chunks: Vec<Chunk>,
}

#[derive(Debug, Clone)]
enum Chunk {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

impl Response {
    /// The response as one readable line (literals summarized), for error messages.
    pub fn line(&self) -> String {
        self.chunks
            .iter()
            .map(|c| match c {
                Chunk::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Chunk::Literal(l) => format!("{{{} bytes}}", l.len()),
            })
            .collect()
    }

    /// The first line's text (before any literal).
    fn head(&self) -> String {
        match self.chunks.first() {
            Some(Chunk::Text(t)) => String::from_utf8_lossy(t).into_owned(),
            _ => String::new(),
        }
    }

    /// The response tokenized into values (the leading `*` or tag included as an atom).
    pub fn values(&self) -> Result<Vec<Value>, String> {
        let mut tokens = Vec::new();
        for chunk in &self.chunks {
            match chunk {
                Chunk::Text(t) => {
                    tokenize(t, &mut tokens).map_err(|e| format!("{e} in {:?}", self.line()))?
                }
                Chunk::Literal(l) => tokens.push(Token::Value(Value::Str(l.clone()))),
            }
        }
        let mut iter = tokens.into_iter();
        let values = parse_values(&mut iter, false)?;
        Ok(values)
    }
}

enum Token {
    Open,
    Close,
    Value(Value),
}

fn tokenize(text: &[u8], out: &mut Vec<Token>) -> Result<(), String> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            s.push(*text.get(i + 1).ok_or("dangling backslash")?);
                            i += 2;
                        }
                        Some(&b) => {
                            s.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token::Value(Value::Str(s)));
            }
            _ => {
                // An atom; a `[...]` section inside it (BODY[], [UIDVALIDITY 1]) may hold
                // spaces and parentheses.
                let start = i;
                let mut depth = 0;
                while i < text.len() {
                    match text[i] {
                        b'[' => depth += 1,
                        b']' if depth > 0 => depth -= 1,
                        b' ' | b'(' | b')' | b'"' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                let atom = String::from_utf8_lossy(&text[start..i]).into_owned();
                out.push(Token::Value(if atom.eq_ignore_ascii_case("NIL") {
                    Value::Nil
                } else {
                    Value::Atom(atom)
                }));
            }
        }
    }
    Ok(())
}

fn parse_values(
    tokens: &mut impl Iterator<Item = Token>,
    nested: bool,
) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    while let Some(token) = tokens.next() {
        match token {
            Token::Open => values.push(Value::List(parse_values(tokens, true)?)),
            Token::Close if nested => return Ok(values),
            Token::Close => return Err("unbalanced ')'".into()),
            Token::Value(v) => values.push(v),
        }
    }
    if nested {
        Err("unbalanced '('".into())
    } else {
        Ok(values)
    }
}

/// State reported by SELECT/EXAMINE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mailbox {
    pub exists: u32,
    pub uidvalidity: u32,
    pub uidnext: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub uid: u32,
    /// Sorted, without `\Recent` (session state, not a property of the message).
    pub flags: Vec<String>,
    /// As the server formats it, e.g. `01-Feb-2024 17:00:00 +0000`.
    pub internal_date: String,
    pub bytes: Vec<u8>,
}

/// FETCH data gathered for one sequence number.
#[derive(Default)]
struct PartialMessage {
    uid: Option<u32>,
    flags: Option<Vec<String>>,
    internal_date: Option<String>,
    bytes: Option<Vec<u8>>,
}

/// `(attributes, delimiter, name)` from LIST; the name is as sent (modified UTF-7).
pub type ListEntry = (Vec<String>, Option<char>, String);

pub struct ImapClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    /// The server's greeting line.
    pub greeting: String,
}

impl ImapClient {
    pub fn connect(port: u16) -> Result<ImapClient, String> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| format!("connect to port {port}: {e}"))?;
        // A stuck server must fail the test, not hang it.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut client = ImapClient {
            reader: BufReader::new(stream),
            writer,
            next_tag: 1,
            greeting: String::new(),
        };
        let greeting = client.read_response()?;
        client.greeting = greeting.line();
        if !client.greeting.starts_with("* OK") {
            return Err(format!("unexpected greeting: {}", client.greeting));
        }
        Ok(client)
    }

    pub fn login(&mut self, user: &str, pass: &str) -> Result<(), String> {
        self.command(&format!("LOGIN {} {}", quote(user)?, quote(pass)?))
            .map(drop)
    }

    pub fn capabilities(&mut self) -> Result<Vec<String>, String> {
        let responses = self.command("CAPABILITY")?;
        for r in responses {
            let values = r.values()?;
            if matches!(values.get(1), Some(Value::Atom(a)) if a.eq_ignore_ascii_case("CAPABILITY"))
            {
                return Ok(values[2..].iter().filter_map(Value::as_text).collect());
            }
        }
        Err("no CAPABILITY response".into())
    }

    pub fn create(&mut self, folder: &str) -> Result<(), String> {
        self.command(&format!("CREATE {}", quote(folder)?))
            .map(drop)
    }

    /// Appends one message with a synchronizing literal (waits for the server's `+`, so it
    /// works on servers without LITERAL+). `internal_date` as in IMAP, e.g.
    /// `"01-Feb-2024 10:00:00 +0000"` without the quotes. Returns the APPENDUID uid if the
    /// server reports one.
    pub fn append(
        &mut self,
        folder: &str,
        flags: &[&str],
        internal_date: Option<&str>,
        bytes: &[u8],
    ) -> Result<Option<u32>, String> {
        let mut cmd = format!("APPEND {} ({})", quote(folder)?, flags.join(" "));
        if let Some(date) = internal_date {
            cmd.push_str(&format!(" {}", quote(date)?));
        }
        cmd.push_str(&format!(" {{{}}}", bytes.len()));
        let tag = self.send(&cmd)?;
        loop {
            let r = self.read_response()?;
            let head = r.head();
            if head.starts_with('+') {
                break;
            }
            if let Some(rest) = head.strip_prefix(&format!("{tag} ")) {
                return Err(format!("APPEND refused before the literal: {tag} {rest}"));
            }
        }
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.write_all(b"\r\n"))
            .map_err(|e| format!("sending APPEND literal: {e}"))?;
        let (_, done) = self.finish(&tag)?;
        Ok(response_code_number(&done, "APPENDUID", 2))
    }

    pub fn select(&mut self, folder: &str) -> Result<Mailbox, String> {
        self.open_mailbox("SELECT", folder)
    }

    /// Like `select`, read-only: fetching through it changes nothing on the server.
    pub fn examine(&mut self, folder: &str) -> Result<Mailbox, String> {
        self.open_mailbox("EXAMINE", folder)
    }

    fn open_mailbox(&mut self, verb: &str, folder: &str) -> Result<Mailbox, String> {
        let responses = self.command(&format!("{verb} {}", quote(folder)?))?;
        let mut mailbox = Mailbox {
            exists: 0,
            uidvalidity: 0,
            uidnext: 0,
        };
        for r in &responses {
            let line = r.line();
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() >= 3 && words[2].eq_ignore_ascii_case("EXISTS") {
                mailbox.exists = words[1]
                    .parse()
                    .map_err(|_| format!("bad EXISTS: {line}"))?;
            }
            if let Some(n) = response_code_number(&line, "UIDVALIDITY", 1) {
                mailbox.uidvalidity = n;
            }
            if let Some(n) = response_code_number(&line, "UIDNEXT", 1) {
                mailbox.uidnext = n;
            }
        }
        if mailbox.uidvalidity == 0 || mailbox.uidnext == 0 {
            return Err(format!(
                "{verb} {folder}: no UIDVALIDITY/UIDNEXT in the response"
            ));
        }
        Ok(mailbox)
    }

    /// Every selectable folder (LIST without `\Noselect` ones) with all its messages, as
    /// [`Self::uid_fetch_all`] reads them: what a test compares a server against.
    pub fn mailboxes(
        &mut self,
    ) -> Result<std::collections::BTreeMap<String, Vec<Message>>, String> {
        let names: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|(attrs, _, _)| !attrs.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect")))
            .map(|(_, _, name)| name)
            .collect();
        names
            .into_iter()
            .map(|name| Ok((name.clone(), self.uid_fetch_all(&name)?)))
            .collect()
    }

    /// Every message of `folder` (EXAMINEd, bodies with BODY.PEEK so nothing changes), in UID
    /// order. Bodies are read by the literal's byte count, so any content survives.
    pub fn uid_fetch_all(&mut self, folder: &str) -> Result<Vec<Message>, String> {
        let mailbox = self.examine(folder)?;
        if mailbox.exists == 0 {
            return Ok(Vec::new());
        }
        let responses = self.command("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])")?;
        // Keyed by sequence number: a server may split one message's data over several
        // FETCH responses.
        let mut partial: std::collections::BTreeMap<u32, PartialMessage> = Default::default();
        for r in &responses {
            let values = r.values()?;
            let [_, Value::Atom(seq), Value::Atom(kind), Value::List(items)] = values.as_slice()
            else {
                continue;
            };
            if !kind.eq_ignore_ascii_case("FETCH") {
                continue;
            }
            let seq: u32 = seq
                .parse()
                .map_err(|_| format!("bad FETCH: {}", r.line()))?;
            let entry = partial.entry(seq).or_default();
            for pair in items.chunks(2) {
                let [Value::Atom(key), value] = pair else {
                    return Err(format!("bad FETCH item in {}", r.line()));
                };
                match (key.to_ascii_uppercase().as_str(), value) {
                    ("UID", Value::Atom(n)) => {
                        entry.uid = Some(n.parse().map_err(|_| format!("bad UID: {}", r.line()))?)
                    }
                    ("FLAGS", Value::List(flags)) => {
                        entry.flags = Some(flags.iter().filter_map(Value::as_text).collect())
                    }
                    ("INTERNALDATE", Value::Str(d)) => {
                        entry.internal_date = Some(String::from_utf8_lossy(d).into_owned())
                    }
                    ("BODY[]", Value::Str(b)) => entry.bytes = Some(b.clone()),
                    _ => {}
                }
            }
        }
        let mut messages = Vec::new();
        for (seq, p) in partial {
            let (Some(uid), Some(flags), Some(internal_date), Some(bytes)) =
                (p.uid, p.flags, p.internal_date, p.bytes)
            else {
                return Err(format!("message {seq} in {folder}: incomplete FETCH data"));
            };
            let mut flags: Vec<String> = flags
                .into_iter()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .collect();
            flags.sort();
            messages.push(Message {
                uid,
                flags,
                internal_date,
                bytes,
            });
        }
        messages.sort_by_key(|m| m.uid);
        if messages.len() != mailbox.exists as usize {
            return Err(format!(
                "{folder}: EXAMINE said {} messages, FETCH returned {}",
                mailbox.exists,
                messages.len()
            ));
        }
        Ok(messages)
    }

    /// All folders: `LIST "" "*"`.
    pub fn list(&mut self) -> Result<Vec<ListEntry>, String> {
        let responses = self.command("LIST \"\" \"*\"")?;
        let mut entries = Vec::new();
        for r in &responses {
            let values = r.values()?;
            let [_, Value::Atom(kind), Value::List(attrs), delimiter, name] = values.as_slice()
            else {
                continue;
            };
            if !kind.eq_ignore_ascii_case("LIST") {
                continue;
            }
            let delimiter = match delimiter {
                Value::Nil => None,
                other => other
                    .as_text()
                    .and_then(|d| d.chars().next())
                    .map(Some)
                    .ok_or_else(|| format!("bad LIST delimiter: {}", r.line()))?,
            };
            let name = name
                .as_text()
                .ok_or_else(|| format!("bad LIST name: {}", r.line()))?;
            entries.push((
                attrs.iter().filter_map(Value::as_text).collect(),
                delimiter,
                name,
            ));
        }
        Ok(entries)
    }

    pub fn logout(mut self) -> Result<(), String> {
        self.command("LOGOUT").map(drop)
    }

    /// Sends one command and collects its untagged responses; Err with the server's line
    /// unless it ends in OK.
    pub fn command(&mut self, command: &str) -> Result<Vec<Response>, String> {
        let tag = self.send(command)?;
        let (untagged, _) = self.finish(&tag)?;
        Ok(untagged)
    }

    fn send(&mut self, command: &str) -> Result<String, String> {
        let tag = format!("T{}", self.next_tag);
        self.next_tag += 1;
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .map_err(|e| format!("sending {command:?}: {e}"))?;
        Ok(tag)
    }

    /// Reads up to the tagged response: (untagged responses, tagged line).
    fn finish(&mut self, tag: &str) -> Result<(Vec<Response>, String), String> {
        let mut untagged = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let r = self.read_response()?;
            let head = r.head();
            if let Some(rest) = head.strip_prefix(&prefix) {
                let line = r.line();
                return if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("OK") {
                    Ok((untagged, line))
                } else {
                    Err(line)
                };
            }
            if head.starts_with('+') {
                return Err(format!("unexpected continuation: {}", r.line()));
            }
            untagged.push(r);
        }
    }

    /// One response, literals included: a line ending in `{N}` is followed by exactly N
    /// bytes and then the rest of the response.
    fn read_response(&mut self) -> Result<Response, String> {
        let mut chunks = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("reading from server: {e}"))?;
            if n == 0 || !line.ends_with(b"\n") {
                return Err(format!(
                    "connection closed by server after {:?}",
                    Response { chunks }.line()
                ));
            }
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
            match literal_size(&line) {
                Some((start, size)) => {
                    line.truncate(start);
                    chunks.push(Chunk::Text(line));
                    let mut literal = vec![0; size];
                    self.reader
                        .read_exact(&mut literal)
                        .map_err(|e| format!("reading a {size}-byte literal: {e}"))?;
                    chunks.push(Chunk::Literal(literal));
                }
                None => {
                    chunks.push(Chunk::Text(line));
                    return Ok(Response { chunks });
                }
            }
        }
    }
}

/// If the line ends with a literal announcement `{N}` (or literal8 `~{N}`), where it starts
/// and N.
fn literal_size(line: &[u8]) -> Option<(usize, usize)> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let start = if open > 0 && line[open - 1] == b'~' {
        open - 1
    } else {
        open
    };
    Some((start, size))
}

/// The `index`th word of a `[CODE ...]` response code, as a number.
fn response_code_number(line: &str, code: &str, index: usize) -> Option<u32> {
    let start = line.find(&format!("[{code} "))?;
    let inner = &line[start + 1..];
    let inner = &inner[..inner.find(']')?];
    inner.split_whitespace().nth(index)?.parse().ok()
}

/// An IMAP quoted string. Names are modified UTF-7 and so ASCII; anything else would need a
/// literal, which this client does not bother with.
pub fn quote(s: &str) -> Result<String, String> {
    if s.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(format!("cannot quote {s:?}: only printable ASCII"));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}
