//! Watch mode: a daemon that keeps the world equal to the plan until the migration is over.
//!
//! On start it plans and applies; then it applies again whenever the plan file changes
//! (`planfile`), re-syncs each account's mail on the plan's `sync_interval` until the account
//! is cut over, and retries failures with backoff (`schedule`), one run per account at a time
//! (`daemon`). Every run goes through the same executor as `mailshift apply`, with the status
//! model (`status`) as its hooks; that model is what the HTTP side (`http`: `/healthz`,
//! `/metrics` rendered by `metrics`, `/api/status`, and the page in `page`) serves. The state
//! store is opened once and held until the daemon exits: no other process writes it meanwhile.
//!
//! A person pauses an account's copies with `paused: true` in the plan or
//! `POST /api/pause/ACCOUNT` (kept in the state): its run in flight stops at the next
//! checkpoint, through a stop flag of its own (`daemon`), and it waits until resumed.
//!
//! `aggregate` merges the `/api/status` of many shards' watches into one view, for
//! `mailshift status --from` and the aggregator daemon `mailshift watch --aggregate`.
//!
//! Signals: SIGHUP re-reads the plan (and the token) now; SIGTERM or SIGINT stops at the next
//! checkpoint (the executor's stop flag) and exits within the grace period; a second one exits
//! at once. The state is valid in every case: each batch is recorded in one transaction.

pub mod aggregate;
pub mod daemon;
pub mod http;
pub mod metrics;
pub mod page;
pub mod planfile;
pub mod schedule;
pub mod status;

#[cfg(test)]
mod dashboard_tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedSender};
use tracing::{error, info, warn};

use crate::plan::secret::{Secret, SecretRef};
use crate::transfer::imap::copy::StopFlag;
use daemon::Daemon;
use http::HttpState;
use status::StatusModel;

/// Why the plan is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Something changed in the plan's directory: applied only if the text differs.
    File,
    /// SIGHUP: applied even if the text is the same (every unit runs now).
    Signal,
}

pub struct Options {
    pub plan: PathBuf,
    pub listen: SocketAddr,
    /// Where the HTTP token comes from; required when `listen` is not loopback.
    pub token: Option<SecretRef>,
    /// Follow the plan file's changes (off: only SIGHUP re-reads it).
    pub watch_file: bool,
    /// How long in-flight copies get to reach a checkpoint after SIGTERM.
    pub grace: Duration,
    /// The share of the plan this process runs (`--shard`), kept across plan reloads:
    /// `/api/status` and every metric say which.
    pub shard: mailshift_core::shard::Shard,
}

/// Runs the daemon until it is told to stop. `Err` is a reason not to start (an invalid plan,
/// the state held by another process, an address that cannot be bound).
pub async fn run(options: Options) -> Result<(), String> {
    let cache = crate::plan::default_cache_dir();
    let mut loaded =
        crate::plan::load_file_cached(&options.plan, cache.as_deref()).map_err(|e| {
            format!(
                "the plan cannot be loaded, so there is nothing to run:\n{}",
                e.render().trim_end()
            )
        })?;
    crate::cutover::refuse_split(&loaded.plan, options.shard)?;
    loaded.shard = options.shard;
    let warnings = loaded.render_warnings();
    if !warnings.is_empty() {
        warn!("{}", warnings.trim_end());
    }
    let handlers = Signals::install()?;
    let token = resolve_token(options.token.as_ref())?;
    if http::needs_token(&options.listen) && token.is_none() {
        return Err(format!(
            "--listen {} is not a loopback address: anyone who can reach it could read the \
             status, so give a token with --token (e.g. --token '{{env: MAILSHIFT_TOKEN}}')",
            options.listen
        ));
    }
    let state_path = loaded.state_path_for(options.shard);
    let store = Arc::new(
        crate::state::shards::open_store(&loaded, options.shard).map_err(|e| e.to_string())?,
    );
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    info!(addr = %local, "listening on http://{local}");

    // Spool files of a killed run are garbage: this process holds the state from now on.
    let spool = store.spool_dir();
    let _ = std::fs::remove_dir_all(&spool);

    let status = Arc::new(StatusModel::sharded(
        options.plan.display().to_string(),
        options.shard,
    ));
    let (ack_tx, mut acks) = mpsc::unbounded_channel::<http::AckRequest>();
    let (hold_tx, mut holds) = mpsc::unbounded_channel::<http::HoldRequest>();
    let http_state = Arc::new(HttpState {
        status: status.clone(),
        acks: ack_tx,
        holds: hold_tx,
        token: RwLock::new(token),
    });
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, http::router(http_state.clone()))
            .with_graceful_shutdown(async {
                let _ = server_stopped.await;
            })
            .into_future(),
    );

    let (trigger_tx, mut triggers) = mpsc::unbounded_channel::<Trigger>();
    let _watcher = if options.watch_file {
        let mut ignore = vec![state_path.clone(), lock_path(&state_path), spool.clone()];
        if let Some(dir) = state_path.parent()
            && std::path::absolute(dir).ok() != std::path::absolute(loaded.base_dir.clone()).ok()
        {
            ignore.push(dir.to_path_buf());
        }
        let tx = trigger_tx.clone();
        match planfile::watch(&options.plan, ignore, move || {
            let _ = tx.send(Trigger::File);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("{e}: plan changes are noticed on SIGHUP only");
                None
            }
        }
    } else {
        info!("not following the plan file: send SIGHUP to re-read it");
        None
    };

    let stop: StopFlag = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, mut shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(signals(
        handlers,
        stop.clone(),
        shutdown_tx,
        trigger_tx,
        status.clone(),
        http_state.clone(),
        options.token.clone(),
    ));

    info!(plan = %options.plan.display(), state = %state_path.display(), "watching");
    let mut daemon = Daemon::new(loaded, store, status.clone(), stop);
    daemon
        .run(&mut shutdown, &mut triggers, &mut acks, &mut holds)
        .await;
    status.stopping();
    let clean = daemon.drain(options.grace).await;
    let _ = server_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    info!(
        "stopped{}",
        if clean {
            "; every run ended at a checkpoint"
        } else {
            ""
        }
    );
    Ok(())
}

fn lock_path(state: &std::path::Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Reads the token now; relative file paths are relative to the current directory.
fn resolve_token(token: Option<&SecretRef>) -> Result<Option<Secret>, String> {
    token
        .map(|r| {
            r.resolve(std::path::Path::new("."))
                .map_err(|e| format!("--token: {e}"))
        })
        .transpose()
}

/// Turns `--token`'s text into a secret reference, written as in a plan: `{env: NAME}`,
/// `{file: PATH}` or `{command: [program, args...]}`. A literal token is refused: command lines
/// are visible to every user of the machine.
pub fn parse_token_ref(text: &str) -> Result<SecretRef, String> {
    let help = "write a reference as in a plan: '{env: NAME}', '{file: PATH}' or \
                '{command: [program, args...]}'";
    let r: SecretRef =
        serde_saphyr::from_str(text).map_err(|_| format!("not a secret reference: {help}"))?;
    if r.is_inline() {
        return Err(format!(
            "a literal token would be visible to every user of this machine (ps); {help}"
        ));
    }
    Ok(r)
}

async fn signals(
    mut handlers: Signals,
    stop: StopFlag,
    shutdown: tokio::sync::watch::Sender<bool>,
    triggers: UnboundedSender<Trigger>,
    status: Arc<StatusModel>,
    http_state: Arc<HttpState>,
    token: Option<SecretRef>,
) {
    let mut stopping = false;
    loop {
        let signal = handlers.next().await;
        if signal == "SIGHUP" {
            info!("SIGHUP: re-reading the plan and the token");
            if token.is_some() {
                match resolve_token(token.as_ref()) {
                    Ok(t) => *http_state.token.write().unwrap_or_else(|e| e.into_inner()) = t,
                    Err(e) => error!("{e}; the previous token stays in force"),
                }
            }
            let _ = triggers.send(Trigger::Signal);
            continue;
        }
        if stopping {
            warn!(
                "{signal} again: exiting now; the state is valid and the next run resumes \
                 where this one stopped"
            );
            std::process::exit(130);
        }
        stopping = true;
        info!("{signal}: stopping at the next checkpoint (send it again to exit at once)");
        stop.store(true, Ordering::Relaxed);
        status.stopping();
        let _ = shutdown.send(true);
    }
}

/// The signals the daemon handles, installed before any work starts (until then, SIGTERM's
/// default action would kill the process without a word).
struct Signals {
    #[cfg(unix)]
    handlers: [(tokio::signal::unix::Signal, &'static str); 3],
}

impl Signals {
    fn install() -> Result<Signals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind, name: &'static str| {
                signal(kind)
                    .map(|s| (s, name))
                    .map_err(|e| format!("cannot handle {name}: {e}"))
            };
            Ok(Signals {
                handlers: [
                    install(SignalKind::terminate(), "SIGTERM")?,
                    install(SignalKind::interrupt(), "SIGINT")?,
                    install(SignalKind::hangup(), "SIGHUP")?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let [(term, a), (int, b), (hup, c)] = &mut self.handlers;
            tokio::select! {
                _ = term.recv() => a,
                _ = int.recv() => b,
                _ = hup.recv() => c,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_references_are_parsed_and_literals_refused() {
        assert!(matches!(
            parse_token_ref("{env: MAILSHIFT_TOKEN}"),
            Ok(SecretRef::Env(_))
        ));
        assert!(matches!(
            parse_token_ref("{file: /run/secrets/token}"),
            Ok(SecretRef::File(_))
        ));
        assert!(matches!(
            parse_token_ref("{command: [pass, show, mailshift]}"),
            Ok(SecretRef::Command(_))
        ));
        let err = parse_token_ref("hunter2").unwrap_err();
        assert!(err.contains("visible to every user"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_token_ref("{nope: 1}").is_err());
    }
}
