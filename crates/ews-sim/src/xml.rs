//! A small namespace-resolved XML tree, read with quick-xml: the form in which both the
//! vendored schemas and the SOAP requests reach the checker. A tree (not a stream) because
//! content models are matched against an element's whole list of children.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// Namespaces the checker names often.
pub const XSD: &str = "http://www.w3.org/2001/XMLSchema";
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub const XMLNS_XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const WSDL: &str = "http://schemas.xmlsoap.org/wsdl/";
pub const WSDL_SOAP: &str = "http://schemas.xmlsoap.org/wsdl/soap/";

/// An expanded name: namespace (empty when none) and local part.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    pub ns: String,
    pub local: String,
}

impl Name {
    pub fn new(ns: &str, local: &str) -> Self {
        Name {
            ns: ns.to_owned(),
            local: local.to_owned(),
        }
    }
}

impl std::fmt::Display for Name {
    /// The prefixes of Microsoft's documentation (`m:`, `t:`), so a violation reads like
    /// the EWS reference it can be looked up in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = match self.ns.as_str() {
            MESSAGES => "m:",
            TYPES => "t:",
            XSD => "xs:",
            SOAP11 => "soap:",
            "" => "",
            other => return write!(f, "{{{other}}}{}", self.local),
        };
        write!(f, "{prefix}{}", self.local)
    }
}

/// One element: its name, attributes (expanded names), child elements and text.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: Name,
    pub attrs: Vec<(Name, String)>,
    /// `xmlns` declarations made on this element (prefix, "" for the default), for
    /// resolving QName-valued attributes such as `type="t:ItemType"`.
    pub prefixes: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
    /// 1-based line of the start tag, for errors about the file itself.
    pub line: usize,
}

impl Node {
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n.ns.is_empty() && n.local == local)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements in namespace `ns`.
    pub fn kids<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name.ns == ns)
    }
}

/// Reads a whole document into a tree. `what` names the document in errors.
pub fn parse(what: &str, text: &str) -> Result<Node, String> {
    // The vendored files start with a byte-order mark, which is not markup.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    // Lines are counted as the reader advances: counting from the start at each element
    // would make reading the 470 kB types.xsd quadratic.
    let mut counted = (0usize, 1usize);
    let mut line_at = |pos: u64| {
        let pos = (pos as usize).min(text.len());
        if pos < counted.0 {
            counted = (0, 1);
        }
        counted.1 += text.as_bytes()[counted.0..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted.0 = pos;
        counted.1
    };
    loop {
        let pos = reader.buffer_position();
        let event = match reader.read_resolved_event() {
            Ok((ns, ev)) => (ns_string(&ns), ev),
            Err(e) => {
                let line = line_at(reader.error_position());
                return Err(format!("{what} is not well-formed XML (line {line}): {e}"));
            }
        };
        match event {
            (ns, Event::Start(start)) => stack.push(open(&reader, ns, &start, line_at(pos))?),
            (ns, Event::Empty(start)) => {
                let node = open(&reader, ns, &start, line_at(pos))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            (_, Event::End(_)) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| format!("{what}: unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            (_, Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            (_, Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            (_, Event::GeneralRef(r)) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match r.xml10_content().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("{what}: unknown entity &{other};")),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            (_, Event::Eof) => {
                return Err(format!(
                    "{what}: the document ends before its root element closes"
                ));
            }
            _ => {}
        }
    }
}

fn ns_string(ns: &ResolveResult<'_>) -> String {
    match ns {
        ResolveResult::Bound(n) => n.as_ref().to_owned(),
        _ => String::new(),
    }
}

fn open(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
    line: usize,
) -> Result<Node, String> {
    let local = start.local_name().as_ref().to_owned();
    let mut attrs = Vec::new();
    let mut prefixes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute on <{local}> (line {line}): {e}"))?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("bad attribute value on <{local}> (line {line}): {e}"))?
            .into_owned();
        let key = attr.key.as_ref().to_owned();
        if key == "xmlns" {
            prefixes.push((String::new(), value));
            continue;
        }
        if let Some(p) = key.strip_prefix("xmlns:") {
            prefixes.push((p.to_owned(), value));
            continue;
        }
        let (res, attr_local) = reader.resolver().resolve_attribute(attr.key);
        let attr_local = attr_local.as_ref().to_owned();
        attrs.push((
            Name {
                ns: ns_string(&res),
                local: attr_local,
            },
            value,
        ));
    }
    Ok(Node {
        name: Name { ns, local },
        attrs,
        prefixes,
        children: Vec::new(),
        text: String::new(),
        line,
    })
}
