//! Shared helpers for integration tests: private Dovecot servers (plain or TLS), an
//! independent IMAP client to seed and inspect them, a fault-injecting TCP proxy to put
//! between a client and a server, and a proxy that refuses APPENDs as Gmail does past its
//! daily upload limit.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod dovecot;
pub mod faultproxy;
pub mod imap;
pub mod quotaproxy;
