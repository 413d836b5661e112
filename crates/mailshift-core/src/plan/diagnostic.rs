//! Diagnostics about a plan file, and their rendering as `file:line:col` with the offending
//! line, a caret underline and a `help:` that says the fix.
//!
//! Checks collect diagnostics instead of stopping at the first, so one `validate` run shows
//! every problem. Rendering is plain text with no colour so that snapshot tests can assert
//! the exact output.

use std::fmt::Write as _;

use super::node::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Where in the document, as `accounts[0].source.password` (empty for the whole file).
    pub path: String,
    #[serde(skip)]
    pub span: Option<Span>,
    /// A short note under the caret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The span holds a secret: the rendered line shows `*` in its place.
    #[serde(skip)]
    pub redact: bool,
}

impl Diagnostic {
    pub fn error(path: impl Into<String>, span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            path: path.into(),
            span,
            label: None,
            help: None,
            redact: false,
        }
    }

    pub fn warning(
        path: impl Into<String>,
        span: Option<Span>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, span, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Line (1-based), column (1-based, in characters) and the line's text for a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize, &str) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let line_no = source[..line_start].matches('\n').count() + 1;
    let col = source[line_start..offset].chars().count() + 1;
    let text = source[line_start..line_end].trim_end_matches('\r');
    (line_no, col, text)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders one diagnostic against the source it is about.
pub fn render(diag: &Diagnostic, file_name: &str, source: &str) -> String {
    let mut out = String::new();
    let kind = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{kind}: {}", diag.message);
    match diag.span {
        Some(span) => {
            let (line, col, text) = line_col(source, span.offset);
            let gutter = line.to_string().len();
            let pad = " ".repeat(gutter);
            let _ = writeln!(out, "{pad}--> {file_name}:{line}:{col}");
            let _ = writeln!(out, "{pad} |");
            let shown = if diag.redact {
                let start = col - 1;
                let value = source.get(span.offset..).unwrap_or("");
                // A list or mapping's span is its opening bracket: hide the rest of the line.
                let n = if value.starts_with(['[', '{']) {
                    usize::MAX
                } else {
                    source
                        .get(span.offset..(span.offset + span.len).min(source.len()))
                        .map_or(0, |s| s.chars().take_while(|c| *c != '\n').count())
                };
                text.chars()
                    .enumerate()
                    .map(|(i, c)| if i >= start && i - start < n { '*' } else { c })
                    .collect::<String>()
            } else {
                text.to_string()
            };
            let shown = sanitize(&shown);
            let _ = writeln!(out, "{line} | {shown}");
            // Underline the span, clipped to its first line; at least one caret.
            let rest_of_line = text.chars().count().saturating_sub(col - 1);
            let span_chars = source
                .get(span.offset.min(source.len())..(span.offset + span.len).min(source.len()))
                .map_or(1, |s| s.chars().take_while(|c| *c != '\n').count());
            let width = span_chars.min(rest_of_line).max(1);
            let lead: String = sanitize(&text.chars().take(col - 1).collect::<String>())
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let carets = "^".repeat(width);
            match &diag.label {
                Some(label) => {
                    let _ = writeln!(out, "{pad} | {lead}{carets} {label}");
                }
                None => {
                    let _ = writeln!(out, "{pad} | {lead}{carets}");
                }
            }
            if let Some(help) = &diag.help {
                let _ = writeln!(out, "{pad} = help: {help}");
            }
        }
        None => {
            let _ = writeln!(out, "  --> {file_name}");
            if let Some(help) = &diag.help {
                let _ = writeln!(out, "  = help: {help}");
            }
        }
    }
    out
}

/// Control characters from a hostile file must not drive the terminal.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Fields whose values are secrets: diagnostics about them never show the value.
const SECRET_FIELDS: [&str; 5] = [
    "password",
    "oauth2_token",
    "application_key",
    "application_secret",
    "consumer_key",
];

/// Hides secret values in diagnostics about secret fields: in the message and in the quoted line.
pub fn redact_secrets(diags: &mut [Diagnostic], source: &str) {
    for d in diags {
        let about_secret = d
            .path
            .split(['.', '['])
            .any(|seg| SECRET_FIELDS.contains(&seg));
        if !about_secret {
            continue;
        }
        d.redact = true;
        if let Some(span) = d.span
            && let Some(value) = source.get(span.offset..(span.offset + span.len).min(source.len()))
        {
            let value = value.trim_matches(['"', '\'']);
            if value.len() >= 3 {
                d.message = d.message.replace(value, "***");
            }
        }
    }
}

/// Renders all diagnostics, errors and warnings in file order, then a one-line summary.
pub fn render_all(diags: &[Diagnostic], file_name: &str, source: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| (d.span.map_or(usize::MAX, |s| s.offset), d.severity));
    let mut out = String::new();
    for d in &sorted {
        out.push_str(&render(d, file_name, source));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if errors > 0 {
        let tail = if warnings > 0 {
            format!(", {}", plural(warnings, "warning"))
        } else {
            String::new()
        };
        let _ = writeln!(out, "{file_name}: {}{tail}", plural(errors, "error"));
    } else if warnings > 0 {
        let _ = writeln!(
            out,
            "{file_name}: valid, with {}",
            plural(warnings, "warning")
        );
    }
    out
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "did you mean `x`?" for the closest candidate, when one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let word = word.to_lowercase();
    // Jaro-Winkler misses transpositions in short words (`tsl`/`tls`); edit distance catches them.
    let close = |c: &str| {
        let c = c.to_lowercase();
        let edits = strsim::osa_distance(&word, &c);
        let score = strsim::jaro_winkler(&word, &c);
        (edits <= (word.chars().count() / 4).max(1) || score > 0.8).then_some((edits, -score))
    };
    candidates
        .into_iter()
        .filter_map(|c| close(c).map(|k| (k, c)))
        .min_by(|a, b| a.0.0.cmp(&b.0.0).then(a.0.1.total_cmp(&b.0.1)))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_place_line_caret_and_help() {
        let src = "version: 1\naccounts:\n  - adress: a@b.c\n";
        let offset = src.find("adress").unwrap();
        let d = Diagnostic::error(
            "accounts[0]",
            Some(Span { offset, len: 6 }),
            "unknown field `adress`",
        )
        .with_help("did you mean `address`?");
        assert_eq!(
            render(&d, "plan.yaml", src),
            "error: unknown field `adress`\n --> plan.yaml:3:5\n  |\n3 |   - adress: a@b.c\n  |     ^^^^^^\n  = help: did you mean `address`?\n"
        );
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let src = "a: \"Été\"\nb: x\n";
        let (l, c, _) = line_col(src, src.find('x').unwrap());
        assert_eq!((l, c), (2, 4));
        let (l, c, _) = line_col(src, src.find("\"\n").unwrap());
        assert_eq!((l, c), (1, 8));
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(
            did_you_mean("adress", ["address", "from"]),
            Some("address".into())
        );
        assert_eq!(did_you_mean("zzz", ["address", "from"]), None);
        assert_eq!(
            did_you_mean("tsl", ["tls", "starttls", "none"]),
            Some("tls".into())
        );
    }
}
