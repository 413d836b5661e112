//! IMAP to IMAP transfer: name encoding (`mutf7`) and the folder mapping (`folders`).

pub mod folders;
pub mod mutf7;
