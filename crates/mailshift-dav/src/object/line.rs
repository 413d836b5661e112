//! Content lines (RFC 5545 §3.1, RFC 6350 §3.2): the physical lines of a vCard or iCalendar
//! body unfolded into logical ones, each split into name, parameters and value, and the
//! BEGIN/END structure above them.
//!
//! Every logical line keeps the byte range it came from, so an object can be cut out of a file
//! or have a single line replaced while every other byte stays as it was (see the `object`
//! module doc for why we never re-serialize). Lenient where servers and exporters are: LF-only
//! line ends, a missing final line end, lowercase names, a leading byte-order mark, vCard 2.1
//! parameters without a name (`TEL;WORK:`) and quoted-printable soft line breaks (phone
//! exports); strict where a mistake would lose or merge data: BEGIN/END must balance.

use super::ParseError;

/// One logical (unfolded) content line.
#[derive(Debug, Clone)]
pub struct Line {
    /// 1-based number of its first physical line.
    pub lineno: usize,
    /// Byte range in the input, from its first byte to after the line end of its last
    /// physical line.
    pub start: usize,
    pub end: usize,
    /// The unfolded text, without its line end.
    pub text: Vec<u8>,
}

/// A content line split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    /// As written (a vCard group prefix `item1.` included).
    pub raw_name: Vec<u8>,
    pub params: Vec<Param>,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// As written.
    pub name: Vec<u8>,
    /// Unquoted values; empty for a vCard 2.1 bare parameter (`TEL;WORK:`).
    pub values: Vec<Vec<u8>>,
    /// False for a bare parameter (no `=`).
    pub has_eq: bool,
    /// A value was written in quotes: a rewrite keeps them.
    pub quoted: bool,
}

impl Prop {
    /// The name in upper case, without a vCard group prefix.
    pub fn name(&self) -> String {
        let name = match self.raw_name.iter().rposition(|&b| b == b'.') {
            Some(dot) => &self.raw_name[dot + 1..],
            None => &self.raw_name[..],
        };
        String::from_utf8_lossy(name).to_ascii_uppercase()
    }

    /// The first value of a parameter (by name, any case).
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|p| p.values.first().map(Vec::as_slice))
    }

    /// The line, serialized: parameter values quoted when they must be.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.raw_name.clone();
        for param in &self.params {
            out.push(b';');
            out.extend_from_slice(&param.name);
            if param.has_eq {
                out.push(b'=');
                for (i, value) in param.values.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if param.quoted {
                        out.push(b'"');
                        out.extend(value.iter().filter(|&&b| b != b'"'));
                        out.push(b'"');
                    } else {
                        push_param_value(&mut out, value);
                    }
                }
            }
        }
        out.push(b':');
        out.extend_from_slice(&self.value);
        out
    }
}

/// A parameter value, quoted when it holds a character that ends an unquoted one.
pub(crate) fn push_param_value(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().any(|b| matches!(b, b':' | b';' | b',')) {
        out.push(b'"');
        // A DQUOTE cannot appear in a quoted value (RFC 5545 §3.1): dropped.
        out.extend(value.iter().filter(|&&b| b != b'"'));
        out.push(b'"');
    } else {
        out.extend_from_slice(value);
    }
}

/// Splits the input into logical lines: a physical line that starts with a space or a tab
/// continues the previous one (the line end and that one character are removed; a UTF-8
/// sequence split across the fold is thus joined again). Blank lines are skipped.
pub(crate) fn unfold(data: &[u8]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    // A byte-order mark (Windows exporters write one) is not part of the first line.
    let mut pos = if data.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut lineno = 0;
    // The last line ended in a quoted-printable soft line break (vCard 2.1).
    let mut qp_open = false;
    while pos < data.len() {
        lineno += 1;
        let (content_end, next) = match data[pos..].iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let nl = pos + nl;
                let content_end = if nl > pos && data[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                (content_end, nl + 1)
            }
            None => {
                let end = data.len();
                let content_end = if data[end - 1] == b'\r' { end - 1 } else { end };
                (content_end, end)
            }
        };
        let physical = &data[pos..content_end];
        let continues = matches!(physical.first(), Some(b' ' | b'\t'));
        match lines.last_mut() {
            Some(last) if qp_open => {
                last.text.pop();
                last.text.extend_from_slice(physical);
                last.end = next;
            }
            Some(last) if continues => {
                last.text.extend_from_slice(&physical[1..]);
                last.end = next;
            }
            _ if physical.iter().all(|b| b.is_ascii_whitespace()) => {}
            _ => lines.push(Line {
                lineno,
                start: pos,
                end: next,
                text: physical.to_vec(),
            }),
        }
        qp_open = lines
            .last()
            .is_some_and(|l| l.end == next && qp_soft_break(&l.text));
        pos = next;
    }
    lines
}

/// A vCard 2.1 line whose value is quoted-printable and ends with `=`: its value goes on
/// on the next physical line, which does not start with a space (RFC 2045 §6.7 rule 5).
fn qp_soft_break(text: &[u8]) -> bool {
    if text.last() != Some(&b'=') {
        return false;
    }
    let head_end = text.iter().position(|&b| b == b':').unwrap_or(text.len());
    let head = text[..head_end].to_ascii_uppercase();
    head.windows(16).any(|w| w == b"QUOTED-PRINTABLE")
}

/// Splits a logical line into name, parameters and value.
pub(crate) fn parse_prop(line: &Line) -> Result<Prop, ParseError> {
    let text = &line.text;
    let err = |message: String| ParseError {
        line: line.lineno,
        message,
    };
    let name_end = text
        .iter()
        .position(|&b| b == b';' || b == b':')
        .ok_or_else(|| {
            err(format!(
                "`{}` is not a content line: a name, then `:` and a value, was expected",
                preview(text)
            ))
        })?;
    let raw_name = text[..name_end].to_vec();
    if raw_name.is_empty()
        || !raw_name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(err(format!(
            "`{}` is not a property name (letters, digits and `-` only)",
            preview(&raw_name)
        )));
    }
    let mut params = Vec::new();
    let mut pos = name_end;
    while text[pos] == b';' {
        pos += 1;
        let pname_start = pos;
        while pos < text.len() && !matches!(text[pos], b'=' | b';' | b':') {
            pos += 1;
        }
        if pos >= text.len() {
            return Err(err(format!(
                "the parameters of `{}` never end: no `:` before the value",
                preview(&raw_name)
            )));
        }
        let pname = text[pname_start..pos].to_vec();
        if text[pos] != b'=' {
            params.push(Param {
                name: pname,
                values: Vec::new(),
                has_eq: false,
                quoted: false,
            });
            continue;
        }
        pos += 1;
        let mut values = Vec::new();
        let mut quoted = false;
        loop {
            if pos < text.len() && text[pos] == b'"' {
                quoted = true;
                let close = text[pos + 1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .ok_or_else(|| {
                        err(format!(
                            "the quoted value of parameter `{}` has no closing `\"`",
                            String::from_utf8_lossy(&pname)
                        ))
                    })?;
                values.push(text[pos + 1..pos + 1 + close].to_vec());
                pos += close + 2;
            } else {
                let start = pos;
                while pos < text.len() && !matches!(text[pos], b',' | b';' | b':') {
                    pos += 1;
                }
                values.push(text[start..pos].to_vec());
            }
            if pos >= text.len() {
                return Err(err(format!(
                    "the parameters of `{}` never end: no `:` before the value",
                    preview(&raw_name)
                )));
            }
            if text[pos] == b',' {
                pos += 1;
                continue;
            }
            break;
        }
        if !matches!(text[pos], b';' | b':') {
            return Err(err(format!(
                "unexpected `{}` after the quoted value of parameter `{}`",
                text[pos] as char,
                String::from_utf8_lossy(&pname)
            )));
        }
        params.push(Param {
            name: pname,
            values,
            has_eq: true,
            quoted,
        });
    }
    Ok(Prop {
        raw_name,
        params,
        value: text[pos + 1..].to_vec(),
    })
}

/// The start of a line, for an error message.
pub(crate) fn preview(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// A component (`BEGIN:X` … `END:X`) as indices into the line list.
#[derive(Debug, Clone)]
pub struct Node {
    /// Upper case.
    pub name: String,
    /// Index of its BEGIN line.
    pub begin: usize,
    /// Index of its END line (`None` when it was never closed: then `error` says so).
    pub end: Option<usize>,
    /// Its own properties (not its children's), parsed, with their line index.
    pub props: Vec<(usize, Prop)>,
    pub children: Vec<Node>,
    /// The first thing wrong inside it or its children.
    pub error: Option<ParseError>,
}

impl Node {
    fn new(name: String, begin: usize) -> Node {
        Node {
            name,
            begin,
            end: None,
            props: Vec::new(),
            children: Vec::new(),
            error: None,
        }
    }

    fn fail(&mut self, error: ParseError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// The first property of that name (upper case), its value as text.
    pub fn value(&self, name: &str) -> Option<String> {
        self.prop(name)
            .map(|p| String::from_utf8_lossy(&p.value).trim().to_string())
    }

    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().map(|(_, p)| p).find(|p| p.name() == name)
    }

    /// Byte range in the input, BEGIN line to END line included.
    pub fn range(&self, lines: &[Line]) -> (usize, usize) {
        let end = self.end.unwrap_or(self.begin);
        (lines[self.begin].start, lines[end].end)
    }
}

/// What a body holds: its top-level components, and what was wrong outside of them.
pub struct Tree {
    pub lines: Vec<Line>,
    pub roots: Vec<Node>,
    /// Lines that belong to no component, END lines without BEGIN.
    pub stray: Vec<ParseError>,
}

fn begin_end(prop: &Prop) -> Option<(bool, String)> {
    if !prop.params.is_empty() {
        return None;
    }
    let name = prop.name();
    let is_begin = match name.as_str() {
        "BEGIN" => true,
        "END" => false,
        _ => return None,
    };
    let value = String::from_utf8_lossy(&prop.value)
        .trim()
        .to_ascii_uppercase();
    Some((is_begin, value))
}

/// Builds the component tree, going on after errors: an unclosed component is closed by the
/// next top-level BEGIN (or the end of input) and marked bad; an END that closes an outer
/// component closes the inner ones too, marked bad.
pub fn tree(data: &[u8]) -> Tree {
    let lines = unfold(data);
    let mut roots: Vec<Node> = Vec::new();
    let mut stray = Vec::new();
    let mut stack: Vec<Node> = Vec::new();

    fn close_into(stack: &mut [Node], roots: &mut Vec<Node>, node: Node) {
        match stack.last_mut() {
            Some(parent) => {
                if let Some(e) = &node.error {
                    parent.fail(e.clone());
                }
                parent.children.push(node);
            }
            None => roots.push(node),
        }
    }
    fn unclosed(node: &Node, lines: &[Line]) -> ParseError {
        ParseError {
            line: lines[node.begin].lineno,
            message: format!(
                "BEGIN:{0} has no END:{0}; add the END:{0} line where it ends",
                node.name
            ),
        }
    }

    for (i, line) in lines.iter().enumerate() {
        let prop = match parse_prop(line) {
            Ok(prop) => prop,
            Err(e) => {
                match stack.last_mut() {
                    Some(node) => node.fail(e),
                    None => stray.push(e),
                }
                continue;
            }
        };
        match begin_end(&prop) {
            Some((true, name)) => {
                if !stack.is_empty() && (name == "VCARD" || name == "VCALENDAR") {
                    while let Some(mut node) = stack.pop() {
                        let e = unclosed(&node, &lines);
                        node.fail(e);
                        close_into(&mut stack, &mut roots, node);
                    }
                }
                stack.push(Node::new(name, i));
            }
            Some((false, name)) => {
                if stack.iter().any(|n| n.name == name) {
                    while let Some(mut node) = stack.pop() {
                        if node.name == name {
                            node.end = Some(i);
                            close_into(&mut stack, &mut roots, node);
                            break;
                        }
                        let e = unclosed(&node, &lines);
                        node.end = Some(i);
                        node.fail(e);
                        close_into(&mut stack, &mut roots, node);
                    }
                } else {
                    let e = ParseError {
                        line: line.lineno,
                        message: format!("END:{name} without a BEGIN:{name}"),
                    };
                    match stack.last_mut() {
                        Some(node) => node.fail(e),
                        None => stray.push(e),
                    }
                }
            }
            None => match stack.last_mut() {
                Some(node) => node.props.push((i, prop)),
                None => stray.push(ParseError {
                    line: line.lineno,
                    message: format!(
                        "`{}` is outside any BEGIN:VCARD or BEGIN:VCALENDAR",
                        preview(&line.text)
                    ),
                }),
            },
        }
    }
    while let Some(mut node) = stack.pop() {
        let e = unclosed(&node, &lines);
        node.end = Some(lines.len() - 1);
        node.fail(e);
        close_into(&mut stack, &mut roots, node);
    }
    Tree {
        lines,
        roots,
        stray,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_crlf_lf_and_utf8_split_across_a_fold() {
        let mut data = b"A:x\r\nB:ab".to_vec();
        data.extend_from_slice(&[0xC3, b'\r', b'\n', b' ', 0xA9]);
        data.extend_from_slice(b"y\nC:1\r\n\tz\n\r\nD:end");
        let lines = unfold(&data);
        let texts: Vec<_> = lines.iter().map(|l| l.text.clone()).collect();
        assert_eq!(texts[0], b"A:x");
        assert_eq!(String::from_utf8(texts[1].clone()).unwrap(), "B:ab\u{e9}y");
        assert_eq!(texts[2], b"C:1z");
        assert_eq!(texts[3], b"D:end");
        assert_eq!(
            lines.iter().map(|l| l.lineno).collect::<Vec<_>>(),
            [1, 2, 4, 7]
        );
        assert_eq!(lines[3].end, data.len());
    }

    #[test]
    fn a_bom_and_vcard_21_quoted_printable_soft_breaks() {
        let data = b"\xEF\xBB\xBFBEGIN:VCARD\r\nVERSION:2.1\r\n\
            N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=89lo=\r\n=C3=AFse;Anne\r\n\
            NOTE;ENCODING=QUOTED-PRINTABLE:a=\r\n\r\nEND:VCARD";
        let lines = unfold(data);
        let texts: Vec<_> = lines.iter().map(|l| l.text.clone()).collect();
        assert_eq!(texts[0], b"BEGIN:VCARD");
        assert_eq!(lines[0].start, 3);
        assert_eq!(
            texts[2],
            b"N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=89lo=C3=AFse;Anne"
        );
        assert_eq!(lines[3].lineno, 5);
        // A blank line after a soft break ends the value.
        assert_eq!(texts[3], b"NOTE;ENCODING=QUOTED-PRINTABLE:a");
        assert_eq!(texts[4], b"END:VCARD");
    }

    #[test]
    fn splits_name_quoted_params_and_value() {
        let line = Line {
            lineno: 3,
            start: 0,
            end: 0,
            text: b"item1.dtstart;TZID=\"W. Europe; Standard:Time\";X=a,\"b,c\":2024:x".to_vec(),
        };
        let prop = parse_prop(&line).unwrap();
        assert_eq!(prop.name(), "DTSTART");
        assert_eq!(prop.param("tzid").unwrap(), b"W. Europe; Standard:Time");
        assert_eq!(prop.params[1].values, vec![b"a".to_vec(), b"b,c".to_vec()]);
        assert_eq!(prop.value, b"2024:x");
        let bare = parse_prop(&Line {
            text: b"TEL;WORK;VOICE:+33".to_vec(),
            ..line.clone()
        })
        .unwrap();
        assert_eq!(bare.params.len(), 2);
        assert!(!bare.params[0].has_eq);
        let bad = parse_prop(&Line {
            text: b"no colon here".to_vec(),
            ..line.clone()
        })
        .unwrap_err();
        assert_eq!(bad.line, 3);
        let bad = parse_prop(&Line {
            text: b"X;P=\"open:value".to_vec(),
            ..line
        })
        .unwrap_err();
        assert!(bad.message.contains("closing"), "{}", bad.message);
    }

    #[test]
    fn tree_recovers_from_an_unclosed_component() {
        let data = b"BEGIN:VCARD\nFN:a\nBEGIN:VCARD\nFN:b\nEND:VCARD\nstray\n";
        let tree = tree(data);
        assert_eq!(tree.roots.len(), 2);
        assert_eq!(tree.roots[0].error.as_ref().unwrap().line, 1);
        assert!(tree.roots[1].error.is_none());
        assert_eq!(tree.stray.len(), 1);
        assert_eq!(tree.stray[0].line, 6);
    }
}
