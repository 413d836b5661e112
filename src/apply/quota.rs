//! Platforms' daily limits in the product (Gmail: 2,500 MB read and 500 MB appended per
//! account and day; `limits:` in the plan): the budget a mail copy gets from the state's
//! ledger, the pause it leaves when the budget or the server says stop, and how both read.
//!
//! The ledger and the window's arithmetic are the state's (`state::store::quota`,
//! `state::window`); the mail engine only spends the budget it is given and counts what it
//! moves through its journal (`apply::journal`). A paused copy is skipped by `apply` without a
//! word to the servers until its time (`apply::run_sync`), and `watch` schedules the account
//! for that time.
//!
//! The clock is the system's. Debug builds (the tests') also read `MAILSHIFT_TEST_NOW`: Unix
//! seconds the clock starts from, or `+N` / `-N` seconds added to the real one, so a test can
//! pass a day in a moment; release builds ignore it.

use crate::apply::human_bytes;
use crate::error::StepError;
use crate::model::AccountSpec;
use crate::plan::model::{Platform, PlatformKind};
use crate::state::{PauseRecord, Side, StateStore, window};
use crate::transfer::imap::copy::{Allowance, Budget, Paused};

/// How long a server that says the account exceeded its limits is left alone: Gmail blocks
/// such an account for up to a day (support.google.com/a/answer/1071518; chatwoot#6082: "the
/// account was blocked for a day, after which it can be automatically unblocked").
pub const SERVER_PAUSE: u64 = 24 * 3600;

/// Unix seconds now (see the module documentation for the tests' clock).
pub fn now() -> u64 {
    let real = crate::watch::status::unix_now();
    #[cfg(debug_assertions)]
    {
        use std::sync::OnceLock;
        // (offset in seconds), fixed at the first reading so that time still passes.
        static SHIFT: OnceLock<i64> = OnceLock::new();
        let shift = *SHIFT.get_or_init(|| {
            let Ok(text) = std::env::var("MAILSHIFT_TEST_NOW") else {
                return 0;
            };
            let text = text.trim();
            match text.strip_prefix('+') {
                Some(n) => n.parse().unwrap_or(0),
                None if text.starts_with('-') => text.parse().unwrap_or(0),
                None => text.parse::<i64>().map_or(0, |t| t - real as i64),
            }
        });
        real.saturating_add_signed(shift)
    }
    #[cfg(not(debug_assertions))]
    real
}

/// An account's daily limits, per side: the source's reads and the destination's appends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// The account's address: its ledger's key.
    pub account: String,
    pub download: Option<Limit>,
    pub upload: Option<Limit>,
}

/// One side's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Bytes per day.
    pub bytes: u64,
    /// "Gmail's daily upload limit of 500.0 MB", or the plan's platform by name.
    pub name: String,
}

impl Limits {
    pub fn of(spec: &AccountSpec) -> Limits {
        let limit = |platform: &Platform, name: &str, side, bytes: Option<u64>| {
            bytes.map(|bytes| Limit {
                bytes,
                name: limit_name(platform, name, side, bytes),
            })
        };
        let (from, to) = (&spec.account.from, &spec.account.to);
        Limits {
            account: spec.address.clone(),
            download: limit(
                &spec.source,
                from,
                Side::Download,
                spec.source.daily_download(),
            ),
            upload: limit(&spec.dest, to, Side::Upload, spec.dest.daily_upload()),
        }
    }

    pub fn get(&self, side: Side) -> Option<&Limit> {
        match side {
            Side::Download => self.download.as_ref(),
            Side::Upload => self.upload.as_ref(),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.download.is_some() || self.upload.is_some()
    }

    /// What the account may still move now, per side, from the ledger.
    pub fn budget(&self, store: &StateStore, now: u64) -> Result<Budget, StepError> {
        let allowance = |side| -> Result<Option<Allowance>, StepError> {
            let Some(l) = self.get(side) else {
                return Ok(None);
            };
            let ledger = store.transfers(&self.account, side)?;
            Ok(Some(Allowance {
                left: window::left(&ledger, l.bytes, now),
                limit: l.bytes,
            }))
        };
        Ok(Budget {
            download: allowance(Side::Download)?,
            upload: allowance(Side::Upload)?,
        })
    }

    /// The pause a copy that stopped for `why` leaves, from the ledger at `now`.
    pub fn pause_for(
        &self,
        store: &StateStore,
        why: &Paused,
        now: u64,
    ) -> Result<PauseRecord, StepError> {
        match why {
            Paused::Budget { needed } => {
                // The side that reopens last decides: the next message needs both.
                let mut latest: Option<(u64, Side, String)> = None;
                for side in [Side::Download, Side::Upload] {
                    let Some(l) = self.get(side) else {
                        continue;
                    };
                    let ledger = store.transfers(&self.account, side)?;
                    let at = window::reopens_at(&ledger, l.bytes, *needed, now);
                    if latest.as_ref().is_none_or(|(t, _, _)| at > *t) {
                        latest = Some((at, side, l.name.clone()));
                    }
                }
                let (until, side, reason) = latest.unwrap_or((
                    now,
                    Side::Upload,
                    "a daily limit the plan no longer sets".to_string(),
                ));
                Ok(PauseRecord {
                    until,
                    reason,
                    side,
                    since: now,
                })
            }
            Paused::Server { words } => {
                let side = self.server_side(words);
                let reason = match self.get(side) {
                    Some(l) => format!("{}, reached by the server's count: {words}", l.name),
                    None => format!("the server's limits: {words}"),
                };
                Ok(PauseRecord {
                    until: now + SERVER_PAUSE,
                    reason,
                    side,
                    since: now,
                })
            }
        }
    }

    /// What `plan --refresh` says of a copy of `bytes` under these limits: "3.2 GB to copy:
    /// about 7 days at Gmail's daily upload limit of 500.0 MB…". The slowest side decides.
    pub fn estimate(&self, bytes: u64) -> Option<String> {
        if bytes == 0 {
            return None;
        }
        let (days, name) = [&self.download, &self.upload]
            .into_iter()
            .flatten()
            .map(|l| (bytes.div_ceil(l.bytes.max(1)), &l.name))
            .max_by_key(|(days, _)| *days)?;
        let size = human_bytes(bytes);
        Some(if days <= 1 {
            format!("{size} to copy: within a day at {name}")
        } else {
            format!(
                "{size} to copy: about {days} days at {name} (the copy pauses when a day's \
                 limit is reached and goes on when it allows more)"
            )
        })
    }

    /// Which side a server's "exceeded limits" came from: an APPEND is the destination's
    /// upload; otherwise the side that has a daily limit, the source's reads first (FETCH is
    /// where Gmail says it, ha-email-sensor#16).
    fn server_side(&self, words: &str) -> Side {
        if words.contains("APPEND") || (self.upload.is_some() && self.download.is_none()) {
            Side::Upload
        } else {
            Side::Download
        }
    }
}

/// "Gmail's daily upload limit of 500.0 MB", or the plan's platform by name.
pub fn limit_name(platform: &Platform, name: &str, side: Side, limit: u64) -> String {
    let owner = match platform.kind {
        PlatformKind::Gmail => "Gmail's".to_string(),
        _ => format!("platform `{name}`'s"),
    };
    format!(
        "{owner} daily {} limit of {}",
        side.as_str(),
        human_bytes(limit)
    )
}

/// What `apply` and `status` say of a pause: "paused until 2026-11-29 14:05 UTC (Gmail's daily
/// upload limit of 500.0 MB): run `mailshift apply` again after that".
pub fn pause_text(p: &PauseRecord) -> String {
    format!(
        "paused until {} ({}): run `mailshift apply` again after that",
        crate::render::time::minute(p.until),
        p.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dest: &str) -> AccountSpec {
        let text = format!(
            "version: 1\nplatforms:\n  old: {{type: imap, imap: {{host: h, security: none}}}}\n  \
             new: {dest}\naccounts:\n  - address: A@example.com\n    from: old\n    to: new\n    \
             source: {{password: {{env: X}}}}\n    destination: {{password: {{env: X}}}}\n"
        );
        let plan: crate::plan::model::Plan = serde_saphyr::from_str(&text).unwrap();
        AccountSpec::of(&plan, &plan.accounts[0]).unwrap()
    }

    #[test]
    fn budgets_come_from_the_limits_and_what_the_day_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let gmail = spec("{type: gmail}");
        let now = 1_800_000_000;
        store
            .add_transfer("a@example.com", now - 3600, 0, 100_000_000)
            .unwrap();
        let b = Limits::of(&gmail).budget(&store, now).unwrap();
        assert_eq!(b.download, None, "a plain IMAP source has no limit");
        assert_eq!(
            b.upload,
            Some(Allowance {
                left: 400_000_000,
                limit: 500_000_000
            })
        );
        let small = spec("{type: imap, imap: {host: h}, limits: {daily_upload: 300KB}}");
        let b = Limits::of(&small).budget(&store, now).unwrap();
        assert_eq!(b.upload.unwrap().left, 0);
        let plain = Limits::of(&spec("{type: imap, imap: {host: h}}"));
        assert!(!plain.is_limited());
        assert!(!plain.budget(&store, now).unwrap().is_limited());
    }

    #[test]
    fn the_estimate_counts_days_at_the_slowest_limit() {
        let gmail = Limits::of(&spec("{type: gmail}"));
        assert_eq!(
            gmail.estimate(3_200_000_000).unwrap(),
            "3.2 GB to copy: about 7 days at Gmail's daily upload limit of 500.0 MB (the copy \
             pauses when a day's limit is reached and goes on when it allows more)"
        );
        assert_eq!(
            gmail.estimate(400_000_000).unwrap(),
            "400.0 MB to copy: within a day at Gmail's daily upload limit of 500.0 MB"
        );
        assert_eq!(gmail.estimate(0), None);
        assert_eq!(Limits::default().estimate(1_000), None);
    }

    #[test]
    fn a_pause_names_its_limit_and_ends_when_the_window_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let gmail = spec("{type: gmail}");
        let now = 1_800_000_000;
        store
            .add_transfer("a@example.com", now - 7200, 0, 480_000_000)
            .unwrap();
        store
            .add_transfer("a@example.com", now, 0, 15_000_000)
            .unwrap();
        let limits = Limits::of(&gmail);
        let p = limits
            .pause_for(&store, &Paused::Budget { needed: 10_000_000 }, now)
            .unwrap();
        assert_eq!(p.side, Side::Upload);
        assert_eq!(p.until, window::expiry(window::bucket(now - 7200)));
        assert_eq!(p.reason, "Gmail's daily upload limit of 500.0 MB");
        let text = pause_text(&p);
        assert!(
            text.starts_with("paused until ")
                && text.ends_with(
                    " UTC (Gmail's daily upload limit of 500.0 MB): run `mailshift apply` again after that"
                ),
            "{text}"
        );

        let words = "server imap.gmail.com refused APPEND to \"INBOX\": [OVERQUOTA] Account exceeded command or bandwidth limits.";
        let p = limits
            .pause_for(
                &store,
                &Paused::Server {
                    words: words.into(),
                },
                now,
            )
            .unwrap();
        assert_eq!((p.until, p.side), (now + SERVER_PAUSE, Side::Upload));
        assert!(
            p.reason.starts_with("Gmail's daily upload limit"),
            "{}",
            p.reason
        );
        let named = spec("{type: imap, imap: {host: h}, limits: {daily_upload: 1MB}}");
        assert_eq!(
            Limits::of(&named)
                .pause_for(&store, &Paused::Budget { needed: 1 }, now)
                .unwrap()
                .reason,
            "platform `new`'s daily upload limit of 1.0 MB"
        );
    }
}
