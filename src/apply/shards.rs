//! Steps that depend on another shard's (`--shard I/N`): shard 0's group waits for the
//! accounts it lists, which other shards create; an account's creation waits for its domain,
//! which shard 0 attaches. Such a step never races the other shard: it runs once that shard's
//! own `mailshift watch` says, on its `/api/status`, that the dependency is done (the plan's
//! `shards.status` says where each shard's is). Until then, or while that shard cannot be
//! read, the step waits (`Outcome::Waiting`): not a failure, tried again on watch's schedule.
//!
//! Each shard is read at most once per run, when a step first needs it: a run's steps see one
//! answer, and a run of 10,000 steps makes no more requests than there are shards.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::model::ResourceAddr;
use crate::plan::Loaded;
use crate::plan::secret::Secret;
use mailshift_core::shard::Shard;

/// How long one shard's status may take to answer before the step waits for the next try.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a dependency owned by another shard is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elsewhere {
    /// Done (or acknowledged) in its shard: the step may run.
    Done,
    /// Not yet: `text` says what the other shard reports, or why it could not be read.
    Waiting { shard: u32, text: String },
}

/// The other shards, as one run sees them.
pub struct Peers {
    shard: Shard,
    config: Option<crate::plan::model::Shards>,
    token: Result<Option<Secret>, String>,
    client: Result<reqwest::Client, String>,
    /// What each shard said, as it was first read in this run.
    seen: Mutex<HashMap<u32, Read>>,
}

/// One shard's resources by id with their status label, or why it could not be read.
type Read = Result<HashMap<String, String>, String>;

impl Peers {
    pub fn new(loaded: &Loaded) -> Peers {
        let config = loaded.plan.shards.clone();
        let sharded = !loaded.shard.is_whole() && config.is_some();
        let token = match config.as_ref().and_then(|c| c.token.as_ref()) {
            Some(t) if sharded => t
                .resolve(&loaded.base_dir)
                .map(Some)
                .map_err(|e| format!("shards.token: {e}")),
            _ => Ok(None),
        };
        let client = if sharded {
            crate::auth::http::Http::new(None).map(|h| h.client().clone())
        } else {
            Err("not sharded".to_string())
        };
        Peers {
            shard: loaded.shard,
            config,
            token,
            client,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The other shard that runs `dep`, if it is not this one's.
    pub fn owner(&self, dep: &ResourceAddr) -> Option<u32> {
        if self.shard.is_whole() {
            return None;
        }
        let owner = dep.shard(self.shard.count);
        (owner != self.shard.index).then_some(owner)
    }

    /// Whether `dep`, run by shard `owner`, is done there.
    pub async fn check(&self, owner: u32, dep: &ResourceAddr) -> Elsewhere {
        let waiting = |text: String| Elsewhere::Waiting { shard: owner, text };
        let Some(config) = &self.config else {
            return waiting(format!(
                "waiting for shard {owner}/{n}, which runs {dep}: the plan has no \
                 `shards: {{status: ...}}` saying where the shards' status is read, so it cannot \
                 be known to be done (add it, e.g. `shards: {{status: \
                 \"http://mailshift-{{shard}}.mailshift-shards:8470\"}}`)",
                n = self.shard.count
            ));
        };
        let mut seen = self.seen.lock().await;
        if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(owner) {
            e.insert(self.read(&config.status_url(owner)).await);
        }
        match &seen[&owner] {
            Err(e) => waiting(format!(
                "waiting for shard {owner}/{n}, which runs {dep}: its status cannot be read \
                 ({e})",
                n = self.shard.count
            )),
            Ok(resources) => match resources.get(&dep.to_string()).map(String::as_str) {
                Some("done" | "acknowledged") => Elsewhere::Done,
                Some(status) => waiting(format!(
                    "waiting for {dep} in shard {owner}/{n} (there: {status})",
                    n = self.shard.count
                )),
                None => waiting(format!(
                    "waiting for {dep} in shard {owner}/{n}, whose status does not list it yet \
                     (is it running this plan?)",
                    n = self.shard.count
                )),
            },
        }
    }

    async fn read(&self, url: &str) -> Read {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let token = self.token.as_ref().map_err(Clone::clone)?;
        let mut request = client.get(url).timeout(READ_TIMEOUT);
        if let Some(t) = token {
            request = request.bearer_auth(t.expose());
        }
        // reqwest's messages name the URL, never the token.
        let answer = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!(
                "{url} answered {status}{}",
                if status.as_u16() == 401 {
                    " (set `shards.token` to the shards' `watch --token`)"
                } else {
                    ""
                }
            ));
        }
        let doc: StatusDoc = answer
            .json()
            .await
            .map_err(|e| format!("{url}: not a mailshift status: {e}"))?;
        Ok(doc
            .resources
            .into_iter()
            .map(|r| (r.id, r.status))
            .collect())
    }
}

/// The part of `/api/status` (`watch::status::views::Snapshot`) a shard reads of another.
#[derive(serde::Deserialize)]
struct StatusDoc {
    resources: Vec<StatusResource>,
}

#[derive(serde::Deserialize)]
struct StatusResource {
    id: String,
    status: String,
}
