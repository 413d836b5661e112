//! mailshift's Exchange Web Services end: a SOAP 1.1 client on quick-xml and reqwest
//! (`client`), the requests the copy makes (`requests`), Autodiscover (`autodiscover`), and
//! the configuration a plan's `ews:` gives (`config`). It speaks `RequestServerVersion`
//! Exchange2010_SP1 to Exchange2016 (default Exchange2013_SP1; see [`config::VERSIONS`]).

pub mod autodiscover;
pub mod client;
pub mod config;
pub mod convert;
mod http;
pub mod ntlm;
pub mod requests;
#[cfg(test)]
mod scripted;
pub mod store;
pub mod xml;

pub use config::{Auth, AuthScheme, EwsConfig, Secret};
pub use store::EwsStore;
