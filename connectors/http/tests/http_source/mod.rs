//! `http-source` at the task level against a local JSON server.

use std::time::Duration;

use serde_json::json;
use sluice_connector_http::HttpSourceConnector;
use sluice_sdk::{OffsetSnapshot, Props, SchemaType, SourceRecord, Value};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);

fn events(items: serde_json::Value) -> Reply {
    Reply::Json(json!({"status": "ok", "data": {"items": items}}))
}

fn config(server: &ScriptedServer, extra: &[(&str, &str)]) -> Props {
    let url = server.url("/v1/${entityName}/events?since=${offset}");
    let mut p = props(&[
        ("url", &url),
        ("entity.names", "alpha,beta"),
        ("topic.name.pattern", "events-${entityName}"),
        (
            "http.request.headers",
            "Authorization: Bearer t0ken|Accept: application/json",
        ),
        ("http.response.data.json.pointer", "/data/items"),
        ("http.offset.json.pointer", "/id"),
        ("http.response.key.json.pointer", "/name"),
        ("http.initial.offset", "0"),
        ("request.interval.ms", "20"),
        ("retry.backoff.ms", "10"),
    ]);
    p.extend(props(extra));
    p
}

fn names(records: &[SourceRecord]) -> Vec<String> {
    records.iter().map(|r| key(r).to_string()).collect()
}

fn map_field<'a>(record: &'a SourceRecord, field: &str) -> Option<&'a Value> {
    let Value::Map(entries) = &record.value else {
        panic!("a schemaless map value: {:?}", record.value)
    };
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(field))
        .map(|(_, v)| v)
}

#[tokio::test]
async fn items_are_emitted_once_in_offset_order_per_entity() {
    let server = ScriptedServer::start().await;
    server.script(
        "/v1/alpha/events",
        [
            events(json!([{"id": 2, "name": "a2", "price": 1.5}, {"id": 1, "name": "a1", "price": 1.25}])),
            events(json!([{"id": 3, "name": "a3"}, {"id": 2, "name": "a2", "price": 1.5}])),
        ],
    );
    server.script(
        "/v1/beta/events",
        [events(json!([{"id": 10, "name": "b10"}]))],
    );
    let (mut task, status) = start_task(
        &mut HttpSourceConnector::default(),
        config(&server, &[]),
        OffsetSnapshot::default(),
    )
    .await;

    let first = task.poll().await.unwrap();
    assert_eq!(names(&first), ["a1", "a2", "b10"]);
    assert_eq!(first[0].topic, "events-alpha");
    assert_eq!(first[2].topic, "events-beta");
    assert_eq!(first[0].key_schema.as_ref().unwrap().ty, SchemaType::String);
    assert!(first[0].value_schema.is_none(), "values are schemaless");
    assert_eq!(map_field(&first[0], "price"), Some(&Value::Float64(1.25)));
    assert_eq!(map_field(&first[0], "id"), Some(&Value::Int64(1)));
    assert_eq!(
        first[1].source_partition,
        json!({"entity": "alpha"}).as_object().unwrap().clone()
    );
    assert_eq!(
        first[1].source_offset,
        json!({"offset": 2}).as_object().unwrap().clone()
    );

    let requests = server.received_for("/v1/alpha/events");
    assert_eq!(
        requests[0].query["since"], "0",
        "http.initial.offset fills ${{offset}} at first"
    );
    assert_eq!(requests[0].headers["authorization"], "Bearer t0ken");
    assert_eq!(requests[0].headers["accept"], "application/json");

    let second = poll_until(task.as_mut(), WAIT, |r| !r.is_empty()).await;
    assert_eq!(names(&second), ["a3"], "a2 was already written");
    let requests = server.received_for("/v1/alpha/events");
    assert_eq!(
        requests[1].query["since"], "2",
        "${{offset}} is the last offset written"
    );
    assert_eq!(status.current(), None);

    // A restart from the written offsets repeats nothing.
    task.stop().await.unwrap();
    let written: Vec<SourceRecord> = first.into_iter().chain(second).collect();
    let (mut task, _) = start_task(
        &mut HttpSourceConnector::default(),
        config(&server, &[]),
        offsets_after(&written),
    )
    .await;
    assert!(task.poll().await.unwrap().is_empty());
    let requests = server.received_for("/v1/alpha/events");
    assert_eq!(requests.last().unwrap().query["since"], "3");
}

#[tokio::test]
async fn without_an_offset_field_a_changed_answer_is_emitted_once() {
    let server = ScriptedServer::start().await;
    let quote = |price: &str| Reply::Json(json!({"symbol": "IBM", "price": price}));
    server.script(
        "/quote/IBM",
        [quote("145.86"), quote("145.86"), quote("146.00")],
    );
    let cfg = props(&[
        ("url", &server.url("/quote/${entityName}")),
        ("entity.names", "IBM"),
        ("topic.name.pattern", "quotes"),
        ("http.response.key.json.pointer", "/symbol"),
        ("request.interval.ms", "20"),
    ]);
    let (mut task, _) = start_task(
        &mut HttpSourceConnector::default(),
        cfg.clone(),
        OffsetSnapshot::default(),
    )
    .await;
    let mut counts = Vec::new();
    let mut all = Vec::new();
    for _ in 0..3 {
        let records = task.poll().await.unwrap();
        counts.push(records.len());
        all.extend(records);
    }
    assert_eq!(counts, [1, 0, 1]);
    assert_eq!(
        map_field(&all[1], "price"),
        Some(&Value::String("146.00".into()))
    );

    // After a restart the last answer is recognised as already written.
    let (mut task, _) = start_task(
        &mut HttpSourceConnector::default(),
        cfg,
        offsets_after(&all),
    )
    .await;
    assert!(task.poll().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_set_resumes_after_the_last_written_record() {
    let server = ScriptedServer::start().await;
    server.script("/all", [Reply::Json(json!([{"n": 1}, {"n": 2}, {"n": 3}]))]);
    let cfg = props(&[
        ("url", &server.url("/all")),
        ("topic.name.pattern", "numbers"),
        ("request.interval.ms", "20"),
    ]);
    let (mut task, _) = start_task(
        &mut HttpSourceConnector::default(),
        cfg.clone(),
        OffsetSnapshot::default(),
    )
    .await;
    let first = task.poll().await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first[0].key.is_null(), "no key pointer, no key");
    assert_eq!(
        first[0].source_partition,
        json!({"url": server.url("/all")})
            .as_object()
            .unwrap()
            .clone()
    );
    task.stop().await.unwrap();

    let (mut task, _) = start_task(
        &mut HttpSourceConnector::default(),
        cfg,
        offsets_after(&first[..1]),
    )
    .await;
    let rest = task.poll().await.unwrap();
    assert_eq!(
        rest.iter()
            .map(|r| map_field(r, "n").cloned().unwrap())
            .collect::<Vec<_>>(),
        [Value::Int64(2), Value::Int64(3)]
    );
}

#[tokio::test]
async fn a_failing_entity_is_reported_while_the_others_keep_flowing() {
    let server = ScriptedServer::start().await;
    server.script(
        "/v1/alpha/events",
        [Reply::Raw(404, "{\"error\": \"no such entity\"}")],
    );
    server.script(
        "/v1/beta/events",
        [
            events(json!([{"id": 1, "name": "b1"}])),
            events(json!([{"id": 2, "name": "b2"}])),
        ],
    );
    let (mut task, status) = start_task(
        &mut HttpSourceConnector::default(),
        config(&server, &[]),
        OffsetSnapshot::default(),
    )
    .await;
    let first = task.poll().await.unwrap();
    assert_eq!(names(&first), ["b1"]);
    let problem = status.current().unwrap();
    assert!(
        problem.contains("entity 'alpha'")
            && problem.contains("HTTP 404")
            && problem.contains("no such entity"),
        "{problem}"
    );
    assert_eq!(
        server.received_for("/v1/alpha/events").len(),
        1,
        "a 404 is not retried within the poll"
    );
    let later = poll_until(task.as_mut(), WAIT, |r| !r.is_empty()).await;
    assert_eq!(names(&later), ["b2"]);
}

#[tokio::test]
async fn answers_without_the_pointed_data_are_reported_not_emitted() {
    let server = ScriptedServer::start().await;
    server.script(
        "/v1/alpha/events",
        [Reply::Json(
            json!({"status": "error", "message": "maintenance"}),
        )],
    );
    server.script("/v1/beta/events", [events(json!([{"name": "no id"}]))]);
    let (mut task, status) = start_task(
        &mut HttpSourceConnector::default(),
        config(&server, &[]),
        OffsetSnapshot::default(),
    )
    .await;
    assert!(task.poll().await.unwrap().is_empty());
    let problem = status.current().unwrap();
    assert!(problem.contains("entity 'alpha': the answer has nothing at http.response.data.json.pointer '/data/items'"), "{problem}");
    assert!(
        problem.contains("entity 'beta': a record has no value at http.offset.json.pointer '/id'"),
        "{problem}"
    );
}

#[tokio::test]
async fn post_requests_carry_the_rendered_body_and_basic_auth() {
    let server = ScriptedServer::start().await;
    server.script(
        "/search",
        [Reply::Json(
            json!({"hits": [{"id": "2024-01-19T10:00:00Z"}]}),
        )],
    );
    let cfg = props(&[
        ("url", &server.url("/search")),
        ("http.request.method", "POST"),
        ("http.request.body", "{\"after\": \"${offset}\"}"),
        ("http.request.parameters", "q=${offset}&size=10"),
        ("auth.type", "BASIC"),
        ("connection.user", "user"),
        ("connection.password", "pass"),
        ("topic.name.pattern", "hits"),
        ("http.response.data.json.pointer", "/hits"),
        ("http.offset.json.pointer", "/id"),
        ("http.initial.offset", "1970-01-01T00:00:00Z"),
    ]);
    let (mut task, status) = start_task(
        &mut HttpSourceConnector::default(),
        cfg,
        OffsetSnapshot::default(),
    )
    .await;
    let records = task.poll().await.unwrap();
    assert_eq!(records.len(), 1, "{:?}", status.current());
    let request = &server.received()[0];
    assert_eq!(request.headers["authorization"], "Basic dXNlcjpwYXNz");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.query["q"], "1970-01-01T00:00:00Z");
    assert_eq!(request.query["size"], "10");
}

#[tokio::test]
async fn entities_and_the_budget_are_split_over_tasks() {
    let server = ScriptedServer::start().await;
    let configs = task_configs(
        &mut HttpSourceConnector::default(),
        config(
            &server,
            &[("entity.names", "a,b,c"), ("requests.per.minute", "10")],
        ),
        2,
    )
    .await;
    let view: Vec<(&str, &str)> = configs
        .iter()
        .map(|c| {
            (
                c["entity.names"].as_str(),
                c["requests.per.minute"].as_str(),
            )
        })
        .collect();
    assert_eq!(view, [("a,c", "5"), ("b", "5")]);
}

#[tokio::test]
async fn the_day_budget_holds_requests_back_and_says_so() {
    let server = ScriptedServer::start().await;
    server.script("/all", [Reply::Json(json!([{"n": 1}]))]);
    let cfg = props(&[
        ("url", &server.url("/all")),
        ("topic.name.pattern", "numbers"),
        ("request.interval.ms", "10"),
        ("requests.per.day", "1"),
    ]);
    let (mut task, status) = start_task(
        &mut HttpSourceConnector::default(),
        cfg,
        OffsetSnapshot::default(),
    )
    .await;
    assert_eq!(task.poll().await.unwrap().len(), 1);
    let second = tokio::time::timeout(Duration::from_millis(300), task.poll()).await;
    assert!(second.is_err(), "the next request waits a day");
    assert_eq!(server.received().len(), 1);
    let problem = status.current().unwrap();
    assert!(
        problem
            .contains("request budget: used up (0 per minute, 1 per day); next request in 23h 59m"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_is_reported() {
    // Accepts the TCP connection and then stays silent, as a firewall holding the connection
    // or a hung server does.
    let silent = sluice_sdk::testing::SilentServer::start().await;
    let cfg = props(&[
        ("url", &format!("http://{}/events", silent.addr())),
        ("topic.name.pattern", "events"),
        ("http.request.timeout.ms", "300"),
        ("max.retries", "1"),
        ("retry.backoff.ms", "10"),
    ]);
    let (mut task, status) = start_task(
        &mut HttpSourceConnector::default(),
        cfg,
        OffsetSnapshot::default(),
    )
    .await;
    let started = std::time::Instant::now();
    // Two attempts of 300 ms each, and a short backoff between them.
    let records = tokio::time::timeout(Duration::from_secs(5), task.poll())
        .await
        .expect("the poll ends at the request deadline")
        .expect("a silent server is an outage, not a task failure");
    let elapsed = started.elapsed();
    assert!(records.is_empty());
    assert!(
        elapsed >= Duration::from_millis(600),
        "both attempts waited for their deadline: {elapsed:?}"
    );
    assert!(silent.accepted() >= 2, "the retry did not reach the server");
    let problem = status
        .current()
        .expect("the silent server is reported in the task status");
    assert!(
        problem.contains(
            "no answer within 300 ms (http.request.timeout.ms); check that the server is up \
             and answers at that address, or raise http.request.timeout.ms"
        ),
        "{problem}"
    );
}
