//! mailshift: migrate email accounts between platforms from a version-controlled plan.
//!
//! Data flows one way: `plan` (load and validate the file) → `model` (compile it into
//! resources with stable ids and fingerprints) → `diff` (compare with `state`) → `render`
//! (human and JSON views) or `apply` (run the changes: `transfer` copies mail, recording
//! progress in `state`) → `verify` (compare both sides). `watch` runs that loop as a daemon,
//! with status and metrics over HTTP. The binary's subcommands in `cli` only wire these
//! together.

pub mod apply;
pub mod auth;
pub mod cli;
pub mod cutover;
pub mod import;
pub mod notify;
pub mod providers;
pub mod render;
pub mod rollback;
/// Moving mail itself (the data plane), as opposed to provisioning accounts: the mail engine,
/// a crate of its own, under the path it always had.
pub mod transfer {
    pub use mailshift_imap as imap;
}
pub mod verify;
pub mod watch;

// The core's modules under the paths they had before the workspace, so `crate::plan::...`
// reads the same everywhere in this crate and in the tests.
pub use mailshift_core::{diff, error, model, plan, rules, state};
