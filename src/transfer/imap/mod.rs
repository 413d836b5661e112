//! IMAP to IMAP transfer.

pub mod folders;
pub mod mutf7;
pub mod copy;
pub mod session;
