//! Control planes: the APIs that configure mail platforms (domains, accounts, aliases…),
//! as opposed to the data plane that copies the mail itself. Each provider is a crate of its
//! own, named here under the path it always had.

pub use mailshift_ovh as ovh;
