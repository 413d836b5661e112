//! `mailshift import`: another tool's migration list in, a plan on stdout.
//!
//! The plan never holds a password: the names of the environment variables it reads are
//! listed on stderr, and `--secrets-file` writes the values found (mode 0600) for
//! `set -a; . FILE; set +a`. The conversion itself is `crate::import`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::CliError;
use crate::import::{self, ExoOptions, Imported, OmmOptions};
use crate::plan::model::{ImapEndpoint, Security};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ImportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// OVH Mail Migrator project CSV: 10 `;`-separated columns (source type, server, login,
    /// password, destination type, URL, mail, password, source admin, destination admin).
    OmmCsv {
        #[command(flatten)]
        common: Common,
        /// IMAP server for rows whose destination URL is empty (`host` or `host:port`),
        /// e.g. ex3.mail.ovh.net, pro1.mail.ovh.net or ssl0.ovh.net.
        #[arg(long, value_name = "HOST")]
        dest_host: Option<String>,
        #[arg(long, value_name = "PORT", requires = "dest_host")]
        dest_port: Option<u16>,
        #[arg(long, value_name = "SECURITY", requires = "dest_host")]
        dest_security: Option<SecurityArg>,
        /// The OVHcloud service for rows whose destination URL is empty, as OMM's "Hosted by
        /// OVHcloud (Autodetect)": `exchange:ORGANIZATION/SERVICE`, `email-pro:SERVICE` or
        /// `mx-plan:SERVICE`. Its IMAP server is read from the API at each run.
        #[arg(long, value_name = "KIND:SERVICE", conflicts_with = "dest_host")]
        dest_ovh: Option<String>,
        /// The OVHcloud API endpoint of `--dest-ovh`'s provider.
        #[arg(
            long,
            value_name = "ENDPOINT",
            default_value = "ovh-eu",
            requires = "dest_ovh"
        )]
        ovh_endpoint: String,
    },
    /// Exchange Online IMAP migration CSV: `EmailAddress,UserName,Password` (destination
    /// address, source login, source password). The servers are given as options.
    ExoCsv {
        #[command(flatten)]
        common: Common,
        /// Source IMAP server (`host` or `host:port`).
        #[arg(long, value_name = "HOST")]
        source_host: String,
        /// Default: 993 with tls, 143 otherwise.
        #[arg(long, value_name = "PORT")]
        source_port: Option<u16>,
        /// Default: starttls on port 143, else tls.
        #[arg(long, value_name = "SECURITY")]
        source_security: Option<SecurityArg>,
        /// Destination IMAP server (`host` or `host:port`); each mailbox logs in as its
        /// address, with a password from an environment variable you set.
        #[arg(long, value_name = "HOST")]
        dest_host: String,
        #[arg(long, value_name = "PORT")]
        dest_port: Option<u16>,
        #[arg(long, value_name = "SECURITY")]
        dest_security: Option<SecurityArg>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// The CSV file to read (`-` for standard input).
    pub file: PathBuf,
    /// Plan format written to stdout.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Also write the passwords found as `NAME='value'` lines to this new file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Toml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecurityArg {
    /// Implicit TLS (IMAPS).
    Tls,
    /// STARTTLS, required.
    Starttls,
    /// No encryption.
    None,
}

impl From<SecurityArg> for Security {
    fn from(s: SecurityArg) -> Self {
        match s {
            SecurityArg::Tls => Security::Tls,
            SecurityArg::Starttls => Security::Starttls,
            SecurityArg::None => Security::None,
        }
    }
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let (common, imported) = match args.command {
        ImportCommand::OmmCsv {
            common,
            dest_host,
            dest_port,
            dest_security,
            dest_ovh,
            ovh_endpoint,
        } => {
            let dest_fallback = dest_host
                .map(|h| option_endpoint("--dest-host", &h, dest_port, dest_security))
                .transpose()?;
            let dest_ovh = dest_ovh
                .map(|d| import::OvhDest::parse(&d, &ovh_endpoint))
                .transpose()
                .map_err(CliError)?;
            let (name, bytes) = read_input(&common.file)?;
            let imported = import::omm_csv(
                &bytes,
                &name,
                &OmmOptions {
                    dest_fallback,
                    dest_ovh,
                },
            )?;
            (common, imported)
        }
        ImportCommand::ExoCsv {
            common,
            source_host,
            source_port,
            source_security,
            dest_host,
            dest_port,
            dest_security,
        } => {
            let opts = ExoOptions {
                source: option_endpoint(
                    "--source-host",
                    &source_host,
                    source_port,
                    source_security,
                )?,
                destination: option_endpoint("--dest-host", &dest_host, dest_port, dest_security)?,
            };
            let (name, bytes) = read_input(&common.file)?;
            let imported = import::exo_csv(&bytes, &name, &opts)?;
            (common, imported)
        }
    };
    let text = match common.format {
        Format::Yaml => import::to_yaml(&imported)?,
        Format::Toml => import::to_toml(&imported)?,
    };
    // Written before the plan is printed, so a failure leaves no plan pointing at nothing.
    if let Some(path) = &common.secrets_file {
        write_secrets(path, &import::secrets_file_text(&imported))?;
    }
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| CliError(format!("cannot write the plan: {e}")))?;
    report_env_vars(&imported, common.secrets_file.as_deref());
    Ok(ExitCode::SUCCESS)
}

fn option_endpoint(
    option: &str,
    host: &str,
    port: Option<u16>,
    security: Option<SecurityArg>,
) -> Result<ImapEndpoint, CliError> {
    import::endpoint(host, port, security.map(Security::from))
        .map_err(|e| CliError(format!("{option}: {e}")))
}

fn read_input(path: &Path) -> Result<(String, Vec<u8>), CliError> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError(format!("cannot read standard input: {e}")))?;
        return Ok(("<stdin>".into(), bytes));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))?;
    Ok((path.display().to_string(), bytes))
}

fn write_secrets(path: &Path, text: &str) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    // A new file only: the mode applies at creation, and overwriting someone's file of
    // secrets would lose them.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        CliError(format!(
            "cannot create {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                " (remove it first, or choose another name)"
            } else {
                ""
            }
        ))
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))
}

fn report_env_vars(imported: &Imported, secrets_file: Option<&Path>) {
    let vars = &imported.env_vars;
    if vars.is_empty() {
        return;
    }
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = format!(
        "The plan reads {} passwords from these environment variables:\n",
        vars.len()
    );
    for v in vars {
        out.push_str(&format!("  {:width$}  {}\n", v.name, v.description));
    }
    match secrets_file {
        Some(path) => out.push_str(&format!(
            "hint: the values found are in {0}: run `set -a; . {1}; set +a` before mailshift, \
             and set the others yourself\n",
            path.display(),
            // `.` searches $PATH for a bare name.
            if path.components().count() == 1 && path.is_relative() {
                format!("./{}", path.display())
            } else {
                path.display().to_string()
            }
        )),
        None => out.push_str(
            "hint: export them before running mailshift, or re-run with --secrets-file FILE \
             to get the values found in a file for `set -a; . FILE; set +a`\n",
        ),
    }
    eprint!("{out}");
}
