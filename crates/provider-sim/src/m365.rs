//! Microsoft-365-shaped IMAP server: a proxy in front of Dovecot (no CONDSTORE/MULTIAPPEND/SPECIAL-USE, throttling, AccessTokenExpired).
//! (being written)
