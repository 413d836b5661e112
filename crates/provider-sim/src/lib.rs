//! Stand-ins for the services mailshift cannot run in a test: Google's and Microsoft's OAuth2
//! token endpoints, and Gmail- and Microsoft-365-shaped IMAP servers, each a proxy in front of
//! a real Dovecot that adds or takes away what the real service does (X-GM-EXT-1 and labels;
//! no CONDSTORE, throttling replies, `AccessTokenExpired`), built from the vendors' published
//! descriptions (shared/reference/gmail-m365.md). Used by the tests (in process), and by the
//! demo and the benchmarks (the `provider-sim` binary).

pub mod gmail;
pub mod m365;
pub mod oauth;
