//! The connection budget of each IMAP server, shared by every account of a run: a broker
//! hands out slots, one slot per connection pair (a source connection and a destination
//! connection), so the connections a server sees are spent where the mail is rather than N per
//! account.
//!
//! The rules, each for a reason:
//! - Every account waits for its **first** slot in the order it asked (FIFO on each server), and
//!   a first slot is always granted once one is free: no account starves, whatever the others
//!   want. An account never holds a connection it has no slot for.
//! - **Extra** slots are never waited for: an account takes one only when the server has a free
//!   slot, no account is waiting for its first, and it holds less than its *fair share*. Shares
//!   follow demand (folders queued or in progress, up to the account's own cap), filled like
//!   water: an account near its end asks for little, and what it leaves goes to the accounts
//!   with more folders left.
//! - An account above its share (another account arrived, or its demand grew) gives a slot back
//!   at the end of a folder ([`Share::over_share`]); a folder is never cut to rebalance.
//! - Slots are held by values ([`Slot`]) that give them back when dropped, so an error, a
//!   panic or a cancelled task releases what it held.
//!
//! Servers are keyed by `host:port` ([`server_key`]); an account whose two sides are the same
//! server takes two of that server's connections per slot. Slots are taken on the servers in
//! the order of their keys, so two accounts can never each hold one server while waiting for
//! the other's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::session::Target;

/// How a server is named in the budget: its host (lower case) and port.
pub fn server_key(target: &Target) -> String {
    format!(
        "{}:{}",
        target.endpoint.host.to_ascii_lowercase(),
        target.endpoint.port
    )
}

/// The budgets of every server of a run (or of a watch process: every run shares it).
#[derive(Default)]
pub struct Broker {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    /// Told whenever a slot is given back or a demand changes: accounts that could grow look
    /// again.
    changed: Notify,
    next_id: AtomicU64,
}

/// One server's budget.
struct Pool {
    capacity: usize,
    sem: Arc<Semaphore>,
    /// The accounts that use this server, by share id.
    accounts: Mutex<HashMap<u64, Usage>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    held: usize,
    demand: usize,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools = lock(&self.pools);
        let mut m = f.debug_map();
        for (server, pool) in pools.iter() {
            m.entry(server, &pool.capacity);
        }
        m.finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Broker {
    pub fn new() -> Arc<Broker> {
        Arc::new(Broker::default())
    }

    /// The budget of `server`: set by the first account that names it (a plan states one
    /// budget per platform, and its servers are the platform's).
    fn pool(&self, server: &str, capacity: usize) -> Arc<Pool> {
        lock(&self.pools)
            .entry(server.to_string())
            .or_insert_with(|| {
                let capacity = capacity.max(1);
                Arc::new(Pool {
                    capacity,
                    sem: Arc::new(Semaphore::new(capacity)),
                    accounts: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// An account's share of the budgets of its servers: `(server key, that server's
    /// budget)` per side, `cap` the most slots the account may hold (its own connection cap).
    pub fn account(self: &Arc<Self>, sides: [(&str, usize); 2], cap: usize) -> Share {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut needs: Vec<(String, Arc<Pool>, u32)> = Vec::new();
        for (server, capacity) in sides {
            match needs.iter_mut().find(|(k, _, _)| k == server) {
                Some(n) => n.2 += 1,
                None => needs.push((server.to_string(), self.pool(server, capacity), 1)),
            }
        }
        needs.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, pool, n) in &mut needs {
            // A budget smaller than one pair on one server still lets one account work.
            *n = (*n).min(pool.capacity as u32);
            lock(&pool.accounts).insert(id, Usage { held: 0, demand: 1 });
        }
        Share {
            inner: Arc::new(ShareInner {
                broker: self.clone(),
                id,
                needs: needs.into_iter().map(|(_, p, n)| (p, n)).collect(),
                cap: cap.max(1),
            }),
        }
    }

    /// Slots in use on `server` now (for tests and views).
    pub fn in_use(&self, server: &str) -> usize {
        lock(&self.pools).get(server).map_or(0, |p| {
            lock(&p.accounts).values().map(|u| u.held).sum::<usize>()
        })
    }

    /// A future that completes at the next change (a slot given back, a demand changed).
    /// Enable it (`Notified::enable`) before looking, so a change in between is not missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// Water-filling: `capacity` split over `demands`, no one getting more than it asks, what one
/// leaves going to the others evenly. Returns each one's share, in the order given; of equal
/// demands, the earlier (the account that came first) gets what does not divide evenly.
fn fair_shares(capacity: usize, demands: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| (demands[i], std::cmp::Reverse(i)));
    let mut shares = vec![0; demands.len()];
    let mut left = capacity;
    for (k, &i) in order.iter().enumerate() {
        shares[i] = demands[i].min(left / (demands.len() - k));
        left -= shares[i];
    }
    shares
}

/// One account's share of its servers' budgets.
pub struct Share {
    inner: Arc<ShareInner>,
}

struct ShareInner {
    broker: Arc<Broker>,
    id: u64,
    /// The servers this account uses, in key order, and how many connections a slot takes on
    /// each.
    needs: Vec<(Arc<Pool>, u32)>,
    cap: usize,
}

impl ShareInner {
    fn held(&self) -> usize {
        self.needs.first().map_or(0, |(p, _)| {
            lock(&p.accounts).get(&self.id).map_or(0, |u| u.held)
        })
    }

    fn add_held(&self, delta: isize) {
        for (pool, _) in &self.needs {
            if let Some(u) = lock(&pool.accounts).get_mut(&self.id) {
                u.held = u.held.saturating_add_signed(delta);
            }
        }
    }

    /// This account's fair share of each of its servers: the smallest of them.
    fn fair_share(&self) -> usize {
        self.needs
            .iter()
            .map(|(pool, n)| {
                let accounts = lock(&pool.accounts);
                // In the order accounts came (ids grow), so shares do not depend on hashing.
                let mut ids: Vec<u64> = accounts.keys().copied().collect();
                ids.sort_unstable();
                let demands: Vec<usize> = ids.iter().map(|i| accounts[i].demand.max(1)).collect();
                let slots = pool.capacity / (*n as usize).max(1);
                let shares = fair_shares(slots, &demands);
                ids.iter()
                    .position(|i| *i == self.id)
                    .map_or(0, |k| shares[k])
            })
            .min()
            .unwrap_or(0)
            .max(1)
    }
}

impl Share {
    /// The account's first slot: waits, in the order accounts asked, until each of its
    /// servers has room. Cancel-safe: dropping the future gives back what it took.
    pub async fn first(&self) -> Slot {
        let mut permits = Vec::with_capacity(self.inner.needs.len());
        for (pool, n) in &self.inner.needs {
            permits.push(
                pool.sem
                    .clone()
                    .acquire_many_owned(*n)
                    .await
                    .expect("a budget's semaphore is never closed"),
            );
        }
        self.slot(permits)
    }

    /// One more slot if the account may have it now (see the module doc); never waits.
    pub fn extra(&self) -> Option<Slot> {
        if self.inner.held() >= self.inner.cap.min(self.inner.fair_share()) {
            return None;
        }
        let mut permits = Vec::with_capacity(self.inner.needs.len());
        for (pool, n) in &self.inner.needs {
            match pool.sem.clone().try_acquire_many_owned(*n) {
                Ok(p) => permits.push(p),
                // Dropping what was taken gives it back.
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => return None,
            }
        }
        Some(self.slot(permits))
    }

    fn slot(&self, permits: Vec<OwnedSemaphorePermit>) -> Slot {
        self.inner.add_held(1);
        Slot {
            share: self.inner.clone(),
            permits,
        }
    }

    /// How many more workers this account could use: folders queued or in progress, capped
    /// by the account's own limit. Shares follow it.
    pub fn set_demand(&self, demand: usize) {
        let demand = demand.clamp(1, self.inner.cap);
        let mut changed = false;
        for (pool, _) in &self.inner.needs {
            if let Some(u) = lock(&pool.accounts).get_mut(&self.inner.id)
                && u.demand != demand
            {
                u.demand = demand;
                changed = true;
            }
        }
        if changed {
            self.inner.broker.changed.notify_waiters();
        }
    }

    /// The account holds more than its fair share (and more than one slot): a worker at the end
    /// of a folder should give its slot back.
    pub fn over_share(&self) -> bool {
        let held = self.inner.held();
        held > 1 && held > self.inner.cap.min(self.inner.fair_share())
    }

    /// The broker, to wait for its changes.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// Slots this account holds now.
    pub fn held(&self) -> usize {
        self.inner.held()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        for (pool, _) in &self.inner.needs {
            lock(&pool.accounts).remove(&self.inner.id);
        }
        self.inner.broker.changed.notify_waiters();
    }
}

/// One connection pair's place in the budgets; given back when dropped.
pub struct Slot {
    share: Arc<ShareInner>,
    permits: Vec<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permits first: whoever wakes on the notice must find them free.
        self.permits.clear();
        self.share.add_held(-1);
        self.share.broker.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn broker() -> Arc<Broker> {
        Broker::new()
    }

    #[test]
    fn water_filling_gives_what_the_small_leave_to_the_large() {
        assert_eq!(fair_shares(8, &[1, 10, 10]), vec![1, 4, 3]);
        assert_eq!(fair_shares(8, &[10, 1, 10]), vec![4, 1, 3]);
        assert_eq!(fair_shares(8, &[4, 4]), vec![4, 4]);
        assert_eq!(fair_shares(12, &[1; 10]), vec![1; 10]);
        assert_eq!(fair_shares(3, &[2, 2, 2, 2]).iter().sum::<usize>(), 3);
        assert_eq!(fair_shares(0, &[3]), vec![0]);
    }

    #[tokio::test]
    async fn a_lone_account_grows_to_its_cap_and_never_past_the_budget() {
        let b = broker();
        let a = b.account([("src:143", 3), ("dst:143", 8)], 4);
        a.set_demand(10);
        let first = a.first().await;
        let extra: Vec<Slot> = std::iter::from_fn(|| a.extra()).take(10).collect();
        assert_eq!(extra.len(), 2, "the source's budget of 3 bounds it");
        assert_eq!(b.in_use("src:143"), 3);
        assert_eq!(b.in_use("dst:143"), 3);
        drop((first, extra, a));
        assert_eq!(b.in_use("src:143"), 0);

        let capped = b.account([("src:143", 3), ("dst:143", 8)], 2);
        capped.set_demand(10);
        let _first = capped.first().await;
        let extra: Vec<Slot> = std::iter::from_fn(|| capped.extra()).take(10).collect();
        assert_eq!(extra.len(), 1, "the account's own cap of 2 holds");
    }

    #[tokio::test]
    async fn extras_go_where_the_folders_are_and_come_back_when_others_arrive() {
        let b = broker();
        let big = b.account([("s:1", 6), ("d:1", 6)], 8);
        let small = b.account([("s:1", 6), ("d:1", 6)], 8);
        big.set_demand(10);
        small.set_demand(1);
        let _b1 = big.first().await;
        let _s1 = small.first().await;
        let big_extra: Vec<Slot> = std::iter::from_fn(|| big.extra()).take(10).collect();
        assert_eq!(
            big_extra.len(),
            4,
            "the small account's leftovers go to the big one"
        );
        assert!(small.extra().is_none(), "no demand, no extra");
        assert!(!big.over_share());

        // A third account arrives wanting much: the big one is now above its share and gives
        // slots back at its folders' ends, until the newcomer has its share.
        let third = b.account([("s:1", 6), ("d:1", 6)], 8);
        third.set_demand(10);
        assert!(big.over_share());
        let mut big_extra = big_extra;
        let mut third_slots = Vec::new();
        while big.over_share() {
            big_extra.pop();
            third_slots.push(match third_slots.is_empty() {
                true => third.first().await,
                false => third.extra().expect("a slot was given back"),
            });
        }
        assert_eq!(big.held(), 3);
        assert_eq!(third.held(), 2);
        assert_eq!(b.in_use("s:1"), 6);
    }

    #[tokio::test]
    async fn a_waiting_first_slot_comes_before_any_extra() {
        let b = broker();
        let a = b.account([("s:1", 2), ("d:1", 2)], 4);
        let c = b.account([("s:1", 2), ("d:1", 2)], 4);
        let d = b.account([("s:1", 2), ("d:1", 2)], 4);
        a.set_demand(4);
        let a1 = a.first().await;
        let c1 = c.first().await;
        // d waits for its first slot; when a gives one back, d gets it, not a's extra.
        let mut waiting = Box::pin(d.first());
        assert!((&mut waiting).now_or_never().is_none());
        drop(c1);
        assert!(a.extra().is_none(), "d is waiting for its first slot");
        let d1 = waiting.await;
        assert_eq!(d.held(), 1);
        drop((a1, d1));
        assert_eq!(b.in_use("s:1"), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_and_a_failed_task_give_back_what_they_held() {
        let b = broker();
        let a = Arc::new(b.account([("s:1", 1), ("d:1", 1)], 4));
        let c = b.account([("s:1", 1), ("d:1", 1)], 4);
        let held = a.first().await;
        // c's wait is cancelled (its task dropped): it leaves nothing behind.
        {
            let mut waiting = Box::pin(c.first());
            assert!((&mut waiting).now_or_never().is_none());
        }
        drop(held);
        // a task holding a slot fails: the slot comes back with it.
        let a2 = a.clone();
        let task = tokio::spawn(async move {
            let _slot = a2.first().await;
            panic!("the worker fails");
        });
        assert!(task.await.is_err());
        assert_eq!(b.in_use("s:1"), 0);
        let _c1 = c.first().await;
        assert_eq!(b.in_use("s:1"), 1);
        drop(c);
        assert_eq!(b.in_use("s:1"), 0, "a share gone leaves no usage behind");
    }

    #[tokio::test]
    async fn one_server_on_both_sides_takes_two_connections_a_slot() {
        let b = broker();
        let a = b.account([("h:1", 5), ("h:1", 5)], 4);
        a.set_demand(4);
        let _first = a.first().await;
        let extra: Vec<Slot> = std::iter::from_fn(|| a.extra()).take(4).collect();
        assert_eq!(extra.len(), 1, "two pairs of two fit in five");
        let tiny = b.account([("t:1", 1), ("t:1", 1)], 4);
        let _one = tiny.first().await;
        assert_eq!(
            tiny.held(),
            1,
            "a budget below one pair still lets one account work"
        );
    }

    #[tokio::test]
    async fn no_account_starves_behind_many_others() {
        let b = broker();
        let shares: Vec<Share> = (0..10)
            .map(|_| b.account([("s:1", 3), ("d:1", 3)], 4))
            .collect();
        for s in &shares {
            s.set_demand(4);
        }
        // Each account, in turn, waits for its first slot and gets it once earlier ones end.
        let mut held = std::collections::VecDeque::new();
        for s in &shares {
            if held.len() == 3 {
                held.pop_front();
            }
            held.push_back(s.first().await);
            assert!(b.in_use("s:1") <= 3);
        }
    }
}
