//! Which [`Zone`] and [`Propagation`] serve a domain's `dns:` block. The providers (OVHcloud's
//! zone API, RFC 2136 updates, the manual zone, and the direct questions to each
//! authoritative server) come from the `mailshift-dns` and `mailshift-ovh` crates; until they
//! are registered here, validation refuses a plan with `dns:` (see
//! `plan::validate::cutover`), so this is never reached from a valid plan.

use mailshift_core::dns::Zone;
use mailshift_core::error::StepError;
use mailshift_core::plan::model::Domain;

use super::Propagation;
use crate::plan::Loaded;

/// Where a domain's records are written, and who says whether they are served.
pub struct Opened {
    pub zone: Box<dyn Zone>,
    pub propagation: Box<dyn Propagation>,
}

/// The zone and the propagation check of `domain`.
pub fn open(_loaded: &Loaded, domain: &Domain) -> Result<Opened, StepError> {
    let provider = domain.dns.as_ref().map_or("none", |z| z.provider.as_str());
    Err(StepError::config(format!(
        "no `{provider}` DNS provider in this build: the cutover of {} cannot run",
        domain.name
    )))
}
