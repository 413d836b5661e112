//! The state store: what was done, in one redb file.

pub mod record;
pub mod shards;
pub mod store;
pub mod window;

pub use record::{FolderRecord, MessageRecord, RefusedRecord, ResourceRecord, Status};
pub use store::dav::{DavCollectionRecord, DavObjectRecord, DavRefusedRecord};
pub use store::hold::HoldRecord;
pub use store::quota::{PauseRecord, Side};
pub use store::rollback::{PendingDavObject, PendingDavRollback, PendingRollback};
pub use store::throughput::{CopyRun, Throughput};
pub use store::{
    FORMAT_VERSION, StateError, StateReader, StateStore, default_path, read_resources,
    read_resources_as,
};
