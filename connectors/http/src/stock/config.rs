//! The options of `stock-quote-source`, declared once, and their parsed form.

use std::time::Duration;

use reqwest::Url;
use sluice_sdk::config::ConfigValue;
use sluice_sdk::{
    ConfigDef, ConfigErrors, ConfigKey, ConfigType, Error, Importance, Props, Result, Validator,
};

use crate::client::RetryPolicy;

/// `symbols`: the ticker symbols to poll.
pub const SYMBOLS: &str = "symbols";
/// `topic`: where the quotes go.
pub const TOPIC: &str = "topic";
/// `api.key`: the Alpha Vantage API key.
pub const API_KEY: &str = "api.key";
/// `api.url`: the query endpoint.
pub const API_URL: &str = "api.url";
/// `function`: `GLOBAL_QUOTE` or `TIME_SERIES_INTRADAY`.
pub const FUNCTION: &str = "function";
/// `interval`: the bar length of `TIME_SERIES_INTRADAY`.
pub const INTERVAL: &str = "interval";
/// `outputsize`: how many bars `TIME_SERIES_INTRADAY` returns.
pub const OUTPUT_SIZE: &str = "outputsize";
/// `poll.interval.ms`: how often each symbol is asked for.
pub const POLL_INTERVAL_MS: &str = "poll.interval.ms";
pub use crate::assign::{REQUESTS_PER_DAY, REQUESTS_PER_MINUTE};
/// `request.timeout.ms`: how long one request may take.
pub const REQUEST_TIMEOUT_MS: &str = "request.timeout.ms";
/// `max.retries`: retries of a failed request within one poll.
pub const MAX_RETRIES: &str = "max.retries";
/// `retry.backoff.ms`: the first wait before a retry.
pub const RETRY_BACKOFF_MS: &str = "retry.backoff.ms";
/// `rate.limit.backoff.ms`: the first pause after a rate-limit answer.
pub const RATE_LIMIT_BACKOFF_MS: &str = "rate.limit.backoff.ms";
/// `backoff.max.ms`: the longest pause after repeated rate-limit or error answers.
pub const BACKOFF_MAX_MS: &str = "backoff.max.ms";

/// The environment variable read when `api.key` is not set.
pub const API_KEY_ENV: &str = "ALPHAVANTAGE_API_KEY";
/// The public Alpha Vantage query endpoint.
pub const DEFAULT_API_URL: &str = "https://www.alphavantage.co/query";
/// The Alpha Vantage function names this connector speaks.
pub const GLOBAL_QUOTE: &str = "GLOBAL_QUOTE";
/// See [`GLOBAL_QUOTE`].
pub const TIME_SERIES_INTRADAY: &str = "TIME_SERIES_INTRADAY";
/// The bar lengths Alpha Vantage offers.
pub const INTERVALS: [&str; 5] = ["1min", "5min", "15min", "30min", "60min"];

/// What the connector asks Alpha Vantage for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The latest quote of the trading day (`GLOBAL_QUOTE`).
    GlobalQuote,
    /// Intraday bars (`TIME_SERIES_INTRADAY`).
    Intraday,
}

impl Function {
    /// The API's name of the function.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::GlobalQuote => GLOBAL_QUOTE,
            Self::Intraday => TIME_SERIES_INTRADAY,
        }
    }
}

/// The declared options of `stock-quote-source`.
pub fn config_def() -> ConfigDef {
    let non_negative = Validator::AtLeast(0.0);
    ConfigDef::new()
        .define(
            ConfigKey::new(SYMBOLS, ConfigType::List, Importance::High,
                "Ticker symbols to poll, comma-separated (IBM,MSFT). Each symbol is one source partition; symbols are spread over the tasks.")
                .validator(Validator::NonEmpty)
                .group("Quotes"),
        )
        .define(
            ConfigKey::new(TOPIC, ConfigType::String, Importance::High,
                "Topic the quotes are written to, keyed by symbol.")
                .validator(Validator::NonEmpty)
                .group("Quotes"),
        )
        .define(
            ConfigKey::new(FUNCTION, ConfigType::String, Importance::High,
                "GLOBAL_QUOTE for the latest quote of each symbol (one record each time it changes), TIME_SERIES_INTRADAY for intraday bars (one record per new bar).")
                .default_value(GLOBAL_QUOTE)
                .validator(Validator::one_of(&[GLOBAL_QUOTE, TIME_SERIES_INTRADAY]))
                .group("Quotes"),
        )
        .define(
            ConfigKey::new(INTERVAL, ConfigType::String, Importance::Medium,
                "Bar length for TIME_SERIES_INTRADAY.")
                .default_value("5min")
                .validator(Validator::one_of(&INTERVALS))
                .group("Quotes"),
        )
        .define(
            ConfigKey::new(OUTPUT_SIZE, ConfigType::String, Importance::Low,
                "For TIME_SERIES_INTRADAY: compact (the latest 100 bars) or full (the whole month). Only bars newer than the last one written are emitted either way.")
                .default_value("compact")
                .validator(Validator::one_of(&["compact", "full"]))
                .group("Quotes"),
        )
        .define(
            ConfigKey::new(POLL_INTERVAL_MS, ConfigType::Long, Importance::High,
                "How often each symbol is asked for, in milliseconds. Requests beyond the budget (requests.per.minute, requests.per.day) wait for it.")
                .default_value("60000")
                .validator(Validator::AtLeast(1.0))
                .group("Quotes"),
        )
        .define(
            ConfigKey::new(API_KEY, ConfigType::Password, Importance::High,
                "Alpha Vantage API key. Write \"${env:ALPHAVANTAGE_API_KEY}\" to read it from the environment; when unset the ALPHAVANTAGE_API_KEY environment variable is used.")
                .optional()
                .group("Connection"),
        )
        .define(
            ConfigKey::new(API_URL, ConfigType::String, Importance::Low,
                "The Alpha Vantage query endpoint (change it for a proxy or a test server).")
                .default_value(DEFAULT_API_URL)
                .validator(Validator::custom(check_http_url))
                .group("Connection"),
        )
        .define(
            ConfigKey::new(REQUESTS_PER_MINUTE, ConfigType::Int, Importance::Medium,
                "Request budget: at most this many requests in any 60 seconds, shared by the connector's tasks (0: no limit). The free tier allows 5.")
                .default_value("5")
                .validator(non_negative.clone())
                .group("Limits"),
        )
        .define(
            ConfigKey::new(REQUESTS_PER_DAY, ConfigType::Int, Importance::Medium,
                "Request budget: at most this many requests in any 24 hours, shared by the connector's tasks (0: no limit). The free tier allows 25.")
                .default_value("25")
                .validator(non_negative.clone())
                .group("Limits"),
        )
        .define(
            ConfigKey::new(REQUEST_TIMEOUT_MS, ConfigType::Int, Importance::Low,
                "How long one request may take, connecting included, in milliseconds.")
                .default_value("30000")
                .validator(Validator::AtLeast(1.0))
                .group("Limits"),
        )
        .define(
            ConfigKey::new(MAX_RETRIES, ConfigType::Int, Importance::Low,
                "Retries of a request that timed out, could not connect or got HTTP 408, 429 or 5xx, within one poll. After that the symbol is tried again at its next poll.")
                .default_value("3")
                .validator(non_negative.clone())
                .group("Limits"),
        )
        .define(
            ConfigKey::new(RETRY_BACKOFF_MS, ConfigType::Long, Importance::Low,
                "Wait before the first retry of a failed request, in milliseconds; doubles with each retry.")
                .default_value("1000")
                .validator(non_negative)
                .group("Limits"),
        )
        .define(
            ConfigKey::new(RATE_LIMIT_BACKOFF_MS, ConfigType::Long, Importance::Low,
                "Pause after Alpha Vantage answers with a rate-limit Note or Information, in milliseconds; doubles while the answers go on, up to backoff.max.ms.")
                .default_value("60000")
                .validator(Validator::AtLeast(1.0))
                .group("Limits"),
        )
        .define(
            ConfigKey::new(BACKOFF_MAX_MS, ConfigType::Long, Importance::Low,
                "Longest pause after repeated rate-limit answers, and longest gap between tries of a symbol Alpha Vantage keeps refusing, in milliseconds.")
                .default_value("3600000")
                .validator(Validator::AtLeast(1.0))
                .group("Limits"),
        )
}

/// `stock-quote-source`'s configuration, parsed and checked.
#[derive(Debug, Clone)]
pub struct StockQuoteConfig {
    /// Symbols to poll, in order, without duplicates.
    pub symbols: Vec<String>,
    /// Destination topic.
    pub topic: String,
    /// The API key (from `api.key` or the environment).
    pub api_key: String,
    /// Whether `api.key` was set (else the key came from [`API_KEY_ENV`]).
    pub api_key_configured: bool,
    /// The query endpoint.
    pub api_url: Url,
    /// What to ask for.
    pub function: Function,
    /// Bar length for intraday.
    pub interval: String,
    /// `compact` or `full`.
    pub output_size: String,
    /// How often each symbol is asked for.
    pub poll_interval: Duration,
    /// Budget per minute (0: none).
    pub requests_per_minute: u32,
    /// Budget per day (0: none).
    pub requests_per_day: u32,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of transient failures within a poll.
    pub retry: RetryPolicy,
    /// First pause after a rate-limit answer.
    pub rate_limit_backoff: Duration,
    /// Longest pause.
    pub backoff_max: Duration,
}

impl StockQuoteConfig {
    /// Parses `props`, reporting every bad option at once.
    ///
    /// # Errors
    /// [`Error::Config`] naming each bad option and how to fix it.
    pub fn parse(props: &Props) -> Result<Self> {
        let (config, mut errors) = config_def().parse_lenient(props);
        let mut symbols: Vec<String> = Vec::new();
        for symbol in config.get_list(SYMBOLS) {
            if symbols.contains(&symbol) {
                errors.push(
                    SYMBOLS,
                    format!("lists '{symbol}' twice; list each symbol once"),
                );
            } else {
                symbols.push(symbol);
            }
        }
        let api_key = resolve_api_key(config.get_password(API_KEY).map(|p| p.value()), &mut errors);
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        let function = if config
            .get_str(FUNCTION)
            .unwrap_or(GLOBAL_QUOTE)
            .eq_ignore_ascii_case(TIME_SERIES_INTRADAY)
        {
            Function::Intraday
        } else {
            Function::GlobalQuote
        };
        let ms = |name| Duration::from_millis(config.get_i64(name).unwrap_or(0).max(0) as u64);
        let count =
            |name| u32::try_from(config.get_i64(name).unwrap_or(0).max(0)).unwrap_or(u32::MAX);
        let api_url = Url::parse(config.get_str(API_URL).unwrap_or(DEFAULT_API_URL))
            .map_err(|e| Error::config(API_URL, e.to_string()))?;
        let backoff_max = ms(BACKOFF_MAX_MS);
        Ok(Self {
            symbols,
            topic: config.get_str(TOPIC).unwrap_or_default().to_string(),
            api_key_configured: config
                .get_password(API_KEY)
                .is_some_and(|p| !p.value().trim().is_empty()),
            api_key: api_key.unwrap_or_default(),
            api_url,
            function,
            interval: config
                .get_str(INTERVAL)
                .unwrap_or("5min")
                .to_ascii_lowercase(),
            output_size: config
                .get_str(OUTPUT_SIZE)
                .unwrap_or("compact")
                .to_ascii_lowercase(),
            poll_interval: ms(POLL_INTERVAL_MS),
            requests_per_minute: count(REQUESTS_PER_MINUTE),
            requests_per_day: count(REQUESTS_PER_DAY),
            request_timeout: ms(REQUEST_TIMEOUT_MS),
            retry: RetryPolicy {
                max_retries: count(MAX_RETRIES) as usize,
                backoff: ms(RETRY_BACKOFF_MS),
                max_backoff: backoff_max,
            },
            rate_limit_backoff: ms(RATE_LIMIT_BACKOFF_MS),
            backoff_max,
        })
    }

    /// The checks of [`parse`](Self::parse), as the validate endpoint reports them.
    pub fn check(props: &Props) -> ConfigErrors {
        match Self::parse(props) {
            Ok(_) => ConfigErrors::default(),
            Err(Error::Config(errors)) => errors,
            Err(other) => {
                let mut errors = ConfigErrors::default();
                errors.push(SYMBOLS, other.to_string());
                errors
            }
        }
    }
}

/// The key from `api.key`, else from the environment; an error naming both when neither.
fn resolve_api_key(configured: Option<&str>, errors: &mut ConfigErrors) -> Option<String> {
    if let Some(key) = configured.map(str::trim).filter(|k| !k.is_empty()) {
        return Some(key.to_string());
    }
    match std::env::var(API_KEY_ENV) {
        Ok(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
        _ => {
            errors.push(
                API_KEY,
                format!("is not set and the environment variable {API_KEY_ENV} is empty; set \"{API_KEY}\": \"${{env:{API_KEY_ENV}}}\" and export {API_KEY_ENV} before starting the worker (the key 'demo' works for the symbol IBM only)"),
            );
            None
        }
    }
}

/// Accepts an absolute `http` or `https` URL.
pub(crate) fn check_http_url(value: &ConfigValue) -> std::result::Result<(), String> {
    let text = value.to_string();
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        Ok(_) => Err(format!("must be an http:// or https:// URL (got '{text}')")),
        Err(e) => Err(format!(
            "must be an http:// or https:// URL (got '{text}': {e})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_sdk::config::props;

    #[test]
    fn defaults_follow_the_free_tier() {
        let c = StockQuoteConfig::parse(&props(&[
            (SYMBOLS, "IBM, MSFT"),
            (TOPIC, "quotes"),
            (API_KEY, "k"),
        ]))
        .unwrap();
        assert_eq!(c.symbols, ["IBM", "MSFT"]);
        assert_eq!(c.function, Function::GlobalQuote);
        assert_eq!(c.api_url.as_str(), DEFAULT_API_URL);
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert_eq!((c.requests_per_minute, c.requests_per_day), (5, 25));
        assert!(c.api_key_configured);
    }

    #[test]
    fn bad_options_are_named_with_the_fix() {
        let err = StockQuoteConfig::parse(&props(&[
            (SYMBOLS, "IBM,IBM"),
            (TOPIC, "quotes"),
            (API_KEY, "k"),
            (FUNCTION, "DAILY"),
            (INTERVAL, "2min"),
            (API_URL, "ftp://x"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("option 'symbols' lists 'IBM' twice"), "{err}");
        assert!(
            err.contains(
                "option 'function' must be one of GLOBAL_QUOTE, TIME_SERIES_INTRADAY (got 'DAILY')"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "option 'interval' must be one of 1min, 5min, 15min, 30min, 60min (got '2min')"
            ),
            "{err}"
        );
        assert!(
            err.contains("option 'api.url' must be an http:// or https:// URL"),
            "{err}"
        );
    }

    #[test]
    fn the_key_falls_back_to_the_environment() {
        // One test owns the variable, so parallel tests cannot race on it.
        std::env::remove_var(API_KEY_ENV);
        let base = [(SYMBOLS, "IBM"), (TOPIC, "quotes")];
        let err = StockQuoteConfig::parse(&props(&base))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("option 'api.key' is not set") && err.contains(API_KEY_ENV),
            "{err}"
        );
        assert_eq!(StockQuoteConfig::check(&props(&base)).0[0].option, API_KEY);

        std::env::set_var(API_KEY_ENV, "from-env");
        let c = StockQuoteConfig::parse(&props(&base)).unwrap();
        assert_eq!(c.api_key, "from-env");
        assert!(!c.api_key_configured);
        let mut with_key = props(&base);
        with_key.insert(API_KEY.into(), "from-option".into());
        assert_eq!(
            StockQuoteConfig::parse(&with_key).unwrap().api_key,
            "from-option"
        );
        std::env::remove_var(API_KEY_ENV);
    }

    #[test]
    fn intraday_is_recognised_whatever_the_case() {
        let c = StockQuoteConfig::parse(&props(&[
            (SYMBOLS, "IBM"),
            (TOPIC, "bars"),
            (API_KEY, "k"),
            (FUNCTION, "time_series_intraday"),
            (INTERVAL, "15MIN"),
        ]))
        .unwrap();
        assert_eq!(c.function, Function::Intraday);
        assert_eq!(c.interval, "15min");
    }
}
