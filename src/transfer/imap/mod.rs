//! IMAP to IMAP transfer: name encoding (`mutf7`).

pub mod mutf7;
