//! mailshift's contacts, calendars and tasks engine: copies address books and calendars (events
//! and tasks) from a CardDAV/CalDAV server or a directory of vCard/iCalendar files to another,
//! exactly once and resumably. Like the mail engine it names no mailshift crate: its records are
//! kept by the caller through [`journal::Journal`].

pub mod dav;
pub mod error;
pub mod files;
pub mod journal;
#[cfg(test)]
mod memstore;
pub mod object;
pub mod preview;
pub mod store;
pub mod sync;
pub mod verify;

#[doc(hidden)]
pub mod testserver;
