//! Inbox rules ↔ Microsoft Graph `messageRule` resources (`/me/mailFolders/inbox/messageRules`:
//! displayName, sequence, isEnabled, conditions, exceptions, actions; the fields of
//! `messageRulePredicates` and `messageRuleActions` as Microsoft's reference names them), as
//! `serde_json` values for the Graph client to send and read. Graph holds Exchange's rules, so
//! what it can and cannot hold is `exchange`'s; folders are ids, resolved by the caller.
//! Sizes (`withinSizeRange`) are kilobytes, as on EWS.

use serde_json::{Map, Value, json};

use super::exchange::{self, Actions, Predicates};
use super::{Importance, Rule, Translated, Untranslatable};

/// The `messageRule` bodies to POST for `rules`, `sequence` 1, 2... in order among the rules
/// written; and the rules that could not be.
pub fn to_graph(
    rules: &[Rule],
    folder: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Value>, Vec<Untranslatable>) {
    let mut out = Vec::new();
    let mut left = Vec::new();
    for rule in rules {
        match rule_json(rule, out.len() + 1, folder) {
            Ok(v) => out.push(v),
            Err(reason) => left.push(rule.untranslatable(reason)),
        }
    }
    (out, left)
}

fn recipients(list: &[String]) -> Value {
    Value::Array(
        list.iter()
            .map(|a| json!({ "emailAddress": { "address": a } }))
            .collect(),
    )
}

fn rule_json(
    rule: &Rule,
    sequence: usize,
    folder: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, String> {
    let p = exchange::predicates(rule)?;
    let a = exchange::actions(rule)?;
    let mut conditions = Map::new();
    let mut list = |key: &str, v: &[String]| {
        if !v.is_empty() {
            conditions.insert(key.into(), json!(v));
        }
    };
    list("headerContains", &p.header);
    list("recipientContains", &p.recipient);
    list("senderContains", &p.sender);
    list("subjectContains", &p.subject);
    if !p.from_addresses.is_empty() {
        conditions.insert("fromAddresses".into(), recipients(&p.from_addresses));
    }
    if !p.sent_to.is_empty() {
        conditions.insert("sentToAddresses".into(), recipients(&p.sent_to));
    }
    if p.min_kb.is_some() || p.max_kb.is_some() {
        let mut range = Map::new();
        if let Some(kb) = p.min_kb {
            range.insert("minimumSize".into(), json!(kb));
        }
        if let Some(kb) = p.max_kb {
            range.insert("maximumSize".into(), json!(kb));
        }
        conditions.insert("withinSizeRange".into(), Value::Object(range));
    }
    let mut actions = Map::new();
    if a.delete {
        actions.insert("delete".into(), json!(true));
    }
    if !a.forward.is_empty() {
        actions.insert("forwardTo".into(), recipients(&a.forward));
    }
    if let Some(i) = a.importance {
        actions.insert("markImportance".into(), json!(i.as_str()));
    }
    if a.mark_read {
        actions.insert("markAsRead".into(), json!(true));
    }
    if let Some(path) = &a.move_to {
        let id =
            folder(path).ok_or_else(|| format!("the folder {path:?} is not on the destination"))?;
        actions.insert("moveToFolder".into(), json!(id));
    }
    if a.permanent_delete {
        actions.insert("permanentDelete".into(), json!(true));
    }
    if !a.redirect.is_empty() {
        actions.insert("redirectTo".into(), recipients(&a.redirect));
    }
    if a.stop {
        actions.insert("stopProcessingRules".into(), json!(true));
    }
    let mut rule_v = json!({
        "displayName": rule.name,
        "sequence": sequence,
        "isEnabled": rule.enabled,
        "actions": actions,
    });
    if !conditions.is_empty() {
        rule_v["conditions"] = Value::Object(conditions);
    }
    Ok(rule_v)
}

/// Reads the `value` array of a `GET …/messageRules` answer, in order of `sequence`. `folder`
/// names the folder an id stands for.
pub fn from_graph(rules: &[Value], folder: &dyn Fn(&str) -> Option<String>) -> Translated {
    let mut ranked: Vec<(i64, Result<Rule, Untranslatable>)> = rules
        .iter()
        .map(|v| {
            let seq = v["sequence"].as_i64().unwrap_or(i64::MAX);
            let rule = rule_of(v, folder).map_err(|reason| Untranslatable {
                text: serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
                reason,
            });
            (seq, rule)
        })
        .collect();
    ranked.sort_by_key(|(s, _)| *s);
    let mut out = Translated::default();
    for (_, r) in ranked {
        match r {
            Ok(rule) => out.rules.push(rule),
            Err(u) => out.untranslatable.push(u),
        }
    }
    out
}

/// A predicate or action that says nothing: Graph may send every field, unset ones as null,
/// false or empty.
fn unset(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(unset),
        _ => false,
    }
}

fn strings(v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or("a list that is not one")?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| "a text that is not one".into())
        })
        .collect()
}

fn addresses(v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or("a list of recipients that is not one")?
        .iter()
        .map(|r| {
            r["emailAddress"]["address"]
                .as_str()
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .ok_or_else(|| "a recipient without an address".to_string())
        })
        .collect()
}

fn kb(v: &Value) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("a size {v} that is not a number of kilobytes")),
    }
}

fn rule_of(v: &Value, folder: &dyn Fn(&str) -> Option<String>) -> Result<Rule, String> {
    let name = v["displayName"]
        .as_str()
        .ok_or("a rule without a displayName")?
        .to_string();
    if v["hasError"].as_bool() == Some(true) {
        return Err("Graph marks this rule as in error".into());
    }
    if !unset(&v["exceptions"]) {
        return Err("the rule has exceptions, which the model does not hold".into());
    }
    let mut p = Predicates::default();
    if let Some(conds) = v["conditions"].as_object() {
        for (key, c) in conds {
            if unset(c) {
                continue;
            }
            match key.as_str() {
                "headerContains" => p.header = strings(c)?,
                "recipientContains" => p.recipient = strings(c)?,
                "senderContains" => p.sender = strings(c)?,
                "subjectContains" => p.subject = strings(c)?,
                "fromAddresses" => p.from_addresses = addresses(c)?,
                "sentToAddresses" => p.sent_to = addresses(c)?,
                "withinSizeRange" => {
                    p.min_kb = kb(&c["minimumSize"])?;
                    p.max_kb = kb(&c["maximumSize"])?;
                }
                other => return Err(format!("the condition {other} is outside the model")),
            }
        }
    }
    let (conditions, match_all) = exchange::conditions(&p)?;
    let mut a = Actions::default();
    if let Some(acts) = v["actions"].as_object() {
        for (key, x) in acts {
            if unset(x) {
                continue;
            }
            match key.as_str() {
                "delete" => a.delete = x.as_bool() == Some(true),
                "forwardTo" => a.forward = addresses(x)?,
                "markImportance" => {
                    a.importance = Some(match x.as_str() {
                        Some("low") => Importance::Low,
                        Some("normal") => Importance::Normal,
                        Some("high") => Importance::High,
                        _ => return Err(format!("an importance {x}")),
                    })
                }
                "markAsRead" => a.mark_read = x.as_bool() == Some(true),
                "moveToFolder" => {
                    let id = x.as_str().ok_or("a moveToFolder that is not an id")?;
                    a.move_to = Some(
                        folder(id).ok_or_else(|| format!("a move to a folder not found: {id}"))?,
                    );
                }
                "permanentDelete" => a.permanent_delete = x.as_bool() == Some(true),
                "redirectTo" => a.redirect = addresses(x)?,
                "stopProcessingRules" => a.stop = x.as_bool() == Some(true),
                other => return Err(format!("the action {other} is outside the model")),
            }
        }
    }
    let actions = exchange::model_actions(&a);
    if actions.is_empty() {
        return Err("a rule without actions".into());
    }
    Ok(Rule {
        name,
        enabled: v["isEnabled"].as_bool().unwrap_or(true),
        conditions,
        match_all,
        actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Action, Condition};

    fn folder_id(path: &str) -> Option<String> {
        (path == "Compta").then(|| "AQMkAD=".to_string())
    }

    fn folder_path(id: &str) -> Option<String> {
        (id == "AQMkAD=").then(|| "Compta".to_string())
    }

    fn sample() -> Vec<Rule> {
        vec![
            Rule {
                name: "Factures".into(),
                enabled: true,
                conditions: vec![
                    Condition::HeadersContain("X-Spam: yes".into()),
                    Condition::RecipientContains("compta".into()),
                    Condition::From("billing@".into()),
                    Condition::SubjectContains("facture".into()),
                    Condition::FromAddress("boss@example.com".into()),
                    Condition::SentTo("team@example.com".into()),
                    Condition::SizeOver(2048),
                ],
                match_all: true,
                actions: vec![
                    Action::MarkRead,
                    Action::MarkImportance(Importance::Low),
                    Action::MoveTo("Compta".into()),
                    Action::Redirect("a@example.net".into()),
                    Action::Forward("b@example.net".into()),
                    Action::Stop,
                ],
            },
            Rule {
                name: "Any of two subjects".into(),
                enabled: false,
                conditions: vec![
                    Condition::SubjectContains("x".into()),
                    Condition::SubjectContains("y".into()),
                ],
                match_all: false,
                actions: vec![Action::Delete, Action::Discard],
            },
        ]
    }

    #[test]
    fn rules_are_written_with_graphs_field_names_and_read_back() {
        let (values, left) = to_graph(&sample(), &folder_id);
        assert_eq!(left, vec![]);
        assert_eq!(
            values[1],
            json!({
                "displayName": "Any of two subjects",
                "sequence": 2,
                "isEnabled": false,
                "conditions": { "subjectContains": ["x", "y"] },
                "actions": { "delete": true, "permanentDelete": true },
            })
        );
        assert_eq!(
            values[0]["conditions"]["fromAddresses"],
            json!([{ "emailAddress": { "address": "boss@example.com" } }])
        );
        assert_eq!(
            values[0]["conditions"]["withinSizeRange"],
            json!({ "minimumSize": 2 })
        );
        assert_eq!(values[0]["actions"]["moveToFolder"], json!("AQMkAD="));
        assert_eq!(values[0]["actions"]["markImportance"], json!("low"));
        let back = from_graph(&values, &folder_path);
        assert_eq!(back.untranslatable, vec![]);
        assert_eq!(back.rules, sample());
    }

    #[test]
    fn an_answer_with_unset_fields_and_rules_outside_the_model() {
        let answer = json!([
            {
                "id": "r2", "displayName": "Body", "sequence": 2, "isEnabled": true,
                "hasError": false, "isReadOnly": false,
                "conditions": { "bodyContains": ["x"], "subjectContains": [] },
                "actions": { "markAsRead": true }
            },
            {
                "id": "r1", "displayName": "Plain", "sequence": 1, "isEnabled": true,
                "conditions": { "senderContains": ["ceo"], "bodyContains": [],
                                "withinSizeRange": null, "hasAttachments": false },
                "exceptions": { "subjectContains": [] },
                "actions": { "stopProcessingRules": true, "delete": false, "forwardTo": [] }
            },
            {
                "id": "r3", "displayName": "Except", "sequence": 3, "isEnabled": true,
                "exceptions": { "subjectContains": ["keep"] },
                "actions": { "delete": true }
            }
        ]);
        let t = from_graph(answer.as_array().unwrap(), &folder_path);
        assert_eq!(
            t.rules,
            vec![Rule {
                name: "Plain".into(),
                enabled: true,
                conditions: vec![Condition::From("ceo".into())],
                match_all: true,
                actions: vec![Action::Stop],
            }]
        );
        let reasons: Vec<&str> = t.untranslatable.iter().map(|u| u.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "the condition bodyContains is outside the model",
                "the rule has exceptions, which the model does not hold",
            ]
        );
        assert!(
            t.untranslatable[0]
                .text
                .contains("\"displayName\": \"Body\"")
        );
    }

    #[test]
    fn a_flag_is_not_made_an_importance() {
        let rule = Rule {
            name: "f".into(),
            enabled: true,
            conditions: vec![],
            match_all: true,
            actions: vec![Action::Flag],
        };
        let (values, left) = to_graph(std::slice::from_ref(&rule), &folder_id);
        assert!(values.is_empty());
        assert_eq!(left[0].text, rule.to_string());
        assert!(left[0].reason.contains("cannot flag"));
    }
}
