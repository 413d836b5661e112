//! A local OAuth2 authorization server: client credentials, device code, refresh, JWT bearer (RS256), authorization code with PKCE, and introspection for Dovecot.
//! (being written)
