//! `provider-sim`: runs the stand-ins of `provider_sim` as processes, for the demo and the
//! benchmarks (the tests start them in process).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "provider-sim",
    about = "Stand-ins for Gmail, Microsoft 365 and their OAuth2 services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A Microsoft-365-shaped IMAP server: a proxy in front of a Dovecot (Exchange Online's
    /// capabilities, throttling replies). Logins go through to Dovecot.
    M365(M365Args),
}

#[derive(clap::Args)]
struct M365Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:1993")]
    listen: SocketAddr,
    /// The Dovecot behind it.
    #[arg(long)]
    upstream: SocketAddr,
    /// Answer every Nth command `BAD Request is throttled. Suggested Backoff Time: ...`, then
    /// close the connection.
    #[arg(long)]
    throttle_every: Option<u64>,
    /// The backoff those replies suggest, in milliseconds.
    #[arg(long, default_value_t = 500)]
    backoff_ms: u64,
    /// Answer every Nth command `NO Server Unavailable. 15`, then close the connection.
    #[arg(long)]
    unavailable_every: Option<u64>,
    /// Do not offer LITERAL+.
    #[arg(long)]
    no_literal_plus: bool,
    /// Print a summary of the log (commands, throttling replies, refusals) to stderr every
    /// this many seconds.
    #[arg(long)]
    report_every: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::M365(args) => m365(args),
    }
}

fn m365(args: M365Args) {
    use provider_sim::m365::{Config, Fault, M365, Reply, What};
    let mut config = Config::new(args.upstream);
    config.literal_plus = !args.no_literal_plus;
    if let Some(every) = args.throttle_every {
        config.faults.push(Fault {
            reply: Reply::Backoff {
                millis: args.backoff_ms,
            },
            every: Some(every),
            rate: None,
        });
    }
    if let Some(every) = args.unavailable_every {
        config.faults.push(Fault {
            reply: Reply::Unavailable,
            every: Some(every),
            rate: None,
        });
    }
    let proxy = match M365::start_on(args.listen, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("provider-sim m365: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!(
        "provider-sim m365: listening on {}, in front of {}",
        proxy.addr(),
        args.upstream
    );
    loop {
        std::thread::sleep(Duration::from_secs(args.report_every.unwrap_or(3600)));
        if args.report_every.is_some() {
            let log = proxy.log();
            let count = |f: &dyn Fn(&What) -> bool| log.iter().filter(|e| f(&e.what)).count();
            eprintln!(
                "provider-sim m365: {} commands, {} throttling replies, {} refused",
                count(&|w| matches!(w, What::Command { .. })),
                count(&|w| matches!(w, What::Fault(_))),
                count(&|w| matches!(w, What::Refused(_))),
            );
        }
    }
}
