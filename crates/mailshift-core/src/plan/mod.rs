//! The plan file: its typed model, loading (YAML or TOML), validation with diagnostics that
//! point into the file, secret references, and imports from other tools' lists.

pub mod diagnostic;
pub mod import;
pub mod load;
pub mod model;
pub mod node;
pub mod schema;
pub mod secret;
pub mod shape;
pub mod validate;

pub use load::{Format, LoadError, Loaded, load_file, load_str};
