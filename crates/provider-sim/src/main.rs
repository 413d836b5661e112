//! `provider-sim`: runs the stand-ins of `provider_sim` as processes, for the demo and the
//! benchmarks (the tests start them in process). Each subcommand prints the address it
//! serves on its first stdout line and serves until SIGTERM or Ctrl-C; errors print as
//! `error: …` with exit 1.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "provider-sim", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A Gmail-shaped IMAP server: a proxy adding X-GM-EXT-1, Gmail's capabilities and
    /// folders in front of a Dovecot configured with `--print-dovecot-config`.
    Gmail(GmailArgs),
}

#[derive(Debug, clap::Args)]
struct GmailArgs {
    /// The Dovecot behind the proxy (its plain IMAP port).
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present = "print_dovecot_config"
    )]
    backend: Option<SocketAddr>,
    /// Dovecot's master user for the proxy's side connections, as `USER:PASSWORD`.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        default_value = "gmailsim:gmailsim"
    )]
    master: String,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bytes appended plus fetched after which APPEND and FETCH get `NO [OVERQUOTA]`.
    #[arg(long, value_name = "BYTES")]
    quota_bytes: Option<u64>,
    /// Write the virtual folders and master user into DIR, print the lines to add to
    /// dovecot.conf, and exit.
    #[arg(long, value_name = "DIR")]
    print_dovecot_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let result = match Args::parse().command {
        Command::Gmail(args) => gmail(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn gmail(args: GmailArgs) -> Result<(), String> {
    let (user, password) = args
        .master
        .split_once(':')
        .ok_or("--master must be USER:PASSWORD")?;
    if let Some(dir) = &args.print_dovecot_config {
        let conf = provider_sim::gmail::dovecot_config(dir, user, password)
            .map_err(|e| format!("cannot write into {}: {e}", dir.display()))?;
        println!("{conf}");
        return Ok(());
    }
    let backend = args.backend.ok_or("--backend is required")?;
    let sim = provider_sim::gmail::GmailSim::start_on(
        provider_sim::gmail::GmailConfig {
            backend,
            master_user: user.to_string(),
            master_password: password.to_string(),
            quota_bytes: args.quota_bytes,
        },
        args.listen,
    )
    .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "127.0.0.1:{}", sim.port())
        .and_then(|()| stdout.flush())
        .map_err(|e| e.to_string())?;
    eprintln!(
        "Gmail-shaped IMAP server (test/demo tool) on 127.0.0.1:{} in front of {backend}",
        sim.port()
    );
    wait_for_stop()
}

/// Blocks until SIGTERM or Ctrl-C.
fn wait_for_stop() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
