//! [`DavStore`]: one account on a CardDAV/CalDAV server as a [`Store`].

use crate::error::ErrorKind;
use crate::store::{
    Collection, Component, Delta, Fetched, Listed, Precondition, PutOutcome, Store, StoreError,
    StoreResult,
};

use super::config::DavConfig;

/// One account on a CardDAV/CalDAV server, discovered at [`DavStore::connect`].
#[derive(Debug)]
pub struct DavStore {
    schedules: bool,
}

fn unimplemented_yet() -> StoreError {
    StoreError {
        kind: ErrorKind::Bug,
        message: "not implemented yet".into(),
        retry_after: None,
    }
}

impl DavStore {
    /// Finds the account's principal and its address book and calendar homes (RFC 6764), and
    /// whether the server schedules; fails with a Config error naming the URL to set when no
    /// DAV service answers there.
    pub async fn connect(config: DavConfig) -> Result<DavStore, StoreError> {
        let _ = &config;
        Err(unimplemented_yet())
    }
}

impl Store for DavStore {
    async fn collections(&self, _component: Component) -> StoreResult<Vec<Collection>> {
        Err(unimplemented_yet())
    }

    async fn create_collection(&self, _name: &str, _like: &Collection) -> StoreResult<Collection> {
        Err(unimplemented_yet())
    }

    async fn list(&self, _collection: &Collection) -> StoreResult<Vec<Listed>> {
        Err(unimplemented_yet())
    }

    async fn changes(&self, _collection: &Collection, _token: &str) -> StoreResult<Option<Delta>> {
        Err(unimplemented_yet())
    }

    async fn fetch(
        &self,
        _collection: &Collection,
        _hrefs: &[String],
    ) -> StoreResult<Vec<Fetched>> {
        Err(unimplemented_yet())
    }

    async fn put(
        &self,
        _collection: &Collection,
        _href: &str,
        _data: &[u8],
        _condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        Err(unimplemented_yet())
    }

    async fn delete(&self, _href: &str, _etag: Option<&str>) -> StoreResult<bool> {
        Err(unimplemented_yet())
    }

    fn schedules(&self) -> bool {
        self.schedules
    }

    fn href_for(&self, collection: &Collection, name: &str, component: Component) -> String {
        let ext = match component {
            Component::Card => "vcf",
            _ => "ics",
        };
        format!("{}{name}.{ext}", collection.href)
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}
