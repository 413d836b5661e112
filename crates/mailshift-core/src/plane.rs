//! Control planes, as the executor sees them: what it asks of a platform's API (make a
//! resource be as its spec says, read how it is, remove it) and the typed answers. Providers
//! (`mailshift-ovh`) implement these traits; the executor (in the `mailshift` crate) registers
//! them and records what comes back. Nothing here talks to a server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::StepError;
use crate::model::{Resource, ResourceAddr};
use crate::plan::Loaded;
use crate::plan::model::Platform;
use crate::state::ResourceRecord;

/// A control plane's answer, or why there is none.
pub type PlaneResult<'a, T> = Pin<Box<dyn Future<Output = Result<T, StepError>> + Send + 'a>>;

/// Told about each API call (`api`, the call without ids, how long it took, whether it
/// succeeded): watch mode's latency metrics.
pub type ApiCalls = Arc<dyn Fn(&str, &str, Duration, bool) + Send + Sync>;

/// What an ensure or a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// One line for people (and the record's `result` output).
    pub detail: String,
    /// Whether the platform was written to.
    pub wrote: bool,
}

/// What [`ControlPlane::ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Done(Done),
    /// An account to create exists already and this mailshift did not make it: its password
    /// was left alone (it may be one a person chose since). The executor checks it.
    AccountExists,
}

/// How a resource stands on the live platform, compared with its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// As the spec says (or nothing to compare: a one-off step).
    Matches,
    /// Changed or removed behind mailshift's back, in words.
    Drift(String),
}

/// The largest mailbox one account of a platform may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimit {
    pub bytes: u64,
    /// The offer's name, for people ("MX Plan").
    pub offer: &'static str,
    /// Where a larger mailbox can go instead ("Exchange or Email Pro").
    pub instead: &'static str,
}

/// What an ensure step may need from the state while it runs.
pub struct StepState<'a> {
    /// The resource's record before this step, if any.
    pub before: Option<&'a ResourceRecord>,
    /// Records an output (`name` = "true") right before a write that cannot be taken back,
    /// so a run killed right after it knows what it had begun.
    pub mark: &'a (dyn Fn(&str) -> Result<(), StepError> + Send + Sync),
}

/// One platform's API, as the executor uses it.
pub trait ControlPlane: Send + Sync {
    /// Makes the resource be as its spec says; reads before it writes, so a step re-run after a
    /// crash converges.
    fn ensure<'a>(&'a self, r: &'a Resource, state: StepState<'a>) -> PlaneResult<'a, Ensured>;

    /// Reads the live platform and compares it with the resource's spec (`--refresh`).
    fn observe<'a>(&'a self, r: &'a Resource) -> PlaneResult<'a, Observed>;

    /// Removes a resource that left the plan (features only: `diff` never deletes others).
    fn delete<'a>(&'a self, addr: &'a ResourceAddr) -> PlaneResult<'a, Done>;

    /// Whether the platform can be asked at all (else its steps are done by hand).
    fn has_api(&self) -> bool;

    /// What a mailbox holds, in bytes (`None`: no such account).
    fn mailbox_usage<'a>(&'a self, address: &'a str) -> PlaneResult<'a, Option<u64>>;

    /// An account's storage quota as the platform's API shows it, in bytes: (used, limit).
    /// `None`: no such account, or the API does not say (the default).
    fn mailbox_quota<'a>(&'a self, _address: &'a str) -> PlaneResult<'a, Option<(u64, u64)>> {
        Box::pin(async { Ok(None) })
    }

    /// The IMAP server the platform's mailboxes live on, as its API says (`None`: the API
    /// does not say; the plan must).
    fn imap_host(&self) -> PlaneResult<'_, Option<String>> {
        Box::pin(async { Ok(None) })
    }

    /// Write calls made so far.
    fn writes(&self) -> u64 {
        0
    }
}

/// A kind of control plane: which platforms it serves, and how to reach one of them.
pub trait PlaneKind: Send + Sync {
    fn serves(&self, platform: &Platform) -> bool;

    /// The largest mailbox an account of this platform may hold, if there is a limit.
    fn size_limit(&self, _platform: &Platform) -> Option<SizeLimit> {
        None
    }

    /// The plane of the platform named `name`. Called once per platform and run.
    fn connect(
        &self,
        name: &str,
        platform: &Platform,
        loaded: &Loaded,
        api_calls: Option<&ApiCalls>,
    ) -> Result<Arc<dyn ControlPlane>, StepError>;
}
