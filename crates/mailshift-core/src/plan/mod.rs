//! The plan file: its typed model (sizes, dates and durations parsed once, in `value`),
//! loading (YAML or TOML), validation with diagnostics that point into the file, and secret
//! references. (Imports from other tools' lists build on it, in the `mailshift` crate's
//! `import`.)

pub mod cache;
pub mod diagnostic;
pub mod load;
pub mod model;
pub mod node;
pub mod schema;
pub mod secret;
pub mod shape;
pub mod validate;
pub mod value;

pub use cache::{default_cache_dir, load_file_cached};
pub use load::{Format, LoadError, Loaded, load_file, load_str};
