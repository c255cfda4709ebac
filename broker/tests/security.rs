//! Security: TLS and SASL listeners, SCRAM credentials and ACLs, driven by librdkafka (through
//! rdkafka) and by a raw protocol client for what librdkafka hides (the exact refusal, the
//! closed connection). Certificates are made here with rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateAclsRequest, DescribeAclsRequest, MetadataRequest,
    ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request, StrBytes};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sluice_broker::security::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
use sluice_broker::security::scram::{ScramClient, ScramMechanism};
use sluice_broker::{Broker, BrokerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{encode_request, TIMEOUT};

/// A CA, a server certificate for localhost / 127.0.0.1, and client certificates, as PEM files.
pub struct Certs {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    /// Chain and key in one file (`ssl.keystore.location`).
    pub server: PathBuf,
    pub ca_cert: rcgen::Certificate,
    pub ca_key: KeyPair,
    dir: PathBuf,
}

impl Certs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let certs = Self {
            ca,
            server: dir.path().join("server.pem"),
            ca_cert,
            ca_key,
            dir: dir.path().to_owned(),
            _dir: dir,
        };
        let server = certs.server.clone();
        certs.write_server(&server, "localhost");
        certs
    }

    /// A server certificate (chain and key in one file) with common name `cn`.
    pub fn write_server(&self, path: &Path, cn: &str) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// A client certificate and key for subject `CN=<cn>`: (cert, key) paths.
    pub fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Subject `CN=<cn>`: the principal is `User:CN=<cn>`, as Kafka names it.
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let cert_path = self.dir.join(format!("{cn}.crt"));
        let key_path = self.dir.join(format!("{cn}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret";

async fn start(config: BrokerConfig) -> Broker {
    // RUST_LOG=sluice_broker=debug shows principals and ACL decisions when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    Broker::start(config).await.unwrap()
}

fn sasl_ssl(addr: &str, ca: &Path, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("ssl.ca.location", ca.to_str().unwrap())
        .set("message.timeout.ms", "20000")
        .set("log_level", "3");
    c
}

fn ssl(addr: &str, certs: &Certs, client: &(PathBuf, PathBuf)) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", certs.ca.to_str().unwrap())
        .set("ssl.certificate.location", client.0.to_str().unwrap())
        .set("ssl.key.location", client.1.to_str().unwrap())
        .set("message.timeout.ms", "20000")
        .set("log_level", "3");
    c
}

async fn produce(config: &ClientConfig, topic: &str, values: &[&str]) -> Result<(), KafkaError> {
    let producer: FutureProducer = config.create().unwrap();
    for value in values {
        producer
            .send(
                FutureRecord::<(), str>::to(topic).payload(value),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Reads `count` records of partition 0 from the start, or the first error.
async fn consume(
    config: &ClientConfig,
    topic: &str,
    group: &str,
    count: usize,
) -> Result<Vec<String>, KafkaError> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create().unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut out = Vec::new();
        while out.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {count} records arrived",
                out.len()
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned()),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(out)
    })
    .await
    .unwrap()
}

/// One request over any stream, answered or `None` when the broker closed the connection.
async fn exchange<S, R>(stream: &mut S, version: i16, request: &R) -> Option<R::Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Request,
{
    let frame = encode_request(request, version, 7);
    stream.write_all(&frame).await.ok()?;
    let mut len = [0u8; 4];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut len))
        .await
        .expect("neither an answer nor a close in time")
        .ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.ok()?;
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, R::Response::header_version(version)).unwrap();
    let response = R::Response::decode(&mut body, version).unwrap();
    assert!(!body.has_remaining());
    Some(response)
}

/// Whether the broker closes `stream` (end of stream or reset) instead of answering.
async fn closed<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(TIMEOUT, stream.read(&mut byte))
            .await
            .expect("the broker neither answered nor closed"),
        Ok(0) | Err(_)
    )
}

/// SCRAM over SaslHandshake v1 + SaslAuthenticate v2 on a raw connection; the final error code.
async fn scram_login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> (i16, Option<String>) {
    let handshake = exchange(
        stream,
        1,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(mechanism.name())),
    )
    .await
    .expect("a handshake answer");
    assert_eq!(handshake.error_code, 0);
    let mut client = ScramClient::new(mechanism, user, password);
    let first = exchange(
        stream,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(client.client_first())),
    )
    .await
    .expect("a challenge");
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    let last = client.client_final(&first.auth_bytes).unwrap();
    let done = exchange(
        stream,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(last)),
    )
    .await
    .expect("a final answer");
    if done.error_code == 0 {
        client.verify_server_final(&done.auth_bytes).unwrap();
    }
    (done.error_code, done.error_message.map(|m| m.to_string()))
}

fn tls_connector(certs: &Certs, client: Option<&(PathBuf, PathBuf)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::read(&certs.ca).unwrap().as_slice(),
    )) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = rustls_pemfile::certs(&mut std::io::BufReader::new(
                std::fs::read(cert).unwrap().as_slice(),
            ))
            .map(Result::unwrap)
            .collect();
            let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
                std::fs::read(key).unwrap().as_slice(),
            ))
            .unwrap()
            .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    certs: &Certs,
    client: Option<&(PathBuf, PathBuf)>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls_connector(certs, client)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_sasl_ssl_with_librdkafka_and_clean_refusals() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let broker = start(BrokerConfig {
        listen: "SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"
            .to_owned(),
        ssl_keystore_location: Some(certs.server.clone()),
        sasl_enabled_mechanisms: "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN".to_owned(),
        scram_initial_user: Some(ADMIN.to_owned()),
        scram_initial_password: Some(ADMIN_PASSWORD.to_owned()),
        ..BrokerConfig::new("127.0.0.1:0", dir.path())
    })
    .await;
    let sasl_ssl_addr = broker.listener_addr("SASL_SSL").unwrap();
    let bootstrap = broker.bootstrap_servers_for("SASL_SSL").unwrap();

    // librdkafka over SASL_SSL with SCRAM-SHA-512, then PLAIN checked against the same
    // stored credential: produce, then read back.
    let admin = sasl_ssl(
        &bootstrap,
        &certs.ca,
        "SCRAM-SHA-512",
        ADMIN,
        ADMIN_PASSWORD,
    );
    produce(&admin, "secured", &["one", "two", "three"])
        .await
        .unwrap();
    let plain = sasl_ssl(&bootstrap, &certs.ca, "PLAIN", ADMIN, ADMIN_PASSWORD);
    assert_eq!(
        consume(&plain, "secured", "g", 3).await.unwrap(),
        ["one", "two", "three"]
    );

    // A wrong password: librdkafka gets nothing, not even metadata.
    let wrong = sasl_ssl(&bootstrap, &certs.ca, "SCRAM-SHA-512", ADMIN, "guess");
    let refused = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = wrong.create().unwrap();
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|_| ())
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "metadata with a wrong password");

    // The same refusal on the wire: SASL_AUTHENTICATION_FAILED with a message that does not
    // tell an unknown user from a wrong password, then the connection is closed.
    let sasl_plain_addr = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    for (user, password) in [(ADMIN, "guess"), ("mallory", ADMIN_PASSWORD)] {
        let mut stream = TcpStream::connect(sasl_plain_addr).await.unwrap();
        let (code, message) =
            scram_login(&mut stream, ScramMechanism::Sha256, user, password).await;
        assert_eq!(code, 58, "SASL_AUTHENTICATION_FAILED for {user}");
        assert_eq!(
            message.as_deref(),
            Some("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256")
        );
        assert!(closed(&mut stream).await, "closed after a failed login");
    }
    // The right password over SCRAM-SHA-256 (created for both mechanisms), then a request.
    let mut stream = TcpStream::connect(sasl_plain_addr).await.unwrap();
    let versions = exchange(&mut stream, 3, &ApiVersionsRequest::default())
        .await
        .expect("ApiVersions before authentication");
    for api in [
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        ApiKey::CreateAcls,
    ] {
        assert!(
            versions.api_keys.iter().any(|k| k.api_key == api as i16),
            "{api:?} advertised"
        );
    }
    let (code, _) = scram_login(&mut stream, ScramMechanism::Sha256, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(code, 0);
    let metadata = exchange(
        &mut stream,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await
    .expect("metadata once authenticated");
    assert_eq!(
        metadata.brokers[0].port,
        i32::from(sasl_plain_addr.port()),
        "metadata advertises the listener the client came in on"
    );

    // Anything but ApiVersions and SASL before authentication: closed, nothing answered.
    let mut early = TcpStream::connect(sasl_plain_addr).await.unwrap();
    assert!(
        exchange(
            &mut early,
            12,
            &MetadataRequest::default().with_topics(None)
        )
        .await
        .is_none(),
        "metadata before authentication is not answered"
    );

    // A client without TLS on the TLS listener, and a TLS client on the plaintext one: both
    // are refused by closing the connection, and the broker carries on.
    let mut no_tls = TcpStream::connect(sasl_ssl_addr).await.unwrap();
    assert!(exchange(&mut no_tls, 3, &ApiVersionsRequest::default())
        .await
        .is_none());
    let plaintext_addr = broker.listener_addr("PLAINTEXT").unwrap();
    let tcp = TcpStream::connect(plaintext_addr).await.unwrap();
    let tls = tls_connector(&certs, None)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await;
    assert!(
        tls.is_err(),
        "a TLS handshake with a PLAINTEXT listener fails"
    );
    assert_eq!(
        consume(&admin, "secured", "g2", 3).await.unwrap().len(),
        3,
        "still serving"
    );
    broker.shutdown().await.unwrap();
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: AclOperation,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type.code())
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_resource_pattern_type(pattern_type.code())
        .with_principal(StrBytes::from_string(principal.to_owned()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation.code())
        .with_permission_type(AclPermissionType::Allow.code())
}

fn authorization_error(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_acls_super_users_and_renewed_certificates() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let admin_cert = certs.client("admin");
    let alice_cert = certs.client("alice");
    let config = BrokerConfig {
        listen: "SSL://127.0.0.1:0".to_owned(),
        ssl_keystore_location: Some(certs.server.clone()),
        ssl_client_auth: "required".to_owned(),
        ssl_truststore_location: Some(certs.ca.clone()),
        ssl_keystore_reload_interval_ms: 100,
        authorizer_class_name: Some(
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_owned(),
        ),
        super_users: Some("User:CN=admin".to_owned()),
        ..BrokerConfig::new("127.0.0.1:0", dir.path())
    };
    let broker = start(config.clone()).await;
    let addr = broker.listener_addr("SSL").unwrap();
    let bootstrap = broker.bootstrap_servers();
    let admin = ssl(&bootstrap, &certs, &admin_cert);
    let alice = ssl(&bootstrap, &certs, &alice_cert);

    // The super user (by certificate subject) creates topics and writes without any ACL.
    let client: AdminClient<DefaultClientContext> = admin.create().unwrap();
    let topics = [
        NewTopic::new("orders", 1, TopicReplication::Fixed(1)),
        NewTopic::new("logs-app", 1, TopicReplication::Fixed(1)),
    ];
    for result in client
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    produce(&admin, "logs-app", &["log line"]).await.unwrap();

    // ACLs from the super user: alice may write orders, read topics prefixed `logs-`, and
    // use her group.
    let mut stream = tls_connect(addr, &certs, Some(&admin_cert)).await;
    let alice_principal = "User:CN=alice";
    let created = exchange(
        &mut stream,
        3,
        &CreateAclsRequest::default().with_creations(vec![
            acl(
                ResourceType::Topic,
                "orders",
                PatternType::Literal,
                alice_principal,
                AclOperation::Write,
            ),
            acl(
                ResourceType::Topic,
                "logs-",
                PatternType::Prefixed,
                alice_principal,
                AclOperation::Read,
            ),
            acl(
                ResourceType::Group,
                "alice-group",
                PatternType::Literal,
                alice_principal,
                AclOperation::Read,
            ),
        ]),
    )
    .await
    .unwrap();
    assert!(
        created.results.iter().all(|r| r.error_code == 0),
        "{created:?}"
    );

    produce(&alice, "orders", &["order 1"]).await.unwrap();
    let denied = consume(&alice, "orders", "alice-group", 1)
        .await
        .unwrap_err();
    assert_eq!(
        authorization_error(&denied),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{denied}"
    );
    let denied = produce(&alice, "logs-app", &["x"]).await.unwrap_err();
    assert_eq!(
        authorization_error(&denied),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{denied}"
    );
    assert_eq!(
        consume(&alice, "logs-app", "alice-group", 1).await.unwrap(),
        ["log line"],
        "the prefixed ACL lets alice read logs-app"
    );
    assert_eq!(
        consume(&admin, "orders", "any-group", 1).await.unwrap(),
        ["order 1"],
        "super users bypass ACLs"
    );
    let mut alice_stream = tls_connect(addr, &certs, Some(&alice_cert)).await;
    let described = exchange(
        &mut alice_stream,
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(ResourceType::Any.code())
            .with_pattern_type_filter(PatternType::Any.code())
            .with_operation(AclOperation::Any.code())
            .with_permission_type(AclPermissionType::Any.code()),
    )
    .await
    .unwrap();
    assert_eq!(described.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED");

    // A client without a certificate is refused at the handshake.
    // (With TLS 1.3 the client may finish its side first and learn of it at the first read.)
    let tcp = TcpStream::connect(addr).await.unwrap();
    let anonymous = tls_connector(&certs, None)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await;
    if let Ok(mut anonymous) = anonymous {
        assert!(exchange(&mut anonymous, 3, &ApiVersionsRequest::default())
            .await
            .is_none());
    }

    // A renewed server certificate is picked up without a restart.
    let subject = |stream: &tokio_rustls::client::TlsStream<TcpStream>| {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let before = subject(&stream);
    certs.write_server(&certs.server, "renewed");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let fresh = tls_connect(addr, &certs, Some(&admin_cert)).await;
        if subject(&fresh) != before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificate not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // ACLs are durable.
    broker.shutdown().await.unwrap();
    let broker = start(config).await;
    let alice = ssl(&broker.bootstrap_servers(), &certs, &alice_cert);
    produce(&alice, "orders", &["order 2"]).await.unwrap();
    let denied = consume(&alice, "orders", "alice-group", 1)
        .await
        .unwrap_err();
    assert_eq!(
        authorization_error(&denied),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    broker.shutdown().await.unwrap();
}
