//! Control planes: what the executor asks of a platform's API (make a resource be as its spec
//! says, read how it is, remove it), and the one place that says which implementation serves
//! which platform.
//!
//! The executor knows no API: it hands a [`Resource`] (address + spec) to the plane of the
//! resource's platform and records what comes back. A platform with an API is a module that
//! implements [`ControlPlane`] and a [`PlaneKind`] (OVHcloud: `providers::ovh::plane`); one
//! line in [`kinds`] registers it. Platforms without an API (plain IMAP servers) get the
//! [`ManualPlane`]: their steps are manual steps, which the executor hands to a person.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::error::StepError;
use crate::model::{Resource, ResourceAddr};
use crate::plan::Loaded;
use crate::plan::model::Platform;
use crate::state::ResourceRecord;

/// A control plane's answer, or why there is none.
pub type PlaneResult<'a, T> = BoxFuture<'a, Result<T, StepError>>;

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

/// The one registration point: every kind of control plane, asked in this order.
fn kinds() -> Vec<Box<dyn PlaneKind>> {
    vec![
        Box::new(crate::providers::ovh::plane::OvhPlanes::default()),
        Box::new(Manual),
    ]
}

/// The control planes of one run, each built on first use and shared by every step.
pub struct Planes {
    loaded: Arc<Loaded>,
    api_calls: Option<ApiCalls>,
    kinds: Vec<Box<dyn PlaneKind>>,
    built: Mutex<HashMap<String, Arc<dyn ControlPlane>>>,
}

impl Planes {
    pub fn new(loaded: Arc<Loaded>, api_calls: Option<ApiCalls>) -> Planes {
        Planes {
            loaded,
            api_calls,
            kinds: kinds(),
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The plane of a platform of the plan.
    pub fn get(&self, platform_name: &str) -> Result<Arc<dyn ControlPlane>, StepError> {
        // Held while building: two accounts starting at once must share one plane (its
        // placeholder claim lock and its write count).
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = built.get(platform_name) {
            return Ok(p.clone());
        }
        let platform = self
            .loaded
            .plan
            .platforms
            .get(platform_name)
            .ok_or_else(|| {
                StepError::bug(format!("platform `{platform_name}` is not in the plan"))
            })?;
        let kind = self
            .kinds
            .iter()
            .find(|k| k.serves(platform))
            .ok_or_else(|| StepError::bug(format!("no control plane serves `{platform_name}`")))?;
        let plane = kind.connect(
            platform_name,
            platform,
            &self.loaded,
            self.api_calls.as_ref(),
        )?;
        built.insert(platform_name.to_string(), plane.clone());
        Ok(plane)
    }

    /// The largest mailbox an account of a platform of the plan may hold, if there is a limit
    /// (known without reaching the platform).
    pub fn size_limit(&self, platform_name: &str) -> Option<SizeLimit> {
        let platform = self.loaded.plan.platforms.get(platform_name)?;
        self.kinds
            .iter()
            .find(|k| k.serves(platform))?
            .size_limit(platform)
    }

    /// Write calls made by this run, all planes together.
    pub fn writes(&self) -> u64 {
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| p.writes())
            .sum()
    }
}

/// Platforms without an API: every step on them is done by a person (`Execution::Manual`,
/// acknowledged with `mailshift ack`), so the executor never asks this plane to act.
struct Manual;

impl PlaneKind for Manual {
    fn serves(&self, _: &Platform) -> bool {
        true
    }

    fn connect(
        &self,
        name: &str,
        _: &Platform,
        _: &Loaded,
        _: Option<&ApiCalls>,
    ) -> Result<Arc<dyn ControlPlane>, StepError> {
        Ok(Arc::new(ManualPlane {
            name: name.to_string(),
        }))
    }
}

/// The plane of a platform without an API.
pub struct ManualPlane {
    name: String,
}

impl ManualPlane {
    fn no_api<T>(&self) -> Result<T, StepError> {
        Err(StepError::config(format!(
            "platform `{}` is plain IMAP: it has no API",
            self.name
        )))
    }
}

impl ControlPlane for ManualPlane {
    fn ensure<'a>(&'a self, _: &'a Resource, _: StepState<'a>) -> PlaneResult<'a, Ensured> {
        Box::pin(async move { self.no_api() })
    }

    fn observe<'a>(&'a self, _: &'a Resource) -> PlaneResult<'a, Observed> {
        Box::pin(async move { self.no_api() })
    }

    fn delete<'a>(&'a self, _: &'a ResourceAddr) -> PlaneResult<'a, Done> {
        Box::pin(async move { self.no_api() })
    }

    fn has_api(&self) -> bool {
        false
    }

    fn mailbox_usage<'a>(&'a self, _: &'a str) -> PlaneResult<'a, Option<u64>> {
        Box::pin(async move { self.no_api() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn planes() -> Planes {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/gmail-to-ovh-exchange.yaml");
        Planes::new(Arc::new(crate::plan::load_file(&path).unwrap()), None)
    }

    #[test]
    fn each_platform_gets_the_plane_of_its_kind() {
        let planes = planes();
        let gmail = planes.get("gmail").unwrap();
        assert!(!gmail.has_api());
        assert_eq!(planes.size_limit("gmail"), None);
        assert_eq!(
            planes.size_limit("exchange"),
            None,
            "Exchange has no small limit"
        );
        // The OVHcloud plane needs the provider's keys: reaching it says which is missing.
        if std::env::var_os("OVH_APPLICATION_KEY").is_none() {
            let Err(e) = planes.get("exchange") else {
                panic!("the example's API keys are in environment variables that are not set");
            };
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(e.message.starts_with("provider `ovh`: "), "{e}");
        }
        assert!(planes.get("nowhere").is_err());
    }

    #[test]
    fn a_platform_without_an_api_refuses_api_steps() {
        let planes = planes();
        let gmail = planes.get("gmail").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let addr: ResourceAddr = "group/team@example.com".parse().unwrap();
        let e = rt.block_on(gmail.delete(&addr)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert_eq!(e.message, "platform `gmail` is plain IMAP: it has no API");
        assert_eq!(planes.writes(), 0);
    }
}
