//! The token cache of one account side: the mail engine's [`TokenSource`]. It hands out the
//! access token it holds until shortly before that expires (5 minutes, or a quarter of the
//! lifetime for short-lived tokens, so that a login never starts with a token about to die),
//! then gets a new one from its [`Grant`] (refresh, client credentials, a re-signed JWT).
//! Connections of one account ask together at the start of a run and after each expiry: one
//! of them fetches while the others wait for its result (single flight), so the token
//! endpoint sees one request per token, not one per connection. Tokens live in memory only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::transfer::imap::session::{Secret, TokenError, TokenSource};

/// Renew this long before expiry at most.
const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A token just obtained, with how long the server said it lasts (`expires_in`).
pub struct Fresh {
    pub access_token: Secret,
    pub lifetime: Duration,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a cache gets a new token.
pub trait Grant: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<Fresh, TokenError>>;
}

/// Where the cache reads the time: the monotonic clock, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

struct Current {
    token: Secret,
    renew_at: Instant,
}

pub struct TokenCache {
    grant: Box<dyn Grant>,
    clock: Box<dyn Clock>,
    current: Mutex<Option<Current>>,
    /// Held by the one caller fetching; the others wait on it, then find the new token.
    flight: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl TokenCache {
    pub fn new(grant: Box<dyn Grant>) -> TokenCache {
        TokenCache::with_clock(grant, Box::new(SystemClock))
    }

    pub fn with_clock(grant: Box<dyn Grant>, clock: Box<dyn Clock>) -> TokenCache {
        TokenCache {
            grant,
            clock,
            current: Mutex::new(None),
            flight: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many tokens this cache fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn held(&self) -> Option<Secret> {
        let now = self.clock.now();
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|c| now < c.renew_at)
            .map(|c| c.token.clone())
    }

    /// A token good for a while yet: the one held, else a new one (fetched by one caller
    /// at a time).
    pub async fn get(&self) -> Result<Secret, TokenError> {
        if let Some(token) = self.held() {
            return Ok(token);
        }
        let _flight = self.flight.lock().await;
        // Whoever held the flight before us may have just fetched one.
        if let Some(token) = self.held() {
            return Ok(token);
        }
        let fresh = self.grant.fetch().await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let margin = RENEW_MARGIN.min(fresh.lifetime / 4);
        let renew_at = self.clock.now() + fresh.lifetime.saturating_sub(margin);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
            token: fresh.access_token.clone(),
            renew_at,
        });
        Ok(fresh.access_token)
    }

    /// Forgets `token` if it is the one held (a server refused it or ended a session over it).
    pub fn forget(&self, token: &Secret) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|c| c.token.expose() == token.expose())
        {
            *current = None;
        }
    }
}

impl TokenSource for TokenCache {
    fn token(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        Box::pin(self.get())
    }

    fn expired(&self, token: &Secret) {
        self.forget(token);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// A clock tests move by hand.
    struct TestClock(Arc<Mutex<Instant>>);

    impl Clock for TestClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    /// Hands out `token-1`, `token-2`, … each living `lifetime`; with a gate, each fetch
    /// waits for it to open.
    struct Counting {
        n: Arc<AtomicU32>,
        lifetime: Duration,
        gate: Option<Arc<tokio::sync::Semaphore>>,
    }

    impl Grant for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<Fresh, TokenError>> {
            Box::pin(async move {
                let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(gate) = &self.gate {
                    let _permit = gate.acquire().await.unwrap();
                }
                Ok(Fresh {
                    access_token: Secret::new(format!("token-{n}")),
                    lifetime: self.lifetime,
                })
            })
        }
    }

    fn cache(lifetime: Duration) -> (TokenCache, Arc<Mutex<Instant>>, Arc<AtomicU32>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let n = Arc::new(AtomicU32::new(0));
        let grant = Counting {
            n: n.clone(),
            lifetime,
            gate: None,
        };
        let cache = TokenCache::with_clock(Box::new(grant), Box::new(TestClock(now.clone())));
        (cache, now, n)
    }

    fn advance(now: &Mutex<Instant>, by: Duration) {
        let mut t = now.lock().unwrap();
        *t += by;
    }

    #[tokio::test]
    async fn a_token_is_renewed_five_minutes_before_it_expires() {
        let (cache, now, n) = cache(Duration::from_secs(3600));
        assert_eq!(cache.get().await.unwrap().expose(), "token-1");
        advance(&now, Duration::from_secs(54 * 60));
        assert_eq!(cache.get().await.unwrap().expose(), "token-1");
        advance(&now, Duration::from_secs(60 + 1));
        assert_eq!(cache.get().await.unwrap().expose(), "token-2");
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_short_lived_token_is_renewed_with_a_quarter_of_its_life_left() {
        let (cache, now, _) = cache(Duration::from_secs(40));
        assert_eq!(cache.get().await.unwrap().expose(), "token-1");
        advance(&now, Duration::from_secs(29));
        assert_eq!(cache.get().await.unwrap().expose(), "token-1");
        advance(&now, Duration::from_secs(1));
        assert_eq!(cache.get().await.unwrap().expose(), "token-2");
    }

    #[tokio::test]
    async fn a_refused_token_is_dropped_and_another_refusal_of_an_old_one_is_not() {
        let (cache, _, n) = cache(Duration::from_secs(3600));
        let first = cache.get().await.unwrap();
        cache.expired(&first);
        let second = cache.get().await.unwrap();
        assert_eq!(second.expose(), "token-2");
        // A late report about the first token must not throw away the second.
        cache.expired(&first);
        assert_eq!(cache.get().await.unwrap().expose(), "token-2");
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_asking_together_share_one_fetch() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let n = Arc::new(AtomicU32::new(0));
        let grant = Counting {
            n: n.clone(),
            lifetime: Duration::from_secs(3600),
            gate: Some(gate.clone()),
        };
        let cache = Arc::new(TokenCache::new(Box::new(grant)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await.unwrap().expose().to_string() })
            })
            .collect();
        // Let every task run until it waits: one in the grant, the others for the flight.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(n.load(Ordering::SeqCst), 1, "one fetch under way");
        gate.add_permits(100);
        for t in tasks {
            assert_eq!(t.await.unwrap(), "token-1");
        }
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(cache.fetches(), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        struct Failing(AtomicU32);
        impl Grant for Failing {
            fn fetch(&self) -> BoxFuture<'_, Result<Fresh, TokenError>> {
                Box::pin(async move {
                    if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(TokenError {
                            kind: crate::transfer::imap::ErrorKind::Network,
                            message: "down".into(),
                        })
                    } else {
                        Ok(Fresh {
                            access_token: Secret::new("ok"),
                            lifetime: Duration::from_secs(3600),
                        })
                    }
                })
            }
        }
        let cache = TokenCache::new(Box::new(Failing(AtomicU32::new(0))));
        assert!(cache.get().await.is_err());
        assert_eq!(cache.get().await.unwrap().expose(), "ok");
    }
}
