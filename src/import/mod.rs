//! Imports of other tools' migration lists into a plan.
//!
//! Two formats: the OVH Mail Migrator (OMM) "project mode" CSV (10 columns, `;`) and the
//! Exchange Online IMAP migration CSV (`EmailAddress,UserName,Password[,UserRoot]`). Both
//! become a [`Plan`] built from the typed model, so the rendered YAML or TOML is always
//! well-formed. Passwords never reach the plan: each becomes an `{env: NAME}` reference,
//! and the values are handed back separately (as redacted [`Secret`]s) for the caller to
//! write to a secrets file if asked.
//!
//! Everything here is pure (bytes in, plan out) and must not panic on any input: the CLI
//! does the I/O.
//!
//! `omm` and `exo` read one format each, through `csv` (rows, line numbers, column names)
//! and `server` (server cells and endpoints); both hand their rows to `builder`, which names
//! platforms and environment variables and makes the plan; `output` writes it as YAML or TOML.

mod builder;
mod csv;
mod exo;
mod omm;
mod output;
mod server;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::plan::model::{ImapEndpoint, Plan};
use crate::plan::secret::Secret;

pub use exo::exo_csv;
pub use omm::omm_csv;
pub use output::{secrets_file_text, to_toml, to_yaml};
pub use server::endpoint;

/// Where editors find the plan's JSON Schema; written on the first line of YAML output.
pub const SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/mailshift/mailshift/main/schema/plan.schema.json";

/// A bad input: which file, row (1-based, header included, as a spreadsheet numbers it)
/// and column, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub row: Option<u64>,
    /// Spreadsheet letter and, when known, the column's name, e.g. `G (Destination Mail)`.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ImportError {}

/// An environment variable the imported plan reads a password from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    /// Safe to print: whose password it is and where it came from, never the value.
    pub description: String,
    /// The file held a value for it (else the user must set it themselves).
    pub in_file: bool,
}

/// The result of an import: the plan, plus what the user needs to run it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub plan: Plan,
    pub env_vars: Vec<EnvVar>,
    /// Values found in the file, by variable name, in row order.
    pub secrets: Vec<(String, Secret)>,
    /// Things the user should check, written as comments at the top of the plan.
    pub notes: Vec<String>,
    /// `mailshift import` subcommand that produced it, e.g. `omm-csv`.
    pub command: &'static str,
    pub source_name: String,
    /// Data rows read (header and blank rows excluded).
    pub rows: usize,
}

/// Settings for the OMM import that the file may leave out.
#[derive(Debug, Clone, Default)]
pub struct OmmOptions {
    /// IMAP server for rows whose destination URL is empty (OMM autodetects OVHcloud
    /// servers; mailshift needs to be told).
    pub dest_fallback: Option<ImapEndpoint>,
    /// The OVHcloud service rows whose destination URL is empty move to (OMM's "Hosted by
    /// OVHcloud (Autodetect)"): its IMAP server is then read from the API at each run.
    pub dest_ovh: Option<OvhDest>,
}

/// An OVHcloud service as a destination, from `--dest-ovh KIND:SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvhDest {
    pub kind: crate::plan::model::PlatformKind,
    pub organization: Option<String>,
    pub service: String,
    /// The API endpoint for the plan's provider (`ovh-eu`...).
    pub endpoint: String,
}

impl OvhDest {
    /// Parses `exchange:ORGANIZATION/SERVICE`, `email-pro:SERVICE` or `mx-plan:SERVICE` (each
    /// also with its `ovh-` prefix).
    pub fn parse(text: &str, endpoint: &str) -> Result<OvhDest, String> {
        use crate::plan::model::PlatformKind;
        let usage = "write exchange:ORGANIZATION/SERVICE, email-pro:SERVICE or mx-plan:SERVICE";
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("--dest-ovh {text}: {usage}"))?;
        let kind = match kind.trim().trim_start_matches("ovh-") {
            "exchange" => PlatformKind::OvhExchange,
            "email-pro" => PlatformKind::OvhEmailPro,
            "mx-plan" => PlatformKind::OvhMxPlan,
            other => return Err(format!("--dest-ovh: unknown kind `{other}`; {usage}")),
        };
        let rest = rest.trim();
        let (organization, service) = match (kind, rest.split_once('/')) {
            (PlatformKind::OvhExchange, Some((o, s))) => (Some(o.trim().to_string()), s.trim()),
            (PlatformKind::OvhExchange, None) => {
                return Err(format!(
                    "--dest-ovh {text}: an Exchange service is named with its organization: exchange:ORGANIZATION/SERVICE"
                ));
            }
            (_, Some(_)) => return Err(format!("--dest-ovh {text}: {usage}")),
            (_, None) => (None, rest),
        };
        if service.is_empty() || organization.as_deref().is_some_and(str::is_empty) {
            return Err(format!("--dest-ovh {text}: {usage}"));
        }
        Ok(OvhDest {
            kind,
            organization,
            service: service.to_string(),
            endpoint: endpoint.to_string(),
        })
    }
}

/// Settings for the Exchange Online import: its CSV names no server at all.
#[derive(Debug, Clone)]
pub struct ExoOptions {
    pub source: ImapEndpoint,
    pub destination: ImapEndpoint,
}

/// A comment ends at a line break; the file name is the user's and may hold one.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", comment_safe(s))
}
