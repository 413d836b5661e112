//! When a unit (an account, or the steps of no account) runs next, decided from how its last
//! run ended: kept apart from the loop in `watch::daemon` so the policy can be read and tested
//! on its own.
//!
//! Like a Kubernetes controller's requeue: a run that succeeded comes back after the account's
//! `sync_interval` while its mail is still synced, and waits for the next plan change once there
//! is nothing left to keep in step; a failure comes back sooner, after a backoff that doubles per
//! consecutive failure up to a cap, with jitter so that accounts failing together (a server
//! restart) do not retry in lockstep. What kind of failure it was chooses the backoff
//! (`crate::error::Retry`): a throttling server is left alone longer, and a refused password or
//! a plan that cannot work is not retried on a timer at all.

use std::time::Duration;

use crate::error::Retry;

/// First retry after a failure (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// No failed unit waits longer than this (before jitter) for its next try.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);
/// The same for a server that asked to slow down (or a full destination).
pub const SLOW_BACKOFF_BASE: Duration = Duration::from_secs(60);
pub const SLOW_BACKOFF_CAP: Duration = Duration::from_secs(30 * 60);
/// `sync_interval` when the plan sets none (its documented default).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How a unit's run ended, as far as scheduling cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every step completed (manual steps may be waiting for a person).
    Succeeded,
    /// A step failed, or was skipped because one it depends on did not complete. `after`: a
    /// pause the server asked for.
    Failed {
        retry: Retry,
        after: Option<Duration>,
    },
    /// A conflict: only a plan change (or `state forget`) can resolve it; retrying cannot.
    Conflicted,
    /// A copy paused at a platform's daily limit (Gmail's bandwidth): it may go on `after` this
    /// long, not before (runs before then would only skip it), and not later.
    Paused { after: Duration },
    /// The daemon is stopping.
    Stopped,
    /// A person paused the account's copies (`paused: true`, `POST /api/pause`): nothing to
    /// do until the plan changes or the API resumes it, both of which make the unit due.
    Held,
}

/// What the scheduler does next with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run again after this long.
    After(Duration),
    /// Nothing to do until the plan changes (or SIGHUP).
    AwaitChange,
}

/// The next run of a unit whose run just ended. `failures` counts consecutive failures, this
/// one included; `sync_every` is the account's interval while its mail is still synced (not cut
/// over), `None` when nothing of it needs repeating; `jitter` is a random value in `[0, 1)`.
pub fn next_run(end: &RunEnd, failures: u32, sync_every: Option<Duration>, jitter: f64) -> Next {
    match end {
        RunEnd::Succeeded => sync_every.map_or(Next::AwaitChange, Next::After),
        RunEnd::Failed {
            retry: Retry::Backoff,
            ..
        } => Next::After(backoff(failures, jitter)),
        RunEnd::Failed {
            retry: Retry::SlowBackoff,
            after,
        } => Next::After(
            capped_backoff(SLOW_BACKOFF_BASE, SLOW_BACKOFF_CAP, failures, jitter)
                .max(after.unwrap_or_default()),
        ),
        RunEnd::Failed {
            retry: Retry::AwaitChange,
            ..
        } => Next::AwaitChange,
        RunEnd::Paused { after } => Next::After(*after),
        RunEnd::Conflicted | RunEnd::Stopped | RunEnd::Held => Next::AwaitChange,
    }
}

/// Capped exponential backoff with "equal jitter": half of the delay is fixed, so retries never
/// come back immediately, and the other half is random.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    capped_backoff(BACKOFF_BASE, BACKOFF_CAP, failures, jitter)
}

fn capped_backoff(base: Duration, cap: Duration, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << doublings).min(cap);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A random value in `[0, 1)`, without a random-number crate: std's `RandomState` is seeded
/// from the OS for every instance, which is all jitter needs.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_waits_for_the_interval_or_for_a_plan_change() {
        let every = Duration::from_secs(90);
        assert_eq!(
            next_run(&RunEnd::Succeeded, 0, Some(every), 0.7),
            Next::After(every)
        );
        assert_eq!(
            next_run(&RunEnd::Succeeded, 0, None, 0.7),
            Next::AwaitChange
        );
    }

    #[test]
    fn conflicts_stops_and_a_persons_pause_are_not_retried_on_a_timer() {
        // A paused account keeps no sync interval: only a plan change or a resume runs it.
        for end in [RunEnd::Conflicted, RunEnd::Stopped, RunEnd::Held] {
            assert_eq!(
                next_run(&end, 3, Some(Duration::from_secs(60)), 0.5),
                Next::AwaitChange
            );
        }
    }

    #[test]
    fn failures_back_off_exponentially_within_jitter_bounds_up_to_the_cap() {
        let mut previous_max = Duration::ZERO;
        for failures in 1..=12 {
            let low = backoff(failures, 0.0);
            let high = backoff(failures, 0.999_999);
            let full = BACKOFF_BASE
                .saturating_mul(1 << (failures - 1))
                .min(BACKOFF_CAP);
            assert_eq!(low, full / 2, "failure {failures}");
            assert!(high <= full && high > low, "failure {failures}: {high:?}");
            assert!(high >= previous_max || full == BACKOFF_CAP);
            previous_max = high;
        }
        assert_eq!(backoff(1, 0.0), Duration::from_millis(2500));
        assert!(backoff(u32::MAX, 1.0) <= BACKOFF_CAP);
        assert_eq!(
            next_run(
                &failed(Retry::Backoff),
                2,
                Some(Duration::from_secs(3600)),
                0.0
            ),
            Next::After(Duration::from_secs(5))
        );
    }

    fn failed(retry: Retry) -> RunEnd {
        RunEnd::Failed { retry, after: None }
    }

    #[test]
    fn refused_passwords_and_broken_plans_wait_for_a_change_however_often_they_fail() {
        for failures in [1, 2, 50] {
            assert_eq!(
                next_run(
                    &failed(Retry::AwaitChange),
                    failures,
                    Some(Duration::from_secs(60)),
                    0.5
                ),
                Next::AwaitChange
            );
        }
    }

    #[test]
    fn throttling_backs_off_longer_and_respects_the_servers_pause() {
        for failures in 1..=12 {
            let Next::After(slow) = next_run(&failed(Retry::SlowBackoff), failures, None, 0.0)
            else {
                panic!("throttling is retried");
            };
            let Next::After(normal) = next_run(&failed(Retry::Backoff), failures, None, 0.0) else {
                panic!("failures are retried");
            };
            assert!(slow > normal, "failure {failures}: {slow:?} vs {normal:?}");
            assert!(slow <= SLOW_BACKOFF_CAP);
        }
        assert_eq!(
            next_run(&failed(Retry::SlowBackoff), 1, None, 0.0),
            Next::After(SLOW_BACKOFF_BASE / 2)
        );
        let asked = RunEnd::Failed {
            retry: Retry::SlowBackoff,
            after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(
            next_run(&asked, 1, None, 0.0),
            Next::After(Duration::from_secs(3600))
        );
    }

    #[test]
    fn a_paused_copy_comes_back_when_its_window_reopens_whatever_the_interval() {
        let reopens = Duration::from_secs(20 * 3600);
        let paused = RunEnd::Paused { after: reopens };
        for every in [None, Some(Duration::from_secs(60))] {
            assert_eq!(next_run(&paused, 0, every, 0.9), Next::After(reopens));
        }
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let values: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.iter().any(|v| (v - values[0]).abs() > 1e-9));
    }
}
