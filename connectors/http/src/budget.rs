//! The request budget: at most N requests in any minute and M in any day.
//!
//! Free API tiers count requests per minute and per day (Alpha Vantage's free tier has
//! allowed 5 a minute and 25 to 500 a day). The budget keeps the time of each recent request
//! and makes the next one wait until it fits in both sliding windows, so the limits hold over
//! any 60 s or 24 h stretch, not just per calendar minute or day. It lives in memory: a
//! restarted task starts with a fresh budget.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Waits for the budget shorter than this are pacing; longer ones are shown in the status.
pub const WAIT_WORTH_REPORTING: Duration = Duration::from_secs(60);

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Limits the rate of requests; `0` means no limit for that window.
#[derive(Debug)]
pub struct RequestBudget {
    per_minute: u32,
    per_day: u32,
    sent: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    minute: VecDeque<Instant>,
    day: VecDeque<Instant>,
}

impl RequestBudget {
    /// A budget of `per_minute` requests per minute and `per_day` per day (0: unlimited).
    pub fn new(per_minute: u32, per_day: u32) -> Self {
        Self {
            per_minute,
            per_day,
            sent: Mutex::new(Windows::default()),
        }
    }

    /// When the next request may be sent (now or later), without taking it.
    pub fn next_free_at(&self) -> Instant {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.prune(now);
        sent.free_at(now, self.per_minute, self.per_day)
    }

    /// Waits until a request fits in the budget and takes it. Cancel-safe: a dropped wait
    /// takes nothing.
    pub async fn acquire(&self) {
        loop {
            let now = Instant::now();
            let free_at = {
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                sent.prune(now);
                let free_at = sent.free_at(now, self.per_minute, self.per_day);
                if free_at <= now {
                    if self.per_minute > 0 {
                        sent.minute.push_back(now);
                    }
                    if self.per_day > 0 {
                        sent.day.push_back(now);
                    }
                    return;
                }
                free_at
            };
            tracing::debug!(
                wait_ms = u64::try_from((free_at - now).as_millis()).unwrap_or(u64::MAX),
                "request budget used up; waiting"
            );
            tokio::time::sleep_until(free_at).await;
        }
    }
}

impl Windows {
    fn prune(&mut self, now: Instant) {
        while self.minute.front().is_some_and(|t| now - *t >= MINUTE) {
            self.minute.pop_front();
        }
        while self.day.front().is_some_and(|t| now - *t >= DAY) {
            self.day.pop_front();
        }
    }

    fn free_at(&self, now: Instant, per_minute: u32, per_day: u32) -> Instant {
        let mut at = now;
        if per_minute > 0 && self.minute.len() >= per_minute as usize {
            // The oldest request that must leave the window before one more fits.
            let oldest = self.minute[self.minute.len() - per_minute as usize];
            at = at.max(oldest + MINUTE);
        }
        if per_day > 0 && self.day.len() >= per_day as usize {
            let oldest = self.day[self.day.len() - per_day as usize];
            at = at.max(oldest + DAY);
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_minute_budget_spaces_bursts_by_a_minute() {
        let budget = RequestBudget::new(5, 0);
        let start = Instant::now();
        for _ in 0..5 {
            budget.acquire().await;
        }
        assert_eq!(
            Instant::now(),
            start,
            "the first five requests need no wait"
        );
        budget.acquire().await;
        assert_eq!(Instant::now() - start, MINUTE);
        for _ in 0..4 {
            budget.acquire().await;
        }
        assert_eq!(Instant::now() - start, MINUTE);
        budget.acquire().await;
        assert_eq!(Instant::now() - start, 2 * MINUTE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_day_budget_holds_over_any_24_hours() {
        let budget = RequestBudget::new(5, 25);
        let start = Instant::now();
        for _ in 0..25 {
            budget.acquire().await;
        }
        // 25 requests at 5 a minute take four minutes of waiting.
        assert_eq!(Instant::now() - start, 4 * MINUTE);
        assert_eq!(budget.next_free_at(), start + DAY);
        budget.acquire().await;
        assert_eq!(Instant::now() - start, DAY);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let budget = RequestBudget::new(0, 0);
        let start = Instant::now();
        for _ in 0..10_000 {
            budget.acquire().await;
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_takes_nothing() {
        let budget = RequestBudget::new(1, 0);
        budget.acquire().await;
        let start = Instant::now();
        let waited = tokio::time::timeout(Duration::from_secs(10), budget.acquire()).await;
        assert!(waited.is_err(), "the second request must wait a minute");
        budget.acquire().await;
        assert_eq!(Instant::now() - start, MINUTE);
    }
}
