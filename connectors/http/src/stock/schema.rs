//! The Connect schemas of quote and bar records, and the values that fill them.
//!
//! Prices are Decimals of scale 4 (exact, as Alpha Vantage writes them), volumes int64,
//! instants Timestamps (UTC milliseconds). The trading day of a quote is a Date: it is a
//! calendar day without a time of day, and a Timestamp would have to invent one.

use std::sync::{Arc, LazyLock};

use chrono::NaiveDate;
use sluice_sdk::{Field, Schema, SchemaRef, Struct, Value};

use super::alphavantage::{Bar, GlobalQuote, IntradaySeries, PRICE_SCALE};

/// Name of the quote value schema.
pub const QUOTE_SCHEMA_NAME: &str = "sluice.stock.GlobalQuote";
/// Name of the bar value schema.
pub const BAR_SCHEMA_NAME: &str = "sluice.stock.IntradayBar";

fn price(doc: &str) -> Schema {
    Schema::decimal(PRICE_SCALE).with_doc(doc)
}

/// The key schema: the symbol as a string.
pub static KEY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| Arc::new(Schema::string()));

/// The value schema of a `GLOBAL_QUOTE` record.
pub static QUOTE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(
        Schema::struct_of(vec![
            Field::new("symbol", Schema::string()),
            Field::new("open", price("Opening price of the trading day.")),
            Field::new("high", price("Highest price of the trading day so far.")),
            Field::new("low", price("Lowest price of the trading day so far.")),
            Field::new("price", price("Latest price.")),
            Field::new(
                "volume",
                Schema::int64().with_doc("Shares traded on the trading day so far."),
            ),
            Field::new(
                "latest_trading_day",
                Schema::date().with_doc("The trading day the quote belongs to."),
            ),
            Field::new(
                "previous_close",
                price("Closing price of the trading day before."),
            ),
            Field::new("change", price("price - previous_close.")),
            Field::new(
                "change_percent",
                price("change as a percentage of previous_close (0.6695 means 0.6695%)."),
            ),
            Field::new(
                "fetched_at",
                Schema::timestamp().with_doc("When sluice received the quote."),
            ),
        ])
        .named(QUOTE_SCHEMA_NAME)
        .with_version(1)
        .with_doc("An Alpha Vantage GLOBAL_QUOTE."),
    )
});

/// The value schema of a `TIME_SERIES_INTRADAY` record.
pub static BAR_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(
        Schema::struct_of(vec![
            Field::new("symbol", Schema::string()),
            Field::new(
                "interval",
                Schema::string().with_doc("Bar length (5min...)."),
            ),
            Field::new("time", Schema::timestamp().with_doc("Start of the bar.")),
            Field::new("open", price("First price in the bar.")),
            Field::new("high", price("Highest price in the bar.")),
            Field::new("low", price("Lowest price in the bar.")),
            Field::new("close", price("Last price in the bar.")),
            Field::new(
                "volume",
                Schema::int64().with_doc("Shares traded in the bar."),
            ),
            Field::new(
                "fetched_at",
                Schema::timestamp().with_doc("When sluice received the bar."),
            ),
        ])
        .named(BAR_SCHEMA_NAME)
        .with_version(1)
        .with_doc("One bar of an Alpha Vantage TIME_SERIES_INTRADAY."),
    )
});

/// Days since 1970-01-01, Connect's Date.
fn epoch_days(day: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((day - epoch).num_days()).unwrap_or(i32::MAX)
}

/// The value of a quote record.
pub fn quote_value(quote: &GlobalQuote, fetched_at_ms: i64) -> Value {
    Struct::new()
        .with("symbol", quote.symbol.clone())
        .with("open", quote.open.clone().into_value())
        .with("high", quote.high.clone().into_value())
        .with("low", quote.low.clone().into_value())
        .with("price", quote.price.clone().into_value())
        .with("volume", quote.volume)
        .with("latest_trading_day", epoch_days(quote.latest_trading_day))
        .with("previous_close", quote.previous_close.clone().into_value())
        .with("change", quote.change.clone().into_value())
        .with("change_percent", quote.change_percent.clone().into_value())
        .with("fetched_at", fetched_at_ms)
        .into()
}

/// The value of a bar record.
pub fn bar_value(series: &IntradaySeries, interval: &str, bar: &Bar, fetched_at_ms: i64) -> Value {
    Struct::new()
        .with("symbol", series.symbol.clone())
        .with("interval", interval.to_string())
        .with("time", bar.time_ms)
        .with("open", bar.open.clone().into_value())
        .with("high", bar.high.clone().into_value())
        .with("low", bar.low.clone().into_value())
        .with("close", bar.close.clone().into_value())
        .with("volume", bar.volume)
        .with("fetched_at", fetched_at_ms)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::json::{value_to_json, DecimalFormat};

    #[test]
    fn every_schema_field_gets_a_value_of_its_type() {
        let quote = GlobalQuote {
            symbol: "IBM".into(),
            open: sluice_sdk::Decimal::parse("145.0000").unwrap(),
            high: sluice_sdk::Decimal::parse("146.2500").unwrap(),
            low: sluice_sdk::Decimal::parse("144.6200").unwrap(),
            price: sluice_sdk::Decimal::parse("145.8600").unwrap(),
            volume: 3_211_235,
            latest_trading_day: NaiveDate::from_ymd_opt(2024, 1, 19).unwrap(),
            previous_close: sluice_sdk::Decimal::parse("144.8900").unwrap(),
            change: sluice_sdk::Decimal::parse("0.9700").unwrap(),
            change_percent: sluice_sdk::Decimal::parse("0.6695").unwrap(),
        };
        let value = quote_value(&quote, 1_705_700_000_000);
        let json = value_to_json(Some(&QUOTE_SCHEMA), &value, DecimalFormat::Numeric).unwrap();
        assert_eq!(json["price"], serde_json::json!(145.86));
        assert_eq!(json["volume"], serde_json::json!(3_211_235));
        assert_eq!(json["latest_trading_day"], serde_json::json!(19_741));
        assert_eq!(json["fetched_at"], serde_json::json!(1_705_700_000_000_i64));
        assert_eq!(
            QUOTE_SCHEMA.fields().len(),
            value.as_struct().unwrap().fields().len()
        );
    }
}
