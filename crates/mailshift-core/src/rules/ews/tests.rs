//! The XML `to_ews` writes, checked inside a whole UpdateInboxRules request against
//! Microsoft's published schemas (`ews_sim::check::check_request`), and read back.

use super::*;
use crate::rules::{Action, Condition};

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>
  <soap:Body>{body}</soap:Body>
</soap:Envelope>"#
    )
}

fn folder_id(path: &str) -> Option<FolderRef> {
    match path {
        "Inbox" => Some(FolderRef::Distinguished("inbox".into())),
        "Compta/Été <2026> & \"co\"" => Some(FolderRef::Id("AAMk=1".into())),
        _ => None,
    }
}

fn folder_path(r: &FolderRef) -> Option<String> {
    match r {
        FolderRef::Distinguished(id) if id == "inbox" => Some("Inbox".into()),
        FolderRef::Id(id) if id == "AAMk=1" => Some("Compta/Été <2026> & \"co\"".into()),
        _ => None,
    }
}

/// Rules as they read back: conditions and actions in Exchange's order.
fn sample() -> Vec<Rule> {
    vec![
        Rule {
            name: "Factures <é> & \"co\"".into(),
            enabled: true,
            conditions: vec![
                Condition::HeadersContain("X-Spam: yes".into()),
                Condition::RecipientContains("compta".into()),
                Condition::From("billing@".into()),
                Condition::SubjectContains("facture".into()),
                Condition::FromAddress("boss@example.com".into()),
                Condition::SentTo("team@example.com".into()),
                Condition::SizeOver(2048),
                Condition::SizeUnder(10 << 20),
            ],
            match_all: true,
            actions: vec![
                Action::MarkRead,
                Action::MarkImportance(Importance::High),
                Action::MoveTo("Compta/Été <2026> & \"co\"".into()),
                Action::Redirect("a@example.net".into()),
                Action::Forward("b@example.net".into()),
                Action::Stop,
            ],
        },
        Rule {
            name: "Any of two senders".into(),
            enabled: false,
            conditions: vec![Condition::From("x@".into()), Condition::From("y@".into())],
            match_all: false,
            actions: vec![Action::Delete, Action::Discard],
        },
        Rule {
            name: "Everything".into(),
            enabled: true,
            conditions: vec![],
            match_all: true,
            actions: vec![Action::MoveTo("Inbox".into())],
        },
    ]
}

#[test]
fn the_request_follows_the_published_schema_and_reads_back() {
    let (xml, left) = to_ews(&sample(), &folder_id);
    assert_eq!(left, vec![]);
    assert_eq!(xml.len(), 3);
    let body = update_inbox_rules(&["old-rule-1".to_string()], &xml).unwrap();
    let request = envelope(&body);
    let report = ews_sim::check::check_request(&request);
    assert_eq!(report.operation.as_deref(), Some("UpdateInboxRules"));
    assert_eq!(report.violations, vec![], "{request}");
    let back = from_ews(&request, &folder_path);
    assert_eq!(back.untranslatable, vec![]);
    assert_eq!(back.rules, sample());
    assert!(xml[1].contains("<t:Priority>2</t:Priority><t:IsEnabled>false</t:IsEnabled>"));
}

#[test]
fn nothing_to_update_is_no_request() {
    assert_eq!(update_inbox_rules(&[], &[]), None);
}

#[test]
fn sizes_are_whole_kilobytes_rounded_up() {
    let rule = Rule {
        name: "big".into(),
        enabled: true,
        conditions: vec![Condition::SizeOver(1025)],
        match_all: true,
        actions: vec![Action::MarkRead],
    };
    let (xml, _) = to_ews(&[rule], &folder_id);
    assert!(
        xml[0].contains("<t:MinimumSize>2</t:MinimumSize>"),
        "{}",
        xml[0]
    );
}

#[test]
fn what_exchange_cannot_hold_is_left_out_with_the_reason() {
    let base = Rule {
        name: "r".into(),
        enabled: true,
        conditions: vec![],
        match_all: true,
        actions: vec![Action::MarkRead],
    };
    let cases = [
        (
            Rule {
                conditions: vec![Condition::To("me".into())],
                ..base.clone()
            },
            "To alone",
        ),
        (
            Rule {
                conditions: vec![Condition::HeaderContains {
                    header: "List-Id".into(),
                    value: "dev".into(),
                }],
                ..base.clone()
            },
            "\"List-Id\"",
        ),
        (
            Rule {
                actions: vec![Action::Flag],
                ..base.clone()
            },
            "cannot flag",
        ),
        (
            Rule {
                actions: vec![Action::MoveTo("Nowhere".into())],
                ..base.clone()
            },
            "\"Nowhere\" is not on the destination",
        ),
        (
            Rule {
                conditions: vec![
                    Condition::From("a".into()),
                    Condition::SubjectContains("b".into()),
                ],
                match_all: false,
                ..base.clone()
            },
            "not any of several kinds",
        ),
        (
            Rule {
                conditions: vec![Condition::From("a".into()), Condition::From("b".into())],
                match_all: true,
                ..base.clone()
            },
            "both hold",
        ),
        (
            Rule {
                actions: vec![],
                ..base.clone()
            },
            "no action",
        ),
    ];
    for (rule, why) in cases {
        let (xml, left) = to_ews(std::slice::from_ref(&rule), &folder_id);
        assert_eq!(xml, Vec::<String>::new(), "{rule}");
        assert_eq!(left.len(), 1, "{rule}");
        assert!(left[0].reason.contains(why), "{rule}: {}", left[0].reason);
        assert_eq!(left[0].text, rule.to_string());
    }
}

#[test]
fn an_answer_is_read_in_priority_order_and_what_is_outside_is_shown_whole() {
    let answer = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<m:GetInboxRulesResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" ResponseClass="Success">
<m:ResponseCode>NoError</m:ResponseCode><m:OutlookRuleBlobExists>true</m:OutlookRuleBlobExists>
<m:InboxRules>
<t:Rule><t:RuleId>r2</t:RuleId><t:DisplayName>Second</t:DisplayName><t:Priority>2</t:Priority><t:IsEnabled>true</t:IsEnabled>
  <t:Conditions><t:ContainsSubjectStrings><t:String>a &amp; b</t:String></t:ContainsSubjectStrings></t:Conditions>
  <t:Exceptions><t:ContainsSenderStrings><t:String>boss</t:String></t:ContainsSenderStrings></t:Exceptions>
  <t:Actions><t:Delete>true</t:Delete></t:Actions></t:Rule>
<t:Rule><t:RuleId>r1</t:RuleId><t:DisplayName>First</t:DisplayName><t:Priority>1</t:Priority><t:IsEnabled>false</t:IsEnabled>
  <t:Conditions><t:ContainsSubjectStrings><t:String>a &amp; b</t:String></t:ContainsSubjectStrings></t:Conditions>
  <t:Actions><t:MoveToFolder><t:DistinguishedFolderId Id="inbox"/></t:MoveToFolder><t:StopProcessingRules>true</t:StopProcessingRules></t:Actions></t:Rule>
<t:Rule><t:RuleId>r3</t:RuleId><t:DisplayName>Third</t:DisplayName><t:Priority>3</t:Priority><t:IsEnabled>true</t:IsEnabled>
  <t:Conditions><t:ContainsBodyStrings><t:String>x</t:String></t:ContainsBodyStrings></t:Conditions>
  <t:Actions><t:MarkAsRead>true</t:MarkAsRead></t:Actions></t:Rule>
<t:Rule><t:RuleId>r4</t:RuleId><t:DisplayName>Fourth</t:DisplayName><t:Priority>4</t:Priority><t:IsEnabled>true</t:IsEnabled>
  <t:Actions><t:MoveToFolder><t:FolderId Id="gone"/></t:MoveToFolder></t:Actions></t:Rule>
</m:InboxRules></m:GetInboxRulesResponse></s:Body></s:Envelope>"#;
    let t = from_ews(answer, &folder_path);
    assert_eq!(
        t.rules,
        vec![Rule {
            name: "First".into(),
            enabled: false,
            conditions: vec![Condition::SubjectContains("a & b".into())],
            match_all: true,
            actions: vec![Action::MoveTo("Inbox".into()), Action::Stop],
        }]
    );
    let reasons: Vec<&str> = t.untranslatable.iter().map(|u| u.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "the rule has exceptions, which the model does not hold",
            "the condition ContainsBodyStrings is outside the model",
            "a move to a folder not found: Id(\"gone\")",
        ]
    );
    assert!(
        t.untranslatable[0]
            .text
            .starts_with("<t:Rule><t:RuleId>r2</t:RuleId>")
            && t.untranslatable[0].text.ends_with("</t:Rule>"),
        "{}",
        t.untranslatable[0].text
    );
}

#[test]
fn a_broken_answer_is_shown_not_dropped() {
    let t = from_ews("<a><b></a>", &folder_path);
    assert_eq!(t.rules, vec![]);
    assert_eq!(t.untranslatable.len(), 1);
    assert!(t.untranslatable[0].reason.contains("cannot be read"));
}
