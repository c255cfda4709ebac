//! `stock-quote-source` at the task level against a server speaking Alpha Vantage's formats.

use std::time::Duration;

use serde_json::json;
use sluice_connector_http::StockQuoteSourceConnector;
use sluice_sdk::schema::{DATE, TIMESTAMP};
use sluice_sdk::{OffsetSnapshot, Props, SchemaType, SourceConnector, Value};

use crate::support::*;

const API_KEY: &str = "test-key";
const WAIT: Duration = Duration::from_secs(10);

fn config(server: &ScriptedServer, symbols: &str, extra: &[(&str, &str)]) -> Props {
    let url = server.url("/query");
    let mut p = props(&[
        ("symbols", symbols),
        ("topic", "quotes"),
        ("api.key", API_KEY),
        ("api.url", &url),
        ("poll.interval.ms", "20"),
        ("requests.per.minute", "0"),
        ("requests.per.day", "0"),
        ("retry.backoff.ms", "10"),
        ("rate.limit.backoff.ms", "300"),
        ("request.timeout.ms", "2000"),
    ]);
    p.extend(props(extra));
    p
}

fn connector() -> StockQuoteSourceConnector {
    StockQuoteSourceConnector::default()
}

#[tokio::test]
async fn a_quote_becomes_a_typed_record_keyed_by_symbol() {
    let server = ScriptedServer::start().await;
    server.require_api_key(API_KEY);
    server.script(
        "IBM",
        [global_quote("IBM", "2024-01-19", "145.8600", 3_211_235)],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM", &[]),
        OffsetSnapshot::default(),
    )
    .await;

    let before = chrono::Utc::now().timestamp_millis();
    let records = task.poll().await.unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.topic, "quotes");
    assert_eq!(key(r), "IBM");
    assert_eq!(r.key_schema.as_ref().unwrap().ty, SchemaType::String);
    let schema = r.value_schema.as_ref().unwrap();
    assert_eq!(schema.name.as_deref(), Some("sluice.stock.GlobalQuote"));
    for price in [
        "open",
        "high",
        "low",
        "price",
        "previous_close",
        "change",
        "change_percent",
    ] {
        let field = schema.field(price).unwrap();
        assert_eq!(
            field.schema.logical(),
            Some(sluice_sdk::LogicalType::Decimal { scale: 4 }),
            "{price}"
        );
    }
    assert_eq!(schema.field("volume").unwrap().schema.ty, SchemaType::Int64);
    assert_eq!(
        schema
            .field("latest_trading_day")
            .unwrap()
            .schema
            .name
            .as_deref(),
        Some(DATE)
    );
    assert_eq!(
        schema.field("fetched_at").unwrap().schema.name.as_deref(),
        Some(TIMESTAMP)
    );

    let v = fields(r);
    assert_eq!(v.get("symbol"), Some(&Value::String("IBM".into())));
    assert_eq!(decimal(r, "price"), "145.8600");
    assert_eq!(decimal(r, "open"), "145.0000");
    assert_eq!(decimal(r, "change"), "0.9700");
    assert_eq!(decimal(r, "change_percent"), "0.6695");
    assert_eq!(v.get("volume"), Some(&Value::Int64(3_211_235)));
    assert_eq!(
        v.get("latest_trading_day"),
        Some(&Value::Int32(19_741)),
        "2024-01-19 as days since 1970"
    );
    let fetched_at = v.get("fetched_at").and_then(Value::as_i64).unwrap();
    assert!(fetched_at >= before && fetched_at <= chrono::Utc::now().timestamp_millis());
    assert_eq!(r.timestamp, Some(fetched_at));

    assert_eq!(
        r.source_partition,
        json!({"function": "GLOBAL_QUOTE", "symbol": "IBM"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(
        r.source_offset,
        json!({"latest_trading_day": "2024-01-19", "volume": 3_211_235, "price": "145.8600"})
            .as_object()
            .unwrap()
            .clone()
    );

    let request = &server.received()[0];
    assert_eq!(request.query["function"], "GLOBAL_QUOTE");
    assert_eq!(request.query["symbol"], "IBM");
    assert_eq!(request.query["apikey"], API_KEY);
    assert_eq!(request.query["datatype"], "json");
    assert_eq!(status.current(), None);
}

#[tokio::test]
async fn the_same_quote_polled_again_is_written_once_and_a_change_is_a_new_quote() {
    let server = ScriptedServer::start().await;
    // Market closed: the same answer four times; then a trade on the same day; then the
    // next trading day.
    server.script(
        "IBM",
        [
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
            global_quote("IBM", "2024-01-19", "145.9100", 3_215_000),
            global_quote("IBM", "2024-01-22", "146.0000", 10_000),
        ],
    );
    let (mut task, _) = start_task(
        &mut connector(),
        config(&server, "IBM", &[]),
        OffsetSnapshot::default(),
    )
    .await;

    let mut per_poll = Vec::new();
    for _ in 0..6 {
        per_poll.push(task.poll().await.unwrap());
    }
    let counts: Vec<usize> = per_poll.iter().map(Vec::len).collect();
    assert_eq!(counts, [1, 0, 0, 0, 1, 1]);
    assert_eq!(server.received_for("IBM").len(), 6, "one request per poll");
    assert_eq!(decimal(&per_poll[4][0], "price"), "145.9100");
    assert_eq!(
        fields(&per_poll[5][0]).get("latest_trading_day"),
        Some(&Value::Int32(19_744))
    );
}

#[tokio::test]
async fn an_older_snapshot_served_late_is_not_written() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            global_quote("IBM", "2024-01-19", "145.9100", 3_215_000),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
            global_quote("IBM", "2024-01-18", "144.8900", 4_000_000),
        ],
    );
    let (mut task, _) = start_task(
        &mut connector(),
        config(&server, "IBM", &[]),
        OffsetSnapshot::default(),
    )
    .await;
    assert_eq!(task.poll().await.unwrap().len(), 1);
    assert!(
        task.poll().await.unwrap().is_empty(),
        "less volume on the same day is older"
    );
    assert!(
        task.poll().await.unwrap().is_empty(),
        "an earlier day is older"
    );
}

#[tokio::test]
async fn a_restarted_task_resumes_after_the_last_written_quote() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [global_quote("IBM", "2024-01-19", "145.8600", 3_211_235)],
    );
    server.script(
        "MSFT",
        [global_quote("MSFT", "2024-01-19", "398.6700", 29_272_356)],
    );
    let cfg = config(&server, "IBM,MSFT", &[]);
    let (mut task, _) = start_task(&mut connector(), cfg.clone(), OffsetSnapshot::default()).await;
    let first = task.poll().await.unwrap();
    assert_eq!(first.len(), 2);
    task.stop().await.unwrap();

    // The same quotes after a restart are not written again...
    let (mut task, _) = start_task(&mut connector(), cfg.clone(), offsets_after(&first)).await;
    assert!(task.poll().await.unwrap().is_empty());
    // ...a new one is.
    server.script(
        "IBM",
        [global_quote("IBM", "2024-01-19", "146.0100", 3_300_000)],
    );
    let second = task.poll().await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(key(&second[0]), "IBM");
    task.stop().await.unwrap();

    // A task that only got MSFT's offset written writes IBM again (at-least-once), not MSFT.
    let only_msft: Vec<_> = first.iter().filter(|r| key(r) == "MSFT").cloned().collect();
    let (mut task, _) = start_task(&mut connector(), cfg, offsets_after(&only_msft)).await;
    let third = task.poll().await.unwrap();
    assert_eq!(third.iter().map(key).collect::<Vec<_>>(), ["IBM"]);
}

fn intraday_config(server: &ScriptedServer) -> Props {
    config(
        server,
        "IBM",
        &[("function", "TIME_SERIES_INTRADAY"), ("interval", "5min")],
    )
}

#[tokio::test]
async fn intraday_bars_are_written_oldest_first_and_only_once() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            intraday("IBM", &["2024-01-19 19:45:00", "2024-01-19 19:50:00"]),
            intraday("IBM", &["2024-01-19 19:45:00", "2024-01-19 19:50:00"]),
            intraday(
                "IBM",
                &[
                    "2024-01-19 19:45:00",
                    "2024-01-19 19:50:00",
                    "2024-01-19 19:55:00",
                ],
            ),
        ],
    );
    let (mut task, _) = start_task(
        &mut connector(),
        intraday_config(&server),
        OffsetSnapshot::default(),
    )
    .await;
    let first = task.poll().await.unwrap();
    assert_eq!(first.len(), 2);
    let times: Vec<i64> = first
        .iter()
        .map(|r| fields(r).get("time").and_then(Value::as_i64).unwrap())
        .collect();
    // 19:45 and 19:50 in New York in January are 00:45 and 00:50 UTC the next day.
    assert_eq!(times, [1_705_711_500_000, 1_705_711_800_000]);
    let schema = first[0].value_schema.as_ref().unwrap();
    assert_eq!(schema.name.as_deref(), Some("sluice.stock.IntradayBar"));
    assert_eq!(
        schema.field("time").unwrap().schema.name.as_deref(),
        Some(TIMESTAMP)
    );
    assert_eq!(
        fields(&first[0]).get("interval"),
        Some(&Value::String("5min".into()))
    );
    assert_eq!(fields(&first[0]).get("volume"), Some(&Value::Int64(101)));
    assert_eq!(decimal(&first[0], "close"), "171.4801");
    assert_eq!(first[1].timestamp, Some(1_705_711_800_000));
    assert_eq!(
        first[1].source_offset,
        json!({"bar_time": "2024-01-19 19:50:00", "timestamp": 1_705_711_800_000_i64})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(
        first[0].source_partition,
        json!({"function": "TIME_SERIES_INTRADAY", "interval": "5min", "symbol": "IBM"})
            .as_object()
            .unwrap()
            .clone()
    );

    assert!(task.poll().await.unwrap().is_empty(), "no new bar");
    let third = task.poll().await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].source_offset["bar_time"], "2024-01-19 19:55:00");

    let request = &server.received()[0];
    assert_eq!(request.query["function"], "TIME_SERIES_INTRADAY");
    assert_eq!(request.query["interval"], "5min");
    assert_eq!(request.query["outputsize"], "compact");
}

#[tokio::test]
async fn a_restart_between_bars_neither_repeats_nor_skips() {
    let server = ScriptedServer::start().await;
    let bars = [
        "2024-01-19 19:40:00",
        "2024-01-19 19:45:00",
        "2024-01-19 19:50:00",
    ];
    server.script("IBM", [intraday("IBM", &bars)]);
    let (mut task, _) = start_task(
        &mut connector(),
        intraday_config(&server),
        OffsetSnapshot::default(),
    )
    .await;
    let first = task.poll().await.unwrap();
    assert_eq!(first.len(), 3);
    task.stop().await.unwrap();

    // Only the first two bars were acknowledged before the crash.
    let (mut task, _) = start_task(
        &mut connector(),
        intraday_config(&server),
        offsets_after(&first[..2]),
    )
    .await;
    let again = task.poll().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].source_offset, first[2].source_offset);
    assert_eq!(again[0].value, {
        // Same bar, same data; only fetched_at differs.
        let mut v = fields(&first[2]).clone();
        v.put(
            "fetched_at",
            fields(&again[0]).get("fetched_at").cloned().unwrap(),
        );
        Value::Struct(v)
    });
}

#[tokio::test]
async fn rate_limit_answers_pause_requests_and_emit_nothing() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            rate_limit_note(),
            rate_limit_information(),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
        ],
    );
    server.script(
        "MSFT",
        [global_quote("MSFT", "2024-01-19", "398.6700", 29_272_356)],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM,MSFT", &[]),
        OffsetSnapshot::default(),
    )
    .await;

    assert!(task.poll().await.unwrap().is_empty(), "a Note is not data");
    let problem = status
        .current()
        .expect("the rate limit shows in the status");
    assert!(
        problem.contains("rate limit")
            && problem.contains("5 calls per minute")
            && problem.contains("pausing requests for 300 ms"),
        "{problem}"
    );
    assert!(
        server.received_for("MSFT").is_empty(),
        "the round stops at the rate limit"
    );

    assert!(
        task.poll().await.unwrap().is_empty(),
        "an Information is not data"
    );
    let problem = status.current().unwrap();
    assert!(
        problem.contains("25 requests per day") && problem.contains("pausing requests for 600 ms"),
        "backoff doubles: {problem}"
    );

    let records = task.poll().await.unwrap();
    assert_eq!(records.iter().map(key).collect::<Vec<_>>(), ["IBM", "MSFT"]);
    assert_eq!(status.current(), None, "recovered");

    let asked = server.received_for("IBM");
    assert_eq!(asked.len(), 3);
    assert!(
        asked[1].at - asked[0].at >= Duration::from_millis(300),
        "paused {:?}",
        asked[1].at - asked[0].at
    );
    assert!(
        asked[2].at - asked[1].at >= Duration::from_millis(600),
        "paused {:?}",
        asked[2].at - asked[1].at
    );
}

#[tokio::test]
async fn a_bad_symbol_is_reported_while_the_others_keep_flowing() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
            global_quote("IBM", "2024-01-19", "145.9000", 3_300_000),
        ],
    );
    server.script("XXXX", [invalid_call()]);
    server.script("NOPE", [empty_quote()]);
    server.script(
        "MSFT",
        [global_quote("MSFT", "2024-01-19", "398.6700", 29_272_356)],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM,XXXX,NOPE,MSFT", &[]),
        OffsetSnapshot::default(),
    )
    .await;

    let first = task.poll().await.unwrap();
    assert_eq!(first.iter().map(key).collect::<Vec<_>>(), ["IBM", "MSFT"]);
    let problem = status.current().expect("bad symbols show in the status");
    assert!(
        problem.contains("symbol 'XXXX': Alpha Vantage refused it: \"Invalid API call."),
        "{problem}"
    );
    assert!(
        problem.contains("symbol 'NOPE'") && problem.contains("check that the symbol exists"),
        "{problem}"
    );

    let later = poll_until(task.as_mut(), WAIT, |r| !r.is_empty()).await;
    assert_eq!(later.iter().map(key).collect::<Vec<_>>(), ["IBM"]);
    assert_eq!(decimal(&later[0], "price"), "145.9000");
    assert!(status.current().unwrap().contains("XXXX"), "still reported");

    // A symbol refused again and again is asked less and less often.
    poll_until(task.as_mut(), WAIT, |_| {
        server.received_for("XXXX").len() >= 4
    })
    .await;
    let asked = server.received_for("XXXX");
    assert!(
        asked[2].at - asked[1].at >= Duration::from_millis(40),
        "{:?}",
        asked[2].at - asked[1].at
    );
    assert!(
        asked[3].at - asked[2].at >= Duration::from_millis(80),
        "{:?}",
        asked[3].at - asked[2].at
    );
    // 20 + 40 + 80 ms for XXXX's four requests; IBM, every 20 ms, was asked about seven times.
    let ibm = server.received_for("IBM").len();
    assert!(ibm >= asked.len() + 2, "IBM kept its pace: {ibm} requests");
}

#[tokio::test]
async fn a_refused_api_key_is_reported_for_every_symbol() {
    let server = ScriptedServer::start().await;
    server.require_api_key("the-right-key");
    server.script(
        "IBM",
        [global_quote("IBM", "2024-01-19", "145.8600", 3_211_235)],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM", &[]),
        OffsetSnapshot::default(),
    )
    .await;
    assert!(task.poll().await.unwrap().is_empty());
    let problem = status.current().unwrap();
    assert!(
        problem.contains("the parameter apikey is invalid or missing")
            && problem.contains("check the symbol and api.key"),
        "{problem}"
    );
}

#[tokio::test]
async fn http_errors_and_bodies_cut_short_are_retried_with_backoff() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            Reply::Raw(
                503,
                "<html><body>Service Temporarily Unavailable</body></html>",
            ),
            Reply::Raw(200, "{\"Global Quote\": {\"01. symbol\": \"IB"),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
        ],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM", &[("max.retries", "3")]),
        OffsetSnapshot::default(),
    )
    .await;
    let records = task.poll().await.unwrap();
    assert_eq!(
        records.len(),
        1,
        "the third attempt within the same poll succeeds"
    );
    let asked = server.received_for("IBM");
    assert_eq!(asked.len(), 3);
    assert!(
        asked[1].at - asked[0].at >= Duration::from_millis(10),
        "retries wait retry.backoff.ms"
    );
    assert_eq!(status.current(), None);
}

#[tokio::test]
async fn a_server_still_failing_after_the_retries_is_reported_then_recovers() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            Reply::Raw(502, "Bad Gateway"),
            Reply::Raw(502, "Bad Gateway"),
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
        ],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM", &[("max.retries", "1")]),
        OffsetSnapshot::default(),
    )
    .await;
    assert!(task.poll().await.unwrap().is_empty());
    let problem = status.current().unwrap();
    assert!(
        problem.contains("symbol 'IBM': the server answered HTTP 502 (body: Bad Gateway)"),
        "{problem}"
    );
    assert!(!problem.contains(API_KEY), "the key never shows: {problem}");
    let records = poll_until(task.as_mut(), WAIT, |r| !r.is_empty()).await;
    assert_eq!(records.len(), 1);
    assert_eq!(status.current(), None);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_asked_again() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [
            Reply::Hang,
            global_quote("IBM", "2024-01-19", "145.8600", 3_211_235),
        ],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(
            &server,
            "IBM",
            &[("request.timeout.ms", "200"), ("max.retries", "1")],
        ),
        OffsetSnapshot::default(),
    )
    .await;
    let records = task.poll().await.unwrap();
    assert_eq!(
        records.len(),
        1,
        "the retry after the timeout got the quote"
    );
    let asked = server.received_for("IBM");
    assert_eq!(asked.len(), 2);
    assert!(
        asked[1].at - asked[0].at >= Duration::from_millis(200),
        "waited for the timeout"
    );
    assert_eq!(status.current(), None);

    // Without retries the timeout is reported.
    server.script("MSFT", [Reply::Hang]);
    let (mut task, status) = start_task(
        &mut connector(),
        config(
            &server,
            "MSFT",
            &[("request.timeout.ms", "200"), ("max.retries", "0")],
        ),
        OffsetSnapshot::default(),
    )
    .await;
    assert!(task.poll().await.unwrap().is_empty());
    let problem = status.current().unwrap();
    assert!(
        problem.contains("symbol 'MSFT': no answer within 200 ms"),
        "{problem}"
    );
}

#[tokio::test]
async fn the_day_budget_stops_requests_and_says_so() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [global_quote("IBM", "2024-01-19", "145.8600", 3_211_235)],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(
            &server,
            "IBM",
            &[("requests.per.day", "2"), ("requests.per.minute", "5")],
        ),
        OffsetSnapshot::default(),
    )
    .await;
    task.poll().await.unwrap();
    task.poll().await.unwrap();
    assert_eq!(server.received().len(), 2);
    // The third request would be a day later: the poll waits, showing why.
    let third = tokio::time::timeout(Duration::from_millis(300), task.poll()).await;
    assert!(third.is_err(), "the poll must wait for the budget");
    assert_eq!(server.received().len(), 2, "no request beyond the budget");
    let problem = status.current().unwrap();
    assert!(
        problem
            .contains("request budget: used up (5 per minute, 2 per day); next request in 23h 59m"),
        "{problem}"
    );
}

#[tokio::test]
async fn the_api_key_can_come_from_the_environment() {
    // The only test touching this variable; the others set api.key.
    let server = ScriptedServer::start().await;
    server.require_api_key("key-from-env");
    server.script(
        "IBM",
        [global_quote("IBM", "2024-01-19", "145.8600", 3_211_235)],
    );
    let mut cfg = config(&server, "IBM", &[]);
    cfg.remove("api.key");

    std::env::remove_var("ALPHAVANTAGE_API_KEY");
    let errors = connector().validate(&cfg).await;
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].option, "api.key");
    assert!(
        errors.0[0].message.contains("ALPHAVANTAGE_API_KEY"),
        "{errors}"
    );

    std::env::set_var("ALPHAVANTAGE_API_KEY", "key-from-env");
    let mut c = connector();
    let task_config = task_configs(&mut c, cfg.clone(), 1).await.remove(0);
    assert!(
        !task_config.contains_key("api.key"),
        "a key from the environment is not copied into task configs"
    );
    let (mut task, status) = start_task(&mut c, cfg, OffsetSnapshot::default()).await;
    assert_eq!(
        task.poll().await.unwrap().len(),
        1,
        "{:?}",
        status.current()
    );
    std::env::remove_var("ALPHAVANTAGE_API_KEY");
}

#[tokio::test]
async fn symbols_and_the_budget_are_split_over_tasks() {
    let server = ScriptedServer::start().await;
    let cfg = config(
        &server,
        "IBM,MSFT,AAPL",
        &[("requests.per.minute", "5"), ("requests.per.day", "25")],
    );
    let configs = task_configs(&mut connector(), cfg.clone(), 2).await;
    let view: Vec<(&str, &str, &str)> = configs
        .iter()
        .map(|c| {
            (
                c["symbols"].as_str(),
                c["requests.per.minute"].as_str(),
                c["requests.per.day"].as_str(),
            )
        })
        .collect();
    assert_eq!(view, [("IBM,AAPL", "3", "13"), ("MSFT", "2", "12")]);
    // Never more tasks than requests a minute allows.
    let mut tight = cfg;
    tight.insert("requests.per.minute".into(), "1".into());
    assert_eq!(task_configs(&mut connector(), tight, 3).await.len(), 1);
}

#[tokio::test]
async fn bad_configs_are_rejected_with_the_fix() {
    let server = ScriptedServer::start().await;
    let errors = connector()
        .validate(&config(
            &server,
            "",
            &[
                ("function", "TIME_SERIES_DAILY"),
                ("interval", "10min"),
                ("poll.interval.ms", "0"),
            ],
        ))
        .await
        .to_string();
    assert!(
        errors.contains("option 'symbols' must not be empty"),
        "{errors}"
    );
    assert!(errors.contains("option 'function' must be one of GLOBAL_QUOTE, TIME_SERIES_INTRADAY (got 'TIME_SERIES_DAILY')"), "{errors}");
    assert!(
        errors.contains(
            "option 'interval' must be one of 1min, 5min, 15min, 30min, 60min (got '10min')"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("option 'poll.interval.ms' must be at least 1 (got 0)"),
        "{errors}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_reported_not_emitted() {
    let server = ScriptedServer::start().await;
    server.script(
        "IBM",
        [Reply::Raw(
            200,
            "<html><body>Gateway maintenance</body></html>",
        )],
    );
    server.script(
        "MSFT",
        [global_quote("MSFT", "2024-01-19", "398.6700", 29_272_356)],
    );
    let (mut task, status) = start_task(
        &mut connector(),
        config(&server, "IBM,MSFT", &[("max.retries", "1")]),
        OffsetSnapshot::default(),
    )
    .await;
    let records = task.poll().await.unwrap();
    assert_eq!(records.iter().map(key).collect::<Vec<_>>(), ["MSFT"]);
    assert_eq!(server.received_for("IBM").len(), 2, "retried once");
    let problem = status.current().unwrap();
    assert!(
        problem.contains("symbol 'IBM': the answer is not usable: not JSON")
            && problem.contains("Gateway maintenance"),
        "{problem}"
    );
}
