//! Shared helpers for integration tests: private Dovecot servers and an independent IMAP
//! client to seed and inspect them.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod dovecot;
pub mod imap;
