//! The request checker: a SOAP request is judged against the published definitions
//! (`schema.rs`): its body must be the input of a WSDL operation, its headers ones that
//! operation's binding declares, and every element must follow its XSD type: children in the
//! order and number the content model allows, declared attributes, enumerated values. Every
//! violation is reported with the path of the element it is about, so the simulator can refuse
//! the request the way Exchange does and a test can show the client never strays.

use std::collections::BTreeSet;

use crate::schema::{self, Complex, Occurs, Particle, Schema, Term, Type};
use crate::xml::{self, Name, Node, SOAP11, XMLNS_XML, XSD, XSI};

/// One way a request departs from the published definitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Where: `/soap:Envelope/soap:Body/m:CreateItem/m:Items/t:CalendarItem/t:Subject`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What the checker found: the operation (when the body names one) and the violations.
#[derive(Debug)]
pub struct Report {
    pub operation: Option<String>,
    pub violations: Vec<Violation>,
}

/// Checks a SOAP 1.1 request against the vendored EWS definitions.
pub fn check_request(xml_text: &str) -> Report {
    Checker {
        schema: schema::published(),
        out: Vec::new(),
    }
    .envelope(xml_text, Direction::Request)
}

/// Checks a SOAP 1.1 response (the simulator's own answers) against the same definitions,
/// so what the simulator serves cannot drift from what Exchange may send.
pub fn check_response(xml_text: &str) -> Report {
    Checker {
        schema: schema::published(),
        out: Vec::new(),
    }
    .envelope(xml_text, Direction::Response)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

struct Checker<'s> {
    schema: &'s Schema,
    out: Vec<Violation>,
}

/// What a child was matched to: a type to check it against, or nothing (`xs:any`).
#[derive(Clone, Debug)]
enum Binding {
    Type(Name),
    Skip,
}

#[derive(Clone)]
struct State {
    pos: usize,
    bound: Vec<Binding>,
}

/// The furthest child any attempt reached, and the elements tried there (in the order the
/// schema lists them, so the nearest candidates come first): the "expected one of" of a
/// failed match.
#[derive(Default)]
struct Probe {
    furthest: usize,
    expected: Vec<String>,
}

impl Probe {
    fn reach(&mut self, pos: usize) {
        if pos > self.furthest {
            self.furthest = pos;
            self.expected.clear();
        }
    }
    fn tried(&mut self, pos: usize, what: String) {
        self.reach(pos);
        if pos == self.furthest && !self.expected.contains(&what) {
            self.expected.push(what);
        }
    }
}

impl Checker<'_> {
    fn violation(&mut self, path: &str, message: String) {
        self.out.push(Violation {
            path: path.to_owned(),
            message,
        });
    }

    fn envelope(mut self, text: &str, dir: Direction) -> Report {
        let what = if dir == Direction::Request {
            "the request"
        } else {
            "the response"
        };
        let root = match xml::parse(what, text) {
            Ok(r) => r,
            Err(e) => {
                self.violation("/", e);
                return Report {
                    operation: None,
                    violations: self.out,
                };
            }
        };
        let env = Name::new(SOAP11, "Envelope");
        if root.name != env {
            self.violation(
                &format!("/{}", root.name),
                format!("the root element must be {env} (SOAP 1.1, as EWS speaks)"),
            );
            return Report {
                operation: None,
                violations: self.out,
            };
        }
        let env_path = format!("/{env}");
        let mut header = None;
        let mut body = None;
        for (i, k) in root.children.iter().enumerate() {
            match (k.name.ns.as_str(), k.name.local.as_str()) {
                (SOAP11, "Header") if i == 0 && header.is_none() => header = Some(k),
                (SOAP11, "Body") if body.is_none() => body = Some(k),
                _ => self.violation(
                    &format!("{env_path}/{}", k.name),
                    "unexpected element in the SOAP envelope: only soap:Header then soap:Body"
                        .into(),
                ),
            }
        }
        let Some(body) = body else {
            self.violation(&env_path, "missing soap:Body".into());
            return Report {
                operation: None,
                violations: self.out,
            };
        };
        let body_path = format!("{env_path}/{}", body.name);
        let op = match body.children.as_slice() {
            [one] => {
                let found = match dir {
                    Direction::Request => self.schema.operations.get(&one.name),
                    Direction::Response => self
                        .schema
                        .operations
                        .values()
                        .find(|o| o.response == one.name),
                };
                match found {
                    Some(op) => Some((op, one)),
                    None => {
                        let what = if dir == Direction::Request {
                            "request"
                        } else {
                            "response"
                        };
                        self.violation(
                            &format!("{body_path}/{}", one.name),
                            format!(
                                "{} is not the {what} of any operation in services.wsdl",
                                one.name
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                self.violation(
                    &body_path,
                    format!(
                        "soap:Body must hold exactly one operation element, it holds {}",
                        body.children.len()
                    ),
                );
                None
            }
        };
        if let Some(header) = header {
            let header_path = format!("{env_path}/{}", header.name);
            for h in &header.children {
                let path = format!("{header_path}/{}", h.name);
                let declared = op.map(|(o, _)| match dir {
                    Direction::Request => &o.headers,
                    Direction::Response => &o.response_headers,
                });
                match (op, declared) {
                    (Some((op, _)), Some(declared)) if !declared.contains(&h.name) => {
                        let allowed: Vec<String> = declared.iter().map(|n| n.to_string()).collect();
                        self.violation(
                            &path,
                            format!(
                                "{} is not a header of {} (services.wsdl allows {})",
                                h.name,
                                op.name,
                                allowed.join(", ")
                            ),
                        );
                    }
                    _ => self.global(h, &path),
                }
            }
        }
        if let Some((_, request)) = op {
            self.global(request, &format!("{body_path}/{}", request.name));
        }
        Report {
            operation: op.map(|(o, _)| o.name.clone()),
            violations: self.out,
        }
    }

    /// An element that must be a global element declaration.
    fn global(&mut self, node: &Node, path: &str) {
        match self.schema.elements.get(&node.name) {
            Some(g) => {
                let ty = g.ty.clone();
                self.element(node, &ty, path)
            }
            None => self.violation(
                path,
                format!(
                    "{} is not an element of messages.xsd or types.xsd",
                    node.name
                ),
            ),
        }
    }

    fn element(&mut self, node: &Node, ty: &Name, path: &str) {
        if ty.ns == XSD {
            if ty.local == "anyType" {
                return;
            }
            self.no_children(node, ty, path);
            self.simple_value(&node.text, ty, path, "content");
            return;
        }
        match self.schema.resolve_type(ty) {
            None => self.violation(
                path,
                format!("type {ty} is not defined in the schema (a defect of the vendored files)"),
            ),
            Some(Type::Simple(_)) => {
                self.no_children(node, ty, path);
                self.simple_value(&node.text, ty, path, "content");
            }
            Some(Type::Complex(c)) => {
                let c = c.clone();
                self.attributes(node, ty, &c, path);
                if let Some(text_ty) = self.simple_base(&c) {
                    self.no_children(node, ty, path);
                    self.simple_value(&node.text, &text_ty, path, "content");
                    return;
                }
                if !c.mixed && !node.text.trim().is_empty() {
                    self.violation(
                        path,
                        format!(
                            "text is not allowed in {} ({ty} holds elements only)",
                            node.name
                        ),
                    );
                }
                let particle = self.content_model(ty);
                self.children(node, particle.as_ref(), path);
            }
        }
    }

    fn no_children(&mut self, node: &Node, ty: &Name, path: &str) {
        if let Some(k) = node.children.first() {
            self.violation(
                &format!("{path}/{}", k.name),
                format!(
                    "{} has the simple type {ty}: no child elements allowed",
                    node.name
                ),
            );
        }
    }

    /// For simpleContent: the simple type the text must have.
    fn simple_base(&self, c: &Complex) -> Option<Name> {
        let mut c = c;
        loop {
            if !c.simple_content {
                return None;
            }
            let (base, _) = c.base.as_ref()?;
            match self.schema.resolve_type(base) {
                Some(Type::Complex(b)) => c = b,
                _ => return Some(base.clone()),
            }
        }
    }

    /// The effective content model: an extension's base content followed by its own.
    fn content_model(&self, ty: &Name) -> Option<Particle> {
        let Some(Type::Complex(c)) = self.schema.resolve_type(ty) else {
            return None;
        };
        match &c.base {
            Some((base, true)) if base.ns != XSD => {
                let inherited = self.content_model(base);
                match (inherited, c.particle.clone()) {
                    (Some(a), Some(b)) => Some(Particle {
                        term: Term::Sequence(vec![a, b]),
                        occurs: Occurs {
                            min: 1,
                            max: Some(1),
                        },
                    }),
                    (a, b) => a.or(b),
                }
            }
            _ => c.particle.clone(),
        }
    }

    /// Attributes declared for a type, its bases' (extension and restriction alike) and its
    /// attribute groups'; and whether any attribute is allowed.
    fn declared_attrs(&self, c: &Complex, acc: &mut Vec<schema::Attr>) -> bool {
        let mut any = c.any_attr;
        acc.extend(c.attrs.iter().cloned());
        for g in &c.attr_groups {
            if let Some((attrs, a)) = self.schema.attr_groups.get(g) {
                acc.extend(attrs.iter().cloned());
                any |= a;
            }
        }
        if let Some((base, _)) = &c.base
            && let Some(Type::Complex(b)) = self.schema.resolve_type(base)
        {
            any |= self.declared_attrs(b, acc);
        }
        any
    }

    fn attributes(&mut self, node: &Node, ty: &Name, c: &Complex, path: &str) {
        let mut declared = Vec::new();
        let any = self.declared_attrs(c, &mut declared);
        for (name, value) in &node.attrs {
            // Namespace declarations, xml:lang and xsi:* are XML's, not the schema's.
            if name.ns == XMLNS_XML || name.ns == XSI {
                continue;
            }
            match declared
                .iter()
                .find(|a| name.ns.is_empty() && a.name == name.local)
            {
                Some(a) => {
                    let aty = a.ty.clone();
                    self.simple_value(value, &aty, &format!("{path}/@{}", name.local), "value");
                }
                None if any => {}
                None => {
                    let names: BTreeSet<&str> = declared.iter().map(|a| a.name.as_str()).collect();
                    let allowed = if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.into_iter().collect::<Vec<_>>().join(", ")
                    };
                    self.violation(
                        &format!("{path}/@{}", name),
                        format!(
                            "unknown attribute {name} on {} ({ty} allows: {allowed})",
                            node.name
                        ),
                    );
                }
            }
        }
        for a in declared.iter().filter(|a| a.required) {
            if !node
                .attrs
                .iter()
                .any(|(n, _)| n.ns.is_empty() && n.local == a.name)
            {
                self.violation(
                    path,
                    format!(
                        "missing required attribute {} on {} ({ty})",
                        a.name, node.name
                    ),
                );
            }
        }
    }

    /// Checks a text value against a simple type: enumerations, lists, and the built-in
    /// types the EWS schema uses for numbers, booleans and dates.
    fn simple_value(&mut self, value: &str, ty: &Name, path: &str, what: &str) {
        if let Err(e) = self.simple_ok(value, ty, 0) {
            self.violation(path, format!("{what} {value:?} {e}"));
        }
    }

    fn simple_ok(&self, value: &str, ty: &Name, depth: usize) -> Result<(), String> {
        if depth > 32 {
            return Ok(());
        }
        let v = value.trim();
        if ty.ns == XSD {
            let ok = match ty.local.as_str() {
                "boolean" => matches!(v, "true" | "false" | "1" | "0"),
                "int" | "integer" | "long" | "short" | "byte" => v.parse::<i128>().is_ok(),
                "unsignedInt" | "unsignedLong" | "unsignedShort" | "unsignedByte"
                | "nonNegativeInteger" => v.parse::<u128>().is_ok(),
                "positiveInteger" => v.parse::<u128>().is_ok_and(|n| n > 0),
                "double" | "float" | "decimal" => v.parse::<f64>().is_ok(),
                "dateTime" => v.len() >= 19 && v.as_bytes()[4] == b'-' && v.as_bytes()[10] == b'T',
                "date" => v.len() >= 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-',
                _ => true,
            };
            return if ok {
                Ok(())
            } else {
                Err(format!("is not a valid {ty}"))
            };
        }
        match self.schema.resolve_type(ty) {
            Some(Type::Simple(s)) => {
                if let Some(item) = &s.list_item {
                    for part in v.split_whitespace() {
                        self.simple_ok(part, item, depth + 1)
                            .map_err(|e| format!("(its item {part:?}) {e}"))?;
                    }
                    return Ok(());
                }
                if s.union {
                    return Ok(());
                }
                if let Some(base) = &s.base {
                    self.simple_ok(value, base, depth + 1)?;
                }
                if !s.enums.is_empty() && !s.enums.iter().any(|e| e == v) {
                    let shown: Vec<&str> = s.enums.iter().take(12).map(String::as_str).collect();
                    let more = if s.enums.len() > 12 { ", …" } else { "" };
                    return Err(format!("is not one of {ty}: {}{more}", shown.join(", ")));
                }
                Ok(())
            }
            Some(Type::Complex(c)) => match self.simple_base(c) {
                Some(b) => self.simple_ok(value, &b, depth + 1),
                None => Ok(()),
            },
            None => Err(format!("has the undefined type {ty}")),
        }
    }

    /// Matches the children against the content model, then checks each against the type it
    /// was matched to.
    fn children(&mut self, node: &Node, particle: Option<&Particle>, path: &str) {
        let kids: Vec<&Node> = node.children.iter().collect();
        let paths = child_paths(node, path);
        let Some(particle) = particle else {
            if let Some(k) = kids.first() {
                self.violation(
                    &paths[0],
                    format!("{} allows no child elements, found {}", node.name, k.name),
                );
            }
            return;
        };
        let mut probe = Probe::default();
        let start = vec![State {
            pos: 0,
            bound: Vec::new(),
        }];
        let ends = self.particle(particle, &kids, start, &mut probe);
        match ends.into_iter().find(|s| s.pos == kids.len()) {
            Some(done) => {
                for ((k, b), p) in kids.iter().zip(done.bound).zip(&paths) {
                    if let Binding::Type(t) = b {
                        self.element(k, &t, p);
                    }
                }
            }
            None => {
                let expected = expected_list(probe.expected);
                if probe.furthest < kids.len() {
                    let k = kids[probe.furthest];
                    let mut known = BTreeSet::new();
                    self.names_in(particle, &mut known, 0);
                    let why = if known.contains(&k.name.to_string()) {
                        format!(
                            "{} is out of order here (the schema's sequence puts it elsewhere, or allows it fewer times)",
                            k.name
                        )
                    } else {
                        format!("unknown element {} in {}", k.name, node.name)
                    };
                    self.violation(
                        &paths[probe.furthest],
                        format!("{why}; expected {expected}"),
                    );
                } else {
                    self.violation(
                        path,
                        format!(
                            "{} is incomplete: a required element is missing; expected {expected}",
                            node.name
                        ),
                    );
                }
            }
        }
    }

    /// Every element name a content model mentions, for telling "out of order" from "unknown".
    fn names_in(&self, p: &Particle, acc: &mut BTreeSet<String>, depth: usize) {
        if depth > 16 {
            return;
        }
        match &p.term {
            Term::Element { name, .. } => {
                acc.insert(name.to_string());
            }
            Term::Ref(head) => {
                for m in self.members(head) {
                    acc.insert(m.0.to_string());
                }
            }
            Term::Sequence(ps) | Term::Choice(ps) | Term::All(ps) => {
                ps.iter().for_each(|q| self.names_in(q, acc, depth + 1))
            }
            Term::Group(g) => {
                if let Some(q) = self.schema.groups.get(g) {
                    self.names_in(q, acc, depth + 1)
                }
            }
            Term::Any => {}
        }
    }

    /// The elements an `<xs:element ref>` stands for: the head unless abstract, and the
    /// members of its substitution group, transitively.
    fn members(&self, head: &Name) -> Vec<(Name, Name)> {
        let mut out = Vec::new();
        // Breadth first, so members come in the order the schema declares them.
        let mut todo = std::collections::VecDeque::from([head.clone()]);
        while let Some(n) = todo.pop_front() {
            if let Some(g) = self.schema.elements.get(&n)
                && !g.is_abstract
            {
                out.push((n.clone(), g.ty.clone()));
            }
            if let Some(ms) = self.schema.substitutes.get(&n) {
                todo.extend(ms.iter().cloned());
            }
        }
        out
    }

    /// All states reachable by matching `p` (with its occurrence bounds) from `states`.
    fn particle(
        &self,
        p: &Particle,
        kids: &[&Node],
        states: Vec<State>,
        probe: &mut Probe,
    ) -> Vec<State> {
        let mut result = Vec::new();
        if p.occurs.min == 0 {
            result.extend(states.iter().cloned());
        }
        let cap = p
            .occurs
            .max
            .unwrap_or(kids.len() + 1)
            .min(kids.len().max(p.occurs.min) + 1);
        let mut current = states;
        for i in 1..=cap {
            current = dedupe(self.term(&p.term, kids, current, probe));
            if current.is_empty() {
                break;
            }
            if i >= p.occurs.min {
                result.extend(current.iter().cloned());
            }
        }
        dedupe(result)
    }

    fn term(&self, t: &Term, kids: &[&Node], states: Vec<State>, probe: &mut Probe) -> Vec<State> {
        let mut out = Vec::new();
        match t {
            Term::Element { name, ty } => {
                for s in states {
                    probe.tried(s.pos, name.to_string());
                    if kids.get(s.pos).is_some_and(|k| &k.name == name) {
                        out.push(advance(s, Binding::Type(ty.clone()), probe));
                    }
                }
            }
            Term::Ref(head) => {
                let members = self.members(head);
                for s in states {
                    for (n, _) in &members {
                        probe.tried(s.pos, n.to_string());
                    }
                    if let Some(k) = kids.get(s.pos)
                        && let Some((_, ty)) = members.iter().find(|(n, _)| n == &k.name)
                    {
                        out.push(advance(s, Binding::Type(ty.clone()), probe));
                    }
                }
            }
            Term::Any => {
                for s in states {
                    probe.tried(s.pos, "any element".into());
                    if s.pos < kids.len() {
                        out.push(advance(s, Binding::Skip, probe));
                    }
                }
            }
            Term::Sequence(ps) => {
                let mut cur = states;
                for q in ps {
                    cur = self.particle(q, kids, cur, probe);
                    if cur.is_empty() {
                        break;
                    }
                }
                out = cur;
            }
            Term::Choice(ps) => {
                for q in ps {
                    out.extend(self.particle(q, kids, states.clone(), probe));
                }
            }
            Term::Group(g) => {
                if let Some(q) = self.schema.groups.get(g) {
                    out = self.particle(q, kids, states, probe);
                }
            }
            // xs:all: each member at most once, in any order; members are single elements.
            Term::All(ps) => {
                for s in states {
                    let mut used = vec![false; ps.len()];
                    let mut cur = s;
                    'next: loop {
                        for (i, q) in ps.iter().enumerate() {
                            if used[i] {
                                continue;
                            }
                            let got = self.term(&q.term, kids, vec![cur.clone()], probe);
                            if let Some(n) = got.into_iter().find(|n| n.pos > cur.pos) {
                                used[i] = true;
                                cur = n;
                                continue 'next;
                            }
                        }
                        break;
                    }
                    let missing = ps.iter().zip(&used).any(|(q, u)| !u && q.occurs.min > 0);
                    if !missing {
                        out.push(cur);
                    }
                }
            }
        }
        out
    }
}

/// "one of A, B, C": the first dozen names, then how many more, since an item type can
/// allow a hundred optional elements at one point.
fn expected_list(names: Vec<String>) -> String {
    const SHOWN: usize = 12;
    if names.is_empty() {
        return "nothing more".to_owned();
    }
    let total = names.len();
    let shown: Vec<String> = names.into_iter().take(SHOWN).collect();
    let more = if total > SHOWN {
        format!(" and {} more", total - SHOWN)
    } else {
        String::new()
    };
    format!("one of {}{more}", shown.join(", "))
}

fn advance(mut s: State, b: Binding, probe: &mut Probe) -> State {
    s.pos += 1;
    s.bound.push(b);
    probe.reach(s.pos);
    s
}

/// Keeps one state per position: the schemas obey XML Schema's unique particle attribution,
/// so two ways of reaching the same child bind the children alike.
fn dedupe(states: Vec<State>) -> Vec<State> {
    let mut seen = BTreeSet::new();
    states.into_iter().filter(|s| seen.insert(s.pos)).collect()
}

/// `/…/t:Attendee[2]` when siblings share a name, `/…/t:Subject` otherwise.
fn child_paths(node: &Node, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, k) in node.children.iter().enumerate() {
        let same = node.children.iter().filter(|o| o.name == k.name).count();
        if same > 1 {
            let nth = node.children[..=i]
                .iter()
                .filter(|o| o.name == k.name)
                .count();
            out.push(format!("{path}/{}[{nth}]", k.name));
        } else {
            out.push(format!("{path}/{}", k.name));
        }
    }
    out
}

#[cfg(test)]
mod tests;
