//! Inbox rules ↔ Exchange Web Services: the `t:Rule` elements of GetInboxRules' answer and of
//! UpdateInboxRules' operations (types.xsd's `RuleType`: DisplayName, Priority, IsEnabled,
//! Conditions, Exceptions, Actions), for the EWS client to send and read. Pure text in and
//! out: the client owns the connection, the envelope and the folder ids.
//!
//! Folders are ids on Exchange: the caller resolves a model folder path to a
//! [`FolderRef`] when writing, and back when reading. A rule that uses what Exchange cannot
//! hold (see `exchange`: a To-only test, a named header, a flag, two folders...) or that an
//! Exchange rule holds beyond the model (exceptions, categories, body tests, a rule Exchange
//! itself marks not supported or in error) comes back as [`Untranslatable`] with its text (the
//! model rule's line, or the `t:Rule` element as Exchange sent it).

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::exchange::{self, Actions, Predicates};
use super::{Importance, Rule, Translated, Untranslatable};

/// A folder as an EWS rule names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderRef {
    /// `t:FolderId Id="…"`.
    Id(String),
    /// `t:DistinguishedFolderId Id="inbox"`, `deleteditems`, `junkemail`...
    Distinguished(String),
}

/// The `t:Rule` elements for `rules`, prefix `t:` bound by the caller's envelope to
/// `http://schemas.microsoft.com/exchange/services/2006/types`, with priorities 1, 2...
/// in order among the rules written; and the rules that could not be.
pub fn to_ews(
    rules: &[Rule],
    folder: &dyn Fn(&str) -> Option<FolderRef>,
) -> (Vec<String>, Vec<Untranslatable>) {
    to_ews_from(rules, 1, folder)
}

/// Like [`to_ews`], with priorities `first`, `first + 1`... : rules written after those a
/// mailbox keeps run after them.
pub fn to_ews_from(
    rules: &[Rule],
    first: usize,
    folder: &dyn Fn(&str) -> Option<FolderRef>,
) -> (Vec<String>, Vec<Untranslatable>) {
    let mut out = Vec::new();
    let mut left = Vec::new();
    for rule in rules {
        match rule_xml(rule, first + out.len(), folder) {
            Ok(x) => out.push(x),
            Err(reason) => left.push(rule.untranslatable(reason)),
        }
    }
    (out, left)
}

/// The `m:UpdateInboxRules` element (prefix `m:` for the messages namespace) that deletes the
/// rules `delete_ids` and creates `rules` (from [`to_ews`]); `None` when there is nothing to
/// do (the schema wants at least one operation). Outlook's client-side rule blob is removed,
/// as UpdateInboxRules requires once it is there.
pub fn update_inbox_rules(delete_ids: &[String], rules: &[String]) -> Option<String> {
    if delete_ids.is_empty() && rules.is_empty() {
        return None;
    }
    let mut ops = String::new();
    for id in delete_ids {
        ops.push_str(&format!(
            "<t:DeleteRuleOperation><t:RuleId>{}</t:RuleId></t:DeleteRuleOperation>",
            escape(id.as_str())
        ));
    }
    for r in rules {
        ops.push_str(&format!(
            "<t:CreateRuleOperation>{r}</t:CreateRuleOperation>"
        ));
    }
    Some(format!(
        "<m:UpdateInboxRules><m:RemoveOutlookRuleBlob>true</m:RemoveOutlookRuleBlob>\
         <m:Operations>{ops}</m:Operations></m:UpdateInboxRules>"
    ))
}

fn strings(out: &mut String, name: &str, list: &[String]) {
    if list.is_empty() {
        return;
    }
    out.push_str(&format!("<t:{name}>"));
    for s in list {
        out.push_str(&format!("<t:String>{}</t:String>", escape(s.as_str())));
    }
    out.push_str(&format!("</t:{name}>"));
}

fn addresses(out: &mut String, name: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        return Ok(());
    }
    out.push_str(&format!("<t:{name}>"));
    for s in list {
        if s.is_empty() {
            return Err("an empty address".into());
        }
        out.push_str(&format!(
            "<t:Address><t:EmailAddress>{}</t:EmailAddress></t:Address>",
            escape(s.as_str())
        ));
    }
    out.push_str(&format!("</t:{name}>"));
    Ok(())
}

fn flag(out: &mut String, name: &str, on: bool) {
    if on {
        out.push_str(&format!("<t:{name}>true</t:{name}>"));
    }
}

fn importance_name(i: Importance) -> &'static str {
    match i {
        Importance::Low => "Low",
        Importance::Normal => "Normal",
        Importance::High => "High",
    }
}

fn rule_xml(
    rule: &Rule,
    priority: usize,
    folder: &dyn Fn(&str) -> Option<FolderRef>,
) -> Result<String, String> {
    let p = exchange::predicates(rule)?;
    let a = exchange::actions(rule)?;
    // XML 1.0 cannot carry most control characters, even escaped.
    let bad = |s: &str| {
        s.chars()
            .any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
    };
    if bad(&rule.name)
        || rule.conditions.iter().any(|c| bad(&c.to_string()))
        || rule.actions.iter().any(|a| bad(&a.to_string()))
    {
        return Err("one of its texts holds a control character XML cannot carry".into());
    }
    let mut x = format!(
        "<t:Rule><t:DisplayName>{}</t:DisplayName><t:Priority>{priority}</t:Priority>\
         <t:IsEnabled>{}</t:IsEnabled>",
        escape(rule.name.as_str()),
        rule.enabled
    );
    if p != Predicates::default() {
        // Children in the order of RulePredicatesType.
        x.push_str("<t:Conditions>");
        strings(&mut x, "ContainsHeaderStrings", &p.header);
        strings(&mut x, "ContainsRecipientStrings", &p.recipient);
        strings(&mut x, "ContainsSenderStrings", &p.sender);
        strings(&mut x, "ContainsSubjectStrings", &p.subject);
        addresses(&mut x, "FromAddresses", &p.from_addresses)?;
        addresses(&mut x, "SentToAddresses", &p.sent_to)?;
        if p.min_kb.is_some() || p.max_kb.is_some() {
            x.push_str("<t:WithinSizeRange>");
            if let Some(kb) = p.min_kb {
                x.push_str(&format!("<t:MinimumSize>{kb}</t:MinimumSize>"));
            }
            if let Some(kb) = p.max_kb {
                x.push_str(&format!("<t:MaximumSize>{kb}</t:MaximumSize>"));
            }
            x.push_str("</t:WithinSizeRange>");
        }
        x.push_str("</t:Conditions>");
    }
    // Children in the order of RuleActionsType.
    x.push_str("<t:Actions>");
    flag(&mut x, "Delete", a.delete);
    addresses(&mut x, "ForwardToRecipients", &a.forward)?;
    if let Some(i) = a.importance {
        x.push_str(&format!(
            "<t:MarkImportance>{}</t:MarkImportance>",
            importance_name(i)
        ));
    }
    flag(&mut x, "MarkAsRead", a.mark_read);
    if let Some(path) = &a.move_to {
        let target = match folder(path) {
            Some(FolderRef::Id(id)) => format!("<t:FolderId Id=\"{}\"/>", escape(id.as_str())),
            Some(FolderRef::Distinguished(id)) => {
                format!("<t:DistinguishedFolderId Id=\"{}\"/>", escape(id.as_str()))
            }
            None => return Err(format!("the folder {path:?} is not on the destination")),
        };
        x.push_str(&format!("<t:MoveToFolder>{target}</t:MoveToFolder>"));
    }
    flag(&mut x, "PermanentDelete", a.permanent_delete);
    addresses(&mut x, "RedirectToRecipients", &a.redirect)?;
    flag(&mut x, "StopProcessingRules", a.stop);
    x.push_str("</t:Actions></t:Rule>");
    Ok(x)
}

// ---------------------------------------------------------------------------------------
// Reading: a small tree of local names (EWS prefixes vary between servers), then each
// top-level `Rule` element into the model.

#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    kids: Vec<El>,
    text: String,
    /// Byte range of the element in the document.
    span: (usize, usize),
}

impl El {
    fn kid(&self, name: &str) -> Option<&El> {
        self.kids.iter().find(|k| k.name == name)
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn truth(&self) -> bool {
        matches!(self.text.trim(), "true" | "1")
    }
}

fn local(name: &str) -> String {
    name.rsplit_once(':').map_or(name, |(_, l)| l).to_string()
}

fn parse(text: &str) -> Result<El, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<El> = vec![El::default()];
    loop {
        let pos = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML near byte {pos}: {e}"))?;
        let open = |start: &quick_xml::events::BytesStart<'_>| -> Result<El, String> {
            let mut attrs = Vec::new();
            for a in start.attributes() {
                let a = a.map_err(|e| format!("a bad attribute: {e}"))?;
                let v = a
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|e| format!("a bad attribute value: {e}"))?;
                attrs.push((local(a.key.as_ref()), v.into_owned()));
            }
            Ok(El {
                name: local(start.name().as_ref()),
                attrs,
                span: (pos, pos),
                ..El::default()
            })
        };
        match event {
            Event::Start(s) => stack.push(open(&s)?),
            Event::Empty(s) => {
                let mut el = open(&s)?;
                el.span.1 = reader.buffer_position() as usize;
                stack.last_mut().expect("the root stays").kids.push(el);
            }
            Event::End(_) => {
                let mut el = stack.pop().expect("the reader checks end tags");
                el.span.1 = reader.buffer_position() as usize;
                stack
                    .last_mut()
                    .ok_or("an unbalanced end tag")?
                    .kids
                    .push(el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match r.xml10_content().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("an unknown entity &{other};")),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match stack.len() {
        1 => Ok(stack.pop().expect("one")),
        _ => Err("the document ends inside an element".into()),
    }
}

/// The `Rule` elements in a tree, outermost only, in document order.
fn rules_in<'a>(el: &'a El, out: &mut Vec<&'a El>) {
    for k in &el.kids {
        if k.name == "Rule" {
            out.push(k);
        } else {
            rules_in(k, out);
        }
    }
}

/// Reads the rules of a GetInboxRules answer (or of any document holding `t:Rule` elements:
/// an UpdateInboxRules request reads back too), in order of their priority. `folder` names
/// the folder an id stands for.
pub fn from_ews(xml: &str, folder: &dyn Fn(&FolderRef) -> Option<String>) -> Translated {
    let mut out = Translated::default();
    let root = match parse(xml) {
        Ok(r) => r,
        Err(e) => {
            out.untranslatable.push(Untranslatable {
                text: xml.to_string(),
                reason: format!("Exchange's answer cannot be read: {e}"),
            });
            return out;
        }
    };
    let mut found = Vec::new();
    rules_in(&root, &mut found);
    let mut ranked: Vec<(i64, Result<Rule, Untranslatable>)> = found
        .into_iter()
        .map(|el| {
            let priority = el
                .kid("Priority")
                .and_then(|p| p.text.trim().parse().ok())
                .unwrap_or(i64::MAX);
            let rule = rule_of(el, folder).map_err(|reason| Untranslatable {
                text: xml[el.span.0..el.span.1].trim().to_string(),
                reason,
            });
            (priority, rule)
        })
        .collect();
    ranked.sort_by_key(|(p, _)| *p);
    for (_, r) in ranked {
        match r {
            Ok(rule) => out.rules.push(rule),
            Err(u) => out.untranslatable.push(u),
        }
    }
    out
}

fn texts(el: &El) -> Vec<String> {
    el.kids
        .iter()
        .filter(|k| k.name == "String")
        .map(|k| k.text.clone())
        .collect()
}

fn emails(el: &El) -> Result<Vec<String>, String> {
    el.kids
        .iter()
        .filter(|k| k.name == "Address")
        .map(|k| {
            k.kid("EmailAddress")
                .map(|e| e.text.trim().to_string())
                .filter(|e| !e.is_empty())
                .ok_or_else(|| {
                    "an address without an email address (a contact or a group)".to_string()
                })
        })
        .collect()
}

fn kb(el: &El) -> Result<u64, String> {
    el.text
        .trim()
        .parse()
        .map_err(|_| format!("a size {:?} that is not a number", el.text))
}

fn rule_of(el: &El, folder: &dyn Fn(&FolderRef) -> Option<String>) -> Result<Rule, String> {
    let name = el
        .kid("DisplayName")
        .map(|d| d.text.clone())
        .ok_or("a rule without a DisplayName")?;
    if el.kid("IsNotSupported").is_some_and(El::truth) {
        return Err("Exchange marks this rule as not supported by its web services".into());
    }
    if el.kid("IsInError").is_some_and(El::truth) {
        return Err("Exchange marks this rule as in error".into());
    }
    if el.kid("Exceptions").is_some_and(|e| !e.kids.is_empty()) {
        return Err("the rule has exceptions, which the model does not hold".into());
    }
    let mut p = Predicates::default();
    if let Some(conds) = el.kid("Conditions") {
        for c in &conds.kids {
            match c.name.as_str() {
                "ContainsHeaderStrings" => p.header = texts(c),
                "ContainsRecipientStrings" => p.recipient = texts(c),
                "ContainsSenderStrings" => p.sender = texts(c),
                "ContainsSubjectStrings" => p.subject = texts(c),
                "FromAddresses" => p.from_addresses = emails(c)?,
                "SentToAddresses" => p.sent_to = emails(c)?,
                "WithinSizeRange" => {
                    for k in &c.kids {
                        match k.name.as_str() {
                            "MinimumSize" => p.min_kb = Some(kb(k)?),
                            "MaximumSize" => p.max_kb = Some(kb(k)?),
                            _ => {}
                        }
                    }
                }
                other => return Err(format!("the condition {other} is outside the model")),
            }
        }
    }
    let (conditions, match_all) = exchange::conditions(&p)?;
    let mut a = Actions::default();
    if let Some(acts) = el.kid("Actions") {
        for k in &acts.kids {
            match k.name.as_str() {
                "Delete" => a.delete = k.truth(),
                "ForwardToRecipients" => a.forward = emails(k)?,
                "MarkImportance" => {
                    a.importance = Some(match k.text.trim() {
                        "Low" => Importance::Low,
                        "Normal" => Importance::Normal,
                        "High" => Importance::High,
                        other => return Err(format!("an importance {other:?}")),
                    })
                }
                "MarkAsRead" => a.mark_read = k.truth(),
                "MoveToFolder" => {
                    let target = k.kids.first().ok_or("a MoveToFolder without a folder")?;
                    let id = target.attr("Id").unwrap_or_default().to_string();
                    let r = match target.name.as_str() {
                        "FolderId" => FolderRef::Id(id),
                        "DistinguishedFolderId" => FolderRef::Distinguished(id),
                        other => return Err(format!("a move to a {other}")),
                    };
                    a.move_to = Some(
                        folder(&r).ok_or_else(|| format!("a move to a folder not found: {r:?}"))?,
                    );
                }
                "PermanentDelete" => a.permanent_delete = k.truth(),
                "RedirectToRecipients" => a.redirect = emails(k)?,
                "StopProcessingRules" => a.stop = k.truth(),
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
        enabled: el.kid("IsEnabled").is_none_or(El::truth),
        conditions,
        match_all,
        actions,
    })
}

#[cfg(test)]
mod tests;
