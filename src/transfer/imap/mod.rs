//! IMAP to IMAP transfer: name encoding (`mutf7`), the folder mapping (`folders`), one
//! connection (`session`), and the exactly-once copy of an account (`copy`).

pub mod copy;
pub mod folders;
pub mod mutf7;
pub mod session;
