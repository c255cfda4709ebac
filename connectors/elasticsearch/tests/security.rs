//! Credentials and TLS. osmem-server has no security layer, so a gateway in front of it
//! answers like Elasticsearch's (401 `security_exception`), and a TLS terminator with a
//! test CA serves https.

use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::SinkTask;

use crate::support::{order_record, start, try_start, Credentials, GatewayServer, TlsTerminator};

fn elastic() -> Credentials {
    Credentials {
        basic: Some(("elastic".into(), "s3cret".into())),
        api_key: None,
    }
}

#[tokio::test]
async fn refused_credentials_fail_the_task_naming_the_options() {
    let server = OsmemServer::start().await;
    let gateway = GatewayServer::start(server.url(), elastic()).await;

    let (err, _) = try_start(
        &gateway.url,
        &[
            ("connection.username", "elastic"),
            ("connection.password", "wrong"),
        ],
        false,
    )
    .await
    .err()
    .expect("wrong password fails the task");
    assert!(!err.is_retriable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(
        text.contains("unable to authenticate user [elastic]"),
        "{text}"
    );
    assert!(
        text.contains("check connection.username and connection.password"),
        "{text}"
    );
    assert!(
        !text.contains("wrong"),
        "the password leaks into the message: {text}"
    );

    let (err, _) = try_start(&gateway.url, &[], false)
        .await
        .err()
        .expect("no credentials fails the task");
    assert!(
        err.to_string()
            .contains("set connection.username and connection.password (or connection.api.key)"),
        "{err}"
    );

    let (err, _) = try_start(&gateway.url, &[("connection.api.key", "id:bad")], false)
        .await
        .err()
        .expect("a bad API key fails the task");
    assert!(
        err.to_string().contains("check connection.api.key"),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_and_api_keys_are_sent() {
    let server = OsmemServer::start().await;
    let gateway = GatewayServer::start(server.url(), elastic()).await;
    let mut h = start(
        &gateway.url,
        &[
            ("connection.username", "elastic"),
            ("connection.password", "s3cret"),
        ],
        false,
    )
    .await;
    h.task
        .put(vec![order_record("orders", 1, "new")])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    assert!(server.document("orders", "1").await.is_some());

    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode("key-id:key-secret");
    let keyed = GatewayServer::start(
        server.url(),
        Credentials {
            basic: None,
            api_key: Some(encoded.clone()),
        },
    )
    .await;
    for (id, form) in [(2, "key-id:key-secret"), (3, encoded.as_str())] {
        let mut h = start(&keyed.url, &[("connection.api.key", form)], false).await;
        h.task
            .put(vec![order_record("orders", id, form)])
            .await
            .unwrap();
        h.task.flush().await.unwrap();
        let doc = server.document("orders", &id.to_string()).await.unwrap();
        assert_eq!(doc["status"], form);
    }
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let server = OsmemServer::start().await;
    let pki = crate::support::test_pki();
    let tls = TlsTerminator::start(&pki, server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{}", tls.addr.port());

    let mut h = start(
        &url,
        &[
            ("elastic.security.protocol", "SSL"),
            (
                "elastic.https.ssl.truststore.location",
                ca.to_str().unwrap(),
            ),
        ],
        false,
    )
    .await;
    h.task
        .put(vec![order_record("orders", 1, "tls")])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    assert_eq!(
        server.document("orders", "1").await.unwrap()["status"],
        "tls"
    );

    // Without the CA the server is not trusted: the task fails and says what to set.
    let (err, _) = try_start(&url, &[], false)
        .await
        .err()
        .expect("an untrusted certificate fails the task");
    let text = err.to_string();
    assert!(!err.is_retriable(), "{text}");
    assert!(
        text.contains("elastic.https.ssl.truststore.location"),
        "{text}"
    );
}
