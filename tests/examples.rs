//! Every example plan passes both the committed JSON Schema (an independent validator) and
//! `mailshift validate`; the committed schema is exactly what `mailshift schema` prints. The
//! systemd unit of watch mode (`examples/deploy/mailshift.service`) parses, and what it passes to
//! `mailshift watch` fits together (flags, signals, timeouts); the Kubernetes manifests have
//! their own module (`deploy.rs`).

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
        if path.is_dir() {
            // examples/deploy: service definitions, not plans (checked below).
            continue;
        }
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

/// The flags a deployment example passes to `mailshift watch` exist (its `--help` names them).
fn assert_watch_flags_exist(example: &str, args: &[&str]) {
    let help = mailshift(repo_root(), &["watch", "--help"]).stdout;
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag),
            "{example} passes {flag}, which `mailshift watch` does not have"
        );
    }
}

fn seconds(text: &str) -> u64 {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {text}"))
}

/// The value following `flag` in an argument list.
fn flag_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| *a == flag).map(|i| args[i + 1])
}

/// A systemd unit is INI-like: `[Section]` headers and `Key=Value` lines, `#`/`;` comments.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = None;
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: no continuations here",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not `Key=Value`: {raw}", n + 1));
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key {key:?}",
            n + 1
        );
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("line {}: outside a section", n + 1));
        out.push((section, key.to_string(), value.trim().to_string()));
    }
    out
}

#[test]
fn systemd_example_parses_and_fits_together() {
    let text =
        std::fs::read_to_string(repo_root().join("examples/deploy/mailshift.service")).unwrap();
    let entries = parse_unit(&text);
    let get = |section: &str, key: &str| {
        entries
            .iter()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in [{section}]"))
    };
    let sections: std::collections::BTreeSet<&str> =
        entries.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        sections.into_iter().collect::<Vec<_>>(),
        ["Install", "Service", "Unit"]
    );
    let exec: Vec<&str> = get("Service", "ExecStart").split_whitespace().collect();
    assert!(exec[0].starts_with('/'), "systemd wants an absolute path");
    assert_eq!(exec[1], "watch");
    assert_watch_flags_exist("mailshift.service", &exec);
    assert!(get("Service", "ExecReload").contains("-HUP"));
    assert_eq!(get("Service", "KillSignal"), "SIGTERM");
    let grace = seconds(flag_value(&exec, "--grace").unwrap());
    assert!(seconds(get("Service", "TimeoutStopSec")) > grace);
    assert_eq!(get("Install", "WantedBy"), "multi-user.target");
}
