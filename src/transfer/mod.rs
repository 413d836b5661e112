//! The data plane: copying mailbox content between servers.

pub mod imap;
