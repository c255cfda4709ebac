//! The worker's REST security and secrets, end to end through a real worker process:
//!
//! - the REST API over https with HTTP basic authentication: 401 with `WWW-Authenticate`
//!   without or with wrong credentials, a plaintext client refused, the whole connector
//!   lifecycle with credentials;
//! - a connector whose API key comes from `${file:...}` runs (the key reaches the stock-quote
//!   API, which refuses any other), while its stored config, its task configs, its status,
//!   the config topic and the worker log never hold the key;
//! - `file.connectors.allowed.paths` refuses a file connector outside the allowed folder,
//!   `..` included, naming the setting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{read_topic, rest_client, WorkerOptions, WorkerProcess};

const SECRET: &str = "s3cret-api-key-5f1e";

/// A CA and a server certificate for 127.0.0.1: (CA PEM, keystore PEM with chain and key).
fn test_pki() -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    (
        ca.pem(),
        format!("{}{}", server.pem(), server_key.serialize_pem()),
    )
}

/// Alpha Vantage's GLOBAL_QUOTE, answering only requests with the secret API key; counts the
/// requests that had it.
async fn start_quote_api(accepted: Arc<Mutex<usize>>) -> String {
    async fn query(
        State(accepted): State<Arc<Mutex<usize>>>,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> Json<Value> {
        if q.get("apikey").map(String::as_str) != Some(SECRET) {
            return Json(
                json!({"Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."}),
            );
        }
        *accepted.lock().unwrap() += 1;
        let symbol = q.get("symbol").cloned().unwrap_or_default();
        Json(json!({"Global Quote": {
            "01. symbol": symbol, "02. open": "145.0000", "03. high": "146.2500",
            "04. low": "144.6200", "05. price": "145.8600", "06. volume": "3211235",
            "07. latest trading day": "2024-01-19", "08. previous close": "144.8900",
            "09. change": "0.9700", "10. change percent": "0.6695%"
        }}))
    }
    let app = axum::Router::new()
        .route("/query", axum::routing::get(query))
        .with_state(accepted);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_basic_auth_and_file_secrets_keep_the_api_key_out_of_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, keystore) = test_pki();
    let keystore_file = dir.path().join("rest-keystore.pem");
    std::fs::write(&keystore_file, keystore).unwrap();
    let users = dir.path().join("users.properties");
    std::fs::write(&users, "# REST users\nadmin=admin-secret\n").unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let creds = secrets.join("quotes.properties");
    std::fs::write(&creds, format!("api.key={SECRET}\n")).unwrap();
    let allowed = dir.path().join("files");
    std::fs::create_dir_all(&allowed).unwrap();

    let accepted = Arc::new(Mutex::new(0));
    let api_url = start_quote_api(accepted.clone()).await;
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .https(ca_pem.clone())
            .basic_auth("admin", "admin-secret")
            .env(
                "SLUICE_LISTENERS_HTTPS_SSL_KEYSTORE_LOCATION",
                keystore_file.to_str().unwrap(),
            )
            .env("SLUICE_REST_BASIC_AUTH_USERS_FILE", users.to_str().unwrap())
            .env("SLUICE_CONFIG_PROVIDERS", "file")
            .env(
                "SLUICE_CONFIG_PROVIDERS_FILE_PARAM_ALLOWED_PATHS",
                secrets.to_str().unwrap(),
            )
            .env(
                "SLUICE_FILE_CONNECTORS_ALLOWED_PATHS",
                allowed.to_str().unwrap(),
            ),
    )
    .await;

    // Without credentials, with a wrong password, with an unknown user: 401 and a challenge.
    for client in [
        rest_client(Some(&ca_pem), None),
        rest_client(
            Some(&ca_pem),
            Some(&("admin".to_string(), "wrong".to_string())),
        ),
        rest_client(
            Some(&ca_pem),
            Some(&("mallory".to_string(), "admin-secret".to_string())),
        ),
    ] {
        for path in ["/connectors", "/", "/ui/", "/metrics"] {
            let resp = client.get(worker.url(path)).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "GET {path}");
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(challenge.starts_with("Basic "), "{challenge}");
        }
    }
    // A plaintext client on the https port gets no answer.
    let plain = reqwest::Client::new()
        .get(worker.url("/connectors").replacen("https://", "http://", 1))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "a plaintext request on the https listener was answered"
    );

    // The connector's API key comes from a properties file.
    let reference = format!("${{file:{}:api.key}}", creds.display());
    let config = json!({
        "connector.class": "stock-quote-source",
        "symbols": "IBM",
        "api.key": reference,
        "api.url": api_url,
        "topic": "quotes",
        "poll.interval.ms": "100",
        "requests.per.minute": "0",
        "requests.per.day": "0",
        "key.converter": "string",
        "value.converter": "json",
        "value.converter.schemas.enable": "false"
    });
    let (status, body) = worker
        .request(
            Method::POST,
            "/connectors",
            Some(&json!({"name": "quotes", "config": config})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(SECRET), "{body}");
    let records = read_topic(&worker.bootstrap(), "quotes", 1, Duration::from_secs(60));
    assert!(
        !records.is_empty(),
        "no quote arrived: the key did not resolve; log:\n{}",
        worker.log()
    );
    assert!(*accepted.lock().unwrap() >= 1);

    let stored = worker.get("/connectors/quotes/config").await;
    assert_eq!(stored["api.key"], reference.as_str());
    let tasks = worker.get("/connectors/quotes/tasks").await;
    assert!(!tasks.as_array().unwrap().is_empty(), "{tasks}");
    let status = worker.get("/connectors/quotes/status").await;
    let expanded = worker.get("/connectors?expand=info&expand=status").await;
    for (what, text) in [
        ("tasks", tasks.to_string()),
        ("status", status.to_string()),
        ("expanded list", expanded.to_string()),
    ] {
        assert!(!text.contains(SECRET), "{what} holds the secret: {text}");
    }
    // The config topic holds the connector and its task configs, with the reference only.
    let config_records = read_topic(
        &worker.bootstrap(),
        "connect-configs",
        2,
        Duration::from_secs(20),
    );
    assert!(
        config_records.len() >= 2,
        "the config topic holds {} records",
        config_records.len()
    );
    for r in &config_records {
        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string();
        assert!(!value.contains(SECRET), "config topic: {value}");
    }

    // The rest of the lifecycle, authenticated.
    for (method, path, expected) in [
        (Method::PUT, "/connectors/quotes/pause", 202),
        (Method::PUT, "/connectors/quotes/resume", 202),
        (
            Method::POST,
            "/connectors/quotes/restart?includeTasks=true",
            202,
        ),
    ] {
        let (status, body) = worker.request(method.clone(), path, None).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
    worker.wait_for_task_state("quotes", 0, "RUNNING").await;

    // File connectors: only inside file.connectors.allowed.paths.
    for outside in [
        "/etc/passwd".to_string(),
        format!("{}/../users.properties", allowed.display()),
    ] {
        let (status, body) = worker
            .request(
                Method::PUT,
                "/connectors/leak/config",
                Some(&json!({"connector.class": "file-source", "file": outside, "topic": "leak"})),
            )
            .await;
        assert_eq!(status, 400, "{outside}: {body}");
        assert!(
            body.to_string().contains("file.connectors.allowed.paths"),
            "{body}"
        );
    }
    let inside = allowed.join("in.txt");
    let (status, body) = worker
        .request(
            Method::PUT,
            "/connectors/lines/config",
            Some(&json!({"connector.class": "file-source", "file": inside, "topic": "lines"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Internal requests: the leader takes task configurations only signed with the group's
    // session key (KIP-507), which its users' credentials do not replace...
    let forged = json!([{"task.class": "forged", "api.key": "x"}]);
    let (status, body) = worker
        .request(Method::POST, "/connectors/quotes/tasks", Some(&forged))
        .await;
    assert_eq!(status, 400, "an unsigned internal request: {body}");
    assert!(body.to_string().contains("signature"), "{body}");
    // ...and a made-up signature gets past basic authentication only to be refused.
    let resp = rest_client(Some(&ca_pem), None)
        .post(worker.url("/connectors/quotes/tasks"))
        .header("X-Connect-Authorization", "bm90IGEgc2lnbmF0dXJl")
        .header("X-Connect-Request-Signature-Algorithm", "HmacSHA256")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let tasks_after = worker.get("/connectors/quotes/tasks").await;
    assert!(!tasks_after.to_string().contains("forged"), "{tasks_after}");

    let (status, _) = worker
        .request(Method::DELETE, "/connectors/quotes", None)
        .await;
    assert_eq!(status, 204);
    assert!(
        !worker.log().contains(SECRET),
        "the worker log holds the secret"
    );
}
