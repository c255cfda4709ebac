//! Several tables over tasks.max=2, and tables created later are picked up.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use sluice_sdk::{OffsetSnapshot, SourceConnector};
use tokio::time::Instant;

use crate::support::{fresh_database, int, poll_until, props, start_connector, start_tasks, WAIT};

#[tokio::test]
async fn tables_are_split_over_two_tasks_and_new_ones_are_found() {
    let (client, url, _) = fresh_database("tables").await;
    for (name, rows) in [("orders", 300), ("customers", 200), ("products", 100)] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {name} (id serial PRIMARY KEY, label text NOT NULL);
                 INSERT INTO {name} (label) SELECT '{name}-' || g FROM generate_series(1, {rows}) g;"
            ))
            .await
            .unwrap();
    }
    client
        .batch_execute("CREATE TABLE audit_log (id serial PRIMARY KEY, label text)")
        .await
        .unwrap();
    let cfg = props(&[
        ("connection.url", &url),
        ("mode", "incrementing"),
        ("topic.prefix", "db-"),
        ("table.blacklist", "audit_*"),
        ("poll.interval.ms", "100"),
        ("batch.max.rows", "50"),
        ("table.poll.interval.ms", "200"),
    ]);
    let (mut connector, host) = start_connector(&cfg).await;
    let mut tasks = start_tasks(&mut connector, 2, OffsetSnapshot::default()).await;
    assert_eq!(tasks.len(), 2);

    let mut by_topic: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut topics_per_task = Vec::new();
    for running in &mut tasks {
        let tables: Vec<Vec<String>> = serde_json::from_str(&running.config["tables"]).unwrap();
        let expected: usize = tables
            .iter()
            .map(|t| match t[1].as_str() {
                "orders" => 300,
                "customers" => 200,
                _ => 100,
            })
            .sum();
        let mut records = Vec::new();
        poll_until(
            running.task.as_mut(),
            &mut records,
            WAIT,
            "the task's tables",
            |r| r.len() >= expected,
        )
        .await;
        let mut topics = Vec::new();
        for r in &records {
            by_topic
                .entry(r.topic.clone())
                .or_default()
                .push(int(r, "id"));
            if !topics.contains(&r.topic) {
                topics.push(r.topic.clone());
            }
        }
        topics.sort();
        let mut own: Vec<String> = tables.iter().map(|t| format!("db-{}", t[1])).collect();
        own.sort();
        assert_eq!(topics, own, "a task reads only its own tables");
        topics_per_task.push(topics);
    }
    assert_eq!(
        by_topic.len(),
        3,
        "audit_log is blacklisted: {:?}",
        by_topic.keys()
    );
    for (topic, rows) in [
        ("db-orders", 300),
        ("db-customers", 200),
        ("db-products", 100),
    ] {
        assert_eq!(by_topic[topic], (1..=rows).collect::<Vec<i64>>(), "{topic}");
    }

    client
        .batch_execute("CREATE TABLE invoices (id serial PRIMARY KEY, label text NOT NULL)")
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while host.reconfigurations.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "new table not noticed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let configs = connector.task_configs(2).await.unwrap();
    let all: Vec<String> = configs
        .iter()
        .flat_map(|c| serde_json::from_str::<Vec<Vec<String>>>(&c["tables"]).unwrap())
        .map(|t| t[1].clone())
        .collect();
    assert!(all.contains(&"invoices".to_string()), "{all:?}");
    assert_eq!(all.len(), 4);
    connector.stop().await.unwrap();
}
