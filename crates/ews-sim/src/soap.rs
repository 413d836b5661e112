//! Writing the simulator's SOAP answers: a small XML writer with the prefixes Microsoft's
//! documentation uses (`soap:`, `m:`, `t:`), envelopes with the `ServerVersionInfo` header
//! Exchange sends, and the SOAP faults Exchange answers schema errors and throttling with.

use crate::xml::{MESSAGES, Name, Node, SOAP11, TYPES};

/// The version the simulator claims (an Exchange 2016 / Exchange Online build): what
/// `ServerVersionInfo` reports.
pub const SERVER_VERSION: &str = "V2016_01_06";

/// Appends XML text. Tags are given with their prefix (`t:Subject`); the envelope declares
/// the prefixes once.
#[derive(Default)]
pub struct W(pub String);

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Carriage returns would be normalised away by the reader otherwise.
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

impl W {
    pub fn open(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        self.start(tag, attrs);
        self.0.push('>');
    }

    fn start(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        self.0.push('<');
        self.0.push_str(tag);
        for (k, v) in attrs {
            self.0.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
    }

    pub fn close(&mut self, tag: &str) {
        self.0.push_str(&format!("</{tag}>"));
    }

    pub fn leaf(&mut self, tag: &str, text: &str) {
        self.0.push_str(&format!("<{tag}>{}</{tag}>", escape(text)));
    }

    /// A stored element, written back with the usual prefixes.
    pub fn node(&mut self, n: &Node) {
        let tag = tag_of(&n.name);
        let foreign = !matches!(n.name.ns.as_str(), MESSAGES | TYPES | SOAP11 | "");
        self.0.push('<');
        self.0.push_str(&tag);
        if foreign {
            self.0
                .push_str(&format!(" xmlns=\"{}\"", escape(&n.name.ns)));
        }
        for (k, v) in &n.attrs {
            // Attributes of the EWS schema are unqualified; others (xml:lang) keep a
            // well-known prefix or are dropped, since nothing in EWS needs them back.
            if k.ns.is_empty() {
                self.0.push_str(&format!(" {}=\"{}\"", k.local, escape(v)));
            }
        }
        if n.children.is_empty() && n.text.is_empty() {
            self.0.push_str("/>");
            return;
        }
        self.0.push('>');
        if n.children.is_empty() {
            self.0.push_str(&escape(&n.text));
        }
        for k in &n.children {
            self.node(k);
        }
        self.0.push_str(&format!("</{tag}>"));
    }
}

fn tag_of(name: &Name) -> String {
    match name.ns.as_str() {
        MESSAGES => format!("m:{}", name.local),
        TYPES => format!("t:{}", name.local),
        SOAP11 => format!("soap:{}", name.local),
        _ => name.local.clone(),
    }
}

/// A `t:` element, for building stored trees.
pub fn t(local: &str) -> Node {
    Node {
        name: Name::new(TYPES, local),
        attrs: Vec::new(),
        prefixes: Vec::new(),
        children: Vec::new(),
        text: String::new(),
        line: 0,
    }
}

pub fn t_text(local: &str, text: &str) -> Node {
    let mut n = t(local);
    n.text = text.to_owned();
    n
}

pub fn with_attrs(mut n: Node, attrs: &[(&str, &str)]) -> Node {
    for (k, v) in attrs {
        n.attrs.push((Name::new("", k), (*v).to_owned()));
    }
    n
}

/// A whole response envelope around `body` (the operation's response element).
pub fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}" xmlns:m="{MESSAGES}" xmlns:t="{TYPES}"><soap:Header><t:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="{SERVER_VERSION}"/></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

/// A SOAP fault as Exchange sends it for request-level errors (schema validation,
/// throttling, impersonation): the response code as `faultcode` and in `detail`, with
/// optional `MessageXml` content (for throttling: `BackOffMilliseconds`).
pub fn fault(code: &str, message: &str, message_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP11}"><s:Body><s:Fault><faultcode xmlns:a="{TYPES}">a:{code}</faultcode><faultstring xml:lang="en-US">{msg}</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{msg}</e:Message><t:MessageXml xmlns:t="{TYPES}">{message_xml}</t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#,
        msg = escape(message)
    )
}
