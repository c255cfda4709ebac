//! Alpha Vantage's answers, read into quotes, bars or the failure they report.
//!
//! Every answer is HTTP 200 with a JSON body, failures included, so the body decides:
//! `Note` or `Information` is a rate limit (also said for premium-only functions),
//! `Error Message` a refused request (bad symbol, bad key), `{"Global Quote": {}}` an unknown
//! symbol. Numbers arrive as strings (`"145.8600"`, `"0.6695%"`); field names carry a
//! number prefix (`"05. price"`), matched here by the name after it so a renumbering does not
//! break the reader.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{Map, Value as Json};
use sluice_sdk::Decimal;

/// Digits after the point of every price (Alpha Vantage sends four).
pub const PRICE_SCALE: i32 = 4;

/// The zone of intraday bar times when the answer does not name one.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::US::Eastern;

/// What one answer says.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    /// The data asked for.
    Data(T),
    /// `Note` or `Information`: too many requests (or a premium-only request); try later.
    RateLimited(String),
    /// `Error Message`: the request was refused (unknown symbol, bad or missing key).
    Refused(String),
}

/// A `GLOBAL_QUOTE` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalQuote {
    /// `01. symbol`.
    pub symbol: String,
    /// `02. open`.
    pub open: Decimal,
    /// `03. high`.
    pub high: Decimal,
    /// `04. low`.
    pub low: Decimal,
    /// `05. price`: the latest price.
    pub price: Decimal,
    /// `06. volume`: shares traded so far on the trading day.
    pub volume: i64,
    /// `07. latest trading day`.
    pub latest_trading_day: NaiveDate,
    /// `08. previous close`.
    pub previous_close: Decimal,
    /// `09. change` from the previous close.
    pub change: Decimal,
    /// `10. change percent`, without the `%` (`0.6695` for `"0.6695%"`).
    pub change_percent: Decimal,
}

/// One `TIME_SERIES_INTRADAY` bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The bar's start as written, in the answer's time zone (`2024-01-19 19:55:00`).
    pub time_text: String,
    /// The bar's start in milliseconds since the epoch.
    pub time_ms: i64,
    /// `1. open`.
    pub open: Decimal,
    /// `2. high`.
    pub high: Decimal,
    /// `3. low`.
    pub low: Decimal,
    /// `4. close`.
    pub close: Decimal,
    /// `5. volume`.
    pub volume: i64,
}

/// A `TIME_SERIES_INTRADAY` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct IntradaySeries {
    /// `2. Symbol` of the meta data.
    pub symbol: String,
    /// The zone bar times are written in (`6. Time Zone`).
    pub time_zone: Tz,
    /// The bars, oldest first.
    pub bars: Vec<Bar>,
}

/// Reads a `GLOBAL_QUOTE` answer. `Ok(Answer::Refused)` for `{"Global Quote": {}}`.
///
/// # Errors
/// Why the body is neither a quote nor a known failure answer.
pub fn read_global_quote(body: &Json) -> Result<Answer<GlobalQuote>, String> {
    let object = body.as_object().ok_or("the answer is not a JSON object")?;
    if let Some(failure) = read_failure(object) {
        return Ok(failure);
    }
    let quote = object
        .get("Global Quote")
        .and_then(Json::as_object)
        .ok_or_else(|| {
            format!(
                "no \"Global Quote\" object in the answer (keys: {})",
                keys(object)
            )
        })?;
    if quote.is_empty() {
        return Ok(Answer::Refused(
            "no quote for this symbol (\"Global Quote\" is empty): check that the symbol exists"
                .to_string(),
        ));
    }
    let percent = text_field(quote, "change percent")?;
    Ok(Answer::Data(GlobalQuote {
        symbol: text_field(quote, "symbol")?.to_string(),
        open: price_field(quote, "open")?,
        high: price_field(quote, "high")?,
        low: price_field(quote, "low")?,
        price: price_field(quote, "price")?,
        volume: volume_field(quote, "volume")?,
        latest_trading_day: NaiveDate::parse_from_str(
            text_field(quote, "latest trading day")?,
            "%Y-%m-%d",
        )
        .map_err(|e| format!("\"latest trading day\" is not a YYYY-MM-DD date ({e})"))?,
        previous_close: price_field(quote, "previous close")?,
        change: price_field(quote, "change")?,
        change_percent: parse_price(percent.trim().trim_end_matches('%'))
            .ok_or_else(|| format!("\"change percent\" is not a percentage (got '{percent}')"))?,
    }))
}

/// Reads a `TIME_SERIES_INTRADAY` answer.
///
/// # Errors
/// Why the body is neither a series nor a known failure answer.
pub fn read_intraday(body: &Json) -> Result<Answer<IntradaySeries>, String> {
    let object = body.as_object().ok_or("the answer is not a JSON object")?;
    if let Some(failure) = read_failure(object) {
        return Ok(failure);
    }
    let meta = object
        .get("Meta Data")
        .and_then(Json::as_object)
        .ok_or_else(|| {
            format!(
                "no \"Meta Data\" object in the answer (keys: {})",
                keys(object)
            )
        })?;
    let symbol = text_field(meta, "Symbol")?.to_string();
    let time_zone = match find_field(meta, "Time Zone").and_then(Json::as_str) {
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| format!("unknown time zone '{name}' in \"Time Zone\""))?,
        None => DEFAULT_TIME_ZONE,
    };
    let series = object
        .iter()
        .find(|(k, _)| k.starts_with("Time Series"))
        .and_then(|(_, v)| v.as_object())
        .ok_or_else(|| {
            format!(
                "no \"Time Series (...)\" object in the answer (keys: {})",
                keys(object)
            )
        })?;
    let mut bars = Vec::with_capacity(series.len());
    for (time_text, bar) in series {
        let bar = bar
            .as_object()
            .ok_or_else(|| format!("bar {time_text} is not an object"))?;
        let local = NaiveDateTime::parse_from_str(time_text, "%Y-%m-%d %H:%M:%S")
            .map_err(|e| format!("bar time '{time_text}' is not YYYY-MM-DD HH:MM:SS ({e})"))?;
        let time_ms = time_zone
            .from_local_datetime(&local)
            .earliest()
            .ok_or_else(|| format!("bar time '{time_text}' does not exist in {time_zone}"))?
            .timestamp_millis();
        bars.push(Bar {
            time_text: time_text.clone(),
            time_ms,
            open: price_field(bar, "open")?,
            high: price_field(bar, "high")?,
            low: price_field(bar, "low")?,
            close: price_field(bar, "close")?,
            volume: volume_field(bar, "volume")?,
        });
    }
    bars.sort_by_key(|b| b.time_ms);
    Ok(Answer::Data(IntradaySeries {
        symbol,
        time_zone,
        bars,
    }))
}

/// The failure an answer reports, if it is one.
fn read_failure<T>(object: &Map<String, Json>) -> Option<Answer<T>> {
    let text = |key: &str| {
        object.get(key).map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    if let Some(message) = text("Error Message") {
        return Some(Answer::Refused(message));
    }
    text("Note")
        .or_else(|| text("Information"))
        .map(Answer::RateLimited)
}

fn keys(object: &Map<String, Json>) -> String {
    object
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The field whose name is `name` or ends with `. name` (`"05. price"`).
fn find_field<'a>(object: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| {
                k.split_once(". ").is_some_and(|(number, rest)| {
                    rest == name && number.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .map(|(_, v)| v)
    })
}

fn text_field<'a>(object: &'a Map<String, Json>, name: &str) -> Result<&'a str, String> {
    match find_field(object, name) {
        Some(Json::String(s)) => Ok(s),
        Some(other) => Err(format!("\"{name}\" is not a string (got {other})")),
        None => Err(format!("no \"{name}\" field in the answer")),
    }
}

fn parse_price(text: &str) -> Option<Decimal> {
    Decimal::parse(text).map(|d| d.rescale(PRICE_SCALE))
}

fn price_field(object: &Map<String, Json>, name: &str) -> Result<Decimal, String> {
    let text = text_field(object, name)?;
    parse_price(text).ok_or_else(|| format!("\"{name}\" is not a number (got '{text}')"))
}

fn volume_field(object: &Map<String, Json>, name: &str) -> Result<i64, String> {
    let text = text_field(object, name)?;
    text.trim()
        .parse()
        .map_err(|_| format!("\"{name}\" is not a whole number (got '{text}')"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quote_body() -> Json {
        json!({"Global Quote": {
            "01. symbol": "IBM", "02. open": "145.0000", "03. high": "146.2500",
            "04. low": "144.6200", "05. price": "145.8600", "06. volume": "3211235",
            "07. latest trading day": "2024-01-19", "08. previous close": "144.8900",
            "09. change": "0.9700", "10. change percent": "0.6695%"
        }})
    }

    #[test]
    fn a_global_quote_reads_with_exact_types() {
        let Answer::Data(q) = read_global_quote(&quote_body()).unwrap() else {
            panic!("not a quote")
        };
        assert_eq!(q.symbol, "IBM");
        assert_eq!(q.price.to_string(), "145.8600");
        assert_eq!(q.price.scale(), PRICE_SCALE);
        assert_eq!(q.volume, 3_211_235);
        assert_eq!(
            q.latest_trading_day,
            NaiveDate::from_ymd_opt(2024, 1, 19).unwrap()
        );
        assert_eq!(q.change_percent.to_string(), "0.6695");
        assert_eq!(q.previous_close.to_string(), "144.8900");
    }

    #[test]
    fn negative_changes_and_short_prices_keep_their_value() {
        let mut body = quote_body();
        body["Global Quote"]["09. change"] = json!("-1.25");
        body["Global Quote"]["10. change percent"] = json!("-0.8563%");
        let Answer::Data(q) = read_global_quote(&body).unwrap() else {
            panic!()
        };
        assert_eq!(q.change.to_string(), "-1.2500");
        assert_eq!(q.change_percent.to_string(), "-0.8563");
    }

    #[test]
    fn failure_answers_are_recognised() {
        let note = json!({"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day."});
        assert!(
            matches!(read_global_quote(&note), Ok(Answer::RateLimited(m)) if m.contains("5 calls per minute"))
        );
        let info = json!({"Information": "We have detected your API key as ... rate limit is 25 requests per day."});
        assert!(
            matches!(read_intraday(&info), Ok(Answer::RateLimited(m)) if m.contains("25 requests per day"))
        );
        let error = json!({"Error Message": "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for TIME_SERIES_INTRADAY."});
        assert!(
            matches!(read_intraday(&error), Ok(Answer::Refused(m)) if m.starts_with("Invalid API call"))
        );
        assert!(
            matches!(read_global_quote(&json!({"Global Quote": {}})), Ok(Answer::Refused(m)) if m.contains("symbol exists"))
        );
    }

    #[test]
    fn malformed_answers_say_what_is_wrong() {
        let err = read_global_quote(&json!([1, 2])).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
        let err = read_global_quote(&json!({"Something": 1})).unwrap_err();
        assert!(
            err.contains("no \"Global Quote\"") && err.contains("Something"),
            "{err}"
        );
        let mut body = quote_body();
        body["Global Quote"]["05. price"] = json!("n/a");
        let err = read_global_quote(&body).unwrap_err();
        assert_eq!(err, "\"price\" is not a number (got 'n/a')");
        body["Global Quote"]
            .as_object_mut()
            .unwrap()
            .remove("05. price");
        let err = read_global_quote(&body).unwrap_err();
        assert_eq!(err, "no \"price\" field in the answer");
    }

    #[test]
    fn intraday_bars_are_sorted_oldest_first_and_placed_in_their_time_zone() {
        let body = json!({
            "Meta Data": {
                "1. Information": "Intraday (5min) open, high, low, close prices and volume",
                "2. Symbol": "IBM", "3. Last Refreshed": "2024-01-19 19:55:00",
                "4. Interval": "5min", "5. Output Size": "Compact", "6. Time Zone": "US/Eastern"
            },
            "Time Series (5min)": {
                "2024-01-19 19:55:00": {"1. open": "171.4800", "2. high": "171.5000", "3. low": "171.4800", "4. close": "171.5000", "5. volume": "412"},
                "2024-01-19 19:50:00": {"1. open": "171.4500", "2. high": "171.4800", "3. low": "171.4500", "4. close": "171.4800", "5. volume": "96"}
            }
        });
        let Answer::Data(series) = read_intraday(&body).unwrap() else {
            panic!()
        };
        assert_eq!(series.symbol, "IBM");
        assert_eq!(series.time_zone, chrono_tz::US::Eastern);
        let times: Vec<_> = series.bars.iter().map(|b| b.time_text.as_str()).collect();
        assert_eq!(times, ["2024-01-19 19:50:00", "2024-01-19 19:55:00"]);
        // 19:55 in New York in January (EST, UTC-5) is 00:55 UTC the next day.
        assert_eq!(
            series.bars[1].time_ms,
            chrono::DateTime::parse_from_rfc3339("2024-01-20T00:55:00Z")
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(series.bars[1].volume, 412);
        assert_eq!(series.bars[1].close.to_string(), "171.5000");
    }

    #[test]
    fn summer_bars_use_daylight_time() {
        let body = json!({
            "Meta Data": {"2. Symbol": "IBM", "6. Time Zone": "US/Eastern"},
            "Time Series (1min)": {
                "2024-07-01 09:30:00": {"1. open": "1", "2. high": "1", "3. low": "1", "4. close": "1", "5. volume": "1"}
            }
        });
        let Answer::Data(series) = read_intraday(&body).unwrap() else {
            panic!()
        };
        assert_eq!(
            series.bars[0].time_ms,
            chrono::DateTime::parse_from_rfc3339("2024-07-01T13:30:00Z")
                .unwrap()
                .timestamp_millis()
        );
    }
}
