//! Summarised logging for problems that repeat: the first few occurrences of a problem from
//! one source are logged in full, the rest are counted and reported in one line per interval
//! ("2997 more malformed requests from 10.0.0.7 in the last 60s").
//!
//! Anything a remote peer (or a stuck task) can trigger over and over must not write one log
//! line per occurrence: that fills the disk. A [`LogLimiter`] decides, per key, whether an
//! occurrence is logged; the caller keeps writing its own, detailed event:
//!
//! ```
//! use std::net::IpAddr;
//! use sluice_broker::log_limit::{LogLimitConfig, LogLimiter};
//!
//! let limiter = LogLimiter::new(LogLimitConfig::default());
//! let peer: IpAddr = "10.0.0.7".parse().unwrap();
//! for _ in 0..1_000 {
//!     if limiter.admit("malformed requests", peer) {
//!         tracing::warn!(%peer, "malformed request; closing connection");
//!     }
//! }
//! // Three warnings were written; 997 occurrences wait for the summary line, which
//! // `report_due` (driven by `run`) or `report_all` writes.
//! assert_eq!(limiter.suppressed(), 997);
//! limiter.report_all();
//! assert_eq!(limiter.suppressed(), 0);
//! ```
//!
//! # Bounds
//! A key is a *problem* (a `&'static str` naming it in the plural, "malformed requests") and a
//! *subject* (who caused it: a peer address, a task id). Per key and per interval at most
//! [`LogLimitConfig::burst`] full lines are admitted, plus one summary line. At most
//! [`LogLimitConfig::max_keys`] subjects are tracked; a key is forgotten once it was quiet for a
//! whole interval. When the map is full, occurrences from new subjects are folded into one
//! overflow key per problem ("… from other sources"), so a flood from many addresses grows
//! neither memory nor the log beyond `max_keys × (burst + 1)` lines per interval plus a few per
//! problem. Problems are static strings, so their number is fixed by the code.
//!
//! # Time
//! The limiter reads [`tokio::time::Instant`], so tests drive it with
//! `tokio::time::pause()` and `advance()`; outside a runtime it reads the system clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Level;

/// The subject named in the summary of occurrences folded into an overflow key.
pub const OVERFLOW_SUBJECT: &str = "other sources";

/// How a [`LogLimiter`] summarises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLimitConfig {
    /// Occurrences per key and interval that are logged in full before counting starts.
    pub burst: u32,
    /// How often the count of suppressed occurrences is reported. A key that had nothing
    /// suppressed for a whole interval starts over with `burst` full lines.
    pub interval: Duration,
    /// Most keys tracked at once; further subjects are folded into one overflow key per
    /// problem.
    pub max_keys: usize,
    /// Level of the summary lines.
    pub level: Level,
}

/// Default for [`LogLimitConfig::burst`].
pub const DEFAULT_BURST: u32 = 3;
/// Default for [`LogLimitConfig::interval`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default for [`LogLimitConfig::max_keys`].
pub const DEFAULT_MAX_KEYS: usize = 256;

impl Default for LogLimitConfig {
    /// Three full lines, then one summary a minute, at most 256 keys, summaries at WARN.
    fn default() -> Self {
        Self {
            burst: DEFAULT_BURST,
            interval: DEFAULT_INTERVAL,
            max_keys: DEFAULT_MAX_KEYS,
            level: Level::WARN,
        }
    }
}

impl LogLimitConfig {
    /// This config with `burst` full lines per key and interval.
    #[must_use]
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// This config with summaries every `interval`.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// This config tracking at most `max_keys` keys.
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// This config writing its summary lines at `level`.
    #[must_use]
    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

/// Decides which occurrences of repeated problems are logged, and writes the summaries of
/// the others. Share it (it is `Sync`) among everything that reports the same kind of
/// problems; see the [module docs](self).
#[derive(Debug)]
pub struct LogLimiter {
    config: LogLimitConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Keys with their own counts, at most `max_keys`.
    entries: HashMap<Key, Entry>,
    /// One per problem, for subjects that found the map full.
    overflow: HashMap<&'static str, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    problem: &'static str,
    subject: String,
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    /// Full lines admitted in the current window.
    logged: u32,
    /// Occurrences suppressed in the current window.
    suppressed: u64,
}

/// One summary line waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    problem: &'static str,
    subject: String,
    count: u64,
    seconds: u64,
    overflow: bool,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    fn window_over(&self, now: Instant, interval: Duration) -> bool {
        now.saturating_duration_since(self.window_start) >= interval
    }

    /// Closes the current window: the count to report, if any. A window that suppressed
    /// something leaves the key suppressing (a flood keeps being summarised, not re-logged).
    fn roll(&mut self, now: Instant, burst: u32) -> Option<(u64, u64)> {
        let seconds = seconds(now.saturating_duration_since(self.window_start));
        let count = std::mem::take(&mut self.suppressed);
        self.window_start = now;
        self.logged = if count > 0 { burst } else { 0 };
        (count > 0).then_some((count, seconds))
    }

    /// Counts one occurrence; `true` when it is to be logged in full.
    fn record(&mut self, burst: u32) -> bool {
        if self.logged < burst {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Whole seconds, rounded up, at least one: "in the last 60s".
fn seconds(elapsed: Duration) -> u64 {
    let whole = elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0);
    whole.max(1)
}

impl LogLimiter {
    /// A limiter with `config`.
    pub fn new(config: LogLimitConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// This limiter's config.
    pub fn config(&self) -> &LogLimitConfig {
        &self.config
    }

    /// Counts one occurrence of `problem` (plural, as it reads in the summary: "malformed
    /// requests") caused by `subject` (a peer address, a task id). `true` means: log this
    /// occurrence in full now; `false` means it was counted for the next summary line.
    ///
    /// Also writes the summary of this key's last interval when that interval is over.
    pub fn admit(&self, problem: &'static str, subject: impl fmt::Display) -> bool {
        let key = Key {
            problem,
            subject: subject.to_string(),
        };
        let (admitted, summaries) = self.state.lock().admit(key, Instant::now(), &self.config);
        emit_all(self.config.level, &summaries);
        admitted
    }

    /// Writes the summary line of every key whose interval is over and forgets keys that
    /// were quiet for a whole interval. [`LogLimiter::run`] calls it on a timer; call it
    /// yourself if you drive the limiter otherwise. Returns the number of summary lines.
    pub fn report_due(&self) -> usize {
        let summaries = self.state.lock().sweep(Instant::now(), &self.config, false);
        emit_all(self.config.level, &summaries);
        summaries.len()
    }

    /// Writes the summary line of every key with suppressed occurrences, whether its
    /// interval is over or not, and forgets all keys: call it when stopping, so no count is
    /// lost. Returns the number of summary lines.
    pub fn report_all(&self) -> usize {
        let summaries = self.state.lock().sweep(Instant::now(), &self.config, true);
        emit_all(self.config.level, &summaries);
        summaries.len()
    }

    /// Occurrences counted but not yet reported in a summary line.
    pub fn suppressed(&self) -> u64 {
        let state = self.state.lock();
        state
            .entries
            .values()
            .chain(state.overflow.values())
            .map(|e| e.suppressed)
            .sum()
    }

    /// Keys currently tracked (overflow keys not included); never more than
    /// [`LogLimitConfig::max_keys`].
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Writes due summaries on a timer (a tenth of the interval, between 10 ms and 1 s)
    /// until `shutdown` is cancelled, then writes every pending count
    /// ([`LogLimiter::report_all`]). Spawn it beside the work that uses the limiter.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tick =
            (self.config.interval / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            self.report_due();
        }
        self.report_all();
    }
}

impl State {
    /// Counts one occurrence of `key`: whether to log it in full, and the summaries that
    /// became due on the way.
    fn admit(&mut self, key: Key, now: Instant, config: &LogLimitConfig) -> (bool, Vec<Summary>) {
        let mut summaries = Vec::new();
        if !self.entries.contains_key(&key) && self.entries.len() >= config.max_keys {
            // Make room from keys that went quiet before folding into the overflow key.
            summaries = self.sweep(now, config, false);
        }
        let overflow = !self.entries.contains_key(&key) && self.entries.len() >= config.max_keys;
        let problem = key.problem;
        let (entry, subject) = if overflow {
            let entry = self
                .overflow
                .entry(problem)
                .or_insert_with(|| Entry::new(now));
            (entry, OVERFLOW_SUBJECT.to_owned())
        } else {
            let subject = key.subject.clone();
            (
                self.entries.entry(key).or_insert_with(|| Entry::new(now)),
                subject,
            )
        };
        if entry.window_over(now, config.interval) {
            if let Some((count, seconds)) = entry.roll(now, config.burst) {
                summaries.push(Summary {
                    problem,
                    subject,
                    count,
                    seconds,
                    overflow,
                });
            }
        }
        (entry.record(config.burst), summaries)
    }

    /// Closes the windows that are over (all of them when `all`), collecting their
    /// summaries, and drops keys with nothing suppressed.
    fn sweep(&mut self, now: Instant, config: &LogLimitConfig, all: bool) -> Vec<Summary> {
        let mut summaries = Vec::new();
        self.entries.retain(|key, entry| {
            if !all && !entry.window_over(now, config.interval) {
                return true;
            }
            match entry.roll(now, config.burst) {
                Some((count, seconds)) => {
                    summaries.push(Summary {
                        problem: key.problem,
                        subject: key.subject.clone(),
                        count,
                        seconds,
                        overflow: false,
                    });
                    !all
                }
                None => false,
            }
        });
        self.overflow.retain(|problem, entry| {
            if !all && !entry.window_over(now, config.interval) {
                return true;
            }
            match entry.roll(now, config.burst) {
                Some((count, seconds)) => {
                    summaries.push(Summary {
                        problem,
                        subject: OVERFLOW_SUBJECT.to_owned(),
                        count,
                        seconds,
                        overflow: true,
                    });
                    !all
                }
                None => false,
            }
        });
        summaries
    }
}

fn emit_all(level: Level, summaries: &[Summary]) {
    for summary in summaries {
        emit(level, summary);
    }
}

fn emit(level: Level, s: &Summary) {
    // A tracing event's level is part of its static metadata: one call site per level.
    macro_rules! summary {
        ($level:expr) => {
            tracing::event!(
                $level,
                problem = s.problem,
                subject = %s.subject,
                suppressed = s.count,
                seconds = s.seconds,
                overflow = s.overflow,
                "{} more {} from {} in the last {}s",
                s.count,
                s.problem,
                s.subject,
                s.seconds
            )
        };
    }
    match level {
        Level::ERROR => summary!(Level::ERROR),
        Level::WARN => summary!(Level::WARN),
        Level::INFO => summary!(Level::INFO),
        Level::DEBUG => summary!(Level::DEBUG),
        _ => summary!(Level::TRACE),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn limiter(burst: u32, max_keys: usize) -> LogLimiter {
        LogLimiter::new(
            LogLimitConfig::default()
                .with_burst(burst)
                .with_interval(Duration::from_secs(60))
                .with_max_keys(max_keys),
        )
    }

    /// Log lines written while `f` runs on this thread.
    fn captured(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = lines.0.lock().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn first_occurrences_are_logged_then_counted_then_summarised() {
        let limiter = limiter(3, 16);
        let admitted: Vec<bool> = (0..10)
            .map(|_| limiter.admit("malformed requests", "1.2.3.4"))
            .collect();
        assert_eq!(
            admitted,
            [true, true, true, false, false, false, false, false, false, false]
        );
        assert_eq!(limiter.suppressed(), 7);
        // Not due yet: nothing is written before the interval is over.
        assert!(captured(|| assert_eq!(limiter.report_due(), 0)).is_empty());

        tokio::time::advance(Duration::from_secs(60)).await;
        let lines = captured(|| assert_eq!(limiter.report_due(), 1));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        assert!(
            lines[0].contains("7 more malformed requests from 1.2.3.4 in the last 60s"),
            "{}",
            lines[0]
        );
        assert_eq!(limiter.suppressed(), 0);

        // The flood goes on: still counted, not logged in full again.
        assert!(!limiter.admit("malformed requests", "1.2.3.4"));
        tokio::time::advance(Duration::from_secs(60)).await;
        let lines = captured(|| assert_eq!(limiter.report_due(), 1));
        assert!(
            lines[0].contains("1 more malformed requests from 1.2.3.4"),
            "{}",
            lines[0]
        );

        // A quiet interval forgets the key; the next occurrence is logged in full.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(limiter.report_due(), 0);
        assert_eq!(limiter.tracked_keys(), 0);
        assert!(limiter.admit("malformed requests", "1.2.3.4"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_occurrence_after_the_interval_writes_the_summary_itself() {
        let limiter = limiter(1, 16);
        assert!(limiter.admit("unsupported requests", "task-0"));
        assert!(!limiter.admit("unsupported requests", "task-0"));
        assert!(!limiter.admit("unsupported requests", "task-0"));
        tokio::time::advance(Duration::from_secs(61)).await;
        let lines = captured(|| assert!(!limiter.admit("unsupported requests", "task-0")));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("2 more unsupported requests from task-0 in the last 61s"),
            "{}",
            lines[0]
        );
        assert_eq!(limiter.suppressed(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_separate_by_problem_and_subject() {
        let limiter = limiter(1, 16);
        assert!(limiter.admit("malformed requests", "a"));
        assert!(limiter.admit("malformed requests", "b"));
        assert!(limiter.admit("unreadable requests", "a"));
        assert!(!limiter.admit("malformed requests", "a"));
        assert_eq!(limiter.tracked_keys(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_from_many_subjects_is_bounded_in_keys_and_lines() {
        let limiter = limiter(3, 8);
        let lines = captured(|| {
            let mut admitted = 0;
            for peer in 0..10_000u32 {
                for _ in 0..5 {
                    admitted += u32::from(limiter.admit("malformed requests", peer));
                }
                assert!(limiter.tracked_keys() <= 8);
            }
            // 8 tracked peers and the overflow key, 3 full lines each.
            assert_eq!(admitted, 9 * 3);
            assert_eq!(limiter.suppressed(), 10_000 * 5 - 27);
            assert_eq!(limiter.report_all(), 9);
        });
        assert_eq!(lines.len(), 9, "{lines:?}");
        let overflow = lines
            .iter()
            .find(|l| l.contains("from other sources"))
            .expect("an overflow summary");
        let folded = (10_000 - 8) * 5 - 3;
        assert!(
            overflow.contains(&format!(
                "{folded} more malformed requests from other sources"
            )),
            "{overflow}"
        );
        assert_eq!(limiter.suppressed(), 0);
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_keys_make_room_for_new_subjects() {
        let limiter = limiter(1, 2);
        assert!(limiter.admit("malformed requests", "a"));
        assert!(limiter.admit("malformed requests", "b"));
        // Full: a third subject is folded.
        assert!(limiter.admit("malformed requests", "c"));
        assert!(!limiter.admit("malformed requests", "d"));
        tokio::time::advance(Duration::from_secs(60)).await;
        // a and b were quiet for an interval: a new subject gets its own key again.
        assert!(limiter.admit("malformed requests", "e"));
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn run_reports_on_its_timer_and_everything_at_shutdown() {
        let limiter = Arc::new(limiter(1, 16));
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(Arc::clone(&limiter).run(shutdown.clone()));
        for _ in 0..4 {
            limiter.admit("malformed requests", "a");
        }
        assert_eq!(limiter.suppressed(), 3);
        // Paused time jumps to the next timer while every task waits.
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(limiter.suppressed(), 0, "the timer wrote the summary");
        limiter.admit("malformed requests", "a");
        assert_eq!(limiter.suppressed(), 1);
        shutdown.cancel();
        runner.await.unwrap();
        assert_eq!(limiter.suppressed(), 0, "shutdown wrote the pending count");
    }
}
