//! Every type of the mapping, NULLs included, keys, and the numeric mappings.

use sluice_sdk::{Decimal, OffsetSnapshot, Schema, SourceRecord, Struct, Value};

use crate::support::{fresh_database, poll_until, props, start_single, WAIT};

async fn read_all(
    url: &str,
    table: &str,
    extra: &[(&str, &str)],
    rows: usize,
) -> Vec<SourceRecord> {
    let mut pairs = vec![
        ("connection.url", url),
        ("mode", "bulk"),
        ("topic.prefix", "t-"),
        ("table.whitelist", table),
        ("poll.interval.ms", "60000"),
    ];
    pairs.extend_from_slice(extra);
    let mut running = start_single(&props(&pairs), OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_until(running.task.as_mut(), &mut records, WAIT, table, |r| {
        r.len() >= rows
    })
    .await;
    running.task.stop().await.unwrap();
    records.sort_by_key(|r| format!("{:?}", r.key));
    records
}

fn schema_of<'a>(r: &'a SourceRecord, name: &str) -> &'a Schema {
    &r.value_schema.as_ref().unwrap().field(name).unwrap().schema
}

fn get<'a>(r: &'a SourceRecord, name: &str) -> &'a Value {
    r.value.as_struct().unwrap().get(name).unwrap()
}

#[tokio::test]
async fn every_type_maps_and_nulls_are_kept() {
    let (client, url, _) = fresh_database("types").await;
    client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
             CREATE TABLE all_types (
               id integer PRIMARY KEY,
               c_smallint smallint, c_integer integer, c_bigint bigint,
               c_real real, c_double double precision,
               c_numeric numeric(12,3), c_numeric_free numeric,
               c_boolean boolean, c_text text, c_varchar varchar(20), c_char char(5), c_qchar \"char\",
               c_bytea bytea, c_date date, c_time time, c_timetz timetz,
               c_timestamp timestamp, c_timestamptz timestamptz,
               c_uuid uuid, c_json json, c_jsonb jsonb,
               c_int_array integer[], c_text_array text[], c_mood mood, c_mood_array mood[],
               c_interval interval, c_inet inet, c_inet_array inet[], c_oid oid, c_domain positive
             );
             INSERT INTO all_types VALUES (
               1, -32768, 2147483647, -9223372036854775808, 1.5, -2.25,
               -123456789.125, 3.14159265358979323846264338,
               true, 'héllo', 'var', 'ab', 'x',
               '\\x00ff10', '2024-02-29', '13:45:30.250', '10:00:00+02',
               '1969-12-31 23:59:59.999', '2024-02-29 12:00:00+05:30',
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": null}',
               '{1,NULL,3}', '{\"x\",\"y z\"}', 'happy', '{sad,ok}',
               '1 day 02:03:04', '192.168.0.1/24', '{10.0.0.1}', 4000000000, 7
             );
             INSERT INTO all_types (id) VALUES (2);",
        )
        .await
        .unwrap();
    let records = read_all(&url, "all_types", &[], 2).await;
    let (full, nulls) = (&records[0], &records[1]);
    assert_eq!(full.key, Value::Int32(1));

    let expect: Vec<(&str, &str, Option<&str>, Value)> = vec![
        ("c_smallint", "int16", None, Value::Int16(-32768)),
        ("c_integer", "int32", None, Value::Int32(i32::MAX)),
        ("c_bigint", "int64", None, Value::Int64(i64::MIN)),
        ("c_real", "float32", None, Value::Float32(1.5)),
        ("c_double", "float64", None, Value::Float64(-2.25)),
        (
            "c_numeric",
            "bytes",
            Some("org.apache.kafka.connect.data.Decimal"),
            Decimal::parse("-123456789.125").unwrap().into_value(),
        ),
        (
            "c_numeric_free",
            "string",
            None,
            Value::String("3.14159265358979323846264338".into()),
        ),
        ("c_boolean", "boolean", None, Value::Boolean(true)),
        ("c_text", "string", None, Value::String("héllo".into())),
        ("c_varchar", "string", None, Value::String("var".into())),
        ("c_char", "string", None, Value::String("ab   ".into())),
        ("c_qchar", "string", None, Value::String("x".into())),
        (
            "c_bytea",
            "bytes",
            None,
            Value::Bytes(vec![0x00, 0xff, 0x10]),
        ),
        (
            "c_date",
            "int32",
            Some("org.apache.kafka.connect.data.Date"),
            Value::Int32(19782),
        ),
        (
            "c_time",
            "int32",
            Some("org.apache.kafka.connect.data.Time"),
            Value::Int32(49_530_250),
        ),
        (
            "c_timetz",
            "int32",
            Some("org.apache.kafka.connect.data.Time"),
            Value::Int32(28_800_000),
        ),
        (
            "c_timestamp",
            "int64",
            Some("org.apache.kafka.connect.data.Timestamp"),
            Value::Int64(-1),
        ),
        (
            "c_timestamptz",
            "int64",
            Some("org.apache.kafka.connect.data.Timestamp"),
            Value::Int64(1_709_188_200_000),
        ),
        (
            "c_uuid",
            "string",
            None,
            Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        ),
        (
            "c_json",
            "string",
            None,
            Value::String("{\"a\": [1, 2]}".into()),
        ),
        (
            "c_jsonb",
            "string",
            None,
            Value::String("{\"b\": null}".into()),
        ),
        (
            "c_int_array",
            "array",
            None,
            Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)]),
        ),
        (
            "c_text_array",
            "array",
            None,
            Value::Array(vec!["x".into(), "y z".into()]),
        ),
        ("c_mood", "string", None, Value::String("happy".into())),
        (
            "c_mood_array",
            "array",
            None,
            Value::Array(vec!["sad".into(), "ok".into()]),
        ),
        (
            "c_interval",
            "string",
            None,
            Value::String("1 day 02:03:04".into()),
        ),
        (
            "c_inet",
            "string",
            None,
            Value::String("192.168.0.1/24".into()),
        ),
        (
            "c_inet_array",
            "array",
            None,
            Value::Array(vec!["10.0.0.1/32".into()]),
        ),
        ("c_oid", "int64", None, Value::Int64(4_000_000_000)),
        ("c_domain", "int32", None, Value::Int32(7)),
    ];
    for (column, ty, logical, value) in &expect {
        let schema = schema_of(full, column);
        assert_eq!(schema.ty.name(), *ty, "{column} type");
        assert_eq!(schema.name.as_deref(), *logical, "{column} logical type");
        assert!(schema.optional, "{column} is nullable");
        assert_eq!(get(full, column), value, "{column} value");
        assert_eq!(get(nulls, column), &Value::Null, "{column} NULL");
    }
    assert_eq!(schema_of(full, "c_numeric").parameters["scale"], "3");
    assert!(!schema_of(full, "id").optional);
    let sluice_sdk::SchemaType::Array(items) = &schema_of(full, "c_int_array").ty else {
        panic!("array schema")
    };
    assert_eq!(items.ty.name(), "int32");
}

#[tokio::test]
async fn primary_keys_become_record_keys() {
    let (client, url, _) = fresh_database("keys").await;
    client
        .batch_execute(
            "CREATE TABLE lines (order_id int, line_no smallint, sku text NOT NULL,
                                 PRIMARY KEY (line_no, order_id));
             INSERT INTO lines VALUES (10, 1, 'a');
             CREATE TABLE notes (body text);
             INSERT INTO notes VALUES ('n');",
        )
        .await
        .unwrap();
    let lines = read_all(&url, "lines", &[], 1).await;
    // Key fields follow the primary key's column order.
    assert_eq!(
        lines[0].key,
        Value::Struct(
            Struct::new()
                .with("line_no", Value::Int16(1))
                .with("order_id", 10)
        )
    );
    let key_schema = lines[0].key_schema.as_ref().unwrap();
    let names: Vec<&str> = key_schema
        .fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["line_no", "order_id"]);
    assert!(key_schema.fields().iter().all(|f| !f.schema.optional));
    let notes = read_all(&url, "notes", &[], 1).await;
    assert_eq!(notes[0].key, Value::Null);
    assert!(notes[0].key_schema.is_none());
}

#[tokio::test]
async fn numeric_mapping_options() {
    let (client, url, _) = fresh_database("numeric_mapping").await;
    client
        .batch_execute(
            "CREATE TABLE n (id int PRIMARY KEY, small numeric(2,0), whole numeric(9,0),
                             big numeric(18,0), money numeric(5,2), wide numeric(30,5), free numeric);
             INSERT INTO n VALUES (1, 42, 123456789, 123456789012345678, 123.45,
                                   1234567890123456789012345.12345, 0.5);",
        )
        .await
        .unwrap();
    let decimal = |t: &str| Decimal::parse(t).unwrap().into_value();
    type Expected<'a> = Vec<(&'a str, &'a str, Value)>;
    let cases: Vec<(&str, Expected<'_>)> = vec![
        (
            "none",
            vec![
                ("small", "bytes", decimal("42")),
                ("whole", "bytes", decimal("123456789")),
                ("money", "bytes", decimal("123.45")),
                ("wide", "bytes", decimal("1234567890123456789012345.12345")),
                ("free", "string", Value::String("0.5".into())),
            ],
        ),
        (
            "precision_only",
            vec![
                ("small", "int8", Value::Int8(42)),
                ("whole", "int32", Value::Int32(123_456_789)),
                ("big", "int64", Value::Int64(123_456_789_012_345_678)),
                ("money", "bytes", decimal("123.45")),
            ],
        ),
        (
            "best_fit",
            vec![
                ("whole", "int32", Value::Int32(123_456_789)),
                ("money", "float64", Value::Float64(123.45)),
                ("wide", "bytes", decimal("1234567890123456789012345.12345")),
                ("free", "float64", Value::Float64(0.5)),
            ],
        ),
        (
            "best_fit_eager_double",
            vec![
                ("whole", "int32", Value::Int32(123_456_789)),
                ("money", "float64", Value::Float64(123.45)),
                (
                    "wide",
                    "float64",
                    Value::Float64(1_234_567_890_123_456_789_012_345.123_45),
                ),
            ],
        ),
    ];
    for (mapping, expected) in cases {
        let records = read_all(&url, "n", &[("numeric.mapping", mapping)], 1).await;
        for (column, ty, value) in expected {
            assert_eq!(
                schema_of(&records[0], column).ty.name(),
                ty,
                "{mapping} {column}"
            );
            assert_eq!(get(&records[0], column), &value, "{mapping} {column}");
        }
    }
}
