//! Sieve scripts on IMAP platforms: one ManageSieve connection (RFC 5804) that reads and
//! writes a mailbox's scripts (`client`: connect with implicit TLS, STARTTLS that is never
//! downgraded, or plain on a trusted network; AUTHENTICATE PLAIN or XOAUTH2; CAPABILITY,
//! LISTSCRIPTS, GETSCRIPT, PUTSCRIPT, CHECKSCRIPT, SETACTIVE, DELETESCRIPT). The inbox rules
//! such scripts hold, and their translation to and from Sieve, are pure data and live with
//! the other platforms' rules in `mailshift_core::rules` (this crate names no mailshift crate).
//!
//! Our own client rather than `io-managesieve` (pimalaya, 0.2.0 as of 2026-11): that crate is
//! written for pimalaya's sans-I/O stack, none of which is in our tree, and it would bring its
//! own connection and TLS set-up beside ours; ManageSieve is a small line protocol, and a
//! client here shares the IMAP session's [`Target`](crate::session::Target) (endpoint, login,
//! secrets already read), its TLS set-up (certificate checked against the platform's roots
//! plus the endpoint's `ca_file`), its XOAUTH2 token source and its error kinds, as the POP3
//! client does.

pub mod client;

pub use client::{ManageSieve, SieveCaps};
