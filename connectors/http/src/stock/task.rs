//! The stock-quote task: polls its symbols, emits what is new, backs off from failures.
//!
//! # What counts as new
//! - `GLOBAL_QUOTE`: a quote is identified by its trading day, its volume and its price.
//!   Outside market hours Alpha Vantage returns the same quote on every poll: it is written
//!   once. During the day every change of volume or price is a new quote, so several quotes
//!   per symbol and day are normal. A quote of an earlier trading day than the last one
//!   written, or of the same day with a smaller volume, is an older snapshot (a cache
//!   answering late) and is skipped.
//! - `TIME_SERIES_INTRADAY`: a bar is identified by its start time; bars newer than the last
//!   one written are emitted oldest first. A revision of a bar already written is not sent
//!   again. A task starting with no offset emits every bar of the answer (the latest 100 with
//!   `outputsize=compact`).
//!
//! The offset of each record is that identity, so after a restart the task resumes exactly
//! after the last record Kafka acknowledged: nothing is skipped, nothing written twice
//! unless the runtime's at-least-once delivery re-sends it.
//!
//! # Failures
//! Nothing is ever emitted for a failure answer. A rate-limit answer (`Note`,
//! `Information`) pauses every request of the task for `rate.limit.backoff.ms`, doubling
//! while it goes on, up to `backoff.max.ms`. A refused request (`Error Message`, an empty
//! `Global Quote`) or an unusable answer holds back that symbol only: it is tried again after
//! `poll.interval.ms`, doubling while it keeps failing, while the other symbols keep
//! flowing. Timeouts, connection failures and HTTP 408/429/5xx are retried within the poll
//! (`max.retries`, `retry.backoff.ms`). Every current problem shows in the task's status.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{json, Map, Value as Json};
use sluice_sdk::{Error, Result, SourcePartition, SourceRecord, SourceTask, SourceTaskContext};
use tokio::time::Instant;

use super::alphavantage::{read_global_quote, read_intraday, Answer, GlobalQuote, IntradaySeries};
use super::config::{Function, StockQuoteConfig, REQUEST_TIMEOUT_MS};
use super::schema::{bar_value, quote_value, BAR_SCHEMA, KEY_SCHEMA, QUOTE_SCHEMA};
use crate::budget::RequestBudget;
use crate::budget::WAIT_WORTH_REPORTING as BUDGET_WAIT_WORTH_REPORTING;
use crate::client::{HttpClient, RequestSpec};
use crate::problems::{ProblemBoard, BUDGET_SUBJECT};
use crate::timing::{doubled, human_duration};

/// Source partition field: the symbol.
pub const PARTITION_SYMBOL: &str = "symbol";
/// Source partition field: the Alpha Vantage function.
pub const PARTITION_FUNCTION: &str = "function";
/// Source partition field: the bar length (intraday only).
pub const PARTITION_INTERVAL: &str = "interval";
/// Offset field of a quote: its trading day (`YYYY-MM-DD`).
pub const OFFSET_TRADING_DAY: &str = "latest_trading_day";
/// Offset field of a quote: its volume.
pub const OFFSET_VOLUME: &str = "volume";
/// Offset field of a quote: its price as written.
pub const OFFSET_PRICE: &str = "price";
/// Offset field of a bar: its start as written, in the answer's time zone.
pub const OFFSET_BAR_TIME: &str = "bar_time";
/// Offset field of a bar: its start in milliseconds since the epoch.
pub const OFFSET_TIMESTAMP: &str = "timestamp";

const RATE_LIMIT_SUBJECT: &str = "rate limit";
/// The last quote or bar written for a symbol.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Quote {
        day: NaiveDate,
        volume: i64,
        price: String,
    },
    Bar {
        time_ms: i64,
    },
}

impl Seen {
    fn from_offset(offset: &Map<String, Json>) -> Option<Self> {
        if let Some(time_ms) = offset.get(OFFSET_TIMESTAMP).and_then(Json::as_i64) {
            return Some(Self::Bar { time_ms });
        }
        Some(Self::Quote {
            day: NaiveDate::parse_from_str(offset.get(OFFSET_TRADING_DAY)?.as_str()?, "%Y-%m-%d")
                .ok()?,
            volume: offset.get(OFFSET_VOLUME)?.as_i64()?,
            price: offset.get(OFFSET_PRICE)?.as_str()?.to_string(),
        })
    }
}

/// Whether `quote` is new after `last` (see the module docs).
fn quote_is_new(last: Option<&Seen>, quote: &GlobalQuote) -> bool {
    let Some(Seen::Quote { day, volume, price }) = last else {
        return true;
    };
    match quote.latest_trading_day.cmp(day) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match quote.volume.cmp(volume) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => quote.price.to_string() != *price,
        },
    }
}

/// One symbol's place in the schedule.
#[derive(Debug)]
struct SymbolState {
    symbol: String,
    subject: String,
    partition: SourcePartition,
    last: Option<Seen>,
    next_due: Instant,
    failures_in_a_row: u32,
}

/// What one request for a symbol gave.
#[derive(Debug)]
enum Outcome {
    Quote(Box<GlobalQuote>, i64),
    Series(IntradaySeries, i64),
    RateLimited(String),
    Refused(String),
    Failed(String),
}

/// A running task's state.
#[derive(Debug)]
struct Running {
    config: StockQuoteConfig,
    connector: String,
    task_id: u32,
    client: HttpClient,
    symbols: Vec<SymbolState>,
    problems: ProblemBoard,
    paused_until: Option<Instant>,
    rate_limits_in_a_row: u32,
}

/// The task of `stock-quote-source`; see the module docs.
#[derive(Debug, Default)]
pub struct StockQuoteSourceTask {
    running: Option<Running>,
}

#[sluice_sdk::async_trait]
impl SourceTask for StockQuoteSourceTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        self.running = Some(Running::new(ctx)?);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let running = self
            .running
            .as_mut()
            .ok_or_else(|| Error::fatal("stock quote task polled before it was started"))?;
        running.wait_until_due().await;
        let due = running.due_symbols();
        let mut outcomes = Vec::with_capacity(due.len());
        for index in due {
            let outcome = running.fetch(index).await;
            let rate_limited = matches!(outcome, Outcome::RateLimited(_));
            outcomes.push((index, outcome));
            if rate_limited {
                // The limit is per key: asking for the other symbols now would fail too.
                break;
            }
        }
        // State changes only here, after the last await: a poll dropped midway changes
        // nothing, and its symbols are asked again.
        let records = running.apply(outcomes);
        running.problems.publish();
        Ok(records)
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(running) = self.running.take() {
            tracing::info!(connector = %running.connector, task = running.task_id, "stock quote task stopped");
        }
        Ok(())
    }
}

/// `{"function": ..., "symbol": ...}` (plus `interval` for intraday).
pub fn source_partition(config: &StockQuoteConfig, symbol: &str) -> SourcePartition {
    let mut partition = Map::new();
    partition.insert(PARTITION_FUNCTION.into(), json!(config.function.api_name()));
    partition.insert(PARTITION_SYMBOL.into(), json!(symbol));
    if config.function == Function::Intraday {
        partition.insert(PARTITION_INTERVAL.into(), json!(config.interval));
    }
    partition
}

fn warn_if_over_day_budget(config: &StockQuoteConfig) {
    if config.requests_per_day == 0 {
        return;
    }
    let per_day =
        config.symbols.len() as u128 * 86_400_000 / config.poll_interval.as_millis().max(1);
    if per_day > u128::from(config.requests_per_day) {
        let enough_ms =
            config.symbols.len() as u128 * 86_400_000 / u128::from(config.requests_per_day);
        tracing::warn!(
            symbols = config.symbols.len(),
            requests_needed_per_day = u64::try_from(per_day).unwrap_or(u64::MAX),
            requests_per_day = config.requests_per_day,
            "polling every symbol each poll.interval.ms needs more requests than requests.per.day allows; \
             polling pauses when the day's budget is spent. Set poll.interval.ms to at least {enough_ms} to spread the budget over the day"
        );
    }
}

impl Running {
    fn new(ctx: SourceTaskContext) -> Result<Self> {
        let config = StockQuoteConfig::parse(&ctx.config)?;
        let budget = Arc::new(RequestBudget::new(
            config.requests_per_minute,
            config.requests_per_day,
        ));
        let client = HttpClient::new(config.request_timeout, REQUEST_TIMEOUT_MS, budget)
            .map_err(|e| Error::fatal(format!("cannot set up the HTTP client: {e}")))?;
        let now = Instant::now();
        let symbols = config
            .symbols
            .iter()
            .map(|symbol| {
                let partition = source_partition(&config, symbol);
                let last = ctx.offset(&partition).and_then(|offset| {
                    let seen = Seen::from_offset(offset);
                    if seen.is_none() {
                        tracing::warn!(symbol = %symbol, offset = %Json::Object(offset.clone()), "stored offset not understood; starting this symbol afresh");
                    }
                    seen
                });
                SymbolState {
                    subject: format!("symbol '{symbol}'"),
                    symbol: symbol.clone(),
                    partition,
                    last,
                    next_due: now,
                    failures_in_a_row: 0,
                }
            })
            .collect();
        warn_if_over_day_budget(&config);
        tracing::info!(
            connector = %ctx.connector,
            task = ctx.task_id,
            symbols = %config.symbols.join(","),
            function = config.function.api_name(),
            poll_interval_ms = u64::try_from(config.poll_interval.as_millis()).unwrap_or(u64::MAX),
            "stock quote task started"
        );
        Ok(Self {
            connector: ctx.connector.clone(),
            task_id: ctx.task_id,
            config,
            client,
            symbols,
            problems: ProblemBoard::new(Arc::new(ctx)),
            paused_until: None,
            rate_limits_in_a_row: 0,
        })
    }

    /// Sleeps until a symbol is due, a rate-limit pause is over and the budget allows a
    /// request; reports a long wait for the budget in the status first.
    async fn wait_until_due(&mut self) {
        let now = Instant::now();
        let due_at = self.symbols.iter().map(|s| s.next_due).min().unwrap_or(now);
        let budget_at = self.client.budget().next_free_at();
        let mut wake = due_at.max(budget_at);
        if let Some(paused) = self.paused_until {
            wake = wake.max(paused);
        }
        if budget_at > due_at + BUDGET_WAIT_WORTH_REPORTING {
            self.problems.set(
                BUDGET_SUBJECT,
                format!(
                    "used up ({} per minute, {} per day); next request in {}",
                    self.config.requests_per_minute,
                    self.config.requests_per_day,
                    human_duration(budget_at - now)
                ),
            );
        } else {
            self.problems.clear(BUDGET_SUBJECT);
        }
        self.problems.publish();
        tokio::time::sleep_until(wake).await;
    }

    /// The symbols due now, the longest waiting first.
    fn due_symbols(&self) -> Vec<usize> {
        let now = Instant::now();
        let mut due: Vec<usize> = (0..self.symbols.len())
            .filter(|&i| self.symbols[i].next_due <= now)
            .collect();
        due.sort_by_key(|&i| self.symbols[i].next_due);
        due
    }

    fn request(&self, symbol: &str) -> RequestSpec {
        let mut url = self.config.api_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("function", self.config.function.api_name());
            query.append_pair("symbol", symbol);
            if self.config.function == Function::Intraday {
                query.append_pair("interval", &self.config.interval);
                query.append_pair("outputsize", &self.config.output_size);
            }
            query.append_pair("datatype", "json");
            query.append_pair("apikey", &self.config.api_key);
        }
        RequestSpec::get(url)
    }

    async fn fetch(&self, index: usize) -> Outcome {
        let symbol = &self.symbols[index].symbol;
        let spec = self.request(symbol);
        let what = format!("{} {symbol}", self.config.function.api_name());
        let body = match self
            .client
            .fetch_json_with_retry(&spec, self.config.retry, &what)
            .await
        {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let fetched_at = chrono::Utc::now().timestamp_millis();
        let answer = match self.config.function {
            Function::GlobalQuote => read_global_quote(&body).map(|a| match a {
                Answer::Data(q) => Outcome::Quote(Box::new(q), fetched_at),
                Answer::RateLimited(m) => Outcome::RateLimited(m),
                Answer::Refused(m) => Outcome::Refused(m),
            }),
            Function::Intraday => read_intraday(&body).map(|a| match a {
                Answer::Data(s) => Outcome::Series(s, fetched_at),
                Answer::RateLimited(m) => Outcome::RateLimited(m),
                Answer::Refused(m) => Outcome::Refused(m),
            }),
        };
        answer
            .unwrap_or_else(|reason| Outcome::Failed(format!("the answer is not usable: {reason}")))
    }

    /// Applies the outcomes of one round, returning the new records.
    fn apply(&mut self, outcomes: Vec<(usize, Outcome)>) -> Vec<SourceRecord> {
        let now = Instant::now();
        let mut records = Vec::new();
        for (index, outcome) in outcomes {
            let answered = matches!(
                outcome,
                Outcome::Quote(..) | Outcome::Series(..) | Outcome::Refused(_)
            );
            if answered && self.rate_limits_in_a_row > 0 {
                self.rate_limits_in_a_row = 0;
                self.paused_until = None;
                self.problems.clear(RATE_LIMIT_SUBJECT);
            }
            match outcome {
                Outcome::Quote(quote, fetched_at) => {
                    self.succeeded(index, now);
                    self.emit_quote(index, *quote, fetched_at, &mut records);
                }
                Outcome::Series(series, fetched_at) => {
                    self.succeeded(index, now);
                    self.emit_bars(index, series, fetched_at, &mut records);
                }
                Outcome::RateLimited(message) => {
                    self.rate_limits_in_a_row += 1;
                    let pause = doubled(
                        self.config.rate_limit_backoff,
                        self.rate_limits_in_a_row,
                        self.config.backoff_max,
                    );
                    self.paused_until = Some(now + pause);
                    self.problems.set(
                        RATE_LIMIT_SUBJECT,
                        format!(
                            "Alpha Vantage asks to slow down (\"{}\"); pausing requests for {}",
                            message.trim(),
                            human_duration(pause)
                        ),
                    );
                }
                Outcome::Refused(message) => {
                    let retry_in = self.failed(index, now);
                    let subject = self.symbols[index].subject.clone();
                    self.problems.set(
                        &subject,
                        format!(
                            "Alpha Vantage refused it: \"{}\"; check the symbol and api.key; trying again in {}",
                            message.trim(),
                            human_duration(retry_in)
                        ),
                    );
                }
                Outcome::Failed(reason) => {
                    let retry_in = self.failed(index, now);
                    let subject = self.symbols[index].subject.clone();
                    self.problems.set(
                        &subject,
                        format!("{reason}; trying again in {}", human_duration(retry_in)),
                    );
                }
            }
        }
        records
    }

    fn succeeded(&mut self, index: usize, now: Instant) {
        let state = &mut self.symbols[index];
        state.failures_in_a_row = 0;
        state.next_due = now + self.config.poll_interval;
        let subject = state.subject.clone();
        self.problems.clear(&subject);
    }

    /// Schedules the next try of a failing symbol; returns the wait.
    fn failed(&mut self, index: usize, now: Instant) -> Duration {
        let state = &mut self.symbols[index];
        state.failures_in_a_row += 1;
        let wait = doubled(
            self.config.poll_interval,
            state.failures_in_a_row,
            self.config.backoff_max,
        );
        state.next_due = now + wait;
        wait
    }

    fn emit_quote(
        &mut self,
        index: usize,
        quote: GlobalQuote,
        fetched_at: i64,
        records: &mut Vec<SourceRecord>,
    ) {
        let state = &mut self.symbols[index];
        if !quote_is_new(state.last.as_ref(), &quote) {
            tracing::debug!(symbol = %state.symbol, day = %quote.latest_trading_day, volume = quote.volume, "quote unchanged");
            return;
        }
        let seen = Seen::Quote {
            day: quote.latest_trading_day,
            volume: quote.volume,
            price: quote.price.to_string(),
        };
        let mut offset = Map::new();
        offset.insert(
            OFFSET_TRADING_DAY.into(),
            json!(quote.latest_trading_day.format("%Y-%m-%d").to_string()),
        );
        offset.insert(OFFSET_VOLUME.into(), json!(quote.volume));
        offset.insert(OFFSET_PRICE.into(), json!(quote.price.to_string()));
        tracing::debug!(symbol = %state.symbol, price = %quote.price, day = %quote.latest_trading_day, "new quote");
        records.push(
            SourceRecord::new(
                state.partition.clone(),
                offset,
                self.config.topic.clone(),
                Some(QUOTE_SCHEMA.clone()),
                quote_value(&quote, fetched_at),
            )
            .with_key(Some(KEY_SCHEMA.clone()), state.symbol.clone().into())
            .with_timestamp(fetched_at),
        );
        state.last = Some(seen);
    }

    fn emit_bars(
        &mut self,
        index: usize,
        series: IntradaySeries,
        fetched_at: i64,
        records: &mut Vec<SourceRecord>,
    ) {
        let state = &mut self.symbols[index];
        let after = match state.last {
            Some(Seen::Bar { time_ms }) => Some(time_ms),
            _ => None,
        };
        let before = records.len();
        for bar in series
            .bars
            .iter()
            .filter(|b| after.is_none_or(|t| b.time_ms > t))
        {
            let mut offset = Map::new();
            offset.insert(OFFSET_BAR_TIME.into(), json!(bar.time_text));
            offset.insert(OFFSET_TIMESTAMP.into(), json!(bar.time_ms));
            records.push(
                SourceRecord::new(
                    state.partition.clone(),
                    offset,
                    self.config.topic.clone(),
                    Some(BAR_SCHEMA.clone()),
                    bar_value(&series, &self.config.interval, bar, fetched_at),
                )
                .with_key(Some(KEY_SCHEMA.clone()), state.symbol.clone().into())
                .with_timestamp(bar.time_ms),
            );
            state.last = Some(Seen::Bar {
                time_ms: bar.time_ms,
            });
        }
        tracing::debug!(symbol = %state.symbol, new_bars = records.len() - before, "intraday series read");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::Decimal;

    fn quote(day: &str, volume: i64, price: &str) -> GlobalQuote {
        let d = |t: &str| Decimal::parse(t).unwrap().rescale(4);
        GlobalQuote {
            symbol: "IBM".into(),
            open: d("1"),
            high: d("1"),
            low: d("1"),
            price: d(price),
            volume,
            latest_trading_day: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
            previous_close: d("1"),
            change: d("0"),
            change_percent: d("0"),
        }
    }

    fn seen(day: &str, volume: i64, price: &str) -> Seen {
        Seen::Quote {
            day: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
            volume,
            price: Decimal::parse(price).unwrap().rescale(4).to_string(),
        }
    }

    #[test]
    fn a_quote_is_new_when_its_day_volume_or_price_moves_forward() {
        let last = seen("2024-01-19", 1000, "145.86");
        assert!(quote_is_new(None, &quote("2024-01-19", 1000, "145.86")));
        assert!(
            !quote_is_new(Some(&last), &quote("2024-01-19", 1000, "145.86")),
            "same quote again"
        );
        assert!(
            !quote_is_new(Some(&last), &quote("2024-01-19", 1000, "145.8600")),
            "same price written longer"
        );
        assert!(
            quote_is_new(Some(&last), &quote("2024-01-19", 1200, "145.86")),
            "more volume"
        );
        assert!(
            quote_is_new(Some(&last), &quote("2024-01-19", 1000, "145.90")),
            "a corrected price"
        );
        assert!(
            quote_is_new(Some(&last), &quote("2024-01-22", 10, "146")),
            "next trading day"
        );
        assert!(
            !quote_is_new(Some(&last), &quote("2024-01-19", 900, "145.00")),
            "an older snapshot"
        );
        assert!(
            !quote_is_new(Some(&last), &quote("2024-01-18", 5000, "140")),
            "an older day"
        );
    }

    #[test]
    fn offsets_read_back_into_what_was_seen() {
        let offset =
            json!({"latest_trading_day": "2024-01-19", "volume": 1000, "price": "145.8600"});
        assert_eq!(
            Seen::from_offset(offset.as_object().unwrap()),
            Some(seen("2024-01-19", 1000, "145.86"))
        );
        let offset = json!({"bar_time": "2024-01-19 19:55:00", "timestamp": 1_705_712_100_000_i64});
        assert_eq!(
            Seen::from_offset(offset.as_object().unwrap()),
            Some(Seen::Bar {
                time_ms: 1_705_712_100_000
            })
        );
        assert_eq!(
            Seen::from_offset(json!({"position": 3}).as_object().unwrap()),
            None
        );
    }

    fn running(pairs: &[(&str, &str)]) -> Running {
        let mut config: sluice_sdk::Props = [
            ("symbols", "IBM,XXXX"),
            ("topic", "quotes"),
            ("api.key", "k"),
            ("api.url", "http://127.0.0.1:9/query"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        config.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let ctx = SourceTaskContext::new(
            "c",
            0,
            config,
            Arc::new(sluice_sdk::OffsetSnapshot::default()),
            Arc::new(sluice_sdk::connector::NoStatusReporter),
        );
        Running::new(ctx).unwrap()
    }

    /// How long `wait_until_due` sleeps from now (paused clock).
    async fn wait(running: &mut Running) -> Duration {
        let start = Instant::now();
        running.wait_until_due().await;
        Instant::now() - start
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_pause_everything_doubling_up_to_the_cap() {
        let mut r = running(&[("backoff.max.ms", "300000")]);
        assert_eq!(
            wait(&mut r).await,
            Duration::ZERO,
            "the first poll asks at once"
        );
        let note = || vec![(0, Outcome::RateLimited("5 calls per minute".into()))];
        let mut pauses = Vec::new();
        for _ in 0..5 {
            assert!(r.apply(note()).is_empty());
            pauses.push(wait(&mut r).await.as_secs());
        }
        // rate.limit.backoff.ms defaults to one minute; backoff.max.ms caps it.
        assert_eq!(pauses, [60, 120, 240, 300, 300]);
        assert_eq!(
            r.due_symbols(),
            [0, 1],
            "both symbols wait for the pause, none is dropped"
        );

        let quote = r.apply(vec![(0, Outcome::Refused("Invalid API call".into()))]);
        assert!(quote.is_empty());
        assert_eq!(
            r.rate_limits_in_a_row, 0,
            "an answer that is not a rate limit ends the pause"
        );
        assert!(r.problems.get(RATE_LIMIT_SUBJECT).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_symbol_is_asked_less_and_less_often() {
        let mut r = running(&[
            ("symbols", "XXXX"),
            ("poll.interval.ms", "60000"),
            ("backoff.max.ms", "600000"),
        ]);
        let mut gaps = Vec::new();
        for _ in 0..6 {
            assert_eq!(r.due_symbols(), [0]);
            r.apply(vec![(0, Outcome::Refused("Invalid API call".into()))]);
            gaps.push(wait(&mut r).await.as_secs());
        }
        // poll.interval.ms, doubling, capped at backoff.max.ms.
        assert_eq!(gaps, [60, 120, 240, 480, 600, 600]);
        assert!(r
            .problems
            .get("symbol 'XXXX'")
            .unwrap()
            .contains("Invalid API call"));
        r.apply(vec![(0, Outcome::Failed("HTTP 503".into()))]);
        assert_eq!(
            wait(&mut r).await.as_secs(),
            600,
            "any failure keeps the backoff"
        );
    }
}
