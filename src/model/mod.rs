//! The validated desired state: resources with stable ids, fingerprints and dependencies,
//! compiled from a plan.

pub mod capabilities;
