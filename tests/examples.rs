//! Every example plan passes both the committed JSON Schema (an independent validator) and
//! `mailshift validate`; the committed schema is exactly what `mailshift schema` prints.

use crate::common::{mailshift, repo_root};

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("schema/plan.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn schema_file_matches_the_code() {
    let committed = std::fs::read_to_string(repo_root().join("schema/plan.schema.json")).unwrap();
    let printed = mailshift(repo_root(), &["schema"]);
    assert_eq!(printed.code, 0);
    assert!(
        printed.stdout == committed,
        "schema/plan.schema.json is stale: run `cargo run -- schema > schema/plan.schema.json`"
    );
}

#[test]
fn examples_pass_schema_and_validate() {
    let validator = jsonschema::validator_for(&committed_schema()).expect("schema compiles");
    let dir = repo_root().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                assert!(
                    text.starts_with("# yaml-language-server: $schema="),
                    "{name} must start with the yaml-language-server schema comment"
                );
                mailshift::plan::node::parse_yaml(&text).unwrap().to_json()
            }
            Some("toml") => mailshift::plan::node::parse_toml(&text).unwrap().to_json(),
            _ => continue,
        };
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name} fails the schema: {errors:?}");
        let out = mailshift(&dir, &["validate", &name]);
        assert_eq!(out.code, 0, "{name}: {}", out.transcript());
        seen += 1;
    }
    assert!(seen >= 5, "expected the example plans, found {seen}");
}

#[test]
fn the_schema_rejects_what_validate_rejects_by_shape() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    let bad = serde_json::json!({"version": 1, "platforms": {}, "accounts": [{"adress": "x"}]});
    assert!(!validator.is_valid(&bad));
}
