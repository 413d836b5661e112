//! Control planes: the APIs that configure mail platforms (domains, accounts, aliases…),
//! as opposed to the data plane that copies the mail itself.

pub mod ovh;
