//! `provider-sim`: runs the stand-ins of `provider_sim` as processes, for the demo and the
//! benchmarks (the tests start them in process). Each subcommand prints the address it
//! serves on its first stdout line and serves until SIGTERM or Ctrl-C; errors print as
//! `error: …` with exit 1.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use provider_sim::oauth::{Client, OAuthConfig, OAuthServer, ServiceAccount};

/// Stand-ins for Gmail, Microsoft 365 and their OAuth2 token services (test and demo tools:
/// they are not the real services).
#[derive(Debug, Parser)]
#[command(name = "provider-sim", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A local OAuth2 authorization server: client credentials, device code, refresh, JWT
    /// bearer (RS256), authorization code with PKCE, and RFC 7662 introspection for
    /// Dovecot's oauth2 passdb.
    ///
    /// Prints its base URL on the first line of stdout; the endpoints are BASE/token,
    /// BASE/devicecode, BASE/authorize and BASE/introspect. Device codes are approved on the
    /// spot (`--approve-devices-as USER`) since no person is there. Stops on SIGTERM or Ctrl-C.
    Oauth(OauthArgs),
    /// A Gmail-shaped IMAP server: a proxy adding X-GM-EXT-1, Gmail's capabilities and
    /// folders in front of a Dovecot configured with `--print-dovecot-config`.
    Gmail(GmailArgs),
    /// A Microsoft-365-shaped IMAP server: a proxy in front of a Dovecot with Exchange
    /// Online's capabilities (no CONDSTORE, MULTIAPPEND or SPECIAL-USE) and throttling
    /// replies. Logins go through to Dovecot. Stops on SIGTERM or Ctrl-C.
    M365(M365Args),
}

#[derive(Debug, clap::Args)]
struct OauthArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    token_lifetime: u64,
    /// A mailbox that exists (repeat).
    #[arg(long = "user", value_name = "ADDRESS")]
    users: Vec<String>,
    /// A confidential client allowed app-only tokens for a domain: ID:SECRET:DOMAIN (repeat).
    #[arg(long = "app", value_name = "ID:SECRET:DOMAIN")]
    apps: Vec<String>,
    /// A public client (device code, loopback): its id (repeat).
    #[arg(long = "public-client", value_name = "ID")]
    public_clients: Vec<String>,
    /// A service account: CLIENT_EMAIL:PUBLIC_KEY_PEM_FILE (repeat).
    #[arg(long = "service-account", value_name = "EMAIL:FILE")]
    service_accounts: Vec<String>,
    /// Approve every device code at once, as this user.
    #[arg(long, value_name = "ADDRESS")]
    approve_devices_as: Option<String>,
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

#[derive(Debug, clap::Args)]
struct M365Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The Dovecot behind it.
    #[arg(long, value_name = "ADDR")]
    upstream: SocketAddr,
    /// Answer every Nth command `BAD Request is throttled. Suggested Backoff Time: ...`, then
    /// close the connection.
    #[arg(long, value_name = "N")]
    throttle_every: Option<u64>,
    /// The backoff those replies suggest, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    backoff_ms: u64,
    /// Answer every Nth command `NO Server Unavailable. 15`, then close the connection.
    #[arg(long, value_name = "N")]
    unavailable_every: Option<u64>,
    /// Do not offer LITERAL+.
    #[arg(long)]
    no_literal_plus: bool,
    /// Print what the log holds (commands, throttling replies, refusals) to stderr every
    /// this many seconds.
    #[arg(long, value_name = "SECONDS")]
    report_every: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Oauth(a) => run_oauth(a),
        Command::Gmail(a) => gmail(a),
        Command::M365(a) => run_m365(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run_oauth(args: OauthArgs) -> Result<(), String> {
    let mut clients = Vec::new();
    for app in &args.apps {
        let mut parts = app.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(secret), Some(domain)) => {
                clients.push(Client::app_only(id, secret, domain))
            }
            _ => return Err(format!("--app {app}: expected ID:SECRET:DOMAIN")),
        }
    }
    clients.extend(args.public_clients.iter().map(|id| Client::public(id)));
    let mut service_accounts = Vec::new();
    for sa in &args.service_accounts {
        let (email, file) = sa
            .split_once(':')
            .ok_or_else(|| format!("--service-account {sa}: expected EMAIL:FILE"))?;
        let pem = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        service_accounts
            .push(ServiceAccount::from_pem(email, &pem).map_err(|e| format!("{file}: {e}"))?);
    }
    let config = OAuthConfig {
        token_lifetime: Duration::from_secs(args.token_lifetime),
        clients,
        service_accounts,
        users: args.users.clone(),
        ..OAuthConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(async {
        let stop = stop_signal()?;
        let server = OAuthServer::start_on(config, args.listen).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", server.url())
            .and_then(|()| stdout.flush())
            .map_err(|e| e.to_string())?;
        eprintln!(
            "local OAuth2 server (test/demo tool) on {}: token {}, introspection {}",
            server.url(),
            server.token_url(),
            server.introspection_url()
        );
        let approver = args.approve_devices_as.clone().map(|user| {
            // Borrows the server until the select below ends, before it is dropped.
            let server = &server;
            async move {
                loop {
                    for code in server.pending_user_codes() {
                        let _ = server.approve_device(&code, &user);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        match approver {
            Some(approver) => {
                tokio::select! {
                    () = stop => {}
                    () = approver => {}
                }
            }
            None => stop.await,
        }
        // The approver, declared after the server, is dropped before it.
        Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        stop_signal()?.await;
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
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn run_m365(args: M365Args) -> Result<(), String> {
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
    let proxy = M365::start_on(args.listen, config)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("{}", proxy.addr());
    let _ = std::io::stdout().flush();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let every = Duration::from_secs(args.report_every.unwrap_or(u64::MAX / 4));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tokio::time::sleep(every) => {
                    let log = proxy.log();
                    let count =
                        |f: &dyn Fn(&What) -> bool| log.iter().filter(|e| f(&e.what)).count();
                    eprintln!(
                        "provider-sim m365: {} commands, {} throttling replies, {} refused",
                        count(&|w| matches!(w, What::Command { .. })),
                        count(&|w| matches!(w, What::Fault(_))),
                        count(&|w| matches!(w, What::Refused(_))),
                    );
                }
            }
        }
        Ok::<(), String>(())
    })?;
    // What a benchmark or a demo wants to know at the end: what was asked, and whether
    // anything Exchange does not offer was tried.
    let log = proxy.log();
    let count = |f: &dyn Fn(&What) -> bool| log.iter().filter(|e| f(&e.what)).count();
    let appends = count(&|w| matches!(w, What::Command { verb, .. } if verb == "APPEND"));
    let pipelined = count(
        &|w| matches!(w, What::Command { verb, outstanding } if verb == "APPEND" && *outstanding > 0),
    );
    eprintln!(
        "provider-sim m365: {} commands ({appends} APPEND, {pipelined} of them pipelined), {} throttling replies, {} sessions ended by AccessTokenExpired, refused: {:?}",
        count(&|w| matches!(w, What::Command { .. })),
        count(&|w| matches!(w, What::Fault(_))),
        count(&|w| matches!(w, What::TokenExpired)),
        proxy.refused(),
    );
    Ok(())
}
