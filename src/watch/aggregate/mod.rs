//! One view of many shards: the `/api/status` documents of every shard's watch merged into one
//! document of the same shape (accounts and steps of every shard, totals summed, a health entry
//! per shard, and the problems that make the view wrong or incomplete, such as an unreachable
//! shard or an account two shards claim).
//!
//! `fetch` asks the shards (HTTP, TLS verified, the watch's bearer token), `merge` is the pure
//! merge, `text` the view `mailshift status --from` prints, and `serve` the aggregator daemon
//! of `mailshift watch --aggregate`, which serves the merged view as a watch serves its own
//! (the same page, `/api/status`, its own `/metrics`).

pub mod fetch;
pub mod merge;
pub mod serve;
pub mod text;

use crate::plan::secret::Secret;
use crate::watch::status::{Snapshot, unix_now};

/// Asks every shard once and merges their answers: what `mailshift status --from` shows.
pub async fn status_from(urls: &[String], token: Option<&Secret>) -> Result<Snapshot, String> {
    let urls = urls
        .iter()
        .map(|u| fetch::status_url(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--from {e}"))?;
    let client = fetch::client()?;
    let answers = fetch::fetch_all(&client, &urls, token).await;
    Ok(merge::merge(answers, unix_now()))
}
