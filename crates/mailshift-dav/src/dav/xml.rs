//! DAV's XML: multistatus answers read into a small namespace-resolved tree, and the request
//! bodies the client sends.
//!
//! Answers are read whole into [`Element`]s (a multiget chunk is at most a few megabytes) so
//! that servers' quirks are absorbed in one place: absolute URLs in hrefs, a `prop` without
//! its `propstat`, prefixes bound anywhere. Text is kept as the server sent it, line endings
//! included: an object's data must stay byte for byte what the server holds.

use percent_encoding::percent_decode_str;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use reqwest::Url;

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
pub const APPLE: &str = "http://apple.com/ns/ical/";
pub const CALSERVER: &str = "http://calendarserver.org/ns/";

/// One element: its namespace, local name, attributes (by local name), children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text, trimmed; `None` when empty.
    pub fn trimmed(&self) -> Option<String> {
        let text = self.text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// The first descendant with this name (depth first).
    pub fn find(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.is(ns, name) {
                Some(c)
            } else {
                c.find(ns, name)
            }
        })
    }
}

/// Deeper than any DAV answer: the tree is walked and dropped recursively, so a hostile
/// server must not make it arbitrarily deep.
const MAX_DEPTH: usize = 64;

/// Reads a document into its root element.
pub fn parse(body: &[u8]) -> Result<Element, String> {
    let text = String::from_utf8_lossy(body);
    let mut reader = quick_xml::NsReader::from_str(&text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let at = reader.buffer_position();
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("invalid XML after byte {at}: {e}"))?;
        let ns = match resolved {
            ResolveResult::Bound(ns) => ns.as_ref().to_string(),
            _ => String::new(),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                let mut element = Element {
                    ns,
                    name: start.local_name().as_ref().to_string(),
                    ..Element::default()
                };
                for attribute in start.attributes().flatten() {
                    let value = attribute
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|v| v.into_owned())
                        .unwrap_or_else(|_| attribute.value.to_string());
                    element
                        .attributes
                        .push((attribute.key.local_name().as_ref().to_string(), value));
                }
                if is_empty {
                    attach(&mut stack, &mut root, element);
                } else if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("an end tag without its start")?;
                attach(&mut stack, &mut root, element);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(t.as_ref());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(t.as_ref());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name: String = r.as_ref().to_string();
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        top.text.push(c);
                    } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                        top.text.push_str(s);
                    } else {
                        top.text.push_str(&format!("&{name};"));
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "the document is empty".into())
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => {
            if root.is_none() {
                *root = Some(element);
            }
        }
    }
}

/// One `response` of a multistatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The decoded absolute path.
    pub href: String,
    /// The response's own status (sync-collection's 404 for a removed member), if any.
    pub status: Option<u16>,
    /// Each property with the status of its propstat.
    pub props: Vec<(u16, Element)>,
    /// The response's `error` element, if any.
    pub error: Option<Element>,
}

impl Response {
    /// A property the server returned with a 2xx status.
    pub fn prop(&self, ns: &str, name: &str) -> Option<&Element> {
        self.props
            .iter()
            .find(|(status, p)| (200..300).contains(status) && p.is(ns, name))
            .map(|(_, p)| p)
    }

    /// The text of a 2xx property, trimmed and not empty.
    pub fn text(&self, ns: &str, name: &str) -> Option<String> {
        self.prop(ns, name).and_then(Element::trimmed)
    }

    /// The decoded hrefs inside a 2xx property (home sets, principals).
    pub fn hrefs(&self, ns: &str, name: &str, base: &Url) -> Vec<String> {
        self.prop(ns, name)
            .map(|p| {
                p.children_named(DAV, "href")
                    .filter_map(|h| h.trimmed())
                    .map(|h| normalize_href(&h, base))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_collection(&self) -> bool {
        self.has_type(DAV, "collection")
    }

    /// Whether `resourcetype` holds this element.
    pub fn has_type(&self, ns: &str, name: &str) -> bool {
        self.prop(DAV, "resourcetype")
            .is_some_and(|t| t.child(ns, name).is_some())
    }
}

/// A multistatus answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multistatus {
    pub responses: Vec<Response>,
    /// sync-collection's new token.
    pub sync_token: Option<String>,
}

/// Reads a multistatus; hrefs are resolved against `base` (the URL that answered).
pub fn multistatus(body: &[u8], base: &Url) -> Result<Multistatus, String> {
    let root = parse(body)?;
    if !root.is(DAV, "multistatus") {
        return Err(format!(
            "expected a DAV multistatus, got <{}> ({})",
            root.name, root.ns
        ));
    }
    let mut out = Multistatus {
        responses: Vec::new(),
        sync_token: root.child(DAV, "sync-token").and_then(Element::trimmed),
    };
    for response in root.children_named(DAV, "response") {
        let status = response
            .child(DAV, "status")
            .and_then(|s| parse_status(&s.text));
        let mut props = Vec::new();
        for propstat in response.children_named(DAV, "propstat") {
            let status = propstat
                .child(DAV, "status")
                .and_then(|s| parse_status(&s.text))
                .unwrap_or(200);
            for prop in propstat.children_named(DAV, "prop") {
                props.extend(prop.children.iter().map(|p| (status, p.clone())));
            }
        }
        // Some servers put `prop` straight in the response: take it as found.
        for prop in response.children_named(DAV, "prop") {
            props.extend(prop.children.iter().map(|p| (200, p.clone())));
        }
        let error = response.child(DAV, "error").cloned();
        for href in response.children_named(DAV, "href") {
            let Some(raw) = href.trimmed() else { continue };
            out.responses.push(Response {
                href: normalize_href(&raw, base),
                status,
                props: props.clone(),
                error: error.clone(),
            });
        }
    }
    Ok(out)
}

/// `HTTP/1.1 404 Not Found` → 404.
pub fn parse_status(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An href as the server wrote it (a path, an absolute URL, or relative to the request)
/// made into a decoded absolute path.
pub fn normalize_href(raw: &str, base: &Url) -> String {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    let path = match Url::parse(raw) {
        Ok(url) => url.path().to_string(),
        // Xandikos 0.2 writes some absolute URLs with their `:` encoded (`http%3A//host/x`).
        Err(_) if decoded.starts_with("http://") || decoded.starts_with("https://") => {
            return match Url::parse(&decoded) {
                // The parser encodes what the decoding freed (spaces): undo that.
                Ok(url) => percent_decode_str(url.path())
                    .decode_utf8_lossy()
                    .into_owned(),
                Err(_) => decoded.into_owned(),
            };
        }
        Err(_) => match base.join(raw) {
            Ok(url) => url.path().to_string(),
            Err(_) => raw.to_string(),
        },
    };
    percent_decode_str(&path).decode_utf8_lossy().into_owned()
}

/// Whether two hrefs name the same resource (a collection is sometimes written without its
/// trailing slash).
pub fn same_href(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Whether a `DAV:error` body (of a 403/409...) names this precondition.
pub fn error_names(body: &[u8], ns: &str, name: &str) -> Option<Element> {
    let root = parse(body).ok()?;
    if root.is(ns, name) {
        return Some(root);
    }
    root.find(ns, name).cloned()
}

/// Text escaped for an XML body.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;
const NAMESPACES: &str = r#"xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:I="http://apple.com/ns/ical/" xmlns:CS="http://calendarserver.org/ns/""#;

/// A PROPFIND for these properties (`"D:getetag"`, with the prefixes of [`NAMESPACES`]).
pub fn propfind(props: &[&str]) -> String {
    let props: String = props.iter().map(|p| format!("<{p}/>")).collect();
    format!("{HEAD}<D:propfind {NAMESPACES}><D:prop>{props}</D:prop></D:propfind>")
}

/// sync-collection (RFC 6578) from `token`, asking for ETags.
pub fn sync_collection(token: &str) -> String {
    format!(
        "{HEAD}<D:sync-collection {NAMESPACES}><D:sync-token>{}</D:sync-token>\
         <D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>",
        escape(token)
    )
}

/// addressbook-multiget or calendar-multiget of these (encoded) hrefs.
pub fn multiget(card: bool, encoded_hrefs: &[String]) -> String {
    let (report, data) = if card {
        ("CR:addressbook-multiget", "CR:address-data")
    } else {
        ("C:calendar-multiget", "C:calendar-data")
    };
    let hrefs: String = encoded_hrefs
        .iter()
        .map(|h| format!("<D:href>{}</D:href>", escape(h)))
        .collect();
    format!("{HEAD}<{report} {NAMESPACES}><D:prop><D:getetag/><{data}/></D:prop>{hrefs}</{report}>")
}

/// The properties a new collection is created with: `(element, value)` pairs, already XML.
pub fn set_props(props: &[String]) -> String {
    format!("<D:set><D:prop>{}</D:prop></D:set>", props.concat())
}

/// Extended MKCOL (RFC 5689) of an address book.
pub fn mkcol_addressbook(props: &[String]) -> String {
    let mut all = vec!["<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>".into()];
    all.extend_from_slice(props);
    format!("{HEAD}<D:mkcol {NAMESPACES}>{}</D:mkcol>", set_props(&all))
}

/// MKCALENDAR (RFC 4791).
pub fn mkcalendar(props: &[String]) -> String {
    format!(
        "{HEAD}<C:mkcalendar {NAMESPACES}>{}</C:mkcalendar>",
        set_props(props)
    )
}

/// PROPPATCH setting these properties (for a server that took a plain MKCOL).
pub fn proppatch(props: &[String]) -> String {
    format!(
        "{HEAD}<D:propertyupdate {NAMESPACES}>{}</D:propertyupdate>",
        set_props(props)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://dav.example.com/alice/contacts/").unwrap()
    }

    #[test]
    fn reads_properties_per_propstat_whatever_the_prefixes() {
        let body = br#"<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:x="urn:ietf:params:xml:ns:carddav">
 <response>
  <href>https://dav.example.com/alice/contacts/J%C3%A9r%C3%B4me%20B.vcf</href>
  <propstat><prop><getetag>"e1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><x:address-data/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
 </response>
 <response><href>other.vcf</href><status>HTTP/1.1 404 Not Found</status></response>
 <sync-token>http://x/sync/2</sync-token>
</multistatus>"#;
        let ms = multistatus(body, &base()).unwrap();
        assert_eq!(ms.sync_token.as_deref(), Some("http://x/sync/2"));
        let first = &ms.responses[0];
        assert_eq!(first.href, "/alice/contacts/Jérôme B.vcf");
        assert_eq!(first.text(DAV, "getetag").as_deref(), Some("\"e1\""));
        assert!(first.prop(CARDDAV, "address-data").is_none());
        assert_eq!(ms.responses[1].href, "/alice/contacts/other.vcf");
        assert_eq!(ms.responses[1].status, Some(404));
    }

    #[test]
    fn hrefs_of_every_shape_become_decoded_paths() {
        for (raw, path) in [
            ("/alice/a%20b.vcf", "/alice/a b.vcf"),
            ("https://other.example/alice/x.vcf", "/alice/x.vcf"),
            ("http%3A//127.0.0.1%3A8080/user/x%20y.ics", "/user/x y.ics"),
            ("x.vcf", "/alice/contacts/x.vcf"),
            ("../", "/alice/"),
        ] {
            assert_eq!(normalize_href(raw, &base()), path, "{raw}");
        }
    }

    #[test]
    fn data_keeps_its_line_endings_and_entities() {
        let body = "<D:multistatus xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">\
            <D:response><D:href>/a/b.ics</D:href><D:propstat><D:prop><C:calendar-data>\
            BEGIN:VCALENDAR\r\nSUMMARY:a &amp; b&#13;\nX:&lt;&#x20AC;&gt;\r\nEND:VCALENDAR\r\n\
            </C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>\
            </D:response></D:multistatus>";
        let ms = multistatus(body.as_bytes(), &base()).unwrap();
        assert_eq!(
            ms.responses[0].prop(CALDAV, "calendar-data").unwrap().text,
            "BEGIN:VCALENDAR\r\nSUMMARY:a & b\r\nX:<€>\r\nEND:VCALENDAR\r\n"
        );
    }

    #[test]
    fn a_prop_without_propstat_is_taken_as_found() {
        let body = br#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/x/</d:href>
            <d:prop><d:displayname>X</d:displayname></d:prop></d:response></d:multistatus>"#;
        let ms = multistatus(body, &base()).unwrap();
        assert_eq!(
            ms.responses[0].text(DAV, "displayname").as_deref(),
            Some("X")
        );
    }

    #[test]
    fn bad_xml_is_an_error_not_a_panic() {
        for body in [&b""[..], b"<a>", b"<a></b>", b"not xml", b"<x:a/>"] {
            let _ = multistatus(body, &base());
        }
        assert!(multistatus(b"<a xmlns='DAV:'/>", &base()).is_err());
        let deep = "<a>".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn precondition_errors_are_found_with_their_href() {
        let body = br#"<?xml version="1.0"?><D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><C:no-uid-conflict><D:href>/a/x.vcf</D:href></C:no-uid-conflict></D:error>"#;
        let e = error_names(body, CARDDAV, "no-uid-conflict").unwrap();
        assert_eq!(e.child(DAV, "href").unwrap().text, "/a/x.vcf");
        assert!(error_names(body, CALDAV, "no-uid-conflict").is_none());
    }

    #[test]
    fn request_bodies_are_well_formed() {
        for body in [
            propfind(&["D:getetag", "CS:getctag"]),
            sync_collection("a<b"),
            multiget(true, &["/a/b%20c.vcf".into()]),
            mkcol_addressbook(&["<D:displayname>x &amp; y</D:displayname>".into()]),
            mkcalendar(&[]),
            proppatch(&[]),
        ] {
            parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        }
    }
}
