//! `mailshift ovh …`: OVHcloud helpers that are not steps of a plan.
//!
//! `credentials` asks for a consumer key (see `ovh_credentials`). `simulate` runs the API simulator (`providers::ovh::sim`) as a process, for the demo and
//! for tests that drive the binary: it prints the API base URL on its first stdout line, so
//! a script can read it, and serves until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::providers::ovh::sim::{Simulator, World};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: OvhCommand,
}

#[derive(Debug, Subcommand)]
pub enum OvhCommand {
    /// Serve a simulated OVHcloud API from a world file (a test and demo tool: it is not
    /// the real API and changes nothing at OVHcloud).
    ///
    /// Prints the API base URL (use it as the plan's `endpoint`) on the first line of
    /// stdout. Calls outside the published schema are refused and listed at
    /// /_sim/violations; /_sim/requests, /_sim/world and /_sim/faults show and steer the
    /// rest. Stops on SIGTERM or Ctrl-C.
    Simulate(SimulateArgs),
    /// Ask OVHcloud for a consumer key limited to the services a plan names, and print the
    /// URL where the account owner grants it.
    Credentials(super::ovh_credentials::Args),
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The world to simulate (`.yaml`, `.yml` or `.json`): credentials, services, accounts.
    #[arg(long, value_name = "FILE")]
    pub world: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
        OvhCommand::Simulate(a) => simulate(a),
        OvhCommand::Credentials(a) => super::ovh_credentials::exec(a),
    }
}

fn simulate(args: SimulateArgs) -> Result<ExitCode, CliError> {
    let world = World::load(&args.world)?;
    let runtime = super::runtime()?;
    let code = runtime.block_on(async {
        // Watched before the address is printed: whoever reads it may send SIGTERM at once,
        // and one arriving before the handler would kill the process instead of stopping it.
        let stop = stop_signal()?;
        let handle = Simulator::start_on(world, args.listen).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", handle.base_url())?;
        stdout.flush()?;
        eprintln!(
            "OVHcloud API simulator (test/demo tool) listening on {}; control API under http://{}/_sim/",
            handle.base_url(),
            handle.addr()
        );
        stop.await?;
        handle.shutdown();
        Ok::<_, CliError>(ExitCode::SUCCESS)
    });
    // Whatever a request left running (a task's timer, a blocking write) does not hold the
    // exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// Starts watching for SIGTERM and Ctrl-C now; the future resolves on the first of them.
fn stop_signal() -> Result<impl std::future::Future<Output = Result<(), CliError>>, CliError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError(format!("cannot watch for SIGTERM: {e}")))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CliError(format!("cannot watch for Ctrl-C: {e}")))?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    })
}
