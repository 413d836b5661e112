//! The vendored Microsoft Graph definition (`schema/graph-v1.0-subset.json`, extracted from
//! Microsoft's published metadata) as a checker: every request the simulator receives must
//! be a path and method of it, with declared query options and a JSON body of known,
//! writable, well-typed properties; every answer the simulator gives goes through the same
//! type checks. Each mismatch is a [`Violation`] with the JSON path of the offending value,
//! so a test proves the client only makes calls the real service has, and that the
//! simulator does not drift from what the real one answers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

const DOCUMENT: &str = include_str!("../schema/graph-v1.0-subset.json");

/// Properties Microsoft's documentation calls read-only (the server assigns them) that the
/// metadata does not annotate as computed: writing one is refused by the real service.
const SERVER_ASSIGNED: [(&str, &str); 10] = [
    ("entity", "id"),
    ("outlookItem", "changeKey"),
    ("outlookItem", "createdDateTime"),
    ("outlookItem", "lastModifiedDateTime"),
    ("event", "iCalUId"),
    ("event", "type"),
    ("event", "webLink"),
    ("event", "bodyPreview"),
    ("todoTask", "createdDateTime"),
    ("todoTask", "lastModifiedDateTime"),
];

/// Query options the server itself puts in the `@odata.nextLink`/`@odata.deltaLink` it
/// hands out: a client following them sends them back on any read.
const SERVER_LINK_OPTIONS: [&str; 2] = ["$skiptoken", "$deltatoken"];

/// One thing a request or an answer did that the published definition does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub method: String,
    /// The request path as sent (after `/v1.0`).
    pub path: String,
    /// `request` or `response`.
    pub side: &'static str,
    /// Where in the body (`$.attendees[0].type`), or `query:$name`, or `path`.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({} {}): {}",
            self.method, self.path, self.side, self.at, self.message
        )
    }
}

#[derive(Debug)]
pub(crate) struct Operation {
    /// Declared query parameters: name and whether required.
    pub query: Vec<(String, bool)>,
    pub body: Option<Value>,
    pub response: Option<Value>,
}

#[derive(Debug)]
struct PathItem {
    template: String,
    segments: Vec<String>,
    operations: BTreeMap<String, Operation>,
}

pub(crate) struct Schema {
    paths: Vec<PathItem>,
    schemas: serde_json::Map<String, Value>,
}

/// A request path matched to the definition: the template and the values of its
/// `{…}` segments, in order.
#[derive(Debug, Clone)]
pub(crate) struct Matched {
    pub template: String,
    pub params: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse(DOCUMENT))
}

impl Schema {
    fn parse(text: &str) -> Schema {
        // The document is vendored and compiled in; a unit test parses it, so a broken
        // regeneration fails the crate's tests rather than a later run.
        let doc: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let mut paths = Vec::new();
        if let Some(map) = doc.get("paths").and_then(Value::as_object) {
            for (template, item) in map {
                let mut operations = BTreeMap::new();
                for (method, op) in item.as_object().into_iter().flatten() {
                    let query = op
                        .get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                        .filter_map(|p| {
                            let name = p.get("name")?.as_str()?.to_string();
                            let required = p.get("required").and_then(Value::as_bool);
                            Some((name, required.unwrap_or(false)))
                        })
                        .collect();
                    let body = op
                        .pointer("/requestBody/content/application~1json/schema")
                        .cloned();
                    let response = op
                        .get("responses")
                        .and_then(Value::as_object)
                        .and_then(|r| {
                            r.values().find_map(|v| {
                                v.pointer("/content/application~1json/schema").cloned()
                            })
                        });
                    operations.insert(
                        method.to_ascii_uppercase(),
                        Operation {
                            query,
                            body,
                            response,
                        },
                    );
                }
                let segments = template
                    .trim_start_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect();
                paths.push(PathItem {
                    template: template.clone(),
                    segments,
                    operations,
                });
            }
        }
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Schema { paths, schemas }
    }

    #[cfg(test)]
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// The template a request path (after `/v1.0`, percent-decoded segments) falls under.
    /// A literal segment wins over a `{…}` one (`contacts/delta` is the function, not the
    /// contact with id "delta"); `delta()` is also reached as `delta`, as the service allows.
    pub fn match_path(&self, segments: &[String]) -> Option<Matched> {
        let mut best: Option<(usize, &PathItem, Vec<String>)> = None;
        for item in &self.paths {
            if item.segments.len() != segments.len() {
                continue;
            }
            let mut literals = 0;
            let mut params = Vec::new();
            let fits = item.segments.iter().zip(segments).all(|(t, s)| {
                if t.starts_with('{') {
                    params.push(s.clone());
                    !s.is_empty()
                } else if t == s || (t == "delta()" && s == "delta") {
                    literals += 1;
                    true
                } else {
                    false
                }
            });
            if fits && best.as_ref().is_none_or(|(l, _, _)| literals > *l) {
                best = Some((literals, item, params));
            }
        }
        best.map(|(_, item, params)| Matched {
            template: item.template.clone(),
            params,
        })
    }

    pub fn operation(&self, template: &str, method: &str) -> Option<&Operation> {
        self.paths
            .iter()
            .find(|p| p.template == template)
            .and_then(|p| p.operations.get(method))
    }

    /// Query options not declared for the operation, and required ones missing.
    pub fn check_query(&self, op: &Operation, query: &[(String, String)]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, _) in query {
            let declared = op.query.iter().any(|(n, _)| n == name);
            if !declared && !SERVER_LINK_OPTIONS.contains(&name.as_str()) {
                out.push((
                    format!("query:{name}"),
                    "query option not declared for this operation".to_string(),
                ));
            }
        }
        for (name, required) in &op.query {
            if *required && !query.iter().any(|(n, _)| n == name) {
                out.push((
                    format!("query:{name}"),
                    "required query option missing".into(),
                ));
            }
        }
        out
    }

    /// Checks a JSON value against a schema; each problem is (JSON path, message).
    pub fn check_value(&self, value: &Value, schema: &Value, side: Side) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.check(value, schema, side, "$", &mut out);
        out
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        // References chain at most a few times; the bound keeps a bad document finite.
        for _ in 0..8 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => match r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|n| self.schemas.get(n))
                {
                    Some(next) => s = next,
                    None => return &Value::Null,
                },
                None => return s,
            }
        }
        s
    }

    /// The properties of an object schema, its `allOf` bases included, each with the
    /// name of the type that declares it (for the server-assigned list).
    fn properties<'a>(
        &'a self,
        schema: &'a Value,
        out: &mut BTreeMap<String, (String, &'a Value)>,
    ) {
        let s = self.resolve(schema);
        for part in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.properties(part, out);
        }
        let title = s.get("title").and_then(Value::as_str).unwrap_or_default();
        for (name, p) in s
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.insert(name.clone(), (title.to_string(), p));
        }
    }

    fn check(
        &self,
        value: &Value,
        schema: &Value,
        side: Side,
        at: &str,
        out: &mut Vec<(String, String)>,
    ) {
        let s = self.resolve(schema);
        if let Some(alts) = s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Value::as_array)
        {
            // `{type: object, nullable: true}` beside a reference is the converter's way of
            // saying "or null", not "or any object".
            let null_ok = alts.iter().any(|a| {
                a.get("nullable").and_then(Value::as_bool) == Some(true)
                    && a.get("properties").is_none()
            });
            if value.is_null() {
                if !null_ok {
                    out.push((at.to_string(), "null is not allowed here".into()));
                }
                return;
            }
            let mut first = None;
            for alt in alts {
                if alt.get("$ref").is_none()
                    && alt.get("nullable").is_some()
                    && alt.get("properties").is_none()
                {
                    continue;
                }
                let mut errs = Vec::new();
                self.check(value, alt, side, at, &mut errs);
                if errs.is_empty() {
                    return;
                }
                first.get_or_insert(errs);
            }
            out.extend(first.unwrap_or_default());
            return;
        }
        if value.is_null() {
            if s.get("nullable").and_then(Value::as_bool) != Some(true) {
                out.push((at.to_string(), "null is not allowed here".into()));
            }
            return;
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            if !values.contains(value) {
                let title = s.get("title").and_then(Value::as_str).unwrap_or("enum");
                out.push((at.to_string(), format!("{value} is not a value of {title}")));
            }
            return;
        }
        let is_object = s.get("allOf").is_some() || s.get("properties").is_some();
        let ty = s
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(if is_object { "object" } else { "" });
        match ty {
            "string" => match value.as_str() {
                None => out.push((at.to_string(), format!("expected a string, got {value}"))),
                Some(text) => {
                    if s.get("format").and_then(Value::as_str) == Some("date-time")
                        && chrono::DateTime::parse_from_rfc3339(text).is_err()
                    {
                        out.push((
                            at.to_string(),
                            format!("{text:?} is not an RFC 3339 date-time"),
                        ));
                    }
                }
            },
            "boolean" if !value.is_boolean() => {
                out.push((at.to_string(), format!("expected a boolean, got {value}")))
            }
            "integer" if !(value.is_i64() || value.is_u64()) => {
                out.push((at.to_string(), format!("expected an integer, got {value}")))
            }
            "number" if !value.is_number() => {
                out.push((at.to_string(), format!("expected a number, got {value}")))
            }
            "array" => match value.as_array() {
                None => out.push((at.to_string(), format!("expected an array, got {value}"))),
                Some(items) => {
                    let item = s.get("items").unwrap_or(&Value::Null);
                    for (i, v) in items.iter().enumerate() {
                        self.check(v, item, side, &format!("{at}[{i}]"), out);
                    }
                }
            },
            "object" => match value.as_object() {
                None => out.push((at.to_string(), format!("expected an object, got {value}"))),
                Some(map) => {
                    let mut props = BTreeMap::new();
                    self.properties(s, &mut props);
                    for (name, v) in map {
                        // OData instance annotations (`@odata.type`, `@removed`,
                        // `prop@odata.type`) are not properties.
                        if name.contains('@') {
                            continue;
                        }
                        let path = format!("{at}.{name}");
                        let Some((owner, p)) = props.get(name) else {
                            out.push((path, format!("unknown property {name:?}")));
                            continue;
                        };
                        if side == Side::Request {
                            // The server assigns these on the item written, not on the
                            // entities deep-inserted with it: an extended property's `id`
                            // is its tag, which the client chooses.
                            let read_only = p.get("readOnly").and_then(Value::as_bool)
                                == Some(true)
                                || (at == "$"
                                    && SERVER_ASSIGNED.contains(&(owner.as_str(), name.as_str())));
                            if read_only {
                                out.push((path, format!("read-only property {name:?} written")));
                                continue;
                            }
                        }
                        self.check(v, p, side, &path, out);
                    }
                }
            },
            _ => {}
        }
    }
}

/// Splits a query string into decoded (name, value) pairs.
pub(crate) fn parse_query(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.trim_start_matches('/')
            .split('/')
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_vendored_document_parses_with_every_listed_path() {
        let s = schema();
        assert_eq!(s.path_count(), 42);
        assert!(s.schemas.contains_key("microsoft.graph.event"));
    }

    #[test]
    fn literal_segments_win_and_delta_is_reached_without_parentheses() {
        let s = schema();
        let m = s.match_path(&segs("/users/a@b/contacts/delta")).unwrap();
        assert_eq!(m.template, "/users/{user-id}/contacts/delta()");
        let m = s.match_path(&segs("/users/a@b/contacts/AAk=")).unwrap();
        assert_eq!(m.template, "/users/{user-id}/contacts/{contact-id}");
        assert_eq!(m.params, vec!["a@b".to_string(), "AAk=".to_string()]);
        assert!(s.match_path(&segs("/users/a@b/messages")).is_none());
        let m = s
            .match_path(&segs("/users/a@b/mailFolders/inbox/messageRules"))
            .unwrap();
        assert!(s.operation(&m.template, "POST").is_some());
        let m = s
            .match_path(&segs("/users/a@b/events/x/instances"))
            .unwrap();
        assert!(
            s.operation(&m.template, "POST").is_none(),
            "instances cannot be inserted"
        );
    }

    fn body_problems(template: &str, method: &str, body: Value) -> Vec<(String, String)> {
        let s = schema();
        let op = s.operation(template, method).unwrap();
        s.check_value(&body, op.body.as_ref().unwrap(), Side::Request)
    }

    #[test]
    fn a_well_formed_event_passes() {
        let errs = body_problems(
            "/users/{user-id}/calendars/{calendar-id}/events",
            "POST",
            json!({
                "subject": "Review",
                "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Europe/Paris"},
                "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "Europe/Paris"},
                "attendees": [{"emailAddress": {"address": "x@example.com"}, "type": "required"}],
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 3}
                },
                "singleValueExtendedProperties": [{"id": "String {00020329-0000-0000-C000-000000000046} Name k", "value": "v"}],
                "body": null,
                "@odata.type": "#microsoft.graph.event"
            }),
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn unknown_read_only_mistyped_and_bad_enum_values_are_each_reported_with_their_path() {
        let errs = body_problems(
            "/users/{user-id}/calendars/{calendar-id}/events",
            "POST",
            json!({
                "subjet": "typo",
                "iCalUId": "040000008200E0",
                "isAllDay": "yes",
                "attendees": [{"emailAddress": {"address": "x@example.com"}, "type": "mandatory"}],
                "cancelledOccurrences": null
            }),
        );
        let at: Vec<&str> = errs.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            at,
            vec![
                "$.attendees[0].type",
                "$.cancelledOccurrences",
                "$.iCalUId",
                "$.isAllDay",
                "$.subjet"
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn answers_may_carry_read_only_properties_but_not_unknown_or_mistyped_ones() {
        let s = schema();
        let op = s
            .operation("/users/{user-id}/contacts/{contact-id}", "GET")
            .unwrap();
        let answer = json!({
            "@odata.etag": "W/\"x\"", "id": "AAk", "changeKey": "CQ",
            "createdDateTime": "2026-11-28T10:00:00Z", "givenName": "A"
        });
        let errs = s.check_value(&answer, op.response.as_ref().unwrap(), Side::Response);
        assert!(errs.is_empty(), "{errs:?}");
        let drifted =
            json!({"id": "AAk", "nickName": 3, "createdDateTime": "yesterday", "extra": true});
        let errs = s.check_value(&drifted, op.response.as_ref().unwrap(), Side::Response);
        let at: Vec<&str> = errs.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(at, vec!["$.createdDateTime", "$.extra", "$.nickName"]);
    }

    #[test]
    fn undeclared_and_missing_required_query_options_are_reported() {
        let s = schema();
        let m = s.match_path(&segs("/users/a/events/e/instances")).unwrap();
        let op = s.operation(&m.template, "GET").unwrap();
        let q = parse_query("startDateTime=2026-01-01T00:00:00Z&$foo=1&$skiptoken=3");
        let errs = s.check_query(op, &q);
        assert_eq!(
            errs.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
            vec!["query:$foo", "query:endDateTime"]
        );
    }
}
