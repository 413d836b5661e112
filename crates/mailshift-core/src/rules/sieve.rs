//! Inbox rules ↔ Sieve (RFC 5228, with `fileinto`, `imap4flags` RFC 5232 and `copy` RFC
//! 3894), for IMAP platforms whose scripts ManageSieve reads and writes. Each rule is one
//! top-level `if`, named by a `# rule:` comment before it; a disabled rule is kept as
//! `if allof (false, …)`. A script, or a part of one, outside the model comes back as
//! [`Untranslatable`] with its text, and a rule Sieve cannot hold (an importance, a forward
//! as a new message, a move to deleted items, a test of all headers at once) likewise: the
//! caller shows them as manual steps, nothing is dropped silently.
//!
//! Folder names are written as the server names them, in UTF-8 (Sieve strings are UTF-8, not
//! IMAP's modified UTF-7), with the server's hierarchy separator; mapping separators between
//! platforms is the caller's business, as it is for mail.

use std::fmt::Write as _;

use super::{Action, Condition, Rule, Translated, Untranslatable, rank};

/// A Sieve quoted string: `\` and `"` escaped, everything else (UTF-8, line breaks) as is.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The Sieve script for `rules`, in order, with only the `require`s they need, and the rules
/// it could not hold (left out of the script, for the caller to show).
pub fn to_sieve(rules: &[Rule]) -> (String, Vec<Untranslatable>) {
    let mut need = Vec::new();
    let mut body = String::new();
    let mut left = Vec::new();
    for rule in rules {
        match rule_to_sieve(rule, &mut need) {
            Ok(text) => body.push_str(&text),
            Err(reason) => left.push(rule.untranslatable(reason)),
        }
    }
    need.sort_unstable();
    need.dedup();
    let mut script = String::new();
    if !need.is_empty() {
        let list: Vec<String> = need.iter().map(|n| quote(n)).collect();
        let _ = writeln!(script, "require [{}];", list.join(", "));
    }
    script.push_str(&body);
    (script, left)
}

/// One rule's text; the extensions it needs are added to `need` only when it is written.
fn rule_to_sieve(rule: &Rule, need: &mut Vec<&'static str>) -> Result<String, String> {
    if rule.name.contains(['\r', '\n']) {
        return Err("its name holds a line break, which a `# rule:` comment cannot".into());
    }
    if rule.actions.is_empty() {
        return Err("it has no action".into());
    }
    let tests: Vec<String> = rule
        .conditions
        .iter()
        .map(|c| match c {
            Condition::From(v) => Ok(format!("address :all :contains \"from\" {}", quote(v))),
            Condition::FromAddress(v) => Ok(format!("address :all :is \"from\" {}", quote(v))),
            Condition::To(v) => Ok(format!("address :all :contains \"to\" {}", quote(v))),
            Condition::RecipientContains(v) => Ok(format!(
                "address :all :contains [\"to\", \"cc\"] {}",
                quote(v)
            )),
            Condition::SentTo(v) => Ok(format!("address :all :is [\"to\", \"cc\"] {}", quote(v))),
            Condition::SubjectContains(v) => {
                Ok(format!("header :contains \"subject\" {}", quote(v)))
            }
            Condition::HeaderContains { header, value } => {
                // RFC 5322 field names: printable ASCII except ':'.
                if header.is_empty()
                    || !header.bytes().all(|b| (33..=126).contains(&b) && b != b':')
                {
                    return Err(format!("{header:?} is not a header field name"));
                }
                Ok(format!(
                    "header :contains {} {}",
                    quote(header),
                    quote(value)
                ))
            }
            Condition::HeadersContain(_) => {
                Err("Sieve tests named header fields, not the text of all headers at once".into())
            }
            Condition::SizeOver(n) => Ok(format!("size :over {n}")),
            Condition::SizeUnder(n) => Ok(format!("size :under {n}")),
        })
        .collect::<Result<_, String>>()?;
    let mut test = match tests.len() {
        0 => "true".to_string(),
        1 => tests[0].clone(),
        _ if rule.match_all => format!("allof ({})", tests.join(", ")),
        _ => format!("anyof ({})", tests.join(", ")),
    };
    // A disabled rule stays in the script, never true, so that it is carried and read back.
    if !rule.enabled {
        test = format!("allof (false, {test})");
    }
    let mut text = format!("# rule: {}\nif {test} {{\n", rule.name);
    let mut ordered: Vec<&Action> = rule.actions.iter().collect();
    ordered.sort_by_key(|a| rank(a));
    let mut wants = Vec::new();
    for action in ordered {
        let line = match action {
            Action::MarkRead => {
                wants.push("imap4flags");
                "addflag \"\\\\Seen\";".to_string()
            }
            Action::Flag => {
                wants.push("imap4flags");
                "addflag \"\\\\Flagged\";".to_string()
            }
            Action::MoveTo(folder) => {
                wants.push("fileinto");
                format!("fileinto {};", quote(folder))
            }
            Action::Redirect(to) => {
                wants.push("copy");
                format!("redirect :copy {};", quote(to))
            }
            Action::Discard => "discard;".to_string(),
            Action::Stop => "stop;".to_string(),
            Action::MarkImportance(_) => return Err("Sieve cannot mark importance".into()),
            Action::Forward(_) => {
                return Err("Sieve cannot forward as a new message, only redirect the \
                     original (its sender unchanged)"
                    .into());
            }
            Action::Delete => {
                return Err("Sieve has no deleted-items folder of its own: \
                     the rule needs the destination's trash folder named"
                    .into());
            }
        };
        let _ = writeln!(text, "  {line}");
    }
    text.push_str("}\n");
    // A Sieve script is text: no string in it can hold a NUL (RFC 5228 section 2.4.2).
    if text.contains('\0') {
        return Err("one of its texts holds a NUL character".into());
    }
    need.extend(wants);
    Ok(text)
}

// ---------------------------------------------------------------------------------------
// Reading Sieve back: a tokenizer and the generic command grammar of RFC 5228 section 8,
// then a translation of each top-level command into the subset.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Tag(String),
    Str(String),
    Num(u64),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Tag(String),
    Num(u64),
    Strings(Vec<String>),
}

#[derive(Debug, Clone)]
struct Test {
    name: String,
    args: Vec<Arg>,
    tests: Vec<Test>,
}

#[derive(Debug, Clone)]
struct Command {
    name: String,
    args: Vec<Arg>,
    tests: Vec<Test>,
    block: Option<Vec<Command>>,
    /// Byte range of the command in the script.
    span: (usize, usize),
    /// The name from a `# rule:` comment just before it.
    label: Option<String>,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// The last `# rule:` comment seen and not yet claimed by a command.
    label: Option<String>,
}

impl<'a> Lexer<'a> {
    fn skip_space(&mut self) -> Result<(), String> {
        let b = self.src.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if b[self.pos..].starts_with(b"#") {
                let end = self.src[self.pos..]
                    .find('\n')
                    .map_or(b.len(), |i| self.pos + i);
                let comment = &self.src[self.pos + 1..end];
                let comment = comment.strip_suffix('\r').unwrap_or(comment);
                // Our own `# rule: NAME` gives the name exactly; a hand-written one, trimmed.
                if let Some(name) = comment.strip_prefix(" rule: ") {
                    self.label = Some(name.to_string());
                } else if let Some(name) = comment.trim().strip_prefix("rule:") {
                    self.label = Some(name.trim().to_string());
                }
                self.pos = end;
            } else if b[self.pos..].starts_with(b"/*") {
                let end = self.src[self.pos + 2..]
                    .find("*/")
                    .ok_or("a /* comment is never closed")?;
                self.pos += 2 + end + 2;
            } else {
                return Ok(());
            }
        }
    }

    fn peek(&mut self) -> Result<Option<Tok>, String> {
        let save = (self.pos, self.label.clone());
        let t = self.next();
        (self.pos, self.label) = save;
        t
    }

    fn next(&mut self) -> Result<Option<Tok>, String> {
        self.skip_space()?;
        let rest = &self.src[self.pos..];
        let Some(c) = rest.chars().next() else {
            return Ok(None);
        };
        if c == '"' {
            let mut out = String::new();
            let mut chars = rest[1..].char_indices();
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '"' => {
                        self.pos += 1 + i + 1;
                        return Ok(Some(Tok::Str(out)));
                    }
                    '\\' => match chars.next() {
                        Some((_, e)) => out.push(e),
                        None => break,
                    },
                    _ => out.push(ch),
                }
            }
            return Err("a quoted string is never closed".into());
        }
        if rest.starts_with("text:") {
            // Multi-line string: up to a line holding a single dot; a leading dot is doubled.
            let start = rest.find('\n').ok_or("text: without a line break")? + 1;
            let mut out = String::new();
            let mut at = start;
            loop {
                let end = rest[at..]
                    .find('\n')
                    .map(|i| at + i + 1)
                    .ok_or("text: never ends with a lone dot")?;
                let line = &rest[at..end];
                if line.trim_end_matches(['\r', '\n']) == "." {
                    self.pos += end;
                    return Ok(Some(Tok::Str(out)));
                }
                out.push_str(line.strip_prefix('.').unwrap_or(line));
                at = end;
            }
        }
        if c == ':' || c.is_ascii_alphabetic() || c == '_' {
            let len = rest[1..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map_or(rest.len(), |i| i + 1);
            let word = rest[..len].to_string();
            self.pos += len;
            return Ok(Some(match word.strip_prefix(':') {
                Some(tag) => Tok::Tag(tag.to_ascii_lowercase()),
                None => Tok::Ident(word.to_ascii_lowercase()),
            }));
        }
        if c.is_ascii_digit() {
            let len = rest
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len());
            let mut n: u64 = rest[..len].parse().map_err(|_| "a number too large")?;
            self.pos += len;
            let shift = match rest[len..].chars().next() {
                Some('K' | 'k') => 10,
                Some('M' | 'm') => 20,
                Some('G' | 'g') => 30,
                _ => 0,
            };
            if shift > 0 {
                self.pos += 1;
                n = n.checked_shl(shift).ok_or("a number too large")?;
            }
            return Ok(Some(Tok::Num(n)));
        }
        if "[](),;{}".contains(c) {
            self.pos += 1;
            return Ok(Some(Tok::Punct(c)));
        }
        Err(format!("unexpected character {c:?}"))
    }

    fn arguments(&mut self) -> Result<(Vec<Arg>, Vec<Test>), String> {
        let mut args = Vec::new();
        loop {
            match self.peek()? {
                Some(Tok::Tag(t)) => {
                    self.next()?;
                    args.push(Arg::Tag(t));
                }
                Some(Tok::Num(n)) => {
                    self.next()?;
                    args.push(Arg::Num(n));
                }
                Some(Tok::Str(s)) => {
                    self.next()?;
                    args.push(Arg::Strings(vec![s]));
                }
                Some(Tok::Punct('[')) => {
                    self.next()?;
                    let mut list = Vec::new();
                    loop {
                        match self.next()? {
                            Some(Tok::Str(s)) => list.push(s),
                            other => {
                                return Err(format!(
                                    "expected a string in a list, found {other:?}"
                                ));
                            }
                        }
                        match self.next()? {
                            Some(Tok::Punct(',')) => {}
                            Some(Tok::Punct(']')) => break,
                            other => return Err(format!("expected ',' or ']', found {other:?}")),
                        }
                    }
                    args.push(Arg::Strings(list));
                }
                _ => break,
            }
        }
        let tests = match self.peek()? {
            Some(Tok::Punct('(')) => {
                self.next()?;
                let mut tests = vec![self.test()?];
                loop {
                    match self.next()? {
                        Some(Tok::Punct(',')) => tests.push(self.test()?),
                        Some(Tok::Punct(')')) => break,
                        other => return Err(format!("expected ',' or ')', found {other:?}")),
                    }
                }
                tests
            }
            Some(Tok::Ident(_)) => vec![self.test()?],
            _ => Vec::new(),
        };
        Ok((args, tests))
    }

    fn test(&mut self) -> Result<Test, String> {
        match self.next()? {
            Some(Tok::Ident(name)) => {
                let (args, tests) = self.arguments()?;
                Ok(Test { name, args, tests })
            }
            other => Err(format!("expected a test, found {other:?}")),
        }
    }

    fn command(&mut self) -> Result<Option<Command>, String> {
        self.skip_space()?;
        let label = self.label.take();
        let start = self.pos;
        let name = match self.next()? {
            None => return Ok(None),
            Some(Tok::Ident(name)) => name,
            Some(other) => return Err(format!("expected a command, found {other:?}")),
        };
        let (args, tests) = self.arguments()?;
        let block = match self.next()? {
            Some(Tok::Punct(';')) => None,
            Some(Tok::Punct('{')) => {
                let mut cmds = Vec::new();
                loop {
                    if let Some(Tok::Punct('}')) = self.peek()? {
                        self.next()?;
                        break;
                    }
                    match self.command()? {
                        Some(c) => cmds.push(c),
                        None => return Err("a block is never closed".into()),
                    }
                }
                Some(cmds)
            }
            other => {
                return Err(format!(
                    "expected ';' or '{{' after {name}, found {other:?}"
                ));
            }
        };
        Ok(Some(Command {
            name,
            args,
            tests,
            block,
            span: (start, self.pos),
            label,
        }))
    }
}

/// Reads a Sieve script back into rules. Each top-level `if` whose test and actions are all in
/// the subset becomes a [`Rule`]; anything else (another command, an `elsif`/`else` chain, an
/// extension, a script that does not parse) is [`Untranslatable`] with its text.
pub fn from_sieve(script: &str) -> Translated {
    let mut lexer = Lexer {
        src: script,
        pos: 0,
        label: None,
    };
    let mut cmds = Vec::new();
    loop {
        match lexer.command() {
            Ok(Some(c)) => cmds.push(c),
            Ok(None) => break,
            Err(e) => {
                // What parsed so far is still read; the rest is shown whole.
                let from = cmds.last().map_or(0, |c: &Command| c.span.1);
                let mut out = translate(script, cmds);
                out.untranslatable.push(Untranslatable {
                    text: script[from..].trim().to_string(),
                    reason: format!("the script does not parse here: {e}"),
                });
                return out;
            }
        }
    }
    translate(script, cmds)
}

fn translate(script: &str, cmds: Vec<Command>) -> Translated {
    let mut out = Translated::default();
    let mut i = 0;
    while i < cmds.len() {
        let c = &cmds[i];
        // An if with elsif/else: one unit, shown whole.
        let mut end = i + 1;
        while end < cmds.len() && matches!(cmds[end].name.as_str(), "elsif" | "else") {
            end += 1;
        }
        let text = script[c.span.0..cmds[end - 1].span.1].to_string();
        let result = if c.name == "require" {
            Ok(None)
        } else if end > i + 1 {
            Err("an if with elsif or else branches".to_string())
        } else if c.name == "if" {
            rule_of(c, out.rules.len()).map(Some)
        } else {
            Err(format!("a top-level `{}` outside any rule", c.name))
        };
        match result {
            Ok(Some(rule)) => out.rules.push(rule),
            Ok(None) => {}
            Err(reason) => out.untranslatable.push(Untranslatable { text, reason }),
        }
        i = end;
    }
    out
}

fn one_string(args: &[Arg]) -> Option<&str> {
    match args {
        [Arg::Strings(v)] if v.len() == 1 => Some(&v[0]),
        _ => None,
    }
}

fn rule_of(c: &Command, index: usize) -> Result<Rule, String> {
    let mut test = c.tests.first().ok_or("an if without a test")?;
    // `allof (false, T)`: a disabled rule, as `to_sieve` writes it.
    let mut enabled = true;
    if let [first, inner] = test.tests.as_slice()
        && test.name == "allof"
        && first.name == "false"
        && first.args.is_empty()
        && first.tests.is_empty()
    {
        enabled = false;
        test = inner;
    }
    let (match_all, tests) = match test.name.as_str() {
        "allof" => (true, test.tests.clone()),
        "anyof" => (false, test.tests.clone()),
        "true" if test.args.is_empty() => (true, Vec::new()),
        _ => (true, vec![test.clone()]),
    };
    let conditions = tests
        .iter()
        .map(condition_of)
        .collect::<Result<Vec<_>, _>>()?;
    let mut actions = Vec::new();
    for a in c.block.as_deref().unwrap_or_default() {
        if a.block.is_some() || !a.tests.is_empty() {
            return Err(format!("`{}` with a block or a test inside a rule", a.name));
        }
        let tags: Vec<&str> = a
            .args
            .iter()
            .filter_map(|x| match x {
                Arg::Tag(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let plain: Vec<Arg> = a
            .args
            .iter()
            .filter(|x| !matches!(x, Arg::Tag(_)))
            .cloned()
            .collect();
        let action = match (a.name.as_str(), tags.as_slice(), one_string(&plain)) {
            ("fileinto", [], Some(f)) => Action::MoveTo(f.to_string()),
            ("redirect", ["copy"], Some(to)) => Action::Redirect(to.to_string()),
            // Without :copy, the redirect cancels the implicit keep: a discard.
            ("redirect", [], Some(to)) => {
                actions.push(Action::Redirect(to.to_string()));
                Action::Discard
            }
            ("addflag" | "setflag", [], Some(flag)) if flag.eq_ignore_ascii_case("\\Seen") => {
                Action::MarkRead
            }
            ("addflag" | "setflag", [], Some(flag)) if flag.eq_ignore_ascii_case("\\Flagged") => {
                Action::Flag
            }
            ("discard", [], None) if plain.is_empty() => Action::Discard,
            ("stop", [], None) if plain.is_empty() => Action::Stop,
            _ => {
                return Err(format!(
                    "the action `{}` with these arguments is outside the common subset",
                    a.name
                ));
            }
        };
        actions.push(action);
    }
    if actions.is_empty() {
        return Err("a rule without actions".into());
    }
    Ok(Rule {
        enabled,
        name: c
            .label
            .clone()
            .unwrap_or_else(|| format!("Rule {}", index + 1)),
        conditions,
        match_all,
        actions,
    })
}

fn condition_of(t: &Test) -> Result<Condition, String> {
    let mut tags = Vec::new();
    let mut lists = Vec::new();
    let mut nums = Vec::new();
    for a in &t.args {
        match a {
            Arg::Tag(x) => tags.push(x.as_str()),
            Arg::Strings(v) => lists.push(v.as_slice()),
            Arg::Num(n) => nums.push(*n),
        }
    }
    tags.sort_unstable();
    let outside = || {
        format!(
            "the test `{}` with these arguments is outside the common subset",
            t.name
        )
    };
    if !t.tests.is_empty() {
        return Err(outside());
    }
    let single = |v: &[String]| (v.len() == 1).then(|| v[0].clone());
    match (
        t.name.as_str(),
        tags.as_slice(),
        lists.as_slice(),
        nums.as_slice(),
    ) {
        ("size", ["over"], [], [n]) => Ok(Condition::SizeOver(*n)),
        ("size", ["under"], [], [n]) => Ok(Condition::SizeUnder(*n)),
        ("address", ["all", "contains"] | ["contains"] | ["all", "is"] | ["is"], [h, v], []) => {
            let value = single(v).ok_or_else(outside)?;
            let mut fields: Vec<String> = h.iter().map(|h| h.to_ascii_lowercase()).collect();
            fields.sort_unstable();
            fields.dedup();
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let is = tags.contains(&"is");
            match (fields.as_slice(), is) {
                (["from"], false) => Ok(Condition::From(value)),
                (["from"], true) => Ok(Condition::FromAddress(value)),
                (["to"], false) => Ok(Condition::To(value)),
                (["cc", "to"], false) => Ok(Condition::RecipientContains(value)),
                (["cc", "to"], true) => Ok(Condition::SentTo(value)),
                _ => Err(outside()),
            }
        }
        ("header", ["contains"], [h, v], []) => {
            let value = single(v).ok_or_else(outside)?;
            let header = single(h).ok_or_else(outside)?;
            if header.eq_ignore_ascii_case("subject") {
                Ok(Condition::SubjectContains(value))
            } else {
                Ok(Condition::HeaderContains { header, value })
            }
        }
        _ => Err(outside()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Rule> {
        vec![
            Rule {
                name: "Factures → Compta".into(),
                enabled: true,
                conditions: vec![
                    Condition::From("billing@example.com".into()),
                    Condition::SubjectContains("facture \"urgente\" \\ n°".into()),
                ],
                match_all: true,
                actions: vec![
                    Action::MarkRead,
                    Action::MoveTo("Comptabilité/Été \"2026\"".into()),
                    Action::Stop,
                ],
            },
            Rule {
                name: "Big or listed".into(),
                enabled: false,
                conditions: vec![
                    Condition::SizeOver(5 << 20),
                    Condition::HeaderContains {
                        header: "List-Id".into(),
                        value: "dev.lists".into(),
                    },
                    Condition::To("team@".into()),
                    Condition::SizeUnder(10),
                    Condition::FromAddress("boss@example.com".into()),
                    Condition::RecipientContains("sales".into()),
                    Condition::SentTo("all@example.com".into()),
                ],
                match_all: false,
                actions: vec![
                    Action::Flag,
                    Action::Redirect("me@elsewhere.example".into()),
                ],
            },
            Rule {
                name: "Everything else".into(),
                enabled: true,
                conditions: vec![],
                match_all: true,
                actions: vec![Action::Redirect("a@b.example".into()), Action::Discard],
            },
        ]
    }

    #[test]
    fn round_trip_keeps_every_rule() {
        let (script, left) = to_sieve(&sample());
        assert_eq!(left, vec![]);
        assert!(
            script.starts_with("require [\"copy\", \"fileinto\", \"imap4flags\"];\n"),
            "{script}"
        );
        // UTF-8 as is, quotes and backslashes escaped.
        assert!(
            script.contains("fileinto \"Comptabilité/Été \\\"2026\\\"\";"),
            "{script}"
        );
        let back = from_sieve(&script);
        assert_eq!(back.untranslatable, vec![]);
        assert_eq!(back.rules, sample());
    }

    fn text() -> impl Strategy<Value = String> {
        any::<String>().prop_map(|s| s.replace('\0', ""))
    }

    fn condition() -> impl Strategy<Value = Condition> {
        prop_oneof![
            text().prop_map(Condition::From),
            text().prop_map(Condition::To),
            text().prop_map(Condition::FromAddress),
            text().prop_map(Condition::RecipientContains),
            text().prop_map(Condition::SentTo),
            text().prop_map(Condition::SubjectContains),
            // Printable ASCII but ':'; `Subject` reads back as its own condition.
            ("[!-9;-~]{1,12}", text())
                .prop_filter("subject", |(h, _)| !h.eq_ignore_ascii_case("subject"))
                .prop_map(|(header, value)| Condition::HeaderContains { header, value }),
            any::<u64>().prop_map(Condition::SizeOver),
            any::<u64>().prop_map(Condition::SizeUnder),
        ]
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            text().prop_map(Action::MoveTo),
            Just(Action::MarkRead),
            Just(Action::Flag),
            text().prop_map(Action::Redirect),
            Just(Action::Discard),
            Just(Action::Stop),
        ]
    }

    /// A rule as it reads back: actions in script order, `match_all` meaningful.
    fn rule() -> impl Strategy<Value = Rule> {
        (
            text().prop_map(|s| s.replace(['\r', '\n'], "")),
            proptest::collection::vec(condition(), 0..4),
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(action(), 1..5),
        )
            .prop_map(|(name, conditions, match_all, enabled, mut actions)| {
                actions.sort_by_key(rank);
                Rule {
                    name,
                    enabled,
                    match_all: match_all || conditions.len() < 2,
                    conditions,
                    actions,
                }
            })
    }

    proptest! {
        #[test]
        fn any_rules_round_trip(rules in proptest::collection::vec(rule(), 0..4)) {
            let (script, left) = to_sieve(&rules);
            prop_assert_eq!(left, vec![]);
            prop_assert_eq!(from_sieve(&script), Translated { rules, untranslatable: vec![] });
        }
    }

    #[test]
    fn only_needed_requires() {
        let rules = vec![Rule {
            name: "x".into(),
            enabled: true,
            conditions: vec![Condition::SizeOver(1)],
            match_all: true,
            actions: vec![Action::Discard],
        }];
        assert_eq!(
            to_sieve(&rules),
            (
                "# rule: x\nif size :over 1 {\n  discard;\n}\n".to_string(),
                vec![]
            )
        );
    }

    #[test]
    fn bad_header_name_is_refused_with_the_rule() {
        let odd = Rule {
            name: "odd".into(),
            enabled: true,
            conditions: vec![Condition::HeaderContains {
                header: "X Bad:".into(),
                value: "v".into(),
            }],
            match_all: true,
            actions: vec![Action::Discard],
        };
        let fine = Rule {
            name: "fine".into(),
            conditions: vec![],
            ..odd.clone()
        };
        let (script, left) = to_sieve(&[odd.clone(), fine]);
        assert_eq!(script, "# rule: fine\nif true {\n  discard;\n}\n");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].text, odd.to_string());
        assert!(left[0].reason.contains("header field name"), "{left:?}");
    }

    #[test]
    fn outside_the_subset_is_returned_with_its_text() {
        let script = "require [\"fileinto\", \"vacation\", \"regex\"];\n\
            if header :regex \"subject\" \"^a+$\" { fileinto \"A\"; }\n\
            # rule: kept\nif address :contains \"from\" \"x@y\" { fileinto \"B\"; }\n\
            vacation :days 3 \"away\";\n\
            if size :over 1M { discard; } else { keep; }\n";
        let t = from_sieve(script);
        assert_eq!(
            t.rules,
            vec![Rule {
                name: "kept".into(),
                enabled: true,
                conditions: vec![Condition::From("x@y".into())],
                match_all: true,
                actions: vec![Action::MoveTo("B".into())],
            }]
        );
        let texts: Vec<&str> = t.untranslatable.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "if header :regex \"subject\" \"^a+$\" { fileinto \"A\"; }",
                "vacation :days 3 \"away\";",
                "if size :over 1M { discard; } else { keep; }",
            ]
        );
    }

    #[test]
    fn unparsable_rest_is_kept_whole() {
        let t = from_sieve("if size :over 1K { discard; }\nif header :contains \"a\" \"b {");
        assert_eq!(t.rules.len(), 1);
        assert_eq!(t.rules[0].conditions, vec![Condition::SizeOver(1024)]);
        assert_eq!(t.untranslatable.len(), 1);
        assert_eq!(t.untranslatable[0].text, "if header :contains \"a\" \"b {");
    }

    #[test]
    fn multiline_strings_and_comments() {
        let t = from_sieve("/* c */ if header :contains \"subject\" text:\n..dot\n.\n { stop; }");
        assert_eq!(t.untranslatable, vec![]);
        assert_eq!(
            t.rules[0].conditions,
            vec![Condition::SubjectContains(".dot\n".into())]
        );
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use crate::rules::Importance;

    #[test]
    fn what_sieve_cannot_hold_is_left_out_with_the_reason() {
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
                    conditions: vec![Condition::HeadersContain("x".into())],
                    ..base.clone()
                },
                "all headers",
            ),
            (
                Rule {
                    actions: vec![Action::MarkImportance(Importance::High)],
                    ..base.clone()
                },
                "importance",
            ),
            (
                Rule {
                    actions: vec![Action::Forward("a@b".into())],
                    ..base.clone()
                },
                "new message",
            ),
            (
                Rule {
                    actions: vec![Action::Delete],
                    ..base.clone()
                },
                "trash",
            ),
        ];
        for (rule, why) in cases {
            let (script, left) = to_sieve(std::slice::from_ref(&rule));
            assert_eq!(script, "", "{rule}");
            assert_eq!(left.len(), 1, "{rule}");
            assert!(left[0].reason.contains(why), "{rule}: {}", left[0].reason);
            assert_eq!(left[0].text, rule.to_string());
        }
    }

    #[test]
    fn a_plain_redirect_reads_as_redirect_then_discard() {
        let t = from_sieve("if true { redirect \"a@b\"; }");
        assert_eq!(
            t.rules[0].actions,
            vec![Action::Redirect("a@b".into()), Action::Discard]
        );
    }
}
