//! The state store: what was done, in one redb file.

pub mod record;
