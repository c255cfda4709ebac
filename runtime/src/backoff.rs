//! One back-off for every retry site of the task loops: exponential from 300 ms, capped at
//! the connector's `errors.retry.delay.max.ms`, with up to 20% jitter so that many tasks do not
//! retry in lockstep. Every wait returns early when the task is stopped, so a stop keeps its
//! deadline whatever the task was retrying.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The first delay.
pub const INITIAL_DELAY: Duration = Duration::from_millis(300);

/// Exponential back-off with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A back-off starting at [`INITIAL_DELAY`] and doubling up to `max`.
    pub fn new(max: Duration) -> Self {
        Self {
            next: INITIAL_DELAY.min(max),
            max,
        }
    }

    /// The delay the next wait will use, before jitter.
    pub fn current(&self) -> Duration {
        self.next
    }

    /// Starts again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = INITIAL_DELAY.min(self.max);
    }

    /// The next delay, with jitter, and doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.next);
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Waits the next delay; `false` (at once) when `token` is cancelled first.
    pub async fn wait(&mut self, token: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            biased;
            () = token.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

/// `delay` plus up to 20% random jitter.
pub fn jitter(delay: Duration) -> Duration {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(delay.as_nanos());
    let frac = (h.finish() % 1000) as f64 / 1000.0 * 0.2;
    delay.mul_f64(1.0 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let mut bases = Vec::new();
        for _ in 0..5 {
            let base = b.current();
            let d = b.next_delay();
            assert!(d >= base && d <= base.mul_f64(1.2), "{d:?} vs {base:?}");
            bases.push(base.as_millis());
        }
        assert_eq!(bases, vec![300, 600, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.current(), INITIAL_DELAY);
    }

    #[test]
    fn a_cap_below_the_first_delay_wins() {
        let b = Backoff::new(Duration::from_millis(100));
        assert_eq!(b.current(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_returns_at_once_when_cancelled() {
        let token = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(60));
        for _ in 0..10 {
            b.next_delay();
        }
        let waiter = {
            let token = token.clone();
            tokio::spawn(async move { b.wait(&token).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let before = tokio::time::Instant::now();
        token.cancel();
        assert!(!waiter.await.unwrap());
        assert!(before.elapsed() < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_sleeps_the_delay_when_not_cancelled() {
        let token = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(60));
        let before = tokio::time::Instant::now();
        assert!(b.wait(&token).await);
        let waited = before.elapsed();
        assert!(waited >= INITIAL_DELAY && waited <= INITIAL_DELAY.mul_f64(1.2));
    }
}
