//! The account-wide pause a throttling server asks for. Exchange Online answers `BAD Request is
//! throttled. Suggested Backoff Time: N milliseconds` and closes the connection; the backoff is
//! the account's, so every connection of that account to that server (one [`Gate`] shared by
//! the clones of its [`super::Target`]) waits until it has passed before it sends anything more,
//! new connections included, and then goes on without waiting longer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Added to a suggested backoff: the reply was sent before we read it, but a clock's tick or a
/// command already written must not land inside the window.
pub const MARGIN: Duration = Duration::from_millis(20);

/// A server's suggested pause is obeyed up to this (a typo'd or hostile hour-long suggestion
/// must not stall a run; `watch` spaces whole runs).
pub const MAX_SUGGESTED: Duration = Duration::from_secs(300);

/// Until when the account must keep quiet on this server; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<Mutex<Option<Instant>>>);

impl Gate {
    /// The server suggested `backoff`: nothing is sent before it (and [`MARGIN`]) has passed.
    /// A shorter suggestion never shortens a longer one in force.
    pub fn hold(&self, backoff: Duration) {
        let until = Instant::now() + backoff.min(MAX_SUGGESTED) + MARGIN;
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g = Some(g.map_or(until, |u| u.max(until)));
    }

    /// When the pause in force ends, if one is.
    pub fn until(&self) -> Option<Instant> {
        let g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.filter(|u| *u > Instant::now())
    }

    /// Waits until no pause is in force (another connection may extend it meanwhile).
    pub async fn pass(&self) {
        while let Some(until) = self.until() {
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_longer_pause_in_force_is_never_shortened() {
        let gate = Gate::default();
        assert!(gate.until().is_none());
        gate.hold(Duration::from_secs(60));
        let long = gate.until().expect("held");
        gate.hold(Duration::from_millis(1));
        assert_eq!(gate.until(), Some(long));
        // Clones share it: that is what makes it the account's.
        assert_eq!(gate.clone().until(), Some(long));
    }

    #[test]
    fn a_huge_suggestion_is_capped() {
        let gate = Gate::default();
        gate.hold(Duration::from_secs(86_400));
        let left = gate.until().expect("held") - Instant::now();
        assert!(left <= MAX_SUGGESTED + MARGIN, "{left:?}");
    }
}
