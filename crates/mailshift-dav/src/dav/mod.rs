//! The CardDAV/CalDAV end of a copy: an HTTP client for the DAV methods (`client`), the
//! multistatus answers and request bodies (`xml`), RFC 6764 discovery of an account's address
//! books and calendars (`discovery`), and [`DavStore`], which implements [`crate::store::Store`]
//! over them.

mod client;
mod config;
mod davstore;
mod discovery;
#[cfg(test)]
mod scripted;
mod xml;

// The Graph and EWS clients trust servers exactly as this one does, and read Retry-After alike.
pub use client::{check_service_url, parse_retry_after, tls_config};
pub use config::{Auth, DavConfig, Secret};
pub use davstore::DavStore;
