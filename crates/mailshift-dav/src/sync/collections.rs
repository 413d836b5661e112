//! Which collections a copy takes (the plan's include/exclude/map rules) and where each goes on
//! the destination: shared by [`super::sync`], [`crate::verify`] and [`crate::preview`], so the
//! three always agree on the pairing.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{Collection, Component, Store, StoreResult};

/// The plan's collection rules. Patterns are globs (`*` any run of characters, `?` one
/// character) matched against a collection's name or its display name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionRules {
    /// Copy only collections matching one of these (empty: all).
    pub include: Vec<String>,
    /// Skip collections matching one of these (applied after `include`).
    pub exclude: Vec<String>,
    /// Source collection (name, else display name) → destination collection name.
    pub map: BTreeMap<String, String>,
}

impl CollectionRules {
    /// Whether a source collection is copied.
    pub fn takes(&self, c: &Collection) -> bool {
        let hit = |p: &String| {
            glob_match(p, &c.name) || c.display_name.as_deref().is_some_and(|d| glob_match(p, d))
        };
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }

    /// The destination name the plan asks for, if it maps this collection.
    pub fn mapped(&self, c: &Collection) -> Option<&str> {
        self.map
            .get(&c.name)
            .or_else(|| c.display_name.as_ref().and_then(|d| self.map.get(d)))
            .map(String::as_str)
    }

    /// The name a destination collection is looked up by and created with.
    pub fn target_name(&self, c: &Collection) -> String {
        self.mapped(c).unwrap_or(&c.name).to_string()
    }
}

/// `*` and `?` globs; everything else literal. Written here (a dozen lines) rather than taking
/// a glob crate whose path semantics (`/`, `**`, classes) collection names do not need.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // The last `*` swallows one more character, and matching resumes after it.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Every collection of a side that may hold one of `components`, once each, by name.
pub(crate) async fn list<S: Store>(
    store: &S,
    components: &[Component],
) -> StoreResult<Vec<Collection>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &c in components {
        for col in store.collections(c).await? {
            if seen.insert(col.href.clone()) {
                out.push(col);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.href.cmp(&b.href)));
    Ok(out)
}

/// The source collections a copy takes.
pub(crate) async fn sources<S: Store>(
    source: &S,
    components: &[Component],
    rules: &CollectionRules,
) -> StoreResult<Vec<Collection>> {
    let mut all = list(source, components).await?;
    all.retain(|c| rules.takes(c));
    Ok(all)
}

/// The destination collections known in this run, and which of them are already paired with a
/// source collection (so that two source calendars both displayed "Calendar" do not land in one).
#[derive(Debug, Default)]
pub(crate) struct Destinations {
    pub all: Vec<Collection>,
    taken: BTreeSet<String>,
}

impl Destinations {
    pub fn new(all: Vec<Collection>, recorded: impl IntoIterator<Item = String>) -> Self {
        Destinations {
            all,
            taken: recorded.into_iter().collect(),
        }
    }

    /// Where `src` goes, if it exists: the recorded href if it is still there; else the
    /// collection named as the plan maps it (or as the source is named); else one whose display
    /// name is that name; else, when the plan does not map it, one displayed like the source and
    /// not paired with another source collection.
    pub fn find(
        &self,
        src: &Collection,
        rules: &CollectionRules,
        recorded: Option<&str>,
    ) -> Option<&Collection> {
        if let Some(href) = recorded
            && let Some(c) = self.all.iter().find(|c| c.href == href)
        {
            return Some(c);
        }
        let target = rules.target_name(src);
        let free =
            |c: &&Collection| !self.taken.contains(&c.href) || Some(c.href.as_str()) == recorded;
        self.all
            .iter()
            .find(|c| c.name == target)
            .or_else(|| {
                self.all
                    .iter()
                    .filter(free)
                    .find(|c| c.display_name.as_deref() == Some(target.as_str()))
            })
            .or_else(|| {
                let shown = src.display_name.as_deref()?;
                if rules.mapped(src).is_some() {
                    return None;
                }
                self.all
                    .iter()
                    .filter(free)
                    .find(|c| c.display_name.as_deref() == Some(shown))
            })
    }

    /// Marks a destination as paired (found or created).
    pub fn take(&mut self, c: &Collection) {
        self.taken.insert(c.href.clone());
        if !self.all.iter().any(|d| d.href == c.href) {
            self.all.push(c.clone());
        }
    }
}

/// What a destination collection created for `src` is made like: the source's own name,
/// colour, description and components. The components are the source's, not only the job's: a
/// calendar holding events and tasks is copied by the calendars job and by the tasks job, and
/// whichever creates it must make it able to hold both.
pub(crate) fn like(src: &Collection) -> Collection {
    let mut like = src.clone();
    like.sync_token = None;
    like.ctag = None;
    like
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, display: Option<&str>) -> Collection {
        Collection {
            name: name.into(),
            href: format!("/{name}/"),
            display_name: display.map(Into::into),
            color: None,
            description: None,
            components: vec![Component::Event],
            sync_token: None,
            ctag: None,
            vcard_versions: vec![],
            max_size: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("w?rk*", "work-2024"));
        assert!(!glob_match("w?rk", "wrk"));
        assert!(glob_match("*.old", "a.b.old"));
        assert!(!glob_match("a*b", "acbd"));
    }

    #[test]
    fn rules_match_name_or_display_name() {
        let rules = CollectionRules {
            include: vec!["Work*".into(), "home".into()],
            exclude: vec!["*archive*".into()],
            map: BTreeMap::from([("Work".to_string(), "job".to_string())]),
        };
        assert!(rules.takes(&col("abc-uuid", Some("Work"))));
        assert!(rules.takes(&col("home", None)));
        assert!(!rules.takes(&col("other", None)));
        assert!(!rules.takes(&col("Work archive", None)));
        assert_eq!(rules.target_name(&col("abc-uuid", Some("Work"))), "job");
        assert_eq!(rules.target_name(&col("home", None)), "home");
    }

    #[test]
    fn destination_by_record_then_name_then_display_name() {
        let rules = CollectionRules::default();
        let mut d = Destinations::new(
            vec![
                col("x1", Some("Personal")),
                col("work", None),
                col("x2", Some("Personal")),
            ],
            [],
        );
        let src = col("uuid-1", Some("Personal"));
        assert_eq!(d.find(&src, &rules, Some("/x2/")).unwrap().href, "/x2/");
        assert_eq!(
            d.find(&col("work", Some("W")), &rules, None).unwrap().href,
            "/work/"
        );
        let first = d.find(&src, &rules, None).unwrap().clone();
        assert_eq!(first.href, "/x1/");
        d.take(&first);
        // A second source calendar displayed the same is not merged into the first's.
        assert_eq!(
            d.find(&col("uuid-2", Some("Personal")), &rules, None)
                .unwrap()
                .href,
            "/x2/"
        );
        assert!(d.find(&col("none", Some("Nope")), &rules, None).is_none());
    }
}
