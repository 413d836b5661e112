//! A stand-in for Exchange Web Services built from Microsoft's published definitions
//! (`src/schema/`), for mailshift's tests and demo; not part of the `mailshift` binary.
//! For now it holds the request checker: `check::check_request` judges a SOAP request against
//! the vendored WSDL and XSDs, the way `ovh-sim` checks calls against the OVHcloud schema.

pub mod check;
pub mod schema;
pub mod xml;
