//! The state store: what was done, in one redb file.

pub mod record;
pub mod store;

pub use record::{FolderRecord, MessageRecord, RefusedRecord, ResourceRecord, Status};
pub use store::{
    FORMAT_VERSION, StateError, StateStore, default_path, read_folders, read_refused,
    read_resources,
};
