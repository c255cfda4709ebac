//! Bad input: the validate endpoint and the connector's start both name the option and the
//! fix.

use sluice_connector_postgres::PostgresSourceConnector;
use sluice_sdk::config::Props;
use sluice_sdk::{ConnectorContext, Error, SourceConnector};

use crate::support::{fresh_database, props, PgServer, TestHost};

/// Runs validate and start on `config`; both must fail on `option` with every `phrases`.
async fn rejected(config: Props, option: &str, phrases: &[&str]) {
    let connector = PostgresSourceConnector::default();
    let errors = connector.validate(&config).await;
    let found = errors
        .0
        .iter()
        .find(|e| e.option == option)
        .unwrap_or_else(|| panic!("validate did not flag '{option}': {errors}"));
    for phrase in phrases {
        assert!(found.message.contains(phrase), "validate: {found}");
    }
    let mut connector = PostgresSourceConnector::default();
    let host = std::sync::Arc::new(TestHost::default());
    match connector
        .start(ConnectorContext::new("bad", host), config)
        .await
    {
        Err(Error::Config(e)) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("option '{option}'")),
                "start: {text}"
            );
            for phrase in phrases {
                assert!(text.contains(phrase), "start: {text}");
            }
        }
        other => panic!("start should fail with a config error, got {other:?}"),
    }
}

fn base(url: &str) -> Vec<(String, String)> {
    [
        ("connection.url", url),
        ("mode", "timestamp+incrementing"),
        ("topic.prefix", "t-"),
        ("table.whitelist", "events"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "ts"),
        ("connection.attempts", "1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect()
}

fn with(url: &str, changes: &[(&str, &str)]) -> Props {
    let mut p: Props = base(url).into_iter().collect();
    for (k, v) in changes {
        p.insert((*k).to_string(), (*v).to_string());
    }
    p
}

async fn events_db() -> String {
    let (client, _url, db) = fresh_database("bad_input").await;
    client
        .batch_execute(
            "CREATE TABLE events (id integer PRIMARY KEY, ts timestamptz, maybe_id integer, label text)",
        )
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_good_configuration_validates_clean() {
    let db = events_db().await;
    let url = PgServer::shared().jdbc_url(&db);
    let config = with(&url, &[("validate.non.null", "false")]);
    let errors = PostgresSourceConnector::default().validate(&config).await;
    assert!(errors.is_empty(), "{errors}");
}

#[tokio::test]
async fn wrong_url_scheme() {
    rejected(
        props(&[
            ("connection.url", "mysql://localhost/db"),
            ("mode", "bulk"),
            ("topic.prefix", "t"),
        ]),
        "connection.url",
        &["must start with jdbc:postgresql://"],
    )
    .await;
}

#[tokio::test]
async fn unreachable_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("jdbc:postgresql://127.0.0.1:{port}/db?user=u&password=p");
    rejected(
        with(&url, &[]),
        "connection.url",
        &["cannot reach PostgreSQL", "check the host and port"],
    )
    .await;
}

#[tokio::test]
async fn wrong_password() {
    let db = events_db().await;
    let server = PgServer::shared();
    let url = format!("jdbc:postgresql://127.0.0.1:{}/{db}", server.port());
    rejected(
        with(
            &url,
            &[
                ("connection.user", "postgres"),
                ("connection.password", "wrong"),
            ],
        ),
        "connection.password",
        &[
            "password authentication failed",
            "check connection.password",
        ],
    )
    .await;
}

#[tokio::test]
async fn missing_database() {
    let url = PgServer::shared().jdbc_url("no_such_db");
    rejected(
        with(&url, &[]),
        "connection.url",
        &["database 'no_such_db', which does not exist"],
    )
    .await;
}

#[tokio::test]
async fn missing_table() {
    let db = events_db().await;
    let url = PgServer::shared().jdbc_url(&db);
    rejected(
        with(&url, &[("table.whitelist", "events, evnts")]),
        "table.whitelist",
        &[
            "names table 'evnts', which does not exist",
            "correct the name",
        ],
    )
    .await;
}

#[tokio::test]
async fn missing_mode_column() {
    let db = events_db().await;
    let url = PgServer::shared().jdbc_url(&db);
    rejected(
        with(&url, &[("incrementing.column.name", "event_id")]),
        "incrementing.column.name",
        &[
            "names column 'event_id', which table public.events does not have",
            "id, ts, maybe_id, label",
        ],
    )
    .await;
}

#[tokio::test]
async fn nullable_mode_columns_with_validate_non_null() {
    let db = events_db().await;
    let url = PgServer::shared().jdbc_url(&db);
    rejected(
        with(&url, &[]),
        "timestamp.column.name",
        &["nullable", "SET NOT NULL", "validate.non.null=false"],
    )
    .await;
    rejected(
        with(
            &url,
            &[
                ("mode", "incrementing"),
                ("incrementing.column.name", "maybe_id"),
            ],
        ),
        "incrementing.column.name",
        &["'maybe_id' of table public.events, which is nullable"],
    )
    .await;
}

#[tokio::test]
async fn wrong_column_type() {
    let db = events_db().await;
    let url = PgServer::shared().jdbc_url(&db);
    rejected(
        with(
            &url,
            &[
                ("mode", "incrementing"),
                ("incrementing.column.name", "label"),
            ],
        ),
        "incrementing.column.name",
        &["not an integer column"],
    )
    .await;
}

#[tokio::test]
async fn broken_query() {
    let db = events_db().await;
    let url = PgServer::shared().jdbc_url(&db);
    let mut config = with(&url, &[("query", "SELEC id FROM events"), ("mode", "bulk")]);
    config.remove("table.whitelist");
    rejected(
        config,
        "query",
        &["cannot be run by PostgreSQL", "syntax error"],
    )
    .await;
}

#[tokio::test]
async fn bad_option_values() {
    rejected(
        props(&[
            ("connection.url", "postgres://u@h/db"),
            ("mode", "incremental"),
            ("topic.prefix", "t"),
        ]),
        "mode",
        &["must be one of bulk, incrementing, timestamp, timestamp+incrementing (got 'incremental')"],
    )
    .await;
}
