//! The benchmark table and the rate PostgreSQL itself hands it out at, shared by the
//! connector's bench and the runtime's end-to-end bench (both include this file and
//! `tests/support/pg_server.rs` as modules).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg_server::{PgServer, SUPERUSER};

/// Rows in the table: `BENCH_ROWS`, 1,000,000 by default.
pub(crate) fn row_count() -> u64 {
    std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Creates table `t` with `rows` rows in `db`: a bigint key, text, int, numeric(10,2) and
/// timestamptz, as a typical table of a read model.
pub(crate) fn create(server: &PgServer, db: &str, rows: u64) {
    server.psql(
        db,
        &format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, qty integer NOT NULL,
                             price numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL);
             INSERT INTO t SELECT g, 'item-' || g, g % 100, (g % 1000) / 100.0 + 1,
                    '2024-01-01'::timestamptz + g * interval '1 millisecond'
               FROM generate_series(1, {rows}) g;"
        ),
    );
    server.psql(db, "VACUUM ANALYZE t");
    println!(
        "table: {rows} rows (id bigint, name text, qty int, price numeric(10,2), updated_at timestamptz)"
    );
}

/// Rows per second of `psql -c "COPY t TO STDOUT"`, the best of `runs`.
pub(crate) fn copy_rate(server: &PgServer, db: &str, rows: u64, runs: usize) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        let out = Command::new(server.psql_path())
            .args(["-X", "-q", "-h"])
            .arg(server.socket_dir())
            .args(["-p", &server.port().to_string(), "-U", SUPERUSER, "-d", db])
            .args(["-c", "COPY t TO STDOUT"])
            .stdout(Stdio::piped())
            .output()
            .expect("run psql");
        let elapsed = started.elapsed();
        assert!(out.status.success(), "COPY failed");
        let lines = out.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(lines, rows, "COPY returned every row");
        best = best.min(elapsed);
    }
    rows as f64 / best.as_secs_f64()
}
