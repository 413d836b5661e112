//! Matching what a destination folder already holds against the source, when the state has no
//! record of it: a lost `.mailshift/`, a destination pre-filled by another tool (imapsync,
//! dsync, OVH Mail Migrator, a provider's import), two plans sharing one mailbox.
//!
//! Looking before writing is what keeps such a run from duplicating the mailbox. The look must
//! stay cheap, so messages are first compared by a header fingerprint (Message-ID and Date
//! headers, RFC822.SIZE, INTERNALDATE), fetched without bodies. Fingerprints are counted as a
//! multiset: two identical copies on the source adopt at most two on the destination, so real
//! duplicates stay distinct. A fingerprint is trusted alone only when it names exactly one
//! message on each side and carries a Message-ID; everything else (several messages sharing a
//! fingerprint, or no Message-ID to tell them apart) is *ambiguous* and confirmed by content
//! hash by the caller, which fetches just those bodies.

use std::collections::BTreeMap;

/// What identifies a message cheaply, without its body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint {
    /// The `Message-ID` header's value, unfolded and trimmed; `None` when absent or empty.
    pub message_id: Option<String>,
    /// The `Date` header's value, unfolded and trimmed.
    pub date: Option<String>,
    /// RFC822.SIZE: tools that keep the bytes keep it.
    pub size: u32,
    /// INTERNALDATE in Unix seconds: an absolute instant, since servers may present the same
    /// date in another time zone.
    pub internal: Option<i64>,
}

impl Fingerprint {
    /// Builds one from the raw `HEADER.FIELDS (MESSAGE-ID DATE)` bytes a server returned.
    pub fn from_header(header: &[u8], size: u32, internal: Option<i64>) -> Fingerprint {
        let fields = header_fields(header);
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        Fingerprint {
            message_id: get("message-id"),
            date: get("date"),
            size,
            internal,
        }
    }
}

/// Header fields as (name, unfolded value), in order. Tolerant: a line without a colon is
/// skipped, invalid UTF-8 is replaced (the same bytes give the same text on both sides).
pub(crate) fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(header);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    // Unfolding leaves runs of blanks that another tool may have folded differently.
    for (_, v) in &mut out {
        *v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    out
}

/// The outcome of [`match_fingerprints`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Matching {
    /// (source UID, destination UID) pairs the fingerprint alone settles.
    pub sure: Vec<(u32, u32)>,
    /// Groups sharing one fingerprint that need their content compared: (source UIDs,
    /// destination UIDs), both sides non-empty.
    pub ambiguous: Vec<(Vec<u32>, Vec<u32>)>,
}

impl Matching {
    pub fn ambiguous_len(&self) -> usize {
        self.ambiguous.iter().map(|(s, _)| s.len()).sum()
    }
}

/// Matches source messages with destination messages by fingerprint. Destination messages
/// with no source counterpart are left alone (the user's own, or another folder's), and so are
/// source messages with none (they are copied).
pub fn match_fingerprints(source: &[(u32, Fingerprint)], dest: &[(u32, Fingerprint)]) -> Matching {
    let mut groups: BTreeMap<&Fingerprint, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
    for (uid, fp) in source {
        groups.entry(fp).or_default().0.push(*uid);
    }
    for (uid, fp) in dest {
        if let Some(g) = groups.get_mut(fp) {
            g.1.push(*uid);
        }
    }
    let mut out = Matching::default();
    for (fp, (mut src, mut dst)) in groups {
        if dst.is_empty() {
            continue;
        }
        src.sort_unstable();
        dst.sort_unstable();
        if src.len() == 1 && dst.len() == 1 && fp.message_id.is_some() {
            out.sure.push((src[0], dst[0]));
        } else {
            out.ambiguous.push((src, dst));
        }
    }
    out
}

/// Pairs messages of one ambiguous group by content hash, as a multiset: each destination
/// message is adopted at most once, in UID order on both sides.
pub fn match_hashes(
    source: &[(u32, [u8; 32])],
    dest: &[(u32, [u8; 32])],
) -> Vec<(u32, u32, [u8; 32])> {
    let mut by_hash: BTreeMap<[u8; 32], Vec<u32>> = BTreeMap::new();
    let mut dest = dest.to_vec();
    dest.sort_unstable();
    for (uid, h) in dest.iter().rev() {
        by_hash.entry(*h).or_default().push(*uid);
    }
    let mut source = source.to_vec();
    source.sort_unstable();
    let mut out = Vec::new();
    for (uid, h) in source {
        if let Some(d) = by_hash.get_mut(&h).and_then(Vec::pop) {
            out.push((uid, d, h));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(id: Option<&str>, size: u32) -> Fingerprint {
        Fingerprint {
            message_id: id.map(str::to_string),
            date: Some("Mon, 1 Jan 2024 10:00:00 +0000".into()),
            size,
            internal: Some(1_704_103_200),
        }
    }

    #[test]
    fn headers_are_unfolded_and_compared_by_value() {
        let a = Fingerprint::from_header(
            b"Message-ID:\r\n <a@b>\r\nDate: Mon, 1 Jan 2024\r\n  10:00:00 +0000\r\n\r\n",
            10,
            None,
        );
        let b = Fingerprint::from_header(
            b"date: Mon, 1 Jan 2024 10:00:00 +0000\nmessage-id: <a@b>\n",
            10,
            None,
        );
        assert_eq!(a, b);
        assert_eq!(a.message_id.as_deref(), Some("<a@b>"));
        let none = Fingerprint::from_header(b"Message-ID: \r\n\r\n", 10, None);
        assert_eq!(none.message_id, None);
    }

    #[test]
    fn a_unique_fingerprint_with_a_message_id_is_sure() {
        let m = match_fingerprints(
            &[(1, fp(Some("<a>"), 10)), (2, fp(Some("<b>"), 20))],
            &[(7, fp(Some("<b>"), 20)), (8, fp(Some("<c>"), 30))],
        );
        assert_eq!(m.sure, vec![(2, 7)]);
        assert!(m.ambiguous.is_empty());
    }

    #[test]
    fn shared_or_weak_fingerprints_are_ambiguous_and_counted_as_a_multiset() {
        let m = match_fingerprints(
            &[
                (1, fp(Some("<dup>"), 10)),
                (2, fp(Some("<dup>"), 10)),
                (3, fp(None, 50)),
            ],
            &[(5, fp(Some("<dup>"), 10)), (6, fp(None, 50))],
        );
        assert!(m.sure.is_empty());
        assert_eq!(m.ambiguous, vec![(vec![3], vec![6]), (vec![1, 2], vec![5])]);
        assert_eq!(m.ambiguous_len(), 3);
        // Two identical source copies, one on the destination: one adopted, one still to copy.
        let pairs = match_hashes(&[(1, [1; 32]), (2, [1; 32])], &[(5, [1; 32])]);
        assert_eq!(pairs, vec![(1, 5, [1; 32])]);
    }

    #[test]
    fn a_different_size_or_date_is_another_message() {
        let mut other = fp(Some("<a>"), 10);
        other.internal = Some(0);
        let m = match_fingerprints(
            &[(1, fp(Some("<a>"), 10))],
            &[(2, fp(Some("<a>"), 11)), (3, other)],
        );
        assert_eq!(m, Matching::default());
    }

    #[test]
    fn hashes_pair_each_destination_message_once() {
        let pairs = match_hashes(
            &[(1, [1; 32]), (2, [2; 32]), (3, [1; 32])],
            &[(10, [1; 32]), (11, [1; 32]), (12, [3; 32])],
        );
        assert_eq!(pairs, vec![(1, 10, [1; 32]), (3, 11, [1; 32])]);
    }
}
