//! Microsoft's published EWS definitions (`schema/services.wsdl`, `messages.xsd`,
//! `types.xsd`, vendored unchanged; see `schema/README.md`) read into a model the request
//! checker (`check.rs`) walks: the WSDL's operations with the body element and headers each
//! accepts, and the XSDs' global elements, types, groups and substitution groups.
//!
//! Only the part of XML Schema these files use is modelled (complexType, simpleType with
//! enumerations, lists and unions, sequence/choice/all, element refs and substitution
//! groups, model and attribute groups, extension and restriction, xs:any). Anything else the
//! loader meets is listed in `Schema::unsupported`, so a test can prove nothing was skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::xml::{self, MESSAGES, Name, Node, WSDL, WSDL_SOAP, XSD};

const SERVICES_WSDL: &str = include_str!("schema/services.wsdl");
const MESSAGES_XSD: &str = include_str!("schema/messages.xsd");
const TYPES_XSD: &str = include_str!("schema/types.xsd");

/// How often a particle may occur; `max: None` is `unbounded`.
#[derive(Clone, Copy, Debug)]
pub struct Occurs {
    pub min: usize,
    pub max: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum Term {
    /// A local element declaration: its name and type.
    Element {
        name: Name,
        ty: Name,
    },
    /// `<xs:element ref=…>`: the global element or any member of its substitution group.
    Ref(Name),
    Sequence(Vec<Particle>),
    Choice(Vec<Particle>),
    All(Vec<Particle>),
    Group(Name),
    /// `xs:any`: any element, its content not checked (the XSD says `skip` or `lax`).
    Any,
}

#[derive(Clone, Debug)]
pub struct Particle {
    pub term: Term,
    pub occurs: Occurs,
}

#[derive(Clone, Debug)]
pub struct Attr {
    pub name: String,
    pub ty: Name,
    pub required: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Complex {
    /// The base type and whether this type extends it (restriction otherwise).
    pub base: Option<(Name, bool)>,
    pub particle: Option<Particle>,
    pub attrs: Vec<Attr>,
    pub attr_groups: Vec<Name>,
    pub any_attr: bool,
    /// `simpleContent`: text checked against the base's simple type.
    pub simple_content: bool,
    pub mixed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Simple {
    pub base: Option<Name>,
    pub enums: Vec<String>,
    pub list_item: Option<Name>,
    pub union: bool,
}

#[derive(Clone, Debug)]
pub enum Type {
    Complex(Complex),
    Simple(Simple),
}

#[derive(Clone, Debug)]
pub struct GlobalElement {
    pub ty: Name,
    pub is_abstract: bool,
}

/// One WSDL operation: the elements its request and response bodies carry and the headers
/// each may have.
#[derive(Clone, Debug)]
pub struct Operation {
    pub name: String,
    pub body: Name,
    pub headers: Vec<Name>,
    pub response: Name,
    pub response_headers: Vec<Name>,
}

#[derive(Debug, Default)]
pub struct Schema {
    pub elements: HashMap<Name, GlobalElement>,
    pub types: HashMap<Name, Type>,
    pub groups: HashMap<Name, Particle>,
    pub attr_groups: HashMap<Name, (Vec<Attr>, bool)>,
    /// Head of a substitution group → its members (direct ones; the checker follows chains).
    pub substitutes: HashMap<Name, Vec<Name>>,
    /// Operations by body element.
    pub operations: BTreeMap<Name, Operation>,
    /// Schema constructs met but not modelled, with where they are.
    pub unsupported: Vec<String>,
    anon: usize,
}

/// The vendored definitions, read once.
pub fn published() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The files are compiled in and a unit test loads them, so a failure here is a
        // broken build of this crate, not an input error.
        Schema::load().unwrap_or_else(|e| panic!("the vendored EWS schema does not load: {e}"))
    })
}

pub fn xs(local: &str) -> Name {
    Name::new(XSD, local)
}

impl Schema {
    pub fn load() -> Result<Schema, String> {
        let mut schema = Schema::default();
        for (file, text) in [("types.xsd", TYPES_XSD), ("messages.xsd", MESSAGES_XSD)] {
            let root = xml::parse(file, text)?;
            schema.load_xsd(file, &root);
        }
        let wsdl = xml::parse("services.wsdl", SERVICES_WSDL)?;
        schema.load_wsdl(&wsdl)?;
        Ok(schema)
    }

    pub fn resolve_type(&self, name: &Name) -> Option<&Type> {
        self.types.get(name)
    }

    fn load_xsd(&mut self, file: &str, root: &Node) {
        let tns = root.attr("targetNamespace").unwrap_or_default().to_owned();
        let cx = Cx {
            file: file.to_owned(),
            tns,
            prefixes: root.prefixes.clone(),
        };
        for node in root.kids(XSD) {
            let name = || Name::new(&cx.tns, node.attr("name").unwrap_or_default());
            match node.name.local.as_str() {
                "element" => {
                    let ty = self.element_type(&cx, node);
                    if let Some(head) = node.attr("substitutionGroup") {
                        let head = cx.qname(head);
                        self.substitutes.entry(head).or_default().push(name());
                    }
                    let is_abstract = node.attr("abstract") == Some("true");
                    self.elements
                        .insert(name(), GlobalElement { ty, is_abstract });
                }
                "complexType" => {
                    let t = self.complex(&cx, node);
                    self.types.insert(name(), Type::Complex(t));
                }
                "simpleType" => {
                    let t = self.simple(&cx, node);
                    self.types.insert(name(), Type::Simple(t));
                }
                "group" => {
                    let particle = node
                        .kids(XSD)
                        .find(|k| k.name.local != "annotation")
                        .and_then(|k| self.particle(&cx, k));
                    if let Some(p) = particle {
                        self.groups.insert(name(), p);
                    }
                }
                "attributeGroup" => {
                    let mut attrs = Vec::new();
                    let mut any = false;
                    for k in node.kids(XSD) {
                        match k.name.local.as_str() {
                            "attribute" => attrs.push(self.attribute(&cx, k)),
                            "anyAttribute" => any = true,
                            "annotation" => {}
                            other => self.unsupported(&cx, k, other),
                        }
                    }
                    self.attr_groups.insert(name(), (attrs, any));
                }
                "import" | "annotation" | "include" => {}
                other => self.unsupported(&cx, node, other),
            }
        }
    }

    fn unsupported(&mut self, cx: &Cx, node: &Node, what: &str) {
        self.unsupported
            .push(format!("{}:{}: xs:{what}", cx.file, node.line));
    }

    fn anon_name(&mut self) -> Name {
        self.anon += 1;
        Name::new("#anonymous", &self.anon.to_string())
    }

    /// The type of an element declaration: its `type`, its inline type, or xs:anyType.
    fn element_type(&mut self, cx: &Cx, node: &Node) -> Name {
        if let Some(t) = node.attr("type") {
            return cx.qname(t);
        }
        for k in node.kids(XSD) {
            let t = match k.name.local.as_str() {
                "complexType" => Type::Complex(self.complex(cx, k)),
                "simpleType" => Type::Simple(self.simple(cx, k)),
                _ => continue,
            };
            let name = self.anon_name();
            self.types.insert(name.clone(), t);
            return name;
        }
        xs("anyType")
    }

    fn occurs(node: &Node) -> Occurs {
        let min = node
            .attr("minOccurs")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1);
        let max = match node.attr("maxOccurs").map(str::trim) {
            Some("unbounded") => None,
            Some(v) => Some(v.parse().unwrap_or(1)),
            None => Some(1),
        };
        Occurs { min, max }
    }

    fn particle(&mut self, cx: &Cx, node: &Node) -> Option<Particle> {
        let occurs = Self::occurs(node);
        let term = match node.name.local.as_str() {
            "element" => match node.attr("ref") {
                Some(r) => Term::Ref(cx.qname(r)),
                None => {
                    let name = Name::new(&cx.tns, node.attr("name").unwrap_or_default());
                    let ty = self.element_type(cx, node);
                    Term::Element { name, ty }
                }
            },
            "sequence" | "choice" | "all" => {
                let parts: Vec<Particle> = node
                    .kids(XSD)
                    .filter(|k| k.name.local != "annotation")
                    .filter_map(|k| self.particle(cx, k))
                    .collect();
                match node.name.local.as_str() {
                    "sequence" => Term::Sequence(parts),
                    "choice" => Term::Choice(parts),
                    _ => Term::All(parts),
                }
            }
            "group" => Term::Group(cx.qname(node.attr("ref").unwrap_or_default())),
            "any" => Term::Any,
            other => {
                self.unsupported(cx, node, other);
                return None;
            }
        };
        Some(Particle { term, occurs })
    }

    fn attribute(&mut self, cx: &Cx, node: &Node) -> Attr {
        let name = match (node.attr("name"), node.attr("ref")) {
            (Some(n), _) => n.to_owned(),
            // Only `xml:lang`-like refs occur; the checker skips the xml namespace.
            (None, Some(r)) => cx.qname(r).local,
            (None, None) => String::new(),
        };
        let ty = match node.attr("type") {
            Some(t) => cx.qname(t),
            None => match node.kids(XSD).find(|k| k.name.local == "simpleType") {
                Some(k) => {
                    let t = Type::Simple(self.simple(cx, k));
                    let n = self.anon_name();
                    self.types.insert(n.clone(), t);
                    n
                }
                None => xs("anySimpleType"),
            },
        };
        Attr {
            name,
            ty,
            required: node.attr("use") == Some("required"),
        }
    }

    fn complex(&mut self, cx: &Cx, node: &Node) -> Complex {
        let mut t = Complex {
            mixed: node.attr("mixed") == Some("true"),
            ..Complex::default()
        };
        self.complex_body(cx, node, &mut t);
        t
    }

    /// The children of a complexType, or of the extension/restriction inside its
    /// simpleContent/complexContent.
    fn complex_body(&mut self, cx: &Cx, node: &Node, t: &mut Complex) {
        for k in node.kids(XSD) {
            match k.name.local.as_str() {
                "sequence" | "choice" | "all" | "group" => t.particle = self.particle(cx, k),
                "attribute" => {
                    let a = self.attribute(cx, k);
                    t.attrs.push(a);
                }
                "attributeGroup" => t
                    .attr_groups
                    .push(cx.qname(k.attr("ref").unwrap_or_default())),
                "anyAttribute" => t.any_attr = true,
                "simpleContent" | "complexContent" => {
                    t.simple_content = k.name.local == "simpleContent";
                    if k.attr("mixed") == Some("true") {
                        t.mixed = true;
                    }
                    for d in k.kids(XSD) {
                        match d.name.local.as_str() {
                            "extension" | "restriction" => {
                                let base = cx.qname(d.attr("base").unwrap_or_default());
                                t.base = Some((base, d.name.local == "extension"));
                                self.complex_body(cx, d, t);
                            }
                            "annotation" => {}
                            other => self.unsupported(cx, d, other),
                        }
                    }
                }
                // Facets inside a simpleContent restriction: not modelled, the base is.
                "annotation" | "enumeration" | "pattern" | "minLength" | "maxLength" => {}
                other => self.unsupported(cx, k, other),
            }
        }
    }

    fn simple(&mut self, cx: &Cx, node: &Node) -> Simple {
        let mut t = Simple::default();
        for k in node.kids(XSD) {
            match k.name.local.as_str() {
                "restriction" => {
                    t.base = k.attr("base").map(|b| cx.qname(b));
                    for f in k.kids(XSD) {
                        match f.name.local.as_str() {
                            "enumeration" => {
                                t.enums.push(f.attr("value").unwrap_or_default().to_owned())
                            }
                            "simpleType" => {
                                let inner = Type::Simple(self.simple(cx, f));
                                let n = self.anon_name();
                                self.types.insert(n.clone(), inner);
                                t.base = Some(n);
                            }
                            // Length, range and pattern facets are not checked (README says so).
                            _ => {}
                        }
                    }
                }
                "list" => {
                    t.list_item = Some(match k.attr("itemType") {
                        Some(i) => cx.qname(i),
                        None => match k.kids(XSD).find(|s| s.name.local == "simpleType") {
                            Some(s) => {
                                let inner = Type::Simple(self.simple(cx, s));
                                let n = self.anon_name();
                                self.types.insert(n.clone(), inner);
                                n
                            }
                            None => xs("string"),
                        },
                    })
                }
                "union" => t.union = true,
                "annotation" => {}
                other => self.unsupported(cx, k, other),
            }
        }
        t
    }

    fn load_wsdl(&mut self, root: &Node) -> Result<(), String> {
        let cx = Cx {
            file: "services.wsdl".into(),
            tns: MESSAGES.into(),
            prefixes: root.prefixes.clone(),
        };
        // message name → (part name → element)
        let mut messages: HashMap<String, HashMap<String, Name>> = HashMap::new();
        for m in root.kids(WSDL).filter(|n| n.name.local == "message") {
            let parts = m
                .kids(WSDL)
                .filter(|p| p.name.local == "part")
                .filter_map(|p| Some((p.attr("name")?.to_owned(), cx.qname(p.attr("element")?))))
                .collect();
            messages.insert(m.attr("name").unwrap_or_default().to_owned(), parts);
        }
        let local = |q: &str| q.rsplit(':').next().unwrap_or(q).to_owned();
        // portType: operation name → (input message, output message)
        let mut io: HashMap<String, (String, String)> = HashMap::new();
        for pt in root.kids(WSDL).filter(|n| n.name.local == "portType") {
            for op in pt.kids(WSDL).filter(|n| n.name.local == "operation") {
                let msg = |dir: &str| {
                    op.kids(WSDL)
                        .find(|n| n.name.local == dir)
                        .map(|n| local(n.attr("message").unwrap_or_default()))
                        .unwrap_or_default()
                };
                io.insert(
                    op.attr("name").unwrap_or_default().to_owned(),
                    (msg("input"), msg("output")),
                );
            }
        }
        // binding: the body part and the header parts of each direction.
        let side = |op: &Node,
                    dir: &str,
                    msg: &str,
                    name: &str|
         -> Result<(Name, Vec<Name>), String> {
            let parts = messages.get(msg).ok_or_else(|| {
                format!("services.wsdl: operation {name} names unknown message {msg:?}")
            })?;
            let node = op.kids(WSDL).find(|n| n.name.local == dir).ok_or_else(|| {
                format!("services.wsdl:{}: operation {name} has no {dir}", op.line)
            })?;
            let mut body = None;
            let mut headers = Vec::new();
            for k in node.kids(WSDL_SOAP) {
                match k.name.local.as_str() {
                    // EWS names its one body part; without `parts`, the body is the part
                    // that is not a header.
                    "body" => {
                        body = match k.attr("parts") {
                            Some(p) => parts.get(p).cloned(),
                            None => parts.get("request").cloned(),
                        }
                    }
                    "header" => {
                        let hmsg = local(k.attr("message").unwrap_or_default());
                        let part = k.attr("part").unwrap_or_default();
                        let el = messages.get(&hmsg).and_then(|m| m.get(part)).ok_or_else(|| {
                            format!("services.wsdl:{}: header {hmsg}/{part} of {name} is not a declared part", k.line)
                        })?;
                        headers.push(el.clone());
                    }
                    _ => {}
                }
            }
            let body = body.ok_or_else(|| {
                format!(
                    "services.wsdl:{}: the {dir} of {name} has no body part",
                    node.line
                )
            })?;
            Ok((body, headers))
        };
        for binding in root.kids(WSDL).filter(|n| n.name.local == "binding") {
            for op in binding.kids(WSDL).filter(|n| n.name.local == "operation") {
                let name = op.attr("name").unwrap_or_default().to_owned();
                let (input, output) = io.get(&name).ok_or_else(|| {
                    format!(
                        "services.wsdl:{}: binding operation {name} has no portType operation",
                        op.line
                    )
                })?;
                let (body, headers) = side(op, "input", input, &name)?;
                let (response, response_headers) = side(op, "output", output, &name)?;
                self.operations.insert(
                    body.clone(),
                    Operation {
                        name,
                        body,
                        headers,
                        response,
                        response_headers,
                    },
                );
            }
        }
        if self.operations.is_empty() {
            return Err("services.wsdl defines no SOAP operations".into());
        }
        Ok(())
    }
}

/// Where a schema file's QName-valued attributes are resolved.
struct Cx {
    file: String,
    tns: String,
    prefixes: Vec<(String, String)>,
}

impl Cx {
    fn qname(&self, q: &str) -> Name {
        let (prefix, local) = q.split_once(':').unwrap_or(("", q));
        let ns = self
            .prefixes
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns.clone())
            // The schemas declare their prefixes on the root; an unprefixed reference in a
            // schema without a default namespace means no namespace.
            .unwrap_or_default();
        Name {
            ns,
            local: local.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
