//! A circuit breaker per upstream: after `threshold` failures in a row it opens and requests
//! fail fast for `cooldown`; then one probe is let through (half-open) and its outcome closes or
//! re-opens the circuit. A struggling upstream is not hammered, and visitors hear at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Whether a request may go upstream now. In the half-open state only one probe may.
    pub fn allow(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    /// Records the outcome of a request that [`allow`](Self::allow) let through.
    pub fn record(&self, success: bool) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, false) => {
                tracing::warn!(
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "upstream circuit opened"
                );
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
        };
    }

    /// True while requests are being refused.
    pub fn is_open(&self) -> bool {
        matches!(
            *self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            State::Open { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_once_after_the_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(breaker.allow());
            breaker.record(false);
        }
        assert!(breaker.allow(), "still closed below the threshold");
        breaker.record(false);
        assert!(breaker.is_open() && !breaker.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.record(false);
        assert!(!breaker.allow(), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow());
        breaker.record(true);
        assert!(breaker.allow() && breaker.allow(), "a good probe closes it");
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(60));
        breaker.record(false);
        breaker.record(true);
        breaker.record(false);
        assert!(breaker.allow());
    }
}
