//! Which messages of a POP3 maildrop a run copies, from what earlier runs recorded: the
//! exactly-once rule of a POP3 source, kept apart from the network so it can be tested alone.
//!
//! Identity is (account, UIDL) (RFC 1939 §7), checked against the size LIST gives (exact
//! octets, CRLF line ends): a known UIDL with the same size was copied and is skipped; every
//! other message is fetched, and before it is sent its content hash is paired with the
//! records whose UIDL the server no longer lists (a multiset pairing: two identical messages
//! stay two). A paired message is the same one under a new UIDL, and is re-recorded under it
//! rather than copied again. That covers the server that renumbered every UIDL (Dovecot's
//! default `%08Xu%08Xv` after a UIDVALIDITY reset), one that reused a UIDL for another message
//! (the size differs), and messages deleted from the server by the user's own mail client (their
//! records stay, unpaired, and cost nothing). The pairing costs no extra traffic: a message
//! not known by its UIDL must be fetched anyway to be copied.

use std::collections::{HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};

use super::Listed;

/// How a UIDL is kept in the journal, whose records are keyed by numbers: the first 64 bits
/// of its SHA-256 (never 0, which means "none"), in the record's `source_msgid`. Two UIDLs of
/// one maildrop share a key with odds of about n²/2⁶⁵ (3 in 100 million for a million
/// messages), and the size must match as well.
pub fn uidl_key(uidl: &str) -> u64 {
    let h = Sha256::digest(uidl.as_bytes());
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]).max(1)
}

/// How a refused message is keyed in the journal's table of refusals, whose keys are 32-bit
/// source UIDs: the high half of its [`uidl_key`]. Refusals are few, so two UIDLs of one
/// maildrop sharing this key (odds about n·r/2³², n listed, r refused) is left to chance: the
/// worst it does is name a message as refused in `verify` rather than missing.
pub fn refusal_key(uidl: &str) -> u32 {
    (uidl_key(uidl) >> 32) as u32
}

/// A message an earlier run copied (or matched), as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// [`uidl_key`] of its UIDL.
    pub uidl: u64,
    pub size: u64,
    /// [`crate::copy::content_hash`] of the message as sent.
    pub hash: [u8; 32],
}

/// What a run does with a maildrop's listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Triage {
    /// Listed messages already copied (UIDL known, same size): skipped, never fetched.
    pub present: Vec<u32>,
    /// Message numbers to fetch: each is either paired with an `absent` record by content
    /// ([`Pairing`]) or copied.
    pub fetch: Vec<u32>,
    /// Indexes (into the records given) of records whose UIDL the server no longer lists with
    /// their size: what fetched messages are paired against.
    pub absent: Vec<usize>,
    /// Every record is absent while the server lists messages: the UIDLs were renumbered
    /// (worth a note: the run re-matches by content).
    pub renumbered: bool,
}

/// Sorts a listing against the records.
pub fn triage(listing: &[Listed], known: &[Known]) -> Triage {
    let by_uidl: HashMap<u64, usize> = known.iter().enumerate().map(|(i, k)| (k.uidl, i)).collect();
    let mut out = Triage::default();
    let mut matched = HashSet::new();
    for l in listing {
        match by_uidl.get(&uidl_key(&l.uidl)) {
            Some(&i) if known[i].size == l.size => {
                out.present.push(l.number);
                matched.insert(i);
            }
            // Unknown, or a UIDL now naming a message of another size (reused): fetched, and
            // its content decides.
            _ => out.fetch.push(l.number),
        }
    }
    out.absent = (0..known.len()).filter(|i| !matched.contains(i)).collect();
    out.renumbered = !known.is_empty() && matched.is_empty() && !listing.is_empty();
    out
}

/// Pairs fetched messages with absent records by content hash, each record at most once.
#[derive(Debug)]
pub struct Pairing {
    pool: HashMap<[u8; 32], VecDeque<usize>>,
}

impl Pairing {
    pub fn new(known: &[Known], absent: &[usize]) -> Pairing {
        let mut pool: HashMap<[u8; 32], VecDeque<usize>> = HashMap::new();
        for &i in absent {
            pool.entry(known[i].hash).or_default().push_back(i);
        }
        Pairing { pool }
    }

    /// The absent record (index) a fetched message with `hash` is, if any: it takes the
    /// record's place under its new UIDL instead of being copied. `None`: copy it.
    pub fn take(&mut self, hash: &[u8; 32]) -> Option<usize> {
        self.pool.get_mut(hash).and_then(VecDeque::pop_front)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(number: u32, uidl: &str, size: u64) -> Listed {
        Listed {
            number,
            uidl: uidl.into(),
            size,
        }
    }

    fn known(uidl: &str, size: u64, hash: u8) -> Known {
        Known {
            uidl: uidl_key(uidl),
            size,
            hash: [hash; 32],
        }
    }

    #[test]
    fn uidl_keys_are_stable_distinct_and_never_zero() {
        assert_eq!(uidl_key("0000000154f1a2b3"), uidl_key("0000000154f1a2b3"));
        assert_ne!(uidl_key("0000000154f1a2b3"), uidl_key("0000000254f1a2b3"));
        assert_ne!(uidl_key(""), 0);
    }

    #[test]
    fn a_first_run_fetches_everything() {
        let t = triage(&[listed(1, "a", 10), listed(2, "b", 20)], &[]);
        assert_eq!(t.fetch, vec![1, 2]);
        assert!(t.present.is_empty() && t.absent.is_empty() && !t.renumbered);
    }

    #[test]
    fn an_incremental_run_fetches_only_new_uidls() {
        let records = [known("a", 10, 1), known("b", 20, 2)];
        let t = triage(
            &[listed(1, "a", 10), listed(2, "b", 20), listed(3, "c", 30)],
            &records,
        );
        assert_eq!((t.present, t.fetch), (vec![1, 2], vec![3]));
        assert!(t.absent.is_empty() && !t.renumbered);
    }

    #[test]
    fn renumbered_uidls_are_re_paired_by_content_not_copied_twice() {
        // Dovecot after a UIDVALIDITY reset: same messages, every UIDL new, one new message.
        let records = [known("0001aaaa", 10, 1), known("0002aaaa", 20, 2)];
        let listing = [
            listed(1, "0001bbbb", 10),
            listed(2, "0002bbbb", 20),
            listed(3, "0003bbbb", 30),
        ];
        let t = triage(&listing, &records);
        assert!(t.renumbered);
        assert_eq!(t.fetch, vec![1, 2, 3]);
        let mut pairing = Pairing::new(&records, &t.absent);
        assert_eq!(pairing.take(&[1; 32]), Some(0));
        assert_eq!(pairing.take(&[2; 32]), Some(1));
        assert_eq!(pairing.take(&[3; 32]), None, "the new one is copied");
    }

    #[test]
    fn two_identical_messages_stay_two() {
        let records = [known("x1", 10, 7)];
        let t = triage(&[listed(1, "y1", 10), listed(2, "y2", 10)], &records);
        let mut pairing = Pairing::new(&records, &t.absent);
        assert_eq!(pairing.take(&[7; 32]), Some(0));
        assert_eq!(pairing.take(&[7; 32]), None, "the second copy is sent");
    }

    #[test]
    fn a_reused_uidl_of_another_size_is_not_taken_for_the_recorded_message() {
        let records = [known("a", 10, 1)];
        let t = triage(&[listed(1, "a", 99)], &records);
        assert_eq!(
            (&t.present, &t.fetch, &t.absent),
            (&vec![], &vec![1], &vec![0])
        );
        // Different content: copied; same content (a server that changed how it counts
        // octets): re-paired.
        let mut pairing = Pairing::new(&records, &t.absent);
        assert_eq!(pairing.take(&[9; 32]), None);
        assert_eq!(pairing.take(&[1; 32]), Some(0));
    }

    #[test]
    fn messages_deleted_on_the_server_leave_their_records_absent_and_nothing_fetched() {
        let records = [known("a", 10, 1), known("b", 20, 2)];
        let t = triage(&[listed(1, "b", 20)], &records);
        assert_eq!((t.present, t.fetch, t.absent), (vec![1], vec![], vec![0]));
        assert!(!t.renumbered);
        // An emptied maildrop is not a renumbering.
        assert!(!triage(&[], &records).renumbered);
    }
}
