//! Loading a plan file: read, parse (YAML or TOML), shape-check, deserialize, validate.
//!
//! The result is either a [`Loaded`] plan (maybe with warnings) or an [`Invalid`] report with
//! every diagnostic; nothing in here panics on any input (a property test feeds it garbage).

use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, redact_secrets, render_all};
use super::model::Plan;
use super::node::{self, Node};
use super::{schema, shape, validate};

/// What the plan's `state:` path may hold to give each shard its own file.
pub const SHARD_PLACEHOLDER: &str = "{shard}";

/// Plans larger than this are refused before parsing: no real plan comes near it.
const MAX_PLAN_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

/// A plan that passed validation.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub plan: Plan,
    /// The plan file's path as given.
    pub path: PathBuf,
    /// The directory relative paths in the plan are resolved against.
    pub base_dir: PathBuf,
    pub source: String,
    /// Warnings (never errors).
    pub warnings: Vec<Diagnostic>,
    /// The share of the plan this process runs (`--shard I/N`): the whole plan unless the
    /// command sets it after loading (`model::compile_shard` reads it).
    pub shard: crate::shard::Shard,
}

impl Loaded {
    /// Whether the account with this address is run by this process (`--shard`).
    pub fn owns_account(&self, address: &str) -> bool {
        self.shard.is_whole() || self.shard.owns_account(address)
    }

    /// The plan's accounts this process runs (`--shard`), in the plan's order.
    pub fn accounts(&self) -> impl Iterator<Item = &super::model::Account> {
        self.plan
            .accounts
            .iter()
            .filter(|a| self.owns_account(&a.address))
    }

    pub fn file_name(&self) -> String {
        self.path.display().to_string()
    }

    /// The state file this plan uses when it runs as one process (the whole plan: `{shard}`
    /// in the `state:` path reads as 0).
    pub fn state_path(&self) -> PathBuf {
        self.state_path_for(crate::shard::Shard::WHOLE)
    }

    /// The state file of one shard: `{shard}` in the plan's `state:` path replaced by the
    /// shard's index. A path without it is the same for every shard, which is right when each
    /// shard runs on its own machine or volume (a Kubernetes pod), and refused by the file's
    /// shard stamp when two shards meet at it.
    pub fn state_path_for(&self, shard: crate::shard::Shard) -> PathBuf {
        match &self.plan.state {
            Some(s) => self
                .base_dir
                .join(s.replace(SHARD_PLACEHOLDER, &shard.index.to_string())),
            None => self.base_dir.join(".mailshift").join("state.redb"),
        }
    }

    /// Whether the plan's `state:` path holds `{shard}` (each shard its own file name).
    pub fn state_path_is_per_shard(&self) -> bool {
        self.plan
            .state
            .as_deref()
            .is_some_and(|s| s.contains(SHARD_PLACEHOLDER))
    }

    pub fn render_warnings(&self) -> String {
        render_all(&self.warnings, &self.file_name(), &self.source)
    }
}

/// Why a plan could not be loaded.
#[derive(Debug, Clone)]
pub enum LoadError {
    /// The file could not be read, or its kind is unknown: one sentence.
    Io(String),
    /// The file was read and has problems, each with its place.
    Invalid {
        file_name: String,
        source: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl LoadError {
    /// Full human rendering (diagnostics with source excerpts and a summary line).
    pub fn render(&self) -> String {
        match self {
            LoadError::Io(msg) => format!("error: {msg}\n"),
            LoadError::Invalid {
                file_name,
                source,
                diagnostics,
            } => render_all(diagnostics, file_name, source),
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Io(_) => &[],
            LoadError::Invalid { diagnostics, .. } => diagnostics,
        }
    }
}

pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let (source, format, base_dir) = read_source(path)?;
    load_str(&source, format, path, &base_dir)
}

/// The plan file's text, its format and the directory its relative paths start from.
pub(crate) fn read_source(path: &Path) -> Result<(String, Format, PathBuf), LoadError> {
    let format = Format::from_path(path).ok_or_else(|| {
        LoadError::Io(format!(
            "cannot tell the format of {}: name plan files `.yaml`, `.yml` or `.toml`",
            path.display()
        ))
    })?;
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadError::Io(format!("cannot read plan {}: {e}", path.display())))?;
    if meta.len() as usize > MAX_PLAN_BYTES {
        return Err(LoadError::Io(format!(
            "plan {} is {} bytes; plans are limited to {MAX_PLAN_BYTES} bytes",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| LoadError::Io(format!("cannot read plan {}: {e}", path.display())))?;
    let source = String::from_utf8(bytes).map_err(|e| {
        LoadError::Io(format!(
            "plan {} is not valid UTF-8 (first bad byte at offset {}): save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((source, format, base_dir))
}

/// Loads a plan from text; `path` is used for messages and `base_dir` for relative paths.
pub fn load_str(
    source: &str,
    format: Format,
    path: &Path,
    base_dir: &Path,
) -> Result<Loaded, LoadError> {
    if format == Format::Yaml {
        let text = source.strip_prefix('\u{feff}').unwrap_or(source);
        if let Some(loaded) = load_clean(text, source, path, base_dir) {
            return Ok(loaded);
        }
    }
    load_spanned(source, format, path, base_dir)
}

/// Loads a plan keeping every node's place in the text, so diagnostics point at it.
fn load_spanned(
    source: &str,
    format: Format,
    path: &Path,
    base_dir: &Path,
) -> Result<Loaded, LoadError> {
    let file_name = path.display().to_string();
    let invalid = |mut diagnostics: Vec<Diagnostic>| {
        redact_secrets(&mut diagnostics, source);
        LoadError::Invalid {
            file_name: file_name.clone(),
            source: source.to_string(),
            diagnostics,
        }
    };
    // A leading BOM is legal in both formats' files but not to their parsers.
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);

    let shift = source.len() - text.len();
    let parsed = match format {
        Format::Yaml => node::parse_yaml(text),
        Format::Toml => node::parse_toml(text),
    };
    let mut tree = match parsed {
        Ok(t) => t,
        Err(e) => {
            let span = e.span.map(|s| node::Span {
                offset: s.offset + shift,
                len: s.len,
            });
            return Err(invalid(vec![
                Diagnostic::error("", span, e.message).with_help(match (e.help, format) {
                    (Some(help), _) => help,
                    (None, Format::Yaml) => {
                        "fix the YAML syntax here (check indentation, quotes and brackets)".into()
                    }
                    (None, Format::Toml) => {
                        "fix the TOML syntax here (check quotes, brackets and `=`)".into()
                    }
                }),
            ]));
        }
    };
    if shift > 0 {
        shift_spans(&mut tree, shift);
    }
    if matches!(tree.kind, node::NodeKind::Null) {
        return Err(invalid(vec![
            Diagnostic::error("", None, "the plan is empty")
                .with_help("start from an example in `examples/`, or see `mailshift schema`"),
        ]));
    }
    let schema = schema::plan_schema();
    let shape_errors = shape::check(&schema, &tree);
    if !shape_errors.is_empty() {
        return Err(invalid(shape_errors));
    }
    let plan: Plan = node::from_node(&tree).map_err(|e| {
        invalid(vec![Diagnostic::error(
            "",
            Some(tree.span),
            format!("cannot read the plan: {e}"),
        )])
    })?;
    let mut diagnostics = validate::validate(&plan, &tree, source);
    redact_secrets(&mut diagnostics, source);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(invalid(diagnostics));
    }
    Ok(Loaded {
        plan,
        path: path.to_path_buf(),
        base_dir: base_dir.to_path_buf(),
        source: source.to_string(),
        warnings: diagnostics,
        shard: crate::shard::Shard::WHOLE,
    })
}

/// The fast way for a plan with nothing to say about it: read without spans, check, and keep
/// it if nothing at all (no error, no warning) came up. Anything else is loaded again the
/// usual way, with spans, so every diagnostic points where it did. On a 10,000-account plan,
/// the spans are about half the loading time.
fn load_clean(text: &str, source: &str, path: &Path, base_dir: &Path) -> Option<Loaded> {
    let tree = node::parse_yaml_unspanned(text)?;
    if matches!(tree.kind, node::NodeKind::Null) {
        return None;
    }
    // The shape check and the typed read are independent and each about a sixth of a large
    // plan's load: side by side on two threads. The typed read of a tree the shape check
    // refuses only fails (serde), and is then thrown away; validation waits for both.
    let (shape_ok, plan) = std::thread::scope(|s| {
        let shape = s.spawn(|| shape::check(&schema::plan_schema(), &tree).is_empty());
        let plan: Option<Plan> = node::from_node(&tree).ok();
        (shape.join().unwrap_or(false), plan)
    });
    let plan = plan.filter(|_| shape_ok)?;
    if !validate::validate(&plan, &tree, source).is_empty() {
        return None;
    }
    Some(Loaded {
        plan,
        path: path.to_path_buf(),
        base_dir: base_dir.to_path_buf(),
        source: source.to_string(),
        warnings: Vec::new(),
        shard: crate::shard::Shard::WHOLE,
    })
}

fn shift_spans(node: &mut Node, by: usize) {
    node.span.offset += by;
    match &mut node.kind {
        node::NodeKind::Seq(items) => items.iter_mut().for_each(|n| shift_spans(n, by)),
        node::NodeKind::Map(entries) => {
            for (k, v) in entries {
                k.span.offset += by;
                shift_spans(v, by);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod clean_tests {
    use super::*;

    /// The fast way and the spanned way read every example to the same plan.
    #[test]
    fn a_clean_plan_reads_the_same_without_spans() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let spanned = load_spanned(&text, Format::Yaml, &path, &dir)
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            if !spanned.warnings.is_empty() {
                // Plans with warnings always take the spanned way.
                assert!(load_clean(&text, &text, &path, &dir).is_none());
                continue;
            }
            let clean = load_clean(&text, &text, &path, &dir)
                .unwrap_or_else(|| panic!("{} is clean", path.display()));
            assert_eq!(clean.plan, spanned.plan, "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 3, "only {seen} clean examples");
    }
}

#[cfg(test)]
mod state_path_tests {
    use super::*;
    use crate::shard::Shard;

    fn plan(state: &str) -> Loaded {
        let text = format!(
            "version: 1\n{state}platforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: 10143, security: none}}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: 10144, security: none}}}}\naccounts:\n  - {{address: a@example.com, from: old, to: new, source: {{login: a, password: {{env: A}}}}, destination: {{login: a, password: {{env: A}}}}}}\n"
        );
        load_str(&text, Format::Yaml, Path::new("p.yaml"), Path::new("/srv"))
            .unwrap_or_else(|e| panic!("{}", e.render()))
    }

    #[test]
    fn shard_placeholder_takes_the_index() {
        let p = plan("state: st/state-{shard}.redb\n");
        assert!(p.state_path_is_per_shard());
        let s = |i, n| Shard::new(i, n).unwrap();
        assert_eq!(p.state_path(), PathBuf::from("/srv/st/state-0.redb"));
        assert_eq!(
            p.state_path_for(s(2, 3)),
            PathBuf::from("/srv/st/state-2.redb")
        );
        // Without the placeholder every shard has the same path (one machine or volume each).
        let p = plan("state: /var/lib/mailshift/state.redb\n");
        assert!(!p.state_path_is_per_shard());
        assert_eq!(
            p.state_path_for(s(1, 3)),
            PathBuf::from("/var/lib/mailshift/state.redb")
        );
        let p = plan("");
        assert!(!p.state_path_is_per_shard());
        assert_eq!(
            p.state_path_for(s(1, 3)),
            PathBuf::from("/srv/.mailshift/state.redb")
        );
    }
}
