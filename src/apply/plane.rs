//! Which control plane serves which platform: the one registration point ([`kinds`]), the
//! planes of a run built on first use ([`Planes`]), and the plane of platforms without an API
//! ([`ManualPlane`]).
//!
//! The executor knows no API: it hands a [`Resource`] (address + spec) to the plane of the
//! resource's platform and records what comes back. A platform with an API is a provider that
//! implements [`ControlPlane`] and a [`PlaneKind`] (the traits live in `mailshift_core::plane`;
//! OVHcloud's implementation is `mailshift_ovh::plane`); one line in [`kinds`] registers it.
//! Platforms without an API (plain IMAP servers) get the [`ManualPlane`]: their steps are
//! manual steps, which the executor hands to a person.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::StepError;
use crate::model::{Resource, ResourceAddr};
use crate::plan::Loaded;
use crate::plan::model::Platform;

pub use mailshift_core::plane::{
    ApiCalls, ControlPlane, Done, Ensured, Observed, PlaneKind, PlaneResult, SizeLimit, StepState,
};

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

/// The IMAP server a platform's API names for its mailboxes (`None`: it names none), asked
/// of a plane built for this question alone.
pub async fn imap_host(
    name: &str,
    platform: &Platform,
    loaded: &Loaded,
) -> Result<Option<String>, StepError> {
    let kinds = kinds();
    let Some(kind) = kinds.iter().find(|k| k.serves(platform)) else {
        return Ok(None);
    };
    kind.connect(name, platform, loaded, None)?
        .imap_host()
        .await
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
        platform: &Platform,
        _: &Loaded,
        _: Option<&ApiCalls>,
    ) -> Result<Arc<dyn ControlPlane>, StepError> {
        Ok(Arc::new(ManualPlane {
            name: name.to_string(),
            kind: platform.kind,
        }))
    }
}

/// The plane of a platform without an API.
pub struct ManualPlane {
    name: String,
    kind: crate::plan::model::PlatformKind,
}

impl ManualPlane {
    fn no_api<T>(&self) -> Result<T, StepError> {
        let what = match self.kind {
            crate::plan::model::PlatformKind::Imap => "plain IMAP",
            other => other.as_str(),
        };
        Err(StepError::config(format!(
            "platform `{}` is {what}: mailshift has no API for it",
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
        let gmail = planes.get("workspace").unwrap();
        assert!(!gmail.has_api());
        assert_eq!(planes.size_limit("workspace"), None);
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
        let gmail = planes.get("workspace").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let addr: ResourceAddr = "group/team@example.com".parse().unwrap();
        let e = rt.block_on(gmail.delete(&addr)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert_eq!(
            e.message,
            "platform `workspace` is gmail: mailshift has no API for it"
        );
        assert_eq!(planes.writes(), 0);
    }
}
