//! Shape check: a document tree against the plan's JSON Schema, collecting every problem.
//!
//! This interprets the subset of JSON Schema 2020-12 that schemars emits for the plan model
//! (`$ref`, `type`, `enum`, `const`, `anyOf`/`oneOf`, `properties`, `required`,
//! `additionalProperties`, `items`, `minimum`/`maximum` and integer formats). Using the schema
//! rather than serde means one run reports all unknown fields and wrong types, each with a
//! span and a suggested fix; once it passes, serde deserialization cannot fail on shape.

use serde_json::Value;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::node::{Node, NodeKind, PathSeg, Span, path_string};

/// Checks `node` against `root` (the whole schema) and returns every shape error.
pub fn check(root: &Value, node: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    Checker { root }.check(root, node, &mut path, &mut out);
    out
}

struct Checker<'a> {
    root: &'a Value,
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        // Follow `$ref` chains; schemars only emits local `#/$defs/...` references.
        for _ in 0..32 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    fn check(
        &self,
        schema: &'a Value,
        node: &Node,
        path: &mut Vec<PathSeg>,
        out: &mut Vec<Diagnostic>,
    ) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.check_alternatives(schema, branches, node, path, out);
            return;
        }
        if !self.type_matches(schema, node) {
            out.push(
                Diagnostic::error(
                    path_string(path),
                    Some(node.span),
                    format!(
                        "expected {}, found {}",
                        self.describe(schema),
                        describe_node(node)
                    ),
                )
                .with_help(field_help(path, schema)),
            );
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            self.check_enum(values, node, path, out);
            return;
        }
        if let Some(c) = schema.get("const") {
            if node.to_json() != *c {
                out.push(Diagnostic::error(
                    path_string(path),
                    Some(node.span),
                    format!("expected `{}`, found {}", plain(c), describe_node(node)),
                ));
            }
            return;
        }
        match &node.kind {
            NodeKind::Int(i) => self.check_range(schema, *i, node.span, path, out),
            NodeKind::Map(entries) => self.check_object(schema, node, entries, path, out),
            NodeKind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(PathSeg::Index(i));
                        self.check(item_schema, item, path, out);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }

    fn check_alternatives(
        &self,
        schema: &'a Value,
        branches: &'a [Value],
        node: &Node,
        path: &mut Vec<PathSeg>,
        out: &mut Vec<Diagnostic>,
    ) {
        let resolved: Vec<&Value> = branches.iter().map(|b| self.resolve(b)).collect();
        // A branch that accepts the node outright ends the matter.
        let mut attempts = Vec::new();
        for b in &resolved {
            let mut trial = Vec::new();
            self.check(b, node, path, &mut trial);
            if trial.is_empty() {
                return;
            }
            attempts.push((*b, trial));
        }
        // Unit-enum variants with docs come out as `oneOf` of `const`s: treat them as an enum.
        let consts: Vec<Value> = resolved
            .iter()
            .filter_map(|b| b.get("const").cloned())
            .collect();
        if consts.len() == resolved.len() && !consts.is_empty() {
            self.check_enum(&consts, node, path, out);
            return;
        }
        let compatible: Vec<&(&Value, Vec<Diagnostic>)> = attempts
            .iter()
            .filter(|(b, _)| self.type_matches(b, node))
            .collect();
        let chosen = match compatible.as_slice() {
            [one] => Some(*one),
            [] => None,
            many => {
                // Several objects: the one sharing a field name with the node is meant.
                let keys: Vec<&str> = match &node.kind {
                    NodeKind::Map(e) => e.iter().map(|(k, _)| k.name.as_str()).collect(),
                    _ => Vec::new(),
                };
                let sharing: Vec<_> = many
                    .iter()
                    .filter(|(b, _)| {
                        b.get("properties")
                            .and_then(Value::as_object)
                            .is_some_and(|p| keys.iter().any(|k| p.contains_key(*k)))
                    })
                    .collect();
                match sharing.as_slice() {
                    [one] => Some(**one),
                    _ => None,
                }
            }
        };
        match chosen {
            Some((_, diags)) => out.extend(diags.iter().cloned()),
            None => {
                let options: Vec<String> = resolved
                    .iter()
                    .filter(|b| b.get("type") != Some(&Value::String("null".into())))
                    .map(|b| self.describe(b))
                    .collect();
                let mut d = Diagnostic::error(
                    path_string(path),
                    Some(node.span),
                    format!(
                        "expected {}, found {}",
                        join_or(&options),
                        describe_node(node)
                    ),
                );
                let help = field_help(path, schema);
                if let NodeKind::Map(entries) = &node.kind {
                    let all_props: Vec<&str> = resolved
                        .iter()
                        .filter_map(|b| b.get("properties").and_then(Value::as_object))
                        .flat_map(|p| p.keys().map(String::as_str))
                        .collect();
                    if let Some((k, _)) = entries.first()
                        && let Some(s) = did_you_mean(&k.name, all_props.iter().copied())
                    {
                        d = d.with_help(format!("did you mean `{s}` instead of `{}`?", k.name));
                        out.push(d);
                        return;
                    }
                }
                out.push(d.with_help(help));
            }
        }
    }

    fn check_enum(
        &self,
        values: &[Value],
        node: &Node,
        path: &[PathSeg],
        out: &mut Vec<Diagnostic>,
    ) {
        let v = node.to_json();
        if values.contains(&v) {
            return;
        }
        let names: Vec<String> = values.iter().map(plain).collect();
        let listed = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut d = Diagnostic::error(
            path_string(path),
            Some(node.span),
            format!("unknown value `{}`", plain(&v)),
        );
        d = match v
            .as_str()
            .and_then(|s| did_you_mean(s, names.iter().map(String::as_str)))
        {
            Some(s) => d.with_help(format!("did you mean `{s}`? Possible values: {listed}")),
            None => d.with_help(format!("possible values: {listed}")),
        };
        out.push(d);
    }

    fn check_range(
        &self,
        schema: &Value,
        i: i128,
        span: Span,
        path: &[PathSeg],
        out: &mut Vec<Diagnostic>,
    ) {
        let (fmin, fmax) = match schema.get("format").and_then(Value::as_str) {
            Some("uint16") => (0, u16::MAX as i128),
            Some("uint32") => (0, u32::MAX as i128),
            Some("uint64") => (0, u64::MAX as i128),
            Some("int32") => (i32::MIN as i128, i32::MAX as i128),
            Some("int64") => (i64::MIN as i128, i64::MAX as i128),
            _ => (i128::MIN, i128::MAX),
        };
        let min = schema
            .get("minimum")
            .and_then(Value::as_i64)
            .map_or(fmin, |m| (m as i128).max(fmin));
        let max = schema
            .get("maximum")
            .and_then(Value::as_i64)
            .map_or(fmax, |m| (m as i128).min(fmax));
        if i < min || i > max {
            out.push(
                Diagnostic::error(
                    path_string(path),
                    Some(span),
                    format!("{i} is out of range"),
                )
                .with_help(format!("use a whole number from {min} to {max}")),
            );
        }
    }

    fn check_object(
        &self,
        schema: &'a Value,
        node: &Node,
        entries: &[(super::node::Key, Node)],
        path: &mut Vec<PathSeg>,
        out: &mut Vec<Diagnostic>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        // A misspelt required field is reported once, as the misspelling.
        let mut misspelt: Vec<String> = Vec::new();
        for (key, value) in entries {
            path.push(PathSeg::Key(key.name.clone()));
            match props.and_then(|p| p.get(&key.name)) {
                Some(prop) => self.check(prop, value, path, out),
                None => match additional {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> =
                            props.map_or(Vec::new(), |p| p.keys().map(String::as_str).collect());
                        path.pop();
                        let d = Diagnostic::error(
                            path_string(path),
                            Some(key.span),
                            format!("unknown field `{}`", key.name),
                        );
                        let d = match did_you_mean(&key.name, known.iter().copied()) {
                            Some(s) => {
                                let help = format!("did you mean `{s}`?");
                                misspelt.push(s);
                                d.with_help(help)
                            }
                            None => d.with_help(format!(
                                "fields allowed here: {}",
                                known
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        };
                        out.push(d);
                        continue;
                    }
                    Some(extra) if extra.is_object() => self.check(extra, value, path, out),
                    _ => {}
                },
            }
            path.pop();
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|(k, _)| k.name == r) && !misspelt.iter().any(|m| m == r) {
                    let mut d = Diagnostic::error(
                        path_string(path),
                        Some(node.span),
                        format!("missing field `{r}`"),
                    );
                    let desc = props
                        .and_then(|p| p.get(r))
                        .and_then(|p| p.get("description"))
                        .and_then(Value::as_str)
                        .map(first_sentence);
                    if let Some(desc) = desc {
                        d = d.with_help(format!("add `{r}`: {desc}"));
                    }
                    out.push(d);
                }
            }
        }
    }

    fn type_matches(&self, schema: &Value, node: &Node) -> bool {
        let schema = self.resolve(schema);
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => {
                if let Some(c) = schema.get("const") {
                    return node_matches_json_type(node, c);
                }
                if let Some(bs) = schema
                    .get("anyOf")
                    .or_else(|| schema.get("oneOf"))
                    .and_then(Value::as_array)
                {
                    return bs.iter().any(|b| self.type_matches(b, node));
                }
                return true;
            }
        };
        types.iter().any(|t| {
            matches!(
                (*t, &node.kind),
                ("null", NodeKind::Null)
                    | ("boolean", NodeKind::Bool(_))
                    | ("integer", NodeKind::Int(_))
                    | ("number", NodeKind::Int(_) | NodeKind::Float(_))
                    | ("string", NodeKind::Str(_))
                    | ("array", NodeKind::Seq(_))
                    | ("object", NodeKind::Map(_))
            )
        })
    }

    /// What a schema accepts, in words, for "expected ..." messages.
    fn describe(&self, schema: &Value) -> String {
        let schema = self.resolve(schema);
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return format!(
                "one of {}",
                values
                    .iter()
                    .map(|v| format!("`{}`", plain(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(c) = schema.get("const") {
            return format!("`{}`", plain(c));
        }
        if let Some(bs) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            // `null` branches come from optional fields: "or nothing" helps no one.
            let parts: Vec<String> = bs
                .iter()
                .filter(|b| self.resolve(b).get("type") != Some(&Value::String("null".into())))
                .map(|b| self.describe(b))
                .collect();
            return join_or(&parts);
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => vec![],
        };
        let words: Vec<String> = types
            .iter()
            .map(|t| match *t {
                "object" => match schema.get("required").and_then(Value::as_array) {
                    Some(req)
                        if req.len() == 1
                            && schema
                                .get("properties")
                                .and_then(Value::as_object)
                                .is_some_and(|p| p.len() == 1) =>
                    {
                        format!("`{{{}: ...}}`", req[0].as_str().unwrap_or(""))
                    }
                    _ => "a mapping".to_string(),
                },
                "array" => "a list".to_string(),
                "string" => "a string".to_string(),
                "integer" => "a whole number".to_string(),
                "number" => "a number".to_string(),
                "boolean" => "`true` or `false`".to_string(),
                "null" => "nothing".to_string(),
                other => other.to_string(),
            })
            .collect();
        if words.is_empty() {
            "a value".to_string()
        } else {
            join_or(&words)
        }
    }
}

fn node_matches_json_type(node: &Node, v: &Value) -> bool {
    matches!(
        (&node.kind, v),
        (NodeKind::Str(_), Value::String(_))
            | (NodeKind::Int(_), Value::Number(_))
            | (NodeKind::Bool(_), Value::Bool(_))
            | (NodeKind::Null, Value::Null)
    )
}

fn describe_node(node: &Node) -> String {
    match &node.kind {
        NodeKind::Str(s) => {
            let shown: String = s.chars().take(40).collect();
            let shown = shown.replace(|c: char| c.is_control(), "?");
            if s.chars().count() > 40 {
                format!("the text `\"{shown}...\"`")
            } else {
                format!("the text `\"{shown}\"`")
            }
        }
        NodeKind::Int(i) => format!("`{i}`"),
        NodeKind::Bool(b) => format!("`{b}`"),
        _ => node.type_name().to_string(),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn join_or(parts: &[String]) -> String {
    let mut uniq: Vec<&String> = Vec::new();
    for p in parts {
        if !uniq.contains(&p) {
            uniq.push(p);
        }
    }
    match uniq.as_slice() {
        [] => String::new(),
        [one] => (*one).clone(),
        [init @ .., last] => format!(
            "{} or {}",
            init.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last
        ),
    }
}

/// A description as one line (schemars keeps the doc comment's line breaks).
fn first_sentence(s: &str) -> String {
    s.split("\n\n").next().unwrap_or(s).replace('\n', " ")
}

/// The field's own description, to say what belongs there.
fn field_help(path: &[PathSeg], schema: &Value) -> String {
    let desc = schema
        .get("description")
        .and_then(Value::as_str)
        .map(first_sentence);
    match (path.last(), desc) {
        (Some(PathSeg::Key(k)), Some(d)) => format!("`{k}`: {d}"),
        (_, Some(d)) => d,
        _ => "see `mailshift schema` for what goes here".to_string(),
    }
}
