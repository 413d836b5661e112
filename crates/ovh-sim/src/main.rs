//! `ovh-sim`: the OVHcloud API simulator as a process, for the demo and for tests that need
//! one. It prints the API base URL on its first stdout line, so a script can read it, and
//! serves until SIGTERM or Ctrl-C. Errors print as `error: …` with exit 1.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ovh_sim::{Simulator, World};

/// Serve a simulated OVHcloud API from a world file (a test and demo tool: it is not the
/// real API and changes nothing at OVHcloud).
///
/// Prints the API base URL (use it as the plan's `endpoint`) on the first line of stdout.
/// Calls outside the published schema are refused and listed at /_sim/violations;
/// /_sim/requests, /_sim/world and /_sim/faults show and steer the rest. The world's DNS
/// zones are answered by two name servers on loopback (listed on stderr and at /_sim/dns).
/// Stops on SIGTERM or Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "ovh-sim", version)]
struct Args {
    /// The world to simulate (`.yaml`, `.yml` or `.json`): credentials, services, accounts.
    #[arg(long, value_name = "FILE")]
    world: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let world = World::load(&args.world).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(async {
        // Watched before the address is printed: whoever reads it may send SIGTERM at once,
        // and one arriving before the handler would kill the process instead of stopping it.
        let stop = stop_signal()?;
        let handle = Simulator::start_on(world, args.listen)
            .await
            .map_err(|e| e.to_string())?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", handle.base_url())
            .and_then(|()| stdout.flush())
            .map_err(|e| e.to_string())?;
        eprintln!(
            "OVHcloud API simulator (test/demo tool) listening on {}; control API under http://{}/_sim/",
            handle.base_url(),
            handle.addr()
        );
        for ns in handle.name_servers() {
            eprintln!(
                "name server {} of the simulated DNS zones answering on {} (UDP and TCP)",
                ns.name, ns.addr
            );
        }
        stop.await;
        handle.shutdown();
        Ok(())
    });
    // Whatever a request left running (a task's timer, a blocking write) does not hold the
    // exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// Starts watching for SIGTERM and Ctrl-C now; the future resolves on the first of them.
fn stop_signal() -> Result<impl Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
