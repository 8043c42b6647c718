//! Rate limiters kept per key (tenant, conversation, client IP) in a bounded map: at most
//! `capacity` keys, idle keys evicted first, so a flood of distinct keys cannot grow memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A per-minute limiter for one key.
pub type Limiter = DefaultDirectRateLimiter;

/// A limiter allowing `per_minute` events per minute, with that many as its burst.
pub fn per_minute(per_minute: u32) -> Limiter {
    direct(Quota::per_minute(
        NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN),
    ))
}

/// One clock for every limiter: governor's default constructor builds a new one per limiter,
/// and building one asks the CPU about its timestamp counter (`cpuid`, a trap to the hypervisor
/// on a VM), once per widget socket.
fn clock() -> &'static DefaultClock {
    static CLOCK: OnceLock<DefaultClock> = OnceLock::new();
    CLOCK.get_or_init(DefaultClock::default)
}

fn direct(quota: Quota) -> Limiter {
    RateLimiter::direct_with_clock(quota, clock().clone())
}

/// Checks a limiter; on refusal, how long until it would allow one more event.
pub fn check(limiter: &Limiter) -> Result<(), Duration> {
    limiter
        .check()
        .map_err(|not_until| not_until.wait_time_from(clock().now()))
}

struct Entry {
    quota: Quota,
    limiter: Arc<Limiter>,
    last_used: Instant,
}

/// Limiters by key, bounded in number.
pub struct KeyedLimiters<K> {
    entries: Mutex<HashMap<K, Entry>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> KeyedLimiters<K> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Checks the key's per-minute limiter (created on first use, or anew when its rate changed).
    pub fn check(&self, key: &K, per_minute: u32) -> Result<(), Duration> {
        self.check_quota(
            key,
            Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN)),
        )
    }

    /// Checks the key's limiter for an arbitrary quota.
    pub fn check_quota(&self, key: &K, quota: Quota) -> Result<(), Duration> {
        let limiter = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            if !entries.contains_key(key) && entries.len() >= self.capacity {
                evict_oldest(&mut entries, self.capacity / 10 + 1);
            }
            let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                quota,
                limiter: Arc::new(direct(quota)),
                last_used: now,
            });
            if entry.quota != quota {
                *entry = Entry {
                    quota,
                    limiter: Arc::new(direct(quota)),
                    last_used: now,
                };
            }
            entry.last_used = now;
            entry.limiter.clone()
        };
        check(&limiter)
    }

    /// Drops keys idle for longer than `idle`; run on a timer.
    pub fn evict_idle(&self, idle: Duration) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|_, e| e.last_used.elapsed() < idle);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict_oldest<K: Hash + Eq + Clone>(entries: &mut HashMap<K, Entry>, count: usize) {
    let mut by_age: Vec<(Instant, K)> = entries
        .iter()
        .map(|(k, e)| (e.last_used, k.clone()))
        .collect();
    by_age.sort_by_key(|(at, _)| *at);
    for (_, key) in by_age.into_iter().take(count) {
        entries.remove(&key);
    }
}

/// Counts failures per key in a sliding window: after `max` failures within `window` the key is
/// blocked until the oldest of them leaves the window. Successes cost nothing, so a team behind
/// one address can sign in freely while a password guesser is stopped.
pub struct FailureWindow<K> {
    failures: Mutex<HashMap<K, Vec<Instant>>>,
    max: usize,
    window: Duration,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> FailureWindow<K> {
    pub fn new(max: usize, window: Duration, capacity: usize) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            max: max.max(1),
            window,
            capacity: capacity.max(1),
        }
    }

    /// `Err(wait)` while the key is blocked.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(times) = failures.get_mut(key) else {
            return Ok(());
        };
        times.retain(|t| t.elapsed() < self.window);
        match times.first() {
            Some(oldest) if times.len() >= self.max => {
                Err(self.window.saturating_sub(oldest.elapsed()))
            }
            _ => Ok(()),
        }
    }

    /// Records one failure for the key.
    pub fn record(&self, key: &K) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !failures.contains_key(key) && failures.len() >= self.capacity {
            let window = self.window;
            failures.retain(|_, times| times.last().is_some_and(|t| t.elapsed() < window));
            if failures.len() >= self.capacity {
                return;
            }
        }
        let times = failures.entry(key.clone()).or_default();
        times.retain(|t| t.elapsed() < self.window);
        times.push(Instant::now());
    }

    /// Drops keys with no failure left in the window; run on a timer.
    pub fn evict_idle(&self) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.window;
        failures.retain(|_, times| times.last().is_some_and(|t| t.elapsed() < window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_limited_after_its_burst_and_told_how_long_to_wait() {
        let limiters = KeyedLimiters::new(10);
        for _ in 0..3 {
            assert!(limiters.check(&"a", 3).is_ok());
        }
        let wait = limiters.check(&"a", 3).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            limiters.check(&"b", 3).is_ok(),
            "other keys have their own budget"
        );
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let limiters = KeyedLimiters::new(100);
        for i in 0..10_000 {
            let _ = limiters.check(&i, 5);
        }
        assert!(limiters.len() <= 100);
    }

    #[test]
    fn a_key_is_blocked_after_max_failures_and_only_failures_count() {
        let window = FailureWindow::new(3, Duration::from_secs(60), 10);
        for _ in 0..3 {
            assert!(window.check(&"ip").is_ok());
            window.record(&"ip");
        }
        let wait = window.check(&"ip").unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(window.check(&"other").is_ok());
        let short = FailureWindow::new(1, Duration::ZERO, 10);
        short.record(&"ip");
        assert!(short.check(&"ip").is_ok(), "failures leave the window");
    }

    #[test]
    fn idle_keys_are_evicted() {
        let limiters = KeyedLimiters::new(10);
        let _ = limiters.check(&"a", 5);
        limiters.evict_idle(Duration::ZERO);
        assert!(limiters.is_empty());
    }
}
