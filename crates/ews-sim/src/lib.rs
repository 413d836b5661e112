//! A stand-in for Exchange Web Services built from Microsoft's published definitions
//! (`src/schema/`, provenance in its README), for mailshift's tests and demo; not part of the
//! `mailshift` binary. For now it holds the checker: `check::check_request` judges a SOAP
//! request, and `check::check_response` an answer, against the vendored WSDL and XSDs, the way
//! `ovh-sim` checks calls against the OVHcloud schema. The HTTP server and the mailbox state
//! (items, change keys, sync states) come next.

pub mod check;
pub mod schema;
pub mod xml;
