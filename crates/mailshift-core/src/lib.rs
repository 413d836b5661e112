//! mailshift's core, below every engine and provider: the plan file (`plan`: loading,
//! validation, diagnostics, secrets), the resources it compiles into (`model`), the pure
//! comparison with what was done (`diff`), the state store (`state`), the kinds of failure
//! every layer reports (`error`), what the executor asks of a control plane (`plane`), and
//! inbox rules as data with their pure translations to and from each platform (`rules`),
//! which shard of a split run owns an account (`shard`), and DNS zones as a cutover reads
//! and writes them (`dns`), and the record sets a domain's cutover writes (`cutover`).
//!
//! Data flows one way: `plan` → `model` → `diff`, with `state` read by `diff` and written by
//! the executor in the `mailshift` crate. Nothing here talks to a server.

pub mod cutover;
pub mod diff;
pub mod dns;
pub mod error;
pub mod model;
pub mod plan;
pub mod plane;
pub mod rules;
pub mod shard;
pub mod state;
