//! `mailshift watch --aggregate URL...`: a small daemon that asks every shard's watch for its
//! `/api/status` on an interval and serves the merged view: `/api/status` (the same document,
//! with `shards` and `problems`), the status page (the same page, with a table of the shards),
//! `/metrics` (its own: shards up, when each last answered, the last poll, the totals) and
//! `/healthz`. It holds no state file and runs no step: restarting it loses nothing.
//!
//! Guarded as a watch is (`--token`, required off loopback); the same token is sent to the
//! shards, so one Secret serves the whole deployment. SIGHUP re-reads the token; SIGTERM or
//! SIGINT stops it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mailshift_core::shard::Shard;
use tracing::{error, info, warn};

use super::fetch;
use super::merge::{Answer, merge};
use crate::plan::secret::{Secret, SecretRef};
use crate::watch::metrics::Exposition;
use crate::watch::status::{Snapshot, unix_now};
use crate::watch::{Signals, http, page, resolve_token};

pub struct Options {
    /// The shards' watches, as given (base URLs or `/api/status` URLs).
    pub urls: Vec<String>,
    pub listen: SocketAddr,
    /// The token this server requires and sends to the shards.
    pub token: Option<SecretRef>,
    /// How often the shards are asked.
    pub interval: Duration,
}

/// What the last poll gave, served until the next one.
struct View {
    snapshot: Snapshot,
    polls: u64,
    last_poll: Option<u64>,
    poll_seconds: f64,
}

struct Shared {
    view: RwLock<Arc<View>>,
    token: RwLock<Option<Secret>>,
}

/// What is remembered of each shard between polls: who it said it was, and its last good
/// answer's time, so that an unreachable shard keeps its number and shows since when.
#[derive(Clone, Default)]
struct Last {
    shard: Option<Shard>,
    answered_at: Option<u64>,
    latency_ms: Option<u64>,
}

pub async fn run(options: Options) -> Result<(), String> {
    let urls = options
        .urls
        .iter()
        .map(|u| fetch::status_url(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--aggregate {e}"))?;
    let mut handlers = Signals::install()?;
    let token = resolve_token(options.token.as_ref())?;
    if http::needs_token(&options.listen) && token.is_none() {
        return Err(format!(
            "--listen {} is not a loopback address: anyone who can reach it could read the \
             status of every shard, so give a token with --token (e.g. --token '{{env: \
             MAILSHIFT_TOKEN}}')",
            options.listen
        ));
    }
    let client = fetch::client()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    info!(addr = %local, "listening on http://{local}");
    info!(
        shards = urls.len(),
        "aggregating the status of {} shards",
        urls.len()
    );

    // Until the first poll ends, every shard shows as not asked yet.
    let waiting: Vec<Answer> = urls
        .iter()
        .map(|u| Answer {
            url: u.clone(),
            result: Err("not asked yet".into()),
            answered_at: None,
            latency_ms: None,
            last_shard: None,
        })
        .collect();
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(View {
            snapshot: merge(waiting, unix_now()),
            polls: 0,
            last_poll: None,
            poll_seconds: 0.0,
        })),
        token: RwLock::new(token),
    });
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, router(shared.clone()))
            .with_graceful_shutdown(async {
                let _ = server_stopped.await;
            })
            .into_future(),
    );

    let mut last = vec![Last::default(); urls.len()];
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => poll(&shared, &client, &urls, &mut last).await,
            signal = handlers.next() => {
                if signal == "SIGHUP" {
                    info!("SIGHUP: re-reading the token");
                    if options.token.is_some() {
                        match resolve_token(options.token.as_ref()) {
                            Ok(t) => *shared.token.write().unwrap_or_else(|e| e.into_inner()) = t,
                            Err(e) => error!("{e}; the previous token stays in force"),
                        }
                    }
                    continue;
                }
                info!("{signal}: stopping");
                break;
            }
        }
    }
    let _ = server_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}

async fn poll(shared: &Shared, client: &reqwest::Client, urls: &[String], last: &mut [Last]) {
    let started = Instant::now();
    let token = shared
        .token
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut answers = fetch::fetch_all(client, urls, token.as_ref()).await;
    for (a, l) in answers.iter_mut().zip(last.iter_mut()) {
        match &a.result {
            Ok(s) => {
                *l = Last {
                    shard: Some(s.shard),
                    answered_at: a.answered_at,
                    latency_ms: a.latency_ms,
                };
            }
            Err(e) => {
                warn!(url = %a.url, "shard unreachable: {e}");
                a.last_shard = l.shard;
                a.answered_at = l.answered_at;
                a.latency_ms = l.latency_ms;
            }
        }
    }
    let now = unix_now();
    let snapshot = merge(answers, now);
    let mut view = shared.view.write().unwrap_or_else(|e| e.into_inner());
    let polls = view.polls + 1;
    *view = Arc::new(View {
        snapshot,
        polls,
        last_poll: Some(now),
        poll_seconds: started.elapsed().as_secs_f64(),
    });
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/status", get(api_status))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .route("/healthz", get(healthz))
        .with_state(shared)
}

fn current(shared: &Shared) -> Arc<View> {
    shared
        .view
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

async fn authenticate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if http::authorized(&s.token, req.headers()) {
        next.run(req).await
    } else {
        http::unauthorized()
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn api_status(State(s): State<Arc<Shared>>) -> Response {
    let view = current(&s);
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(&view.snapshot),
    )
        .into_response()
}

async fn index(State(s): State<Arc<Shared>>) -> Response {
    http::page_response(page::render(&current(&s).snapshot))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        metrics_text(&current(&s)),
    )
        .into_response()
}

/// The aggregator's own metrics; each shard's watch keeps serving its own, which Prometheus
/// scrapes directly (these say whether the shards answer the aggregator, and the totals it
/// shows).
fn metrics_text(view: &View) -> String {
    let s = &view.snapshot;
    let mut e = Exposition::default();
    e.family(
        "mailshift_aggregate_shards",
        "gauge",
        "Shards the aggregator asks (the URLs it was given).",
    );
    e.sample("mailshift_aggregate_shards", &[], s.shards.len() as f64);
    let label = |i: usize| {
        s.shards[i]
            .shard
            .map_or_else(|| format!("url{i}"), |x| x.index.to_string())
    };
    e.family(
        "mailshift_aggregate_shard_up",
        "gauge",
        "1 when the shard's watch answered the last poll with its status, 0 otherwise.",
    );
    for (i, h) in s.shards.iter().enumerate() {
        e.sample(
            "mailshift_aggregate_shard_up",
            &[("shard", &label(i)), ("url", &h.url)],
            if h.reachable { 1.0 } else { 0.0 },
        );
    }
    e.family(
        "mailshift_aggregate_shard_last_answer_timestamp_seconds",
        "gauge",
        "When the shard last answered with its status (Unix time); absent until it has.",
    );
    for (i, h) in s.shards.iter().enumerate() {
        if let Some(t) = h
            .answered_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            e.sample(
                "mailshift_aggregate_shard_last_answer_timestamp_seconds",
                &[("shard", &label(i)), ("url", &h.url)],
                t.timestamp() as f64,
            );
        }
    }
    e.family(
        "mailshift_aggregate_polls_total",
        "counter",
        "Polls of every shard made since the aggregator started.",
    );
    e.sample("mailshift_aggregate_polls_total", &[], view.polls as f64);
    e.family(
        "mailshift_aggregate_last_poll_timestamp_seconds",
        "gauge",
        "When the last poll of the shards ended (Unix time); absent before the first.",
    );
    if let Some(t) = view.last_poll {
        e.sample(
            "mailshift_aggregate_last_poll_timestamp_seconds",
            &[],
            t as f64,
        );
    }
    e.family(
        "mailshift_aggregate_last_poll_duration_seconds",
        "gauge",
        "How long the last poll of every shard took.",
    );
    e.sample(
        "mailshift_aggregate_last_poll_duration_seconds",
        &[],
        view.poll_seconds,
    );
    e.family(
        "mailshift_aggregate_problems",
        "gauge",
        "What makes the merged view wrong or incomplete (an unreachable shard, an account two shards claim).",
    );
    e.sample("mailshift_aggregate_problems", &[], s.problems.len() as f64);
    let t = &s.summary;
    e.family(
        "mailshift_aggregate_accounts",
        "gauge",
        "Accounts of the reachable shards, all and by state.",
    );
    for (state, n) in [
        ("all", t.accounts),
        ("failing", t.failing),
        ("running", t.running),
        ("synced", t.synced),
        ("paused", t.paused),
    ] {
        e.sample(
            "mailshift_aggregate_accounts",
            &[("state", state)],
            n as f64,
        );
    }
    e.family(
        "mailshift_aggregate_messages_migrated",
        "gauge",
        "Messages recorded as copied by the reachable shards, all runs together.",
    );
    e.sample(
        "mailshift_aggregate_messages_migrated",
        &[],
        t.messages_migrated as f64,
    );
    e.family(
        "mailshift_aggregate_bytes_migrated",
        "gauge",
        "Bytes of messages recorded as copied by the reachable shards, all runs together.",
    );
    e.sample(
        "mailshift_aggregate_bytes_migrated",
        &[],
        t.bytes_migrated as f64,
    );
    e.finish()
}

/// The aggregator's metric families, for the dashboard's check (`examples/deploy`).
#[cfg(test)]
pub(crate) fn metrics_of_nothing() -> String {
    metrics_text(&View {
        snapshot: merge(Vec::new(), 0),
        polls: 0,
        last_poll: None,
        poll_seconds: 0.0,
    })
}
