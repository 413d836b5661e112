//! Writing rules to a destination that holds them as a list of rules with ids (Exchange's
//! inbox rules, Microsoft 365's message rules, and whatever end comes next): what an end must
//! do ([`RuleList`]), and the one way the copy decides what to write ([`plan`], pure) and
//! writes it ([`sync`]).
//!
//! A rule is compared as the destination reads it back ([`RuleList::canonical`]: the source's
//! rule written and read by the end's own translation), so a rule the destination holds
//! equal to a source rule is recognised whoever wrote it: adopted, not written twice. The
//! rules mailshift wrote are remembered (id and fingerprint, [`Written`], in the step
//! record); those the source no longer has are removed. A rule whose fingerprint changed
//! since mailshift wrote it was edited by a person: it is the destination's own from then on.

use serde::{Deserialize, Serialize};

use super::{RulesCheck, RulesCopy};
use crate::error::StepError;
use crate::rules::{Action, Rule, Translated, Untranslatable};

/// A rule the destination holds, in the order its rules run.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub id: String,
    /// The rule, or why it is outside the model (then it is never touched).
    pub rule: Result<Rule, Untranslatable>,
}

/// A rule mailshift wrote on the destination, as the step record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Written {
    pub id: String,
    pub fingerprint: String,
}

/// What identifies a rule's content.
pub(crate) fn fingerprint(rule: &Rule) -> String {
    crate::model::fingerprint(&rule.to_string())
}

/// One end of the rules copy that holds a list of rules with ids.
pub(crate) trait RuleList {
    /// The rules held now, in the order they run.
    async fn held(&mut self) -> Result<Vec<Held>, StepError>;

    /// `rule` as this end reads it back once written (folders left as paths); why it cannot
    /// hold it otherwise.
    fn canonical(rule: &Rule) -> Result<Rule, String>;

    /// Deletes the rules `delete`, then creates `create` in order, after every rule it keeps;
    /// a folder a rule files into is created first when missing. Returns notes for people:
    /// what the write undid that they must redo (Exchange drops Outlook's client-side rules).
    async fn write(&mut self, delete: &[String], create: &[Rule])
    -> Result<Vec<String>, StepError>;

    /// The rules held, as a source gives them: each read into the model or shown as a manual
    /// step.
    async fn read(mut self) -> Result<Translated, StepError>
    where
        Self: Sized,
    {
        let mut out = Translated::default();
        for h in self.held().await? {
            match h.rule {
                Ok(r) => out.rules.push(r),
                Err(u) => out.untranslatable.push(u),
            }
        }
        Ok(out)
    }
}

/// What a run writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The source's rules already there, with the destination's ids, in order.
    pub keep: Vec<(String, Rule)>,
    pub delete: Vec<String>,
    /// Written after every rule kept, in order.
    pub create: Vec<Rule>,
}

/// The one rule a platform reads back from what it was given for `rule` (its `canonical`):
/// the rule, or why the platform would not hold it.
pub(crate) fn read_back(read: Translated, platform: &str) -> Result<Rule, String> {
    match (
        read.rules.into_iter().next(),
        read.untranslatable.into_iter().next(),
    ) {
        (Some(r), _) => Ok(r),
        (None, Some(u)) => Err(u.reason),
        (None, None) => Err(format!("{platform} would not read this rule back")),
    }
}

/// The folders `rules` file into, each once, in the order first named: what a destination must
/// have before the rules that name them are written.
pub(crate) fn move_targets(rules: &[Rule]) -> Vec<&str> {
    let mut seen = std::collections::BTreeSet::new();
    rules
        .iter()
        .flat_map(|r| &r.actions)
        .filter_map(|a| match a {
            Action::MoveTo(path) if seen.insert(path.as_str()) => Some(path.as_str()),
            _ => None,
        })
        .collect()
}

/// Decides what to write so that the destination holds `wanted` (canonical, in order) after
/// its own rules, given what it holds and what mailshift recorded writing there.
///
/// Each wanted rule is matched, in order, to a held rule equal to it: one mailshift wrote
/// first, else any (adopted). The longest run of wanted rules matched in increasing
/// positions stays; from the first that is missing or out of order, the rest are written
/// again after everything (their earlier copies deleted), so the order holds without
/// renumbering the destination's own rules. Rules mailshift wrote and matched to nothing are
/// deleted.
pub(crate) fn plan(held: &[Held], wanted: &[Rule], recorded: &[Written]) -> Plan {
    let ours = |h: &Held| match &h.rule {
        Ok(rule) => recorded
            .iter()
            .any(|w| w.id == h.id && w.fingerprint == fingerprint(rule)),
        Err(_) => false,
    };
    let mut used = vec![false; held.len()];
    let mut matches: Vec<Option<usize>> = Vec::with_capacity(wanted.len());
    for w in wanted {
        let equal = |i: &usize| !used[*i] && held[*i].rule.as_ref().is_ok_and(|r| r == w);
        let found = (0..held.len())
            .filter(|i| ours(&held[*i]))
            .find(equal)
            .or_else(|| (0..held.len()).find(equal));
        if let Some(i) = found {
            used[i] = true;
        }
        matches.push(found);
    }
    // The first wanted rule missing, or placed before the one it should follow.
    let mut last = None;
    let cut = matches
        .iter()
        .position(|m| match (m, last) {
            (None, _) => true,
            (Some(i), Some(prev)) if *i <= prev => true,
            (Some(i), _) => {
                last = Some(*i);
                false
            }
        })
        .unwrap_or(wanted.len());
    let mut out = Plan::default();
    for (k, (w, m)) in wanted.iter().zip(&matches).enumerate() {
        match (k < cut, m) {
            (true, Some(i)) => out.keep.push((held[*i].id.clone(), w.clone())),
            (false, Some(i)) => {
                out.delete.push(held[*i].id.clone());
                out.create.push(w.clone());
            }
            (_, None) => out.create.push(w.clone()),
        }
    }
    for (i, h) in held.iter().enumerate() {
        if !used[i] && ours(h) {
            out.delete.push(h.id.clone());
        }
    }
    out
}

/// The rules of `source` an end of type `E` cannot hold.
pub(crate) fn fit<E: RuleList>(source: &[Rule]) -> Vec<Untranslatable> {
    source
        .iter()
        .filter_map(|r| E::canonical(r).err().map(|reason| r.untranslatable(reason)))
        .collect()
}

/// Carries `source` to the end `end`; the report and the rules mailshift holds there now.
pub(crate) async fn sync<E: RuleList>(
    end: &mut E,
    source: Vec<Rule>,
    recorded: &[Written],
) -> Result<(RulesCopy, Vec<Written>), StepError> {
    let mut report = RulesCopy::default();
    let mut wanted = Vec::new();
    for rule in &source {
        match E::canonical(rule) {
            Ok(c) => wanted.push(c),
            Err(reason) => report.untranslatable.push(rule.untranslatable(reason)),
        }
    }
    report.rules = wanted.len();
    let held = end.held().await?;
    let plan = plan(&held, &wanted, recorded);
    let mut kept: Vec<(String, Rule)> = plan.keep.clone();
    if !plan.delete.is_empty() || !plan.create.is_empty() {
        let notes = end.write(&plan.delete, &plan.create).await?;
        report.notes.extend(notes);
        report.written = true;
        // The ids of the rules just written: read back, the last ones equal to each.
        let after = end.held().await?;
        let mut taken: Vec<bool> = after
            .iter()
            .map(|h| kept.iter().any(|(id, _)| *id == h.id))
            .collect();
        for rule in &plan.create {
            if let Some(i) = (0..after.len())
                .rev()
                .find(|i| !taken[*i] && after[*i].rule.as_ref().is_ok_and(|r| r == rule))
            {
                taken[i] = true;
                kept.push((after[i].id.clone(), rule.clone()));
            }
        }
        // A create the client sent again after losing its answer (a cut connection) may have
        // landed twice: a rule that was not there before, equal to one written and not taken,
        // is such a copy, removed now.
        let twice: Vec<String> = after
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                !taken[*i]
                    && !held.iter().any(|b| b.id == h.id)
                    && h.rule.as_ref().is_ok_and(|r| plan.create.contains(r))
            })
            .map(|(_, h)| h.id.clone())
            .collect();
        if !twice.is_empty() {
            let notes = end.write(&twice, &[]).await?;
            report.notes.extend(notes);
        }
    }
    let written = kept
        .iter()
        .map(|(id, rule)| Written {
            id: id.clone(),
            fingerprint: fingerprint(rule),
        })
        .collect();
    Ok((report, written))
}

/// `verify` of a list end: each of the source's rules it can hold, as it would hold it,
/// against what it holds.
pub(crate) async fn compare<E: RuleList>(
    end: &mut E,
    source: Vec<Rule>,
) -> Result<RulesCheck, StepError> {
    let mut expected = Vec::new();
    let mut untranslatable = 0;
    for rule in &source {
        match E::canonical(rule) {
            Ok(c) => expected.push(c),
            Err(_) => untranslatable += 1,
        }
    }
    let held: Vec<Rule> = end
        .held()
        .await?
        .into_iter()
        .filter_map(|h| h.rule.ok())
        .collect();
    Ok(RulesCheck {
        source_rules: expected.len(),
        missing: expected
            .iter()
            .filter(|r| !held.contains(r))
            .map(|r| r.to_string())
            .collect(),
        active: true,
        untranslatable,
        ..RulesCheck::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Action, Condition};

    fn rule(name: &str) -> Rule {
        Rule {
            name: name.into(),
            enabled: true,
            conditions: vec![Condition::SubjectContains(name.into())],
            match_all: true,
            actions: vec![Action::MarkRead],
        }
    }

    fn held(list: &[(&str, &str)]) -> Vec<Held> {
        list.iter()
            .map(|(id, name)| Held {
                id: id.to_string(),
                rule: Ok(rule(name)),
            })
            .collect()
    }

    fn written(list: &[(&str, &str)]) -> Vec<Written> {
        list.iter()
            .map(|(id, name)| Written {
                id: id.to_string(),
                fingerprint: fingerprint(&rule(name)),
            })
            .collect()
    }

    #[test]
    fn rules_already_there_are_kept_and_nothing_is_written() {
        let p = plan(
            &held(&[("own", "mine"), ("1", "a"), ("2", "b")]),
            &[rule("a"), rule("b")],
            &written(&[("1", "a"), ("2", "b")]),
        );
        assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");
        assert_eq!(p.keep.len(), 2);
    }

    #[test]
    fn equal_rules_are_adopted_without_a_record() {
        // A run cut after its write, or a state deleted: nothing is added again.
        let p = plan(
            &held(&[("own", "mine"), ("1", "a"), ("2", "b")]),
            &[rule("a"), rule("b")],
            &[],
        );
        assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");
        assert_eq!(p.keep[0].0, "1");
    }

    #[test]
    fn a_new_rule_in_the_middle_rewrites_from_there_after_the_own_rules() {
        let p = plan(
            &held(&[("1", "a"), ("own", "mine"), ("2", "c")]),
            &[rule("a"), rule("b"), rule("c")],
            &written(&[("1", "a"), ("2", "c")]),
        );
        assert_eq!(p.keep, vec![("1".to_string(), rule("a"))]);
        assert_eq!(p.delete, vec!["2".to_string()]);
        assert_eq!(p.create, vec![rule("b"), rule("c")]);
    }

    #[test]
    fn rules_the_source_dropped_are_removed_and_the_destinations_own_are_not() {
        let p = plan(
            &held(&[("own", "x"), ("1", "a"), ("2", "gone")]),
            &[rule("a")],
            &written(&[("1", "a"), ("2", "gone")]),
        );
        assert_eq!(p.delete, vec!["2".to_string()]);
        assert!(p.create.is_empty());
        // A rule of ours a person edited is theirs now: kept, and the source's written again.
        let mut edited = held(&[("1", "a")]);
        edited[0].rule = Ok(rule("a, edited"));
        let p = plan(&edited, &[rule("a")], &written(&[("1", "a")]));
        assert!(p.delete.is_empty());
        assert_eq!(p.create, vec![rule("a")]);
    }
    /// An end in memory; `twice` makes its next create land two times (a create resent
    /// after a cut answer).
    struct Fake {
        rules: Vec<(String, Rule)>,
        next: u32,
        twice: bool,
        writes: usize,
    }

    impl RuleList for Fake {
        async fn held(&mut self) -> Result<Vec<Held>, StepError> {
            Ok(self
                .rules
                .iter()
                .map(|(id, r)| Held {
                    id: id.clone(),
                    rule: Ok(r.clone()),
                })
                .collect())
        }

        fn canonical(rule: &Rule) -> Result<Rule, String> {
            Ok(rule.clone())
        }

        async fn write(
            &mut self,
            delete: &[String],
            create: &[Rule],
        ) -> Result<Vec<String>, StepError> {
            self.writes += 1;
            self.rules.retain(|(id, _)| !delete.contains(id));
            for r in create {
                for _ in 0..if std::mem::take(&mut self.twice) {
                    2
                } else {
                    1
                } {
                    self.next += 1;
                    self.rules.push((format!("r{}", self.next), r.clone()));
                }
            }
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_create_landed_twice_is_removed_and_the_next_run_writes_nothing() {
        let mut end = Fake {
            rules: vec![("own".into(), rule("mine"))],
            next: 0,
            twice: true,
            writes: 0,
        };
        let (report, written) = sync(&mut end, vec![rule("a"), rule("b")], &[])
            .await
            .unwrap();
        assert!(report.written);
        let names: Vec<&str> = end.rules.iter().map(|(_, r)| r.name.as_str()).collect();
        assert_eq!(names, ["mine", "a", "b"]);
        assert_eq!(written.len(), 2);
        let writes = end.writes;
        let (report, again) = sync(&mut end, vec![rule("a"), rule("b")], &written)
            .await
            .unwrap();
        assert!(!report.written);
        assert_eq!((end.writes, again), (writes, written));
    }
}
