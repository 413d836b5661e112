//! The arithmetic of a daily limit: how many bytes of an account's allowance the last day has
//! used, and when enough of it comes back. Pure functions of a ledger and a clock reading, so
//! they are tested without waiting.
//!
//! The window: Gmail counts its IMAP limits over a rolling 24 hours (support.google.com/a/answer/1071518),
//! and the ledger ([`super::store::quota`]) keeps bytes in buckets of an hour (`unix time / 3600`).
//! A bucket counts until every byte in it is 24 hours old: bucket `h` covers
//! `[h·3600, (h+1)·3600)` and counts while `now < (h+1+24)·3600`. So the window is the current
//! hour's bucket and the 24 before it: at most an hour longer than Google's, never shorter,
//! so a reopening it announces is never too early.

/// Seconds per bucket.
pub const BUCKET: u64 = 3600;
/// Buckets that still count, the current one included (see the module documentation).
pub const BUCKETS: u64 = 25;

/// The bucket a moment falls in.
pub fn bucket(at: u64) -> u64 {
    at / BUCKET
}

/// When bucket `h` stops counting.
pub fn expiry(h: u64) -> u64 {
    (h + BUCKETS) * BUCKET
}

/// Bytes the window holds at `now`, from `(bucket, bytes)` entries.
pub fn used(ledger: &[(u64, u64)], now: u64) -> u64 {
    ledger
        .iter()
        .filter(|(h, _)| now < expiry(*h))
        .map(|(_, b)| *b)
        .fold(0u64, u64::saturating_add)
}

/// What is left of `limit` at `now`.
pub fn left(ledger: &[(u64, u64)], limit: u64, now: u64) -> u64 {
    limit.saturating_sub(used(ledger, now))
}

/// The first moment from `now` on when `needed` more bytes fit in the window (or, for a
/// message larger than the whole limit, when the window is empty: it can go alone).
pub fn reopens_at(ledger: &[(u64, u64)], limit: u64, needed: u64, now: u64) -> u64 {
    let fits = |t: u64| {
        let u = used(ledger, t);
        u == 0 || limit.saturating_sub(u) >= needed
    };
    if fits(now) {
        return now;
    }
    let mut moments: Vec<u64> = ledger
        .iter()
        .map(|(h, _)| expiry(*h))
        .filter(|t| *t > now)
        .collect();
    moments.sort_unstable();
    moments.dedup();
    // The last expiry empties the window, so one of them fits.
    moments.into_iter().find(|t| fits(*t)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = BUCKET;

    #[test]
    fn a_byte_counts_for_at_least_a_day_and_at_most_an_hour_more() {
        let at = 1_000 * H + 1_800; // half past an hour
        let ledger = [(bucket(at), 100)];
        assert_eq!(used(&ledger, at), 100);
        assert_eq!(used(&ledger, at + 24 * H - 1), 100, "not before 24 h");
        let gone = expiry(bucket(at));
        assert!(gone >= at + 24 * H && gone <= at + 25 * H);
        assert_eq!(used(&ledger, gone - 1), 100);
        assert_eq!(used(&ledger, gone), 0);
    }

    #[test]
    fn what_is_left_adds_up_the_window_only() {
        let now = 2_000 * H + 10;
        let ledger = [
            (bucket(now) - 30, 1_000), // more than a day ago
            (bucket(now) - 24, 200),   // the oldest bucket still counting
            (bucket(now) - 3, 50),
            (bucket(now), 25),
        ];
        assert_eq!(used(&ledger, now), 275);
        assert_eq!(left(&ledger, 300, now), 25);
        assert_eq!(left(&ledger, 100, now), 0, "never below zero");
    }

    #[test]
    fn the_window_reopens_when_enough_old_bytes_leave_it() {
        let now = 5_000 * H + 600;
        let limit = 300;
        let ledger = [
            (bucket(now) - 20, 200),
            (bucket(now) - 2, 80),
            (bucket(now), 10),
        ];
        // 10 left now: 10 fit at once.
        assert_eq!(reopens_at(&ledger, limit, 10, now), now);
        // 100 need the 200 of 20 hours ago to leave.
        assert_eq!(
            reopens_at(&ledger, limit, 100, now),
            expiry(bucket(now) - 20)
        );
        // 250 need the 80 gone too.
        assert_eq!(
            reopens_at(&ledger, limit, 250, now),
            expiry(bucket(now) - 2)
        );
        // Larger than the limit: when the window is empty.
        assert_eq!(reopens_at(&ledger, limit, 400, now), expiry(bucket(now)));
        assert_eq!(reopens_at(&[], limit, 400, now), now);
    }
}
