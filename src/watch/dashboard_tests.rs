//! The Grafana dashboard of `examples/deploy` checked against the metrics the code serves:
//! every metric its queries name is a family of a watch's `/metrics` or of the aggregator's
//! (a histogram's `_bucket`, `_sum` and `_count` included), and it has the `shard` variable
//! every watch metric's query filters on. A renamed metric fails here, not on a blank panel.

use std::collections::BTreeMap;

use serde_json::Value;

const DASHBOARD: &str = include_str!("../../examples/deploy/grafana-dashboard.json");

/// Family name → type, from an exposition's `# TYPE` lines.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Every query text of the dashboard: panel targets, variables.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "definition" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => queries(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| queries(x, out)),
        _ => {}
    }
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("mailshift_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_of_the_dashboard_is_served_and_filtered_by_shard() {
    let mut known = families(
        &crate::watch::status::StatusModel::sharded(
            "plan.yaml".into(),
            mailshift_core::shard::Shard::new(1, 3).unwrap(),
        )
        .metrics_text(),
    );
    known.extend(families(&super::aggregate::serve::metrics_of_nothing()));
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() > 10, "{exprs:?}");
    let mut used = 0;
    for expr in &exprs {
        for name in metric_names(expr) {
            used += 1;
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| known.get(*f).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(&name);
            assert!(
                known.contains_key(family),
                "the dashboard queries {name}, which no /metrics serves: {expr}"
            );
            // A watch's metric is shown for the chosen shards; the aggregator's are its own.
            if !family.starts_with("mailshift_aggregate_") && family != "mailshift_shards" {
                assert!(
                    expr.contains("shard=~\"$shard\""),
                    "{expr} does not filter on the shard variable"
                );
            }
        }
    }
    assert!(used > 15);
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "shard"
                && v["definition"] == "label_values(mailshift_shards, shard)"),
        "{vars:?}"
    );
}

#[test]
fn the_names_in_a_query_are_found() {
    assert_eq!(
        metric_names("sum by (le) (rate(mailshift_a_bucket{x=\"1\"}[5m])) / mailshift_b"),
        ["mailshift_a_bucket", "mailshift_b"]
    );
}
