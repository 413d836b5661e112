//! `mailshift watch PLAN`: the daemon of `crate::watch`, with its logs set up;
//! `mailshift watch --aggregate URL...`: the aggregator of many shards' watches
//! (`crate::watch::aggregate::serve`), with the same logs, `--listen` and `--token`.
//!
//! Logs go to stderr through tracing: human lines (coloured on a terminal), or JSON lines with
//! `--log-format json` for journald, Loki and the like. Nothing secret reaches them: secrets are
//! references in the plan, resolved values are redacted types, and the executor's messages
//! never carry one.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use super::CliError;
use crate::plan::secret::SecretRef;
use crate::plan::validate::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event (coloured on a terminal).
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`); its directory is watched for changes.
    /// Not with --aggregate.
    #[arg(required_unless_present = "aggregate")]
    pub plan: Option<PathBuf>,
    /// Run no plan: serve the merged status of these shards' watches (http://HOST:PORT each,
    /// one per shard), asked every --poll: /api/status, the status page, /metrics, /healthz.
    #[arg(long, value_name = "URL", num_args = 1.., conflicts_with_all = ["plan", "shard", "no_file_watch"])]
    pub aggregate: Vec<String>,
    /// With --aggregate: how often the shards are asked.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_poll)]
    pub poll: Duration,
    /// Address of the HTTP server (status page, /api/status, /metrics, /healthz). Any address
    /// but loopback needs --token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8470")]
    pub listen: SocketAddr,
    /// Where the HTTP bearer token comes from, written as a plan's secrets are:
    /// '{env: NAME}', '{file: PATH}' or '{command: [program, args...]}'. Required on every
    /// route but /healthz; re-read on SIGHUP.
    // Parsed in `exec`, not by clap: clap's error would echo a literal token back.
    #[arg(long, value_name = "SECRET_REF")]
    pub token: Option<String>,
    /// Do not follow the plan file: re-read it only on SIGHUP.
    #[arg(long)]
    pub no_file_watch: bool,
    /// How long in-flight copies get to reach a checkpoint after SIGTERM or Ctrl-C.
    #[arg(long, value_name = "DURATION", default_value = "25s", value_parser = parse_grace)]
    pub grace: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`), or per-target directives such as
    /// `info,mailshift=debug`.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        env = "MAILSHIFT_LOG"
    )]
    pub log_level: String,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    parse_duration(text).map(Duration::from_secs)
}

/// At least a second: asking every shard in a loop would only load them.
fn parse_poll(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        0 => Err("at least 1s".into()),
        s => Ok(Duration::from_secs(s)),
    }
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let token: Option<SecretRef> = args
        .token
        .as_deref()
        .map(crate::watch::parse_token_ref)
        .transpose()
        .map_err(|e| CliError(format!("--token: {e}")))?;
    let shard = args.shard.resolve()?;
    init_logging(args.log_format, &args.log_level)?;
    let runtime = super::runtime()?;
    let result = match args.plan {
        None => runtime.block_on(crate::watch::aggregate::serve::run(
            crate::watch::aggregate::serve::Options {
                urls: args.aggregate,
                listen: args.listen,
                token,
                interval: args.poll,
            },
        )),
        Some(plan) => runtime.block_on(crate::watch::run(crate::watch::Options {
            plan,
            listen: args.listen,
            token,
            watch_file: !args.no_file_watch,
            grace: args.grace,
            shard,
        })),
    };
    // In-flight blocking work (a state write after the grace period) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A bare level applies to mailshift, with other crates (HTTP, IMAP libraries) at `warn`;
/// directives with `=` or `,` are taken as they are.
fn filter(level: &str) -> Result<Targets, CliError> {
    if level.contains('=') || level.contains(',') {
        return level
            .parse::<Targets>()
            .map_err(|e| CliError(format!("--log-level {level}: {e}")));
    }
    let l: LevelFilter = level
        .parse()
        .map_err(|_| CliError(format!("--log-level {level}: not a level")))?;
    Ok(Targets::new()
        .with_default(LevelFilter::WARN.min(l))
        .with_target("mailshift", l))
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), CliError> {
    let filter = filter(level)?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| CliError(format!("cannot set up logging: {e}")))
}
