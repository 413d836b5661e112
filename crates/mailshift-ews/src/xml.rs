//! XML both ways for the SOAP client: [`Writer`] builds request bodies with every text and
//! attribute escaped, and [`parse`] reads an answer into a small namespace-resolved tree
//! ([`Node`]) that the response readers walk by (namespace, local name).

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// Escapes text for element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // A carriage return would be normalized away by the server's parser.
            '\r' => out.push_str("&#13;"),
            // Characters XML 1.0 cannot carry at all are dropped rather than make the whole
            // request malformed.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n') => {}
            c => out.push(c),
        }
    }
    out
}

/// A request body under construction. Names are written with their prefix (`t:Subject`,
/// `m:Items`); the envelope declares `m:` and `t:`.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// `<name a="v" ...>`
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Writer {
        self.start(name, attrs);
        self.out.push('>');
        self
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) -> &mut Writer {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name a="v" .../>`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Writer {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    /// `<name>text</name>`
    pub fn text(&mut self, name: &str, text: &str) -> &mut Writer {
        self.text_with(name, &[], text)
    }

    /// `<name a="v">text</name>`
    pub fn text_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Writer {
        self.open(name, attrs);
        self.out.push_str(&escape(text));
        self.close(name)
    }

    /// Markup built elsewhere (by another [`Writer`]).
    pub fn raw(&mut self, markup: &str) -> &mut Writer {
        self.out.push_str(markup);
        self
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.out.push_str(&escape(value));
            self.out.push('"');
        }
    }
}

/// One element of an answer: namespace URI, local name, attributes (by local name), child
/// elements and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with this local name (EWS answers never mix two namespaces under one
    /// local name).
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of local names.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    /// The text of a child, when present and not empty.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The first descendant (depth first, this node included) with this local name.
    pub fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

/// Reads a whole document into a tree; the error says where it stopped being XML.
pub fn parse(text: &str) -> Result<Node, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok(read) => read,
            Err(e) => {
                let at = reader.error_position();
                return Err(format!("not well-formed XML at byte {at}: {e}"));
            }
        };
        let ns = match ns {
            ResolveResult::Bound(n) => n.as_ref().to_owned(),
            _ => String::new(),
        };
        match event {
            Event::Start(start) => stack.push(open(ns, &start)?),
            Event::Empty(start) => {
                let node = open(ns, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("an end tag without its start")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match r.xml10_content().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity &{other};")),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            Event::Eof => return Err("the document ends before its root element closes".into()),
            _ => {}
        }
    }
}

fn open(ns: String, start: &BytesStart<'_>) -> Result<Node, String> {
    let name = start.local_name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute on <{name}>: {e}"))?;
        let key = attr.key.as_ref();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("bad attribute value on <{name}>: {e}"))?
            .into_owned();
        let local = attr.key.local_name().as_ref().to_owned();
        attrs.push((local, value));
    }
    Ok(Node {
        ns,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut w = Writer::new();
        w.text_with("t:Subject", &[("Key", "a\"b")], "x < y & z\r");
        assert_eq!(
            w.finish(),
            "<t:Subject Key=\"a&quot;b\">x &lt; y &amp; z&#13;</t:Subject>"
        );
    }

    #[test]
    fn a_tree_is_read_with_namespaces_and_entities() {
        let node = parse(
            r#"<?xml version="1.0"?><s:E xmlns:s="urn:s" xmlns:t="urn:t"><t:A Id="1">x &amp; y</t:A><t:B/></s:E>"#,
        )
        .unwrap();
        assert_eq!(node.ns, "urn:s");
        let a = node.child("A").unwrap();
        assert_eq!(
            (a.ns.as_str(), a.attr("Id"), a.text.as_str()),
            ("urn:t", Some("1"), "x & y")
        );
        assert!(node.child("B").is_some());
        assert!(parse("<a><b></a>").is_err());
    }
}
