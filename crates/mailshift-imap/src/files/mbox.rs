//! Reading mbox files: where each message starts and ends, its content hash and what its
//! header says, in one streaming pass (memory holds a line and a header, never the file);
//! then one message's bytes again when it is sent.
//!
//! Separators follow the mbox family (RFC 4155): a line starting with `From ` opens a message
//! when it is the first line, follows an empty line, or carries an asctime date (writers that
//! leave out the empty line still write the date). The empty line before a separator, and the
//! one closing the file, belong to the format, not to the message. Lines of the form
//! `>From `, `>>From `... are unquoted by one `>` (mboxrd); an mboxo file, which quoted only
//! `From ` and so cannot be undone exactly, reads the same way, which restores every line it
//! quoted. Content-Length (mboxcl2) is not honoured: writers that use it also quote.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::Scanned;
use super::headers::{from_line_date, read_header};
use crate::copy::CrlfHasher;

/// Header bytes kept per message to read its flags and dates: far more than any real header.
const HEADER_CAP: usize = 256 * 1024;

/// `>From `, `>>From `...: a quoted body line (mboxrd).
fn is_quoted(line: &[u8]) -> bool {
    let rest = &line[line.iter().take_while(|&&b| b == b'>').count()..];
    line.first() == Some(&b'>') && rest.starts_with(b"From ")
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// The message being read.
struct Open {
    line: u64,
    offset: u64,
    start: u64,
    end: u64,
    hasher: CrlfHasher,
    size: u64,
    header: Vec<u8>,
    in_header: bool,
    from_date: Option<String>,
}

impl Open {
    fn feed(&mut self, bytes: &[u8], end: u64) {
        self.hasher.update(bytes);
        // Sent with CRLF line ends: a bare LF costs one byte more.
        let bare = bytes.ends_with(b"\n") && !bytes.ends_with(b"\r\n");
        self.size += bytes.len() as u64 + u64::from(bare);
        if self.in_header {
            if is_blank(bytes) {
                self.in_header = false;
            } else if self.header.len() < HEADER_CAP {
                self.header.extend_from_slice(bytes);
            }
        }
        self.end = end;
    }

    fn close(self, file: usize, name: &str) -> Scanned {
        let head = read_header(&self.header);
        let problem = if self.size == 0 {
            Some(format!(
                "{name}: line {} (byte {}): an empty message; skipped",
                self.line, self.offset
            ))
        } else if head.fields == 0 {
            Some(format!(
                "{name}: line {} (byte {}): the message that starts here has no header fields; skipped",
                self.line, self.offset
            ))
        } else {
            None
        };
        Scanned {
            file,
            line: self.line,
            offset: self.offset,
            range: (self.start, self.end),
            size: self.size,
            hash: self.hasher.finish(),
            internal_date: self.from_date.or(head.date),
            flags: head.flags,
            message_id: head.message_id,
            problem,
            deleted: head.expunged,
        }
    }
}

/// Every message of the mbox at `path` (shown as `name` in problems). An error means the
/// file cannot be read, or is not an mbox at all; a malformed message is returned with its
/// `problem` set, in its place, so the others keep their positions.
pub(super) fn scan(path: &Path, name: &str, file: usize) -> Result<Vec<Scanned>, String> {
    let f = File::open(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let mut r = BufReader::with_capacity(256 * 1024, f);
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    // An empty line held back: it is the message's unless a separator follows.
    let mut held: Option<(Vec<u8>, u64)> = None;
    let mut line = Vec::new();
    let (mut offset, mut number, mut prev_blank) = (0u64, 0u64, true);
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{name}: line {}: cannot read: {e}", number + 1))?;
        if n == 0 {
            break;
        }
        number += 1;
        let end = offset + n as u64;
        let separator = line.starts_with(b"From ")
            && (prev_blank || open.is_none() || from_line_date(trim_end(&line)).is_some());
        if separator {
            held = None;
            if let Some(m) = open.take() {
                out.push(m.close(file, name));
            }
            open = Some(Open {
                line: number,
                offset,
                start: end,
                end,
                hasher: CrlfHasher::default(),
                size: 0,
                header: Vec::new(),
                in_header: true,
                from_date: from_line_date(trim_end(&line)),
            });
        } else if let Some(m) = open.as_mut() {
            if let Some((blank, at)) = held.take() {
                m.feed(&blank, at);
            }
            if is_blank(&line) {
                held = Some((line.clone(), end));
            } else if is_quoted(&line) {
                m.feed(&line[1..], end);
            } else {
                m.feed(&line, end);
            }
        } else if !is_blank(&line) {
            return Err(format!(
                "{name}: line {number} (byte {offset}): not an mbox file: a message must start \
                 with a `From ` line"
            ));
        }
        prev_blank = is_blank(&line);
        offset = end;
    }
    if let Some(m) = open.take() {
        out.push(m.close(file, name));
    }
    Ok(out)
}

fn trim_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One message's bytes again, unquoted as [`scan`] read them.
pub(super) fn read(path: &Path, range: (u64, u64)) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(range.0))?;
    let len = range.1.saturating_sub(range.0);
    let mut raw = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut raw)?;
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if is_quoted(line) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::content_hash;

    fn messages(text: &[u8]) -> (Vec<Scanned>, Vec<Vec<u8>>) {
        let dir = std::env::temp_dir().join(format!(
            "mailshift-mbox-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.mbox");
        std::fs::write(&path, text).unwrap();
        let found = scan(&path, "t.mbox", 0).unwrap();
        let bodies = found
            .iter()
            .map(|m| read(&path, m.range).unwrap())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        (found, bodies)
    }

    #[test]
    fn messages_split_on_from_lines_and_unquote() {
        let (found, bodies) = messages(
            b"From a@b Mon Jan  1 10:00:00 2024\nSubject: one\nStatus: RO\n\n>From the start\n>>From x\n\nFrom c@d Tue Jan  2 10:00:00 2024\nSubject: two\n\nbody\n\n",
        );
        assert_eq!(found.len(), 2);
        assert_eq!(
            bodies[0],
            b"Subject: one\nStatus: RO\n\nFrom the start\n>From x\n".to_vec()
        );
        assert_eq!(bodies[1], b"Subject: two\n\nbody\n".to_vec());
        assert_eq!(found[0].flags, vec!["\\Seen"]);
        assert_eq!(
            found[0].internal_date.as_deref(),
            Some("01-Jan-2024 10:00:00 +0000")
        );
        for (m, b) in found.iter().zip(&bodies) {
            assert_eq!(m.hash, content_hash(b));
            assert_eq!(
                m.size,
                b.len() as u64 + b.iter().filter(|&&c| c == b'\n').count() as u64
            );
            assert!(m.problem.is_none());
        }
        assert_eq!((found[1].line, found[1].offset), (8, 85));
    }

    #[test]
    fn crlf_and_a_last_message_without_newline() {
        let (found, bodies) = messages(
            b"From a Mon Jan  1 10:00:00 2024\r\nSubject: a\r\n\r\nx\r\n\r\nFrom b Mon Jan  1 10:00:00 2024\r\nSubject: b\r\n\r\nend",
        );
        assert_eq!(
            bodies,
            vec![
                b"Subject: a\r\n\r\nx\r\n".to_vec(),
                b"Subject: b\r\n\r\nend".to_vec()
            ]
        );
        assert_eq!(found[1].size, 17);
    }

    #[test]
    fn thunderbird_s_deleted_messages_keep_their_place_but_are_not_imported() {
        let (found, _) = messages(
            b"From - Mon Jan  1 10:00:00 2024\nX-Mozilla-Status: 0009\nSubject: gone\n\nx\n\nFrom - Mon Jan  1 10:00:00 2024\nX-Mozilla-Status: 0001\nSubject: kept\n\ny\n",
        );
        assert_eq!(found.len(), 2);
        assert!(found[0].deleted && !found[0].importable());
        assert!(found[1].importable());
        assert_eq!(found[1].flags, vec!["\\Seen"]);
    }

    #[test]
    fn a_from_line_inside_a_body_without_date_is_body() {
        let (found, bodies) =
            messages(b"From a Mon Jan  1 10:00:00 2024\nSubject: a\n\nhello\nFrom me to you\n");
        assert_eq!(found.len(), 1);
        assert_eq!(bodies[0], b"Subject: a\n\nhello\nFrom me to you\n".to_vec());
    }

    /// Messages as an mboxrd writer writes them.
    fn write_mboxrd(msgs: &[Vec<String>]) -> Vec<u8> {
        let mut out = String::new();
        for m in msgs {
            out.push_str("From sender Mon Jan  1 10:00:00 2024\n");
            for line in m {
                if line.trim_start_matches('>').starts_with("From ") {
                    out.push('>');
                }
                out.push_str(line);
                out.push('\n');
            }
            out.push('\n');
        }
        out.into_bytes()
    }

    proptest::proptest! {
        #[test]
        fn what_an_mboxrd_writer_wrote_reads_back_the_same(
            msgs in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec![
                        "", "text", "From here", ">From there", ">>From x",
                        "From a Mon Jan  1 10:00:00 2024", "Status: R", "From",
                    ]),
                    0..8,
                ),
                1..5,
            )
        ) {
            let msgs: Vec<Vec<String>> = msgs
                .into_iter()
                .map(|body| {
                    let mut m = vec!["Subject: s".to_string()];
                    m.extend(body.into_iter().map(str::to_string));
                    m
                })
                .collect();
            let (found, bodies) = messages(&write_mboxrd(&msgs));
            let want: Vec<Vec<u8>> = msgs
                .iter()
                .map(|m| m.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect())
                .collect();
            proptest::prop_assert_eq!(bodies, want);
            proptest::prop_assert!(found.iter().all(|m| m.problem.is_none()));
        }

        #[test]
        fn any_bytes_scan_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut text = b"From a Mon Jan  1 10:00:00 2024\n".to_vec();
            text.extend(bytes);
            let (found, bodies) = messages(&text);
            for (m, b) in found.iter().zip(&bodies) {
                proptest::prop_assert_eq!(m.hash, content_hash(b));
            }
        }
    }

    #[test]
    fn malformed_messages_keep_their_place_and_a_non_mbox_is_refused() {
        let (found, _) = messages(
            b"From a Mon Jan  1 10:00:00 2024\nno header here\n\nFrom b Mon Jan  1 10:00:00 2024\nSubject: b\n\nok\n",
        );
        assert_eq!(found.len(), 2);
        let why = found[0].problem.as_deref().unwrap();
        assert!(why.contains("t.mbox: line 1 (byte 0)"), "{why}");
        assert!(found[1].problem.is_none());
        let dir = std::env::temp_dir().join(format!("mailshift-notmbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.mbox");
        std::fs::write(&path, b"\nSubject: hi\n\nbody\n").unwrap();
        let e = scan(&path, "x.mbox", 0).unwrap_err();
        assert!(
            e.contains("x.mbox: line 2 (byte 1): not an mbox file"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
