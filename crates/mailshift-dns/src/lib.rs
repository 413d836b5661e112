//! mailshift's DNS end: zones changed by RFC 2136 dynamic updates signed with TSIG (BIND,
//! PowerDNS, Knot and most appliances), zones changed by hand (`manual`), and the propagation
//! check that asks each authoritative server directly. It implements
//! [`mailshift_core::dns::Zone`]; the cutover steps of the `mailshift` crate drive it.
//!
//! The API:
//! - [`Rfc2136Zone::new`]`(`[`Rfc2136Config`]`)`: reads are queries to the zone's primary
//!   (`server`; recursion off, no cache, TCP when truncated, signed when a key is given);
//!   writes read first and, when the zone differs, send one UPDATE that replaces the whole
//!   RRset with the desired TTL, under a prerequisite that the RRset is still what was read
//!   (so a change made meanwhile by someone else is reported, never overwritten). Writing what
//!   the zone holds sends nothing, so the SOA serial does not move.
//! - [`Rfc2136Zone::replace_if`]`(name, rtype, expected, desired)`: the same UPDATE as a
//!   compare and swap from a set the caller remembers (a rollback), refused as a `Conflict`
//!   when the zone holds something else.
//! - [`ManualZone::new`]`(`[`Rfc2136Config`]`)`: reads the same way; `writable()` is false and
//!   `write`/`remove` refuse, naming the change a person has to make.
//! - [`ask_each`]`(servers, name, rtype)`: what each server answers, one [`Answer`] per server,
//!   in the order given (the propagation check: the switch is done when all agree).
//! - [`authoritative_servers`]`(apex, resolver)`: the addresses of the zone's NS records, as
//!   the given resolver (or the system's, from /etc/resolv.conf) sees them.
//!
//! Errors name the zone, the server and the fix: a refused update says the key is not allowed
//! to update that name, a refused signature names the key and says to check its secret.
//! Secrets never appear in errors or `Debug` output.

mod propagation;
mod query;
mod rdata;
mod wire;
mod zone;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use propagation::{
    Answer, DEFAULT_TIMEOUT, ask_each, ask_each_with_timeout, authoritative_servers,
    authoritative_servers_on_port,
};
pub use zone::{ManualZone, Rfc2136Zone};

/// The TSIG algorithms a key may use (RFC 8945; the MD5 and SHA-1 ones are deprecated and
/// not offered).
pub const TSIG_ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// A TSIG key (RFC 8945) as the server knows it: its name (`mailshift-key`), algorithm
/// (`hmac-sha256`) and secret (the decoded bytes of the base64 in the server's `key` block).
#[derive(Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    pub secret: Vec<u8>,
}

impl TsigKey {
    /// Checks what can be checked before asking a server: a known algorithm, a key name that
    /// is a domain name, a secret that is not empty. Plan validation calls it.
    pub fn validate(&self) -> Result<(), String> {
        if !TSIG_ALGORITHMS.contains(&self.algorithm.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "TSIG key `{}`: algorithm `{}` is not supported; use one of {} (as in the \
                 server's `key` block)",
                self.name,
                self.algorithm,
                TSIG_ALGORITHMS.join(", ")
            ));
        }
        rdata::name(&self.name).map_err(|e| format!("TSIG key name: {e}"))?;
        if self.secret.is_empty() {
            return Err(format!("TSIG key `{}`: the secret is empty", self.name));
        }
        Ok(())
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Where an RFC 2136 zone is changed: its apex, its primary server (the one that accepts
/// updates; reads go there too), the key that signs, and how long to wait for one answer.
#[derive(Debug, Clone)]
pub struct Rfc2136Config {
    pub zone: String,
    pub server: SocketAddr,
    pub tsig: Option<TsigKey>,
    pub timeout: Duration,
}
