//! The plan file: its typed model, loading (YAML or TOML), validation with diagnostics that
//! point into the file, secret references, and imports from other tools' lists.

pub mod import;
pub mod model;
pub mod secret;
