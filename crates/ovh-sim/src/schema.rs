//! The published API schema as a request checker: every call the simulator receives must be
//! an operation of the vendored schema files (`api-schema/*.json`: swagger 1.2 for the email
//! APIs, OpenAPI 3.0 for `/domain`) with known query parameters and a body made of writable,
//! well-typed fields. A call that is not is refused
//! the way the real API refuses bad parameters, and the simulator records it as a violation,
//! so a test can prove that the client only ever makes calls the real API has.
//!
//! The simulator's own answers go through the same type checks (reading the schema's
//! read-only properties too), so a drift between what it serves and the schema shows up as
//! a violation instead of passing unnoticed.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

const FILES: [&str; 5] = [
    include_str!("api-schema/auth.json"),
    include_str!("api-schema/email-domain.json"),
    include_str!("api-schema/email-exchange.json"),
    include_str!("api-schema/email-mxplan.json"),
    include_str!("api-schema/email-pro.json"),
];

/// The files OVHcloud publishes as OpenAPI 3.0 rather than swagger 1.2. Both forms are read
/// into the same operations and models, so the checks below do not care which a call hit.
const OPENAPI_FILES: [&str; 1] = [include_str!("api-schema/domain.json")];

#[derive(Deserialize)]
struct RawFile {
    apis: Vec<RawApi>,
    #[serde(default)]
    models: HashMap<String, RawModel>,
}

#[derive(Deserialize)]
struct RawApi {
    path: String,
    operations: Vec<RawOperation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOperation {
    http_method: String,
    #[serde(default)]
    no_authentication: bool,
    #[serde(default)]
    parameters: Vec<RawParam>,
    response_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParam {
    #[serde(default)]
    name: Option<String>,
    param_type: String,
    data_type: String,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawModel {
    #[serde(default, rename = "enum")]
    values: Option<Vec<Value>>,
    #[serde(default)]
    properties: Option<HashMap<String, RawProperty>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperty {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    can_be_null: bool,
    #[serde(default)]
    required: bool,
}

#[derive(Debug)]
enum Model {
    Enum(Vec<String>),
    Object(BTreeMap<String, Property>),
}

#[derive(Debug)]
struct Property {
    ty: String,
    read_only: bool,
    can_be_null: bool,
    required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Path,
    Query,
    Body,
}

#[derive(Debug)]
pub(crate) struct Param {
    pub name: String,
    pub location: Location,
    pub ty: String,
    pub required: bool,
}

/// One `apis[].operations[]` entry.
#[derive(Debug)]
pub(crate) struct Operation {
    pub method: String,
    /// The path as published, e.g. `/email/pro/{service}/account/{email}`.
    pub template: String,
    segments: Vec<Segment>,
    pub params: Vec<Param>,
    /// The model type of a body sent whole (`PUT` with `email.pro.Account`), as opposed to a
    /// body made of named parameters.
    body_model: Option<String>,
    pub no_auth: bool,
    pub response: String,
    /// Index into `Schema::models`: types resolve in the operation's own file first, since
    /// two files may publish a model of the same name with different read-only flags.
    file: usize,
}

/// A request's operation and its decoded path parameters.
pub(crate) struct Matched<'a> {
    pub op: &'a Operation,
    pub params: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A client's body: only writable properties, required ones present.
    Request,
    /// The simulator's answer: any published property.
    Response,
}

#[derive(Debug)]
pub(crate) struct Schema {
    ops: Vec<Operation>,
    models: Vec<HashMap<String, Model>>,
}

impl Schema {
    /// The vendored schema, parsed once per process.
    pub fn global() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            // The files are compiled in and covered by tests: a parse failure is a build
            // defect, not an input error.
            let mut schema =
                Schema::parse(&FILES).expect("the vendored OVHcloud API schema does not parse");
            for text in OPENAPI_FILES {
                schema
                    .add_openapi(text)
                    .expect("the vendored OVHcloud OpenAPI schema does not parse");
            }
            schema
        })
    }

    fn parse(files: &[&str]) -> Result<Schema, String> {
        let mut ops = Vec::new();
        let mut models = Vec::new();
        for (file, text) in files.iter().enumerate() {
            let raw: RawFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let mut file_models = HashMap::new();
            for (name, m) in raw.models {
                let model = match (m.values, m.properties) {
                    (Some(values), _) => Model::Enum(
                        values
                            .iter()
                            .map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect(),
                    ),
                    (None, props) => Model::Object(
                        props
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, p)| {
                                let prop = Property {
                                    ty: p.ty,
                                    read_only: p.read_only,
                                    can_be_null: p.can_be_null,
                                    required: p.required,
                                };
                                (k, prop)
                            })
                            .collect(),
                    ),
                };
                file_models.insert(name, model);
            }
            models.push(file_models);
            for api in raw.apis {
                let segments = template_segments(&api.path);
                for op in api.operations {
                    let mut params = Vec::new();
                    let mut body_model = None;
                    for p in op.parameters {
                        let location = match p.param_type.as_str() {
                            "path" => Location::Path,
                            "query" => Location::Query,
                            "body" => Location::Body,
                            other => return Err(format!("unknown paramType {other}")),
                        };
                        match p.name {
                            Some(name) => params.push(Param {
                                name,
                                location,
                                ty: p.data_type,
                                required: p.required,
                            }),
                            None if location == Location::Body => body_model = Some(p.data_type),
                            None => return Err(format!("unnamed parameter in {}", api.path)),
                        }
                    }
                    ops.push(Operation {
                        method: op.http_method.to_ascii_uppercase(),
                        template: api.path.clone(),
                        segments: segments.clone(),
                        params,
                        body_model,
                        no_auth: op.no_authentication,
                        response: op.response_type,
                        file,
                    });
                }
            }
        }
        Ok(Schema { ops, models })
    }

    /// Adds an OpenAPI 3.0 description, its types translated to the swagger 1.2 names the
    /// checks use (`long`, `datetime`, `T[]`, model names), inline objects and enums as
    /// models of their own.
    fn add_openapi(&mut self, text: &str) -> Result<(), String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let file = self.models.len();
        let mut models = HashMap::new();
        let empty = serde_json::Map::new();
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (name, s) in schemas {
            let model = openapi_model(name, s, &mut models);
            models.insert(name.clone(), model);
        }
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("an OpenAPI file without paths")?;
        for (path, item) in paths {
            let segments = template_segments(path);
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    continue;
                }
                let at = format!("{} {path}", method.to_ascii_uppercase());
                let mut params = Vec::new();
                for p in op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map_or(&[][..], |v| v)
                {
                    let name = p["name"]
                        .as_str()
                        .ok_or(format!("unnamed parameter in {at}"))?;
                    let location = match p["in"].as_str() {
                        Some("path") => Location::Path,
                        Some("query") => Location::Query,
                        other => return Err(format!("{at}: parameter in {other:?}")),
                    };
                    params.push(Param {
                        name: name.to_string(),
                        location,
                        ty: openapi_type(&format!("{at} {name}"), &p["schema"], &mut models),
                        required: p["required"].as_bool().unwrap_or(false),
                    });
                }
                let mut body_model = None;
                if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                    match (body.get("properties").and_then(Value::as_object), body) {
                        // Named fields, as swagger 1.2's body parameters.
                        (Some(props), _) => {
                            let required = required_names(body);
                            for (name, s) in props {
                                params.push(Param {
                                    name: name.clone(),
                                    location: Location::Body,
                                    ty: openapi_type(&format!("{at} {name}"), s, &mut models),
                                    required: required.contains(&name.as_str()),
                                });
                            }
                        }
                        (None, s) => {
                            body_model = Some(openapi_type(&format!("{at} body"), s, &mut models))
                        }
                    }
                }
                let response = match op.pointer("/responses/200/content/application~1json/schema") {
                    Some(s) => openapi_type(&format!("{at} answer"), s, &mut models),
                    None => "void".to_string(),
                };
                self.ops.push(Operation {
                    method: method.to_ascii_uppercase(),
                    template: path.clone(),
                    segments: segments.clone(),
                    params,
                    body_model,
                    // Every `/domain` operation is signed (`security: oAuth2AuthCode` in the
                    // description, application keys in practice, as for the email APIs).
                    no_auth: false,
                    response,
                    file,
                });
            }
        }
        self.models.push(models);
        Ok(())
    }

    /// The operation for `method` on `path` (relative to `/1.0`, without the query string).
    /// When several templates fit, literal segments win over parameters, as in
    /// `/email/domain/delegatedAccount` against `/email/domain/{domain}`.
    pub fn find(&self, method: &str, path: &str) -> Result<Matched<'_>, String> {
        let segments: Vec<String> = split(path).map(percent_decode).collect();
        let mut best: Option<(Vec<bool>, &str)> = None;
        for op in &self.ops {
            if let Some(shape) = fit(&op.segments, &segments)
                && best.as_ref().is_none_or(|(b, _)| shape > *b)
            {
                best = Some((shape, &op.template));
            }
        }
        let Some((_, template)) = best else {
            return Err(format!("no operation has the path {path}"));
        };
        let candidates: Vec<&Operation> =
            self.ops.iter().filter(|o| o.template == template).collect();
        let Some(op) = candidates.iter().find(|o| o.method == method) else {
            let allowed: Vec<&str> = candidates.iter().map(|o| o.method.as_str()).collect();
            return Err(format!(
                "{template} has no {method} operation (it has {})",
                allowed.join(", ")
            ));
        };
        let mut params = HashMap::new();
        for (seg, value) in op.segments.iter().zip(&segments) {
            if let Segment::Param(name) = seg {
                params.insert(name.clone(), value.clone());
            }
        }
        Ok(Matched { op, params })
    }

    /// Checks path parameter types, query parameters and the body of a matched request.
    pub fn check_request(
        &self,
        m: &Matched<'_>,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<(), String> {
        let op = m.op;
        for p in op.params.iter().filter(|p| p.location == Location::Path) {
            if let Some(v) = m.params.get(&p.name) {
                self.check_text(op.file, &p.ty, v)
                    .map_err(|e| format!("path parameter {}: {e}", p.name))?;
            }
        }
        for (name, value) in query {
            let Some(p) = op
                .params
                .iter()
                .find(|p| p.location == Location::Query && &p.name == name)
            else {
                return Err(format!(
                    "{} {} has no query parameter {name:?}",
                    op.method, op.template
                ));
            };
            self.check_text(op.file, &p.ty, value)
                .map_err(|e| format!("query parameter {name}: {e}"))?;
        }
        for p in op.params.iter().filter(|p| p.location == Location::Query) {
            if p.required && !query.iter().any(|(n, _)| n == &p.name) {
                return Err(format!("query parameter {} is required", p.name));
            }
        }
        self.check_body(op, body)
    }

    fn check_body(&self, op: &Operation, body: Option<&Value>) -> Result<(), String> {
        let named: Vec<&Param> = op
            .params
            .iter()
            .filter(|p| p.location == Location::Body)
            .collect();
        let body = body.filter(|b| !b.is_null());
        if let Some(model) = &op.body_model {
            let Some(body) = body else {
                return Err(format!(
                    "{} {} needs a {model} body",
                    op.method, op.template
                ));
            };
            return self.check_value(op.file, model, body, Mode::Request, "body");
        }
        if named.is_empty() {
            return match body {
                None => Ok(()),
                Some(Value::Object(o)) if o.is_empty() => Ok(()),
                Some(_) => Err(format!("{} {} takes no body", op.method, op.template)),
            };
        }
        let empty = serde_json::Map::new();
        let fields = match body {
            None => &empty,
            Some(Value::Object(o)) => o,
            Some(other) => return Err(format!("the body must be an object, not {}", kind(other))),
        };
        for (name, value) in fields {
            let Some(p) = named.iter().find(|p| &p.name == name) else {
                let known: Vec<&str> = named.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "body field {name:?} is not a parameter of {} {} (it takes {})",
                    op.method,
                    op.template,
                    known.join(", ")
                ));
            };
            if value.is_null() {
                return Err(format!("body field {name:?} is null"));
            }
            self.check_value(
                op.file,
                &p.ty,
                value,
                Mode::Request,
                &format!("body field {name:?}"),
            )?;
        }
        for p in named {
            if p.required && !fields.contains_key(&p.name) {
                return Err(format!("body field {:?} is required", p.name));
            }
        }
        Ok(())
    }

    /// Checks an answer of the simulator against the operation's response type.
    pub fn check_response(&self, op: &Operation, value: &Value) -> Result<(), String> {
        match op.response.as_str() {
            "void" if value.is_null() => Ok(()),
            "void" => Err(format!("{} {} returns nothing", op.method, op.template)),
            ty => self.check_value(op.file, ty, value, Mode::Response, "answer"),
        }
    }

    /// A path or query value (always text on the wire) against a parameter type.
    fn check_text(&self, file: usize, ty: &str, text: &str) -> Result<(), String> {
        let value = match ty {
            "long" => match text.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err(format!("{text:?} is not a long")),
            },
            "boolean" => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("{text:?} is not a boolean")),
            },
            _ if ty.starts_with("map[") => return Ok(()),
            _ => Value::String(text.to_string()),
        };
        self.check_value(file, ty, &value, Mode::Request, "value")
    }

    fn model(&self, file: usize, name: &str) -> Option<&Model> {
        self.models
            .get(file)
            .and_then(|m| m.get(name))
            .or_else(|| self.models.iter().find_map(|m| m.get(name)))
    }

    fn check_value(
        &self,
        file: usize,
        ty: &str,
        value: &Value,
        mode: Mode,
        at: &str,
    ) -> Result<(), String> {
        if let Some(inner) = ty.strip_suffix("[]") {
            let Value::Array(items) = value else {
                return Err(format!("{at}: expected {ty}, got {}", kind(value)));
            };
            for (i, item) in items.iter().enumerate() {
                self.check_value(file, inner, item, mode, &format!("{at}[{i}]"))?;
            }
            return Ok(());
        }
        let expect = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("{at}: expected {ty}, got {}", kind(value)))
            }
        };
        match ty {
            "string" | "text" | "password" | "phoneNumber" | "ipv4Block" | "ipBlock" | "ipv4"
            | "ipv6" | "ip" | "uuid" => expect(value.is_string()),
            "long" => expect(value.is_i64() || value.is_u64()),
            "double" => expect(value.is_number()),
            "boolean" => expect(value.is_boolean()),
            "datetime" => match value.as_str() {
                Some(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
                Some(s) => Err(format!("{at}: {s:?} is not an ISO 8601 date and time")),
                None => expect(false),
            },
            "date" => match value.as_str() {
                Some(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(()),
                Some(s) => Err(format!("{at}: {s:?} is not a date (YYYY-MM-DD)")),
                None => expect(false),
            },
            // Generic parameters of templated models: nothing to check against.
            "T" => Ok(()),
            _ if ty.starts_with("map[") => expect(value.is_object()),
            _ => match self.model(file, ty) {
                Some(Model::Enum(values)) => match value.as_str() {
                    Some(s) if values.iter().any(|v| v == s) => Ok(()),
                    Some(s) => Err(format!(
                        "{at}: {s:?} is not one of {ty} ({})",
                        values.join(", ")
                    )),
                    None => expect(false),
                },
                Some(Model::Object(props)) => self.check_object(file, ty, props, value, mode, at),
                // A type the files name but do not define: accept rather than guess.
                None => Ok(()),
            },
        }
    }

    fn check_object(
        &self,
        file: usize,
        ty: &str,
        props: &BTreeMap<String, Property>,
        value: &Value,
        mode: Mode,
        at: &str,
    ) -> Result<(), String> {
        let Value::Object(fields) = value else {
            return Err(format!("{at}: expected {ty}, got {}", kind(value)));
        };
        for (name, v) in fields {
            let Some(p) = props.get(name) else {
                return Err(format!("{at}: {ty} has no property {name:?}"));
            };
            if mode == Mode::Request && p.read_only {
                return Err(format!("{at}: {ty}.{name} is read-only"));
            }
            if v.is_null() {
                if !p.can_be_null {
                    return Err(format!("{at}: {ty}.{name} cannot be null"));
                }
                continue;
            }
            self.check_value(file, &p.ty, v, mode, &format!("{at}.{name}"))?;
        }
        if mode == Mode::Request {
            for (name, p) in props {
                if p.required && !fields.contains_key(name) {
                    return Err(format!("{at}: {ty}.{name} is required"));
                }
            }
        }
        Ok(())
    }
}

fn template_segments(path: &str) -> Vec<Segment> {
    split(path)
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

fn required_names(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// An OpenAPI schema as a swagger 1.2 type name. `at` names an inline object or enum, which
/// becomes a model of that name.
fn openapi_type(at: &str, s: &Value, models: &mut HashMap<String, Model>) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        return openapi_type(at, only, models);
    }
    match s.get("type").and_then(Value::as_str) {
        Some("array") => format!("{}[]", openapi_type(at, &s["items"], models)),
        Some("integer") => "long".into(),
        Some("number") => "double".into(),
        Some("boolean") => "boolean".into(),
        Some("string") if s.get("enum").is_some() => {
            let model = openapi_model(at, s, models);
            models.insert(at.to_string(), model);
            at.to_string()
        }
        Some("string") => match s.get("format").and_then(Value::as_str) {
            Some("date-time") => "datetime".into(),
            Some("date") => "date".into(),
            _ => "string".into(),
        },
        Some("object") if s.get("properties").is_some() => {
            let model = openapi_model(at, s, models);
            models.insert(at.to_string(), model);
            at.to_string()
        }
        Some("object") => "map[string,T]".into(),
        // No type (`any`): anything goes, as swagger 1.2's generic `T`.
        _ => "T".into(),
    }
}

/// A named OpenAPI schema as a model: an enum, or an object with its properties.
fn openapi_model(name: &str, s: &Value, models: &mut HashMap<String, Model>) -> Model {
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return Model::Enum(
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    let required = required_names(s);
    let mut props = BTreeMap::new();
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in p {
            let ty = openapi_type(&format!("{name}.{k}"), p, models);
            props.insert(
                k.clone(),
                Property {
                    ty,
                    read_only: p["readOnly"].as_bool().unwrap_or(false),
                    can_be_null: p["nullable"].as_bool().unwrap_or(false),
                    required: required.contains(&k.as_str()),
                },
            );
        }
    }
    Model::Object(props)
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Which segments are literals, if the template fits; compared lexicographically, `true`
/// (literal) first wins.
fn fit(template: &[Segment], segments: &[String]) -> Option<Vec<bool>> {
    if template.len() != segments.len() {
        return None;
    }
    template
        .iter()
        .zip(segments)
        .map(|(t, s)| match t {
            Segment::Literal(l) if l == s => Some(true),
            Segment::Literal(_) => None,
            Segment::Param(_) => Some(false),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `%XX` decoding of a path segment or query component; invalid escapes stay as they are and
/// invalid UTF-8 is replaced, so a garbled request still gets an answer rather than a panic.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query string pairs, `+` as space (form encoding, which the API accepts too).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(method: &str, path: &str, query: &str, body: Option<Value>) -> Result<String, String> {
        let schema = Schema::global();
        let m = schema.find(method, path)?;
        schema.check_request(&m, &parse_query(query), body.as_ref())?;
        Ok(m.op.template.clone())
    }

    #[test]
    fn all_files_parse_with_their_operations() {
        let schema = Schema::global();
        assert!(schema.ops.len() > 350, "{}", schema.ops.len());
        assert!(
            schema
                .ops
                .iter()
                .any(|o| o.template == "/auth/time" && o.no_auth)
        );
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        assert_eq!(
            check("GET", "/email/domain/delegatedAccount", "", None).unwrap(),
            "/email/domain/delegatedAccount"
        );
        assert_eq!(
            check("GET", "/email/domain/example.com", "", None).unwrap(),
            "/email/domain/{domain}"
        );
    }

    #[test]
    fn path_parameters_are_decoded() {
        let m = Schema::global()
            .find("GET", "/email/pro/svc/account/john%40example.com")
            .unwrap();
        assert_eq!(m.params["email"], "john@example.com");
    }

    #[test]
    fn unknown_path_and_method_are_refused() {
        let e = check("GET", "/email/pro/svc/mailingList", "", None).unwrap_err();
        assert!(e.contains("no operation has the path"), "{e}");
        let e = check("POST", "/email/pro/svc/account", "", Some(json!({}))).unwrap_err();
        assert!(e.contains("has no POST operation (it has GET)"), "{e}");
    }

    #[test]
    fn query_parameters_must_be_published_and_typed() {
        check(
            "GET",
            "/email/pro/s/account",
            "primaryEmailAddress=%25x%25&id=3",
            None,
        )
        .unwrap();
        let e = check("GET", "/email/pro/s/account", "login=x", None).unwrap_err();
        assert!(e.contains("no query parameter \"login\""), "{e}");
        let e = check("GET", "/email/pro/s/account", "id=x", None).unwrap_err();
        assert!(e.contains("is not a long"), "{e}");
    }

    #[test]
    fn model_bodies_take_only_writable_properties() {
        let path = "/email/pro/s/account/a@b.c";
        check(
            "PUT",
            path,
            "",
            Some(json!({"login": "x", "domain": "b.c"})),
        )
        .unwrap();
        let e = check("PUT", path, "", Some(json!({"forwardingEmail": "x@y.z"}))).unwrap_err();
        assert!(
            e.contains("email.pro.Account has no property \"forwardingEmail\""),
            "{e}"
        );
        let e = check(
            "PUT",
            path,
            "",
            Some(json!({"primaryEmailAddress": "x@y.z"})),
        )
        .unwrap_err();
        assert!(e.contains("read-only"), "{e}");
        let e = check("PUT", path, "", Some(json!({"login": 3}))).unwrap_err();
        assert!(e.contains("expected string, got a number"), "{e}");
        // Exchange accounts do have a forwarding address.
        check(
            "PUT",
            "/email/exchange/o/service/s/account/a@b.c",
            "",
            Some(json!({"forwardingEmail": "x@y.z", "storeCopyOfEmail": true})),
        )
        .unwrap();
    }

    #[test]
    fn named_body_parameters_enums_and_required_fields() {
        let path = "/email/pro/s/domain";
        check(
            "POST",
            path,
            "",
            Some(json!({"name": "d.com", "type": "authoritative"})),
        )
        .unwrap();
        let e = check(
            "POST",
            path,
            "",
            Some(json!({"name": "d.com", "type": "master"})),
        )
        .unwrap_err();
        assert!(
            e.contains("\"master\" is not one of email.pro.DomainTypeEnum"),
            "{e}"
        );
        let e = check("POST", path, "", Some(json!({"type": "authoritative"}))).unwrap_err();
        assert!(e.contains("\"name\" is required"), "{e}");
        let e = check(
            "POST",
            path,
            "",
            Some(json!({"name": "d", "type": "authoritative", "x": 1})),
        )
        .unwrap_err();
        assert!(e.contains("body field \"x\" is not a parameter"), "{e}");
    }

    #[test]
    fn required_model_properties_and_no_body_operations() {
        let path = "/email/domain/d.com/redirection";
        let e = check(
            "POST",
            path,
            "",
            Some(json!({"from": "a@d.com", "to": "b@e.com"})),
        )
        .unwrap_err();
        assert!(e.contains("localCopy is required"), "{e}");
        check("GET", "/auth/time", "", Some(json!({}))).unwrap();
        let e = check("GET", "/auth/time", "", Some(json!({"a": 1}))).unwrap_err();
        assert!(e.contains("takes no body"), "{e}");
    }

    #[test]
    fn responses_are_checked_with_read_only_properties() {
        let schema = Schema::global();
        let m = schema.find("GET", "/email/pro/s/task/1").unwrap();
        let task = json!({"id": 1, "function": "addAlias", "status": "doing",
                          "todoDate": "2024-06-01T10:00:00+00:00", "finishDate": null});
        schema.check_response(m.op, &task).unwrap();
        let bad = json!({"id": 1, "status": "running"});
        assert!(schema.check_response(m.op, &bad).is_err());
        let e = schema
            .check_response(m.op, &json!({"id": 1, "comment": "x"}))
            .unwrap_err();
        assert!(e.contains("no property \"comment\""), "{e}");
    }

    #[test]
    fn the_domain_zone_api_is_read_from_its_openapi_description() {
        let schema = Schema::global();
        let zone = "/domain/zone/example.com";
        assert_eq!(
            check("GET", "/domain/zone", "", None).unwrap(),
            "/domain/zone"
        );
        assert_eq!(
            check(
                "GET",
                &format!("{zone}/record"),
                "fieldType=MX&subDomain=",
                None
            )
            .unwrap(),
            "/domain/zone/{zoneName}/record"
        );
        let e = check("GET", &format!("{zone}/record"), "fieldType=MXX", None).unwrap_err();
        assert!(e.contains("\"MXX\" is not one of"), "{e}");
        let e = check("GET", &format!("{zone}/record/x"), "", None).unwrap_err();
        assert!(e.contains("is not a long"), "{e}");
        check(
            "POST",
            &format!("{zone}/record"),
            "",
            Some(json!({"fieldType": "MX", "subDomain": "", "target": "1 mx1.mail.ovh.net.", "ttl": 0})),
        )
        .unwrap();
        let e = check(
            "POST",
            &format!("{zone}/record"),
            "",
            Some(json!({"fieldType": "MX", "subDomain": ""})),
        )
        .unwrap_err();
        assert!(
            e.contains("domain.zone.RecordCreate.target is required"),
            "{e}"
        );
        let e = check(
            "POST",
            &format!("{zone}/record"),
            "",
            Some(json!({"fieldType": "MX", "target": "x", "id": 3})),
        )
        .unwrap_err();
        assert!(e.contains("read-only"), "{e}");
        check(
            "PUT",
            &format!("{zone}/record/12"),
            "",
            Some(json!({"target": "x", "ttl": null})),
        )
        .unwrap();
        let e = check(
            "PUT",
            &format!("{zone}/record/12"),
            "",
            Some(json!({"fieldType": "A"})),
        )
        .unwrap_err();
        assert!(e.contains("no property \"fieldType\""), "{e}");
        check("POST", &format!("{zone}/refresh"), "", None).unwrap();
        let e = check(
            "POST",
            &format!("{zone}/refresh"),
            "",
            Some(json!({"a": 1})),
        )
        .unwrap_err();
        assert!(e.contains("takes no body"), "{e}");
        // Answers: a record with its read-only fields, the ids as integers, nothing for void.
        let m = schema.find("GET", &format!("{zone}/record/12")).unwrap();
        let record = json!({"id": 12, "zone": "example.com", "subDomain": "", "fieldType": "MX",
                            "target": "1 mx1.mail.ovh.net.", "ttl": 0});
        schema.check_response(m.op, &record).unwrap();
        let e = schema
            .check_response(m.op, &json!({"id": 12, "fieldType": "MXX"}))
            .unwrap_err();
        assert!(e.contains("not one of"), "{e}");
        let m = schema.find("GET", &format!("{zone}/record")).unwrap();
        schema.check_response(m.op, &json!([1, 2])).unwrap();
        assert!(schema.check_response(m.op, &json!(["1"])).is_err());
        let m = schema.find("POST", &format!("{zone}/refresh")).unwrap();
        schema.check_response(m.op, &Value::Null).unwrap();
        let m = schema.find("GET", zone).unwrap();
        schema
            .check_response(
                m.op,
                &json!({"name": "example.com", "nameServers": ["ns1.ovh.net"], "dnssecSupported": true,
                        "hasDnsAnycast": false, "lastUpdate": "2026-11-28T10:00:00+00:00", "iam": null}),
            )
            .unwrap();
        // Literal segments still win: `/domain/zone` is not a domain called "zone".
        assert_eq!(
            check("GET", "/domain/zone", "", None).unwrap(),
            "/domain/zone"
        );
        assert_eq!(
            check("GET", "/domain/example.com", "", None).unwrap(),
            "/domain/{serviceName}"
        );
    }
}
