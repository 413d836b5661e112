//! The plan's JSON Schema, derived from the model types (`mailshift schema`).
//!
//! The same schema drives the loader's shape check, so what editors complete and what
//! `validate` accepts cannot drift apart; `schema/plan.schema.json` is this output, committed,
//! and a test fails when it differs.

use serde_json::Value;

use super::model::Plan;

/// Where the committed schema is published; YAML plans point their editor at it.
pub const SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/mailshift/mailshift/main/schema/plan.schema.json";

pub fn plan_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Plan)).expect("schema serializes");
    if let Value::Object(map) = &mut schema {
        map.insert("$id".into(), Value::String(SCHEMA_URL.into()));
    }
    schema
}

/// The schema as `mailshift schema` prints it: pretty JSON, trailing newline.
pub fn plan_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&plan_schema()).expect("schema serializes");
    s.push('\n');
    s
}
