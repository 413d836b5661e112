//! The imported plan as text: YAML (with the schema line) or TOML, each headed by comments
//! saying where it came from, and the secrets file for the shell.

use std::fmt;

use super::{ImportError, Imported, SCHEMA_URL, comment_safe};

/// The plan as YAML: schema line, provenance and notes as comments, then the document.
pub fn to_yaml(imported: &Imported) -> Result<String, ImportError> {
    let body = serde_saphyr::to_string(&imported.plan).map_err(|e| render_error(imported, e))?;
    let mut out = format!("# yaml-language-server: $schema={SCHEMA_URL}\n");
    out.push_str(&header_comment(imported));
    out.push_str(&body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The plan as TOML, with the same provenance comments as the YAML.
pub fn to_toml(imported: &Imported) -> Result<String, ImportError> {
    let body = toml::to_string(&imported.plan).map_err(|e| render_error(imported, e))?;
    Ok(format!("{}{body}", header_comment(imported)))
}

/// The found passwords as `NAME='value'` lines, for `set -a; . FILE; set +a`.
pub fn secrets_file_text(imported: &Imported) -> String {
    let mut out = format!(
        "# Passwords imported from {}; load with `set -a; . ./FILE; set +a`. Delete this file \
         when the migration is done.\n",
        comment_safe(&imported.source_name)
    );
    for (name, secret) in &imported.secrets {
        // Single quotes keep every byte literal in sh; a quote inside is closed, escaped, reopened.
        let value = secret.expose().replace('\'', r"'\''");
        out.push_str(&format!("{name}='{value}'\n"));
    }
    out
}

fn render_error(imported: &Imported, e: impl fmt::Display) -> ImportError {
    ImportError {
        file: imported.source_name.clone(),
        row: None,
        column: None,
        message: format!("cannot write the plan: {e} (a bug: please report it)"),
    }
}

fn header_comment(imported: &Imported) -> String {
    let accounts = imported.plan.accounts.len();
    let mut out = format!(
        "# Imported by `mailshift import {}` from {} ({} {}, {} {}).\n",
        imported.command,
        comment_safe(&imported.source_name),
        imported.rows,
        plural(imported.rows, "row", "rows"),
        accounts,
        plural(accounts, "account", "accounts"),
    );
    out.push_str(
        "# Passwords are not in this file: each is read from the environment variable it names.\n",
    );
    for note in &imported.notes {
        out.push_str(&format!("# Note: {}\n", comment_safe(note)));
    }
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
