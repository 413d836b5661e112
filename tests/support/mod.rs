//! Shared helpers for integration tests: private Dovecot servers (plain or TLS), an
//! independent IMAP client to seed and inspect them, a fault-injecting TCP proxy to put
//! between a client and a server, a proxy that refuses APPENDs as Gmail does past its
//! daily upload limit, and private BIND 9 servers (a primary and its secondary) for DNS.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod bind;
pub mod dovecot;
pub mod faultproxy;
pub mod imap;
pub mod quotaproxy;
