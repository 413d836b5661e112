//! `ews-sim`: the EWS simulator as a process, for the demo. It prints the EWS URL on its
//! first stdout line and serves until SIGTERM or Ctrl-C; mailboxes come from the command
//! line (`--mailbox ADDRESS:PASSWORD`, repeatable); `--auth ntlm` accepts NTLM only; `--tls-cert`/`--tls-key` make it HTTPS. Errors print as `error: …` with exit 1.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ews_sim::{EwsSim, Tls};

/// Serve a simulated Exchange Web Services endpoint (a test and demo tool: it is not
/// Exchange). Requests outside Microsoft's published schema are refused.
#[derive(Debug, Parser)]
#[command(name = "ews-sim", version)]
struct Args {
    /// A mailbox, `ADDRESS:PASSWORD` (Basic auth as ADDRESS); repeatable.
    #[arg(long = "mailbox", value_name = "ADDRESS:PASSWORD")]
    mailboxes: Vec<String>,
    /// `ntlm`: accept only NTLM (401 offers NTLM and Negotiate, never Basic), as OVHcloud
    /// Exchange and on-premises servers with Basic off.
    #[arg(long, value_name = "KIND", default_value = "basic", value_parser = ["basic", "ntlm"])]
    auth: String,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
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
    let mut mailboxes = Vec::new();
    for m in &args.mailboxes {
        let (address, password) = m.split_once(':').ok_or_else(|| {
            format!("--mailbox {m:?}: expected ADDRESS:PASSWORD (e.g. jane@example.com:secret)")
        })?;
        mailboxes.push((address.to_owned(), password.to_owned()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        // Watched before the URL is printed: a SIGTERM right after must stop, not kill.
        let stop = stop_signal()?;
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert_pem), Some(key_pem)) => Some(Tls { cert_pem, key_pem }),
            _ => None,
        };
        let sim = EwsSim::start_with(args.listen, tls).await?;
        sim.require_ntlm(args.auth == "ntlm");
        for (address, password) in &mailboxes {
            sim.add_mailbox(address, password);
        }
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", sim.url())
            .and_then(|()| stdout.flush())
            .map_err(|e| e.to_string())?;
        eprintln!(
            "EWS simulator (test/demo tool) listening on {}; autodiscover at {}",
            sim.url(),
            sim.autodiscover_url()
        );
        stop.await;
        sim.shutdown();
        Ok(())
    })
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
