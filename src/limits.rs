//! Rate limiters kept per key (tenant, conversation, client IP) in a bounded map: at most
//! `capacity` keys, idle keys evicted first, so a flood of distinct keys cannot grow memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A per-minute limiter for one key.
pub type Limiter = DefaultDirectRateLimiter;

/// A limiter allowing `per_minute` events per minute, with that many as its burst.
pub fn per_minute(per_minute: u32) -> Limiter {
    RateLimiter::direct(Quota::per_minute(
        NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN),
    ))
}

/// Checks a limiter; on refusal, how long until it would allow one more event.
pub fn check(limiter: &Limiter) -> Result<(), Duration> {
    limiter
        .check()
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

struct Entry {
    per_minute: u32,
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

    /// Checks the key's limiter (created on first use, or anew when its rate changed).
    pub fn check(&self, key: &K, per_minute: u32) -> Result<(), Duration> {
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
                per_minute,
                limiter: Arc::new(self::per_minute(per_minute)),
                last_used: now,
            });
            if entry.per_minute != per_minute {
                *entry = Entry {
                    per_minute,
                    limiter: Arc::new(self::per_minute(per_minute)),
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
    fn idle_keys_are_evicted() {
        let limiters = KeyedLimiters::new(10);
        let _ = limiters.check(&"a", 5);
        limiters.evict_idle(Duration::ZERO);
        assert!(limiters.is_empty());
    }
}
