//! A format-neutral document tree with source spans: what YAML and TOML plans both parse into.
//!
//! Loading goes file text → [`Node`] tree (this module) → shape check against the JSON Schema
//! (`plan::shape`) → typed `Plan` (`plan::load`). Keeping the tree lets every later check
//! point at the exact place in the user's file, whatever the format, and lets the shape check
//! report all problems at once where serde would stop at the first.
//!
//! The tree is built through serde using each format's own span wrapper
//! (`serde_saphyr::Spanned`, `toml::Spanned`), so the parsers' limits and error positions apply.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A place in the source: byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

/// A mapping key with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn key_span(&self, key: &str) -> Option<Span> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, _)| k.span),
            _ => None,
        }
    }

    /// The node at `path`, or the deepest existing ancestor (so a missing field still points
    /// at the mapping that should hold it).
    pub fn locate(&self, path: &[PathSeg]) -> &Node {
        let mut node = self;
        for seg in path {
            let next = match (seg, &node.kind) {
                (PathSeg::Key(k), NodeKind::Map(_)) => node.get(k),
                (PathSeg::Index(i), NodeKind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// Converts to a plain JSON value, dropping spans (for typed deserialization).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    Value::from(v)
                } else {
                    Value::from(*i as f64)
                }
            }
            NodeKind::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for PathSeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSeg::Key(k) => write!(f, ".{k}"),
            PathSeg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path as `accounts[0].source.password`.
pub fn path_string(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) if s.is_empty() => s.push_str(k),
            _ => s.push_str(&seg.to_string()),
        }
    }
    s
}

/// How one format wraps values with their spans.
trait Flavor: Sized {
    fn key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Key>, A::Error>;
    fn value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Node, A::Error>;
    fn element<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Option<Node>, A::Error>;
}

struct Yaml;

fn saphyr_span(loc: &serde_saphyr::Location) -> Span {
    let s = loc.span();
    Span {
        offset: s.byte_offset().unwrap_or(0) as usize,
        len: s.len() as usize,
    }
}

impl Flavor for Yaml {
    fn key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Key>, A::Error> {
        Ok(map
            .next_key::<serde_saphyr::Spanned<String>>()?
            .map(|k| Key {
                span: saphyr_span(&k.referenced),
                name: k.value,
            }))
    }
    fn value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Node, A::Error> {
        let v = map.next_value::<serde_saphyr::Spanned<Bare<Yaml>>>()?;
        Ok(Node {
            span: saphyr_span(&v.referenced),
            kind: v.value.0,
        })
    }
    fn element<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Option<Node>, A::Error> {
        Ok(seq
            .next_element::<serde_saphyr::Spanned<Bare<Yaml>>>()?
            .map(|v| Node {
                span: saphyr_span(&v.referenced),
                kind: v.value.0,
            }))
    }
}

/// YAML read without spans: for a plan that turns out valid, no diagnostic will point into
/// it, and the span wrappers cost about as much as the parse itself.
struct YamlUnspanned;

impl Flavor for YamlUnspanned {
    fn key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Key>, A::Error> {
        Ok(map.next_key::<String>()?.map(|name| Key {
            name,
            span: Span::default(),
        }))
    }
    fn value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Node, A::Error> {
        let v = map.next_value::<Bare<YamlUnspanned>>()?;
        Ok(Node {
            span: Span::default(),
            kind: v.0,
        })
    }
    fn element<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Option<Node>, A::Error> {
        Ok(seq.next_element::<Bare<YamlUnspanned>>()?.map(|v| Node {
            span: Span::default(),
            kind: v.0,
        }))
    }
}

fn toml_span(r: std::ops::Range<usize>) -> Span {
    Span {
        offset: r.start,
        len: r.end.saturating_sub(r.start),
    }
}

/// A node's content without its own span (the wrapper around it carries that).
struct Bare<F>(NodeKind, PhantomData<F>);

impl<'de, F: Flavor> Deserialize<'de> for Bare<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BareVisitor::<F>(PhantomData))
            .map(|k| Bare(k, PhantomData))
    }
}

struct BareVisitor<F>(PhantomData<F>);

impl<'de, F: Flavor> Visitor<'de> for BareVisitor<F> {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        Ok(i128::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = F::element(&mut seq)? {
            items.push(n);
        }
        Ok(NodeKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        while let Some(key) = F::key(&mut map)? {
            let value = F::value(&mut map)?;
            entries.push((key, value));
        }
        Ok(NodeKind::Map(entries))
    }
}

/// A syntax error from a parser, with its place when the parser gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Option<Span>,
    /// What to do, when the parser's own words say more than a syntax slip (a limit).
    pub help: Option<String>,
}

/// Limits against hostile or runaway YAML: anchors expanding exponentially, deep nesting.
/// The counts grow with the text, since an honest document has at most about one node per
/// byte of it (`- x` is three bytes, one node): a plan of 100,000 accounts loads, while aliases
/// can never expand a file beyond a few times its own size.
fn yaml_options(text_len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(text_len);
    budget.max_events = budget.max_events.max(text_len.saturating_mul(2));
    budget.max_total_scalar_bytes = budget
        .max_total_scalar_bytes
        .max(text_len.saturating_mul(2));
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// [`parse_yaml`] without spans (every span empty), or `None` on any error: the caller then
/// parses again with spans, to point at what is wrong.
pub fn parse_yaml_unspanned(text: &str) -> Option<Node> {
    let parsed: Bare<YamlUnspanned> =
        serde_saphyr::from_str_with_options(text, yaml_options(text.len())).ok()?;
    Some(Node {
        kind: parsed.0,
        span: Span::default(),
    })
}

pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    let parsed: Result<serde_saphyr::Spanned<Bare<Yaml>>, _> =
        serde_saphyr::from_str_with_options(text, yaml_options(text.len()));
    match parsed {
        Ok(v) => Ok(Node {
            span: saphyr_span(&v.referenced),
            kind: v.value.0,
        }),
        Err(e) => {
            let span = e.location().filter(|l| l.line() > 0).map(|loc| {
                let s = loc.span();
                let offset = s.byte_offset().map_or_else(
                    || offset_of(text, loc.line() as usize, loc.column() as usize),
                    |o| o as usize,
                );
                Span {
                    offset,
                    len: (s.len() as usize).max(1),
                }
            });
            if let Some(breach) = budget_breach(&e) {
                return Err(SyntaxError {
                    message: format!(
                        "the YAML goes beyond what mailshift reads for a file of this size \
                         ({breach:?}): anchors and aliases expanding far beyond the text, or \
                         nesting deeper than 64 levels, are refused as hostile"
                    ),
                    span,
                    help: Some(
                        "write the repeated parts out instead of aliasing them (`*name`), and \
                         flatten the nesting; a plain plan of any number of accounts loads"
                            .into(),
                    ),
                });
            }
            Err(SyntaxError {
                message: strip_position(&first_line(&e.to_string())),
                span,
                help: None,
            })
        }
    }
}

/// The limit a YAML error reports, under the wrappers serde-saphyr puts around errors.
fn budget_breach(e: &serde_saphyr::Error) -> Option<String> {
    match e {
        serde_saphyr::Error::Budget { breach, .. } => Some(format!("{breach:?}")),
        serde_saphyr::Error::WithSnippet { error, .. }
        | serde_saphyr::Error::AliasError { error, .. } => budget_breach(error),
        _ => None,
    }
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    line_start
        + rest
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

/// serde-saphyr prefixes "error: line L column C: "; our renderer shows the place itself.
fn strip_position(msg: &str) -> String {
    let m = msg.strip_prefix("error: ").unwrap_or(msg);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some(i) = rest.find(": ")
        && rest[..i].contains("column")
    {
        return rest[i + 2..].to_string();
    }
    m.to_string()
}

pub fn parse_toml(text: &str) -> Result<Node, SyntaxError> {
    let (root, errors) = toml::de::DeTable::parse_recoverable(text);
    if let Some(e) = errors.into_iter().next() {
        return Err(SyntaxError {
            message: e.message().trim().to_string(),
            span: e.span().map(toml_span),
            help: None,
        });
    }
    let span = toml_span(root.span());
    Ok(Node {
        kind: toml_table(root.get_ref()),
        span,
    })
}

fn toml_table(t: &toml::de::DeTable<'_>) -> NodeKind {
    NodeKind::Map(
        t.iter()
            .map(|(k, v)| {
                (
                    Key {
                        name: k.get_ref().to_string(),
                        span: toml_span(k.span()),
                    },
                    toml_node(v),
                )
            })
            .collect(),
    )
}

fn toml_node(v: &toml::Spanned<toml::de::DeValue<'_>>) -> Node {
    use toml::de::DeValue;
    let kind = match v.get_ref() {
        DeValue::String(s) => NodeKind::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i128::from_str_radix(&digits, i.radix()) {
                Ok(n) => NodeKind::Int(n),
                Err(_) => NodeKind::Str(i.as_str().to_string()),
            }
        }
        DeValue::Float(f) => {
            let t = f.as_str().replace('_', "");
            NodeKind::Float(match t.trim_start_matches(['+', '-']) {
                "inf" if t.starts_with('-') => f64::NEG_INFINITY,
                "inf" => f64::INFINITY,
                "nan" => f64::NAN,
                _ => t.parse().unwrap_or(f64::NAN),
            })
        }
        DeValue::Boolean(b) => NodeKind::Bool(*b),
        // A TOML date (`since = 2024-01-01`) reads as its text, as it would in YAML.
        DeValue::Datetime(d) => NodeKind::Str(d.to_string()),
        DeValue::Array(a) => NodeKind::Seq(a.iter().map(toml_node).collect()),
        DeValue::Table(t) => toml_table(t),
    };
    Node {
        kind,
        span: toml_span(v.span()),
    }
}

/// Parser messages may repeat the position on further lines; the renderer shows it already.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// Deserializes a typed value from a node (after the shape check passed).
pub fn from_node<T: serde::de::DeserializeOwned>(node: &Node) -> Result<T, String> {
    T::deserialize(node.to_json()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at(src: &str, span: Span) -> &str {
        &src[span.offset..span.offset + span.len]
    }

    #[test]
    fn yaml_spans_point_at_keys_and_values() {
        let src = "version: 1\naccounts:\n  - address: a@b.c\n    from: old\n";
        let n = parse_yaml(src).unwrap();
        let acc = &n.locate(&[PathSeg::Key("accounts".into()), PathSeg::Index(0)]);
        let from = acc.get("from").unwrap();
        assert_eq!(text_at(src, from.span), "old");
        assert_eq!(text_at(src, acc.key_span("address").unwrap()), "address");
    }

    #[test]
    fn toml_spans_point_at_keys_and_values() {
        let src =
            "version = 1\n[[accounts]]\naddress = \"a@b.c\"\nfrom = \"old\"\nsince = 2024-01-02\n";
        let n = parse_toml(src).unwrap();
        let acc = n.locate(&[PathSeg::Key("accounts".into()), PathSeg::Index(0)]);
        assert_eq!(text_at(src, acc.get("from").unwrap().span), "\"old\"");
        assert_eq!(text_at(src, acc.key_span("address").unwrap()), "address");
        assert_eq!(
            acc.get("since").unwrap().kind,
            NodeKind::Str("2024-01-02".into())
        );
    }

    #[test]
    fn same_document_same_json() {
        let y = parse_yaml("a: 1\nb: [x, {c: true}]\n").unwrap();
        let t = parse_toml("a = 1\nb = [\"x\", {c = true}]\n").unwrap();
        assert_eq!(y.to_json(), t.to_json());
    }

    #[test]
    fn syntax_errors_have_places() {
        let e = parse_yaml("a: [1, 2\n").unwrap_err();
        assert!(e.span.is_some(), "{e:?}");
        let e = parse_toml("a = \n").unwrap_err();
        assert!(e.span.is_some(), "{e:?}");
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn a_large_honest_document_loads() {
        // More nodes than serde-saphyr's default budget (250,000), no alias anywhere.
        let text = "- x\n".repeat(300_000);
        let node = parse_yaml(&text).expect("an honest large document");
        match node.kind {
            NodeKind::Seq(items) => assert_eq!(items.len(), 300_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_alias_bomb_is_refused_with_the_way_out() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..7 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = parse_yaml(&text).expect_err("10^7 nodes from a few hundred bytes");
        assert!(e.message.contains("anchors and aliases"), "{}", e.message);
        assert!(
            e.help
                .as_deref()
                .is_some_and(|h| h.contains("instead of aliasing"))
        );
    }
}
