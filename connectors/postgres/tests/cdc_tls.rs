//! The CDC source over TLS against a real PostgreSQL with `wal_level=logical`, `ssl=on` and a
//! certificate for 127.0.0.1: changes stream with `verify-full` against the right CA, the
//! server reports the replication connection (its walsender) as encrypted, and a wrong CA or
//! a host name the certificate is not for is refused naming the option to change. A server
//! that wants client certificates gets them on both connections.

use std::path::Path;
use std::sync::Arc;

use sluice_connector_postgres::cdc::task::check_replication_connection;
use sluice_connector_postgres::cdc::PostgresCdcConfig;
use sluice_sdk::config::Props;
use sluice_sdk::OffsetSnapshot;

use crate::cdc::{op, poll_committing, props_for as props, start_task, validate};
use crate::support::client;
use crate::support::pg_server::{PgServer, SUPERUSER};
use crate::tls::{make_certificates, openssl};

fn parse(config: &Props) -> PostgresCdcConfig {
    PostgresCdcConfig::parse(config).unwrap_or_else(|e| panic!("config refused: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_stream_over_verified_tls_and_a_wrong_ca_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let settings = [
        "wal_level=logical".to_string(),
        "max_replication_slots=4".to_string(),
        "max_wal_senders=8".to_string(),
        "ssl=on".to_string(),
        format!(
            "ssl_cert_file={}",
            certs.path().join("server.crt").display()
        ),
        format!("ssl_key_file={}", certs.path().join("server.key").display()),
    ];
    let server = Arc::new(
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
            PgServer::start_with(&refs)
        })
        .await
        .unwrap(),
    );
    let db = tokio::task::spawn_blocking({
        let server = server.clone();
        move || server.create_database("cdc_tls")
    })
    .await
    .unwrap();
    let c = client(&server.url(&db)).await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO items SELECT g, 0 FROM generate_series(1, 3) g;",
    )
    .await
    .unwrap();
    let ca = certs.path().join("ca.crt").display().to_string();

    // verify-full against the CA that signed the server's certificate: checked, then streams.
    let config = props(
        &server,
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &ca),
        ],
    );
    let problems = validate(&config).await;
    assert!(problems.is_empty(), "{problems}");
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_committing(task.as_mut(), &mut records, "the snapshot", |r| {
        r.iter().filter(|r| op(r) == "r").count() == 3
    })
    .await;
    c.batch_execute(
        "INSERT INTO items VALUES (4, 0); UPDATE items SET v = 1 WHERE id = 1;
         DELETE FROM items WHERE id = 2;",
    )
    .await
    .unwrap();
    poll_committing(task.as_mut(), &mut records, "the streamed changes", |r| {
        ["c", "u", "d"]
            .iter()
            .all(|wanted| r.iter().any(|r| op(r) == *wanted))
    })
    .await;

    // The server's view: the walsender of the connector's replication session is encrypted,
    // and so is its query connection.
    let application = format!("sluice-cdc-slot_{db}");
    let walsenders = c
        .query(
            "SELECT s.ssl, a.backend_type FROM pg_stat_replication r \
             JOIN pg_stat_ssl s ON s.pid = r.pid JOIN pg_stat_activity a ON a.pid = r.pid \
             WHERE r.application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    assert_eq!(walsenders.len(), 1, "no walsender named {application}");
    assert!(
        walsenders[0].get::<_, bool>(0),
        "replication connection is not encrypted"
    );
    assert_eq!(walsenders[0].get::<_, String>(1), "walsender");
    let queries: Vec<bool> = c
        .query(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
             WHERE a.application_name = 'sluice' AND a.datname = $1",
            &[&db],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !queries.is_empty() && queries.iter().all(|ssl| *ssl),
        "query connections' ssl: {queries:?}"
    );
    task.stop().await.unwrap();

    // A CA that did not sign the server's certificate: refused by both connections, naming
    // database.sslrootcert.
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path());
    let wrong = other.path().join("ca.crt").display().to_string();
    let config = props(
        &server,
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &wrong),
        ],
    );
    let problems = validate(&config).await;
    assert!(
        problems.starts_with("option 'database.sslrootcert'")
            && problems.contains("not signed by a CA in database.sslrootcert"),
        "{problems}"
    );
    let refused = check_replication_connection(&parse(&config))
        .await
        .unwrap_err();
    assert_eq!(refused.option, "database.sslrootcert", "{refused}");
    assert!(
        refused.message.contains("replication connection")
            && refused.message.contains(&wrong)
            && refused.message.contains("database.sslmode=require"),
        "{refused}"
    );

    // The certificate is for 127.0.0.1, not "localhost": verify-ca accepts it (the CA is
    // right), verify-full refuses it naming database.hostname.
    let by_name = |mode: &'static str| {
        props(
            &server,
            &db,
            &[
                ("database.hostname", "localhost"),
                ("database.sslmode", mode),
                ("database.sslrootcert", &ca),
            ],
        )
    };
    check_replication_connection(&parse(&by_name("verify-ca")))
        .await
        .unwrap_or_else(|e| panic!("verify-ca refused a certificate from the right CA: {e}"));
    let refused = check_replication_connection(&parse(&by_name("verify-full")))
        .await
        .unwrap_err();
    assert_eq!(refused.option, "database.hostname", "{refused}");
    assert!(refused.message.contains("not for 'localhost'"), "{refused}");
    let problems = validate(&by_name("verify-full")).await;
    assert!(
        problems.starts_with("option 'database.hostname'"),
        "{problems}"
    );
    drop(c);
    drop(server);
}

/// A client certificate for `user` signed by the CA in `dir` (`client.crt`, `client.key`).
fn make_client_certificate(dir: &Path, user: &str) {
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={user}"),
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ],
        dir,
    );
    // Extensions make it an X.509 v3 certificate; rustls refuses v1.
    std::fs::write(
        dir.join("client.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-extfile",
            "client.cnf",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "client.crt",
        ],
        dir,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_wants_client_certificates_gets_them_on_both_connections() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    make_client_certificate(certs.path(), SUPERUSER);
    // TCP only with TLS and a client certificate issued to the user ('cert' authentication),
    // for queries and replication alike; the unix socket (test set-up) stays open.
    let hba = certs.path().join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 cert\n\
         hostssl replication all 127.0.0.1/32 cert\n",
    )
    .unwrap();
    let settings = [
        "wal_level=logical".to_string(),
        "max_replication_slots=4".to_string(),
        "max_wal_senders=8".to_string(),
        "ssl=on".to_string(),
        format!(
            "ssl_cert_file={}",
            certs.path().join("server.crt").display()
        ),
        format!("ssl_key_file={}", certs.path().join("server.key").display()),
        format!("ssl_ca_file={}", certs.path().join("ca.crt").display()),
        format!("hba_file={}", hba.display()),
    ];
    let server = Arc::new(
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
            PgServer::start_with(&refs)
        })
        .await
        .unwrap(),
    );
    let psql = |db: &str, sql: &str| {
        let server = server.clone();
        let (db, sql) = (db.to_string(), sql.to_string());
        async move {
            tokio::task::spawn_blocking(move || server.psql(&db, &sql))
                .await
                .unwrap()
        }
    };
    let db = tokio::task::spawn_blocking({
        let server = server.clone();
        move || server.create_database("cdc_mtls")
    })
    .await
    .unwrap();
    psql(
        &db,
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL); \
         INSERT INTO items VALUES (1, 0), (2, 0);",
    )
    .await;
    let path = |name: &str| certs.path().join(name).display().to_string();
    let (ca, cert, key) = (path("ca.crt"), path("client.crt"), path("client.key"));

    // Without a client certificate: refused, naming database.sslcert.
    let without = props(
        &server,
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &ca),
        ],
    );
    let problems = validate(&without).await;
    assert!(
        problems.starts_with("option 'database.sslcert'") && problems.contains("database.sslkey"),
        "{problems}"
    );
    let refused = check_replication_connection(&parse(&without))
        .await
        .unwrap_err();
    assert_eq!(refused.option, "database.sslcert", "{refused}");

    // With it: checked, then the snapshot and a streamed change; the server saw the
    // certificate on the walsender's connection.
    let config = props(
        &server,
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &ca),
            ("database.sslcert", &cert),
            ("database.sslkey", &key),
        ],
    );
    let problems = validate(&config).await;
    assert!(problems.is_empty(), "{problems}");
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_committing(task.as_mut(), &mut records, "the snapshot", |r| {
        r.iter().filter(|r| op(r) == "r").count() == 2
    })
    .await;
    psql(&db, "INSERT INTO items VALUES (3, 0)").await;
    poll_committing(task.as_mut(), &mut records, "the insert", |r| {
        r.iter().any(|r| op(r) == "c")
    })
    .await;
    let seen = psql(
        &db,
        &format!(
            "SELECT s.ssl, s.client_dn FROM pg_stat_replication r \
             JOIN pg_stat_ssl s ON s.pid = r.pid WHERE r.application_name = 'sluice-cdc-slot_{db}'"
        ),
    )
    .await;
    assert_eq!(seen.trim(), format!("t|/CN={SUPERUSER}"), "walsender's TLS");
    task.stop().await.unwrap();
    drop(server);
}
