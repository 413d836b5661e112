//! Moving mail itself (the data plane), as opposed to provisioning accounts.
//!
//! Pure logic lives here apart from the network code, so that it can be tested without a
//! server: which folders to copy and where, name encodings, and later message identity.

pub mod imap;
