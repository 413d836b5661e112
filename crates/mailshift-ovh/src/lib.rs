//! OVHcloud API (Exchange, Email Pro, MX Plan): a signed HTTP client, its errors, and the
//! helpers that wait for the asynchronous tasks most write calls start.
//!
//! The wire facts (endpoints, signature, error bodies, task shapes) come from
//! `reference/ovh-api.md`; this module knows nothing about migration steps. A stand-in for
//! the API itself, for tests and the demo, is the `ovh-sim` crate (`crates/ovh-sim`).

pub mod client;
pub mod credentials;
pub mod error;
pub mod ops;
pub mod plane;
pub mod signing;
pub mod task;

pub use client::{CallObserver, ClientOptions, Credentials, OvhClient, RetryPolicy};
pub use error::{ApiError, OvhError};
pub use task::{Task, TaskOutcome, TaskStatus, wait_task};

#[cfg(test)]
mod testserver;
