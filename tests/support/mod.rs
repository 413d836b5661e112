//! Shared helpers for integration tests: private Dovecot servers (plain or TLS), an
//! independent IMAP client to seed and inspect them, and a fault-injecting TCP proxy to put
//! between a client and a server.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod dovecot;
pub mod faultproxy;
pub mod imap;
