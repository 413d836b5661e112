//! Command-line interface: one file per subcommand, each with its `Args` and `exec`.
//!
//! Subcommands only wire the library together and print; the logic lives in `plan`,
//! `model`, `diff`, `state` and `render`. Every subcommand returns an [`ExitCode`]; errors
//! are printed here, once, as `error: ...`, and exit with 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod ack;
pub mod apply;
pub mod auth;
pub mod docs;
pub mod import;
pub mod ovh;
pub mod ovh_credentials;
pub mod plan;
pub mod rollback;
pub mod schema;
pub mod shard;
pub mod state;
pub mod status;
pub mod validate;
pub mod verify;
pub mod watch;

/// Migrate email accounts between platforms from a version-controlled plan.
#[derive(Debug, Parser)]
#[command(name = "mailshift", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plan file and report every problem in it.
    Validate(validate::Args),
    /// Print the plan file's JSON Schema.
    Schema(schema::Args),
    /// Show the steps that `apply` would run (a dry run).
    Plan(plan::Args),
    /// Run the steps that `plan` shows: copy mail, recreate features.
    Apply(apply::Args),
    /// Record that a manual step was done by hand.
    Ack(ack::Args),
    /// Delete from the destinations the messages copied in a sync point and later (shows
    /// them and asks first).
    Rollback(rollback::Args),
    /// Show progress from the state: each account's steps, then the platform-level ones.
    Status(status::Args),
    /// Compare source and destination mailboxes: name each message missing, extra or changed,
    /// and each one whose flags, keywords or internal date differ.
    Verify(verify::Args),
    /// Inspect and repair the state store.
    State(state::Args),
    /// Turn another tool's migration list into a plan (on stdout).
    Import(import::Args),
    /// OVHcloud helpers: ask for API credentials.
    Ovh(ovh::Args),
    /// OAuth2 sign-in for Gmail, Microsoft 365 and other XOAUTH2 servers: once per account
    /// side for the interactive flows; tokens are then renewed by each run.
    Auth(auth::Args),
    /// Keep applying the plan as it changes, re-sync mail on an interval, serve status and
    /// metrics over HTTP (a daemon).
    Watch(watch::Args),
    /// Print the manual page (roff), or write a page per command with --dir.
    Man(docs::ManArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    Completions(docs::CompletionsArgs),
}

/// An error that ends a command; printed as `error: {0}` and exit 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

/// Loads a plan for a command that needs a valid one: prints diagnostics (or warnings) to
/// stderr, and returns `None` when the plan is invalid (the caller exits 1).
pub fn load_plan(path: &std::path::Path) -> Option<crate::plan::Loaded> {
    match crate::plan::load_file_cached(path, crate::plan::default_cache_dir().as_deref()) {
        Ok(loaded) => {
            eprint!("{}", loaded.render_warnings());
            Some(loaded)
        }
        Err(e) => {
            eprint!("{}", e.render());
            None
        }
    }
}

/// `--target` values, lower-cased, each checked against the plan's accounts (a typo must not
/// silently select nothing).
pub fn targets(loaded: &crate::plan::Loaded, raw: &[String]) -> Result<Vec<String>, CliError> {
    let targets: Vec<String> = raw.iter().map(|t| t.to_ascii_lowercase()).collect();
    match targets.iter().find(|t| {
        !loaded
            .plan
            .accounts
            .iter()
            .any(|a| a.address.eq_ignore_ascii_case(t))
    }) {
        Some(t) => Err(CliError(format!(
            "--target {t}: no such account in {}",
            loaded.file_name()
        ))),
        None => match targets.iter().find(|t| !loaded.owns_account(t)) {
            // Run here, it would silently do nothing: its shard's process owns it.
            Some(t) => {
                let shard = loaded.shard;
                let owner = mailshift_core::shard::shard_of(t, shard.count);
                Err(CliError(format!(
                    "--target {t}: this account belongs to shard {owner}/{n}, and this is shard \
                     {shard}: run the command with --shard {owner}/{n}",
                    n = shard.count
                )))
            }
            None => Ok(targets),
        },
    }
}

/// The async runtime for the commands that talk to servers.
/// Reads what the plan leaves to the platforms' APIs (`apply::servers`) and says on stderr
/// what was found, so the output on stdout stays what the command is for.
pub async fn detect_servers(loaded: crate::plan::Loaded) -> std::sync::Arc<crate::plan::Loaded> {
    let (loaded, detected) = crate::apply::servers::detect(std::sync::Arc::new(loaded)).await;
    for d in &detected {
        eprintln!("{}", d.line(&loaded));
    }
    loaded
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(a) => validate::exec(a),
        Command::Schema(a) => schema::exec(a),
        Command::Plan(a) => plan::exec(a),
        Command::Apply(a) => apply::exec(a),
        Command::Ack(a) => ack::exec(a),
        Command::Rollback(a) => rollback::exec(a),
        Command::Status(a) => status::exec(a),
        Command::State(a) => state::exec(a),
        Command::Verify(a) => verify::exec(a),
        Command::Import(a) => import::exec(a),
        Command::Ovh(a) => ovh::exec(a),
        Command::Auth(a) => auth::exec(a),
        Command::Watch(a) => watch::exec(a),
        Command::Man(a) => docs::man(a),
        Command::Completions(a) => docs::completions(a),
    };
    match result {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
