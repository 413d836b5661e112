//! Moving mail itself (the data plane), as opposed to provisioning accounts.
//!
//! Pure logic (folder mapping, name encodings) lives apart from the network code so it can be
//! tested without a server; `imap::session` talks to servers and `imap::copy` moves messages.

pub mod imap;
