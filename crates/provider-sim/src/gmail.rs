//! Gmail-shaped IMAP server: a proxy in front of Dovecot (labels as folders, X-GM-EXT-1, a virtual All Mail).
//! (being written)
