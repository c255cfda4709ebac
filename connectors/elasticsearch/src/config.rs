//! The connector's options, declared once, and their parsed form.
//!
//! Option names, defaults and meanings follow Confluent's Elasticsearch sink
//! (`io.confluent.connect.elasticsearch.ElasticsearchSinkConnector`), so an existing connector
//! JSON works unchanged where its options are supported. The differences are listed in the
//! crate documentation.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use sluice_sdk::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_sdk::{ConfigErrors, Props};

/// `connection.url`: the cluster's HTTP endpoints.
pub const CONNECTION_URL: &str = "connection.url";
/// `connection.username`: basic-auth user.
pub const CONNECTION_USERNAME: &str = "connection.username";
/// `connection.password`: basic-auth password.
pub const CONNECTION_PASSWORD: &str = "connection.password";
/// `connection.api.key`: an Elasticsearch API key (sluice's addition).
pub const CONNECTION_API_KEY: &str = "connection.api.key";
/// `connection.timeout.ms`: TCP/TLS connect timeout.
pub const CONNECTION_TIMEOUT_MS: &str = "connection.timeout.ms";
/// `read.timeout.ms`: how long to wait for bytes of an answer.
pub const READ_TIMEOUT_MS: &str = "read.timeout.ms";
/// `connection.compression`: gzip request bodies.
pub const CONNECTION_COMPRESSION: &str = "connection.compression";
/// `max.connection.idle.time.ms`: idle connections are closed after this.
pub const MAX_CONNECTION_IDLE_TIME_MS: &str = "max.connection.idle.time.ms";
/// `batch.size`: records per `_bulk` request.
pub const BATCH_SIZE: &str = "batch.size";
/// `bulk.size.bytes`: bytes per `_bulk` request.
pub const BULK_SIZE_BYTES: &str = "bulk.size.bytes";
/// `max.in.flight.requests`: concurrent `_bulk` requests.
pub const MAX_IN_FLIGHT_REQUESTS: &str = "max.in.flight.requests";
/// `max.buffered.records`: records held before `put` waits.
pub const MAX_BUFFERED_RECORDS: &str = "max.buffered.records";
/// `linger.ms`: how long a partial batch waits for more records.
pub const LINGER_MS: &str = "linger.ms";
/// `flush.timeout.ms`: how long `flush` (and a full buffer) waits.
pub const FLUSH_TIMEOUT_MS: &str = "flush.timeout.ms";
/// `flush.synchronously`: accepted for compatibility; flushes always wait.
pub const FLUSH_SYNCHRONOUSLY: &str = "flush.synchronously";
/// `max.retries`: retries before an outage is reported.
pub const MAX_RETRIES: &str = "max.retries";
/// `retry.backoff.ms`: first retry delay.
pub const RETRY_BACKOFF_MS: &str = "retry.backoff.ms";
/// `key.ignore`: ids from topic+partition+offset instead of the key.
pub const KEY_IGNORE: &str = "key.ignore";
/// `topic.key.ignore`: topics for which `key.ignore` is true.
pub const TOPIC_KEY_IGNORE: &str = "topic.key.ignore";
/// `schema.ignore`: leave mappings to Elasticsearch.
pub const SCHEMA_IGNORE: &str = "schema.ignore";
/// `topic.schema.ignore`: topics for which `schema.ignore` is true.
pub const TOPIC_SCHEMA_IGNORE: &str = "topic.schema.ignore";
/// `compact.map.entries`: string-keyed maps as objects.
pub const COMPACT_MAP_ENTRIES: &str = "compact.map.entries";
/// `drop.invalid.message`: drop records that cannot be converted.
pub const DROP_INVALID_MESSAGE: &str = "drop.invalid.message";
/// `behavior.on.null.values`: what a tombstone does.
pub const BEHAVIOR_ON_NULL_VALUES: &str = "behavior.on.null.values";
/// `behavior.on.malformed.documents`: what a rejected document does.
pub const BEHAVIOR_ON_MALFORMED_DOCUMENTS: &str = "behavior.on.malformed.documents";
/// `write.method`: insert (replace) or upsert (merge).
pub const WRITE_METHOD: &str = "write.method";
/// `topic.index.map`: `topic:index` pairs.
pub const TOPIC_INDEX_MAP: &str = "topic.index.map";
/// `type.name`: accepted and ignored (mapping types are gone since Elasticsearch 7).
pub const TYPE_NAME: &str = "type.name";
/// `elastic.security.protocol`: PLAINTEXT or SSL.
pub const SECURITY_PROTOCOL: &str = "elastic.security.protocol";
/// `elastic.https.ssl.truststore.location`: PEM file of trusted CA certificates.
pub const SSL_TRUSTSTORE_LOCATION: &str = "elastic.https.ssl.truststore.location";
/// `elastic.https.ssl.truststore.type`: must be PEM.
pub const SSL_TRUSTSTORE_TYPE: &str = "elastic.https.ssl.truststore.type";
/// `elastic.https.ssl.keystore.location`: PEM file with a client key and certificate chain.
pub const SSL_KEYSTORE_LOCATION: &str = "elastic.https.ssl.keystore.location";
/// `elastic.https.ssl.keystore.type`: must be PEM.
pub const SSL_KEYSTORE_TYPE: &str = "elastic.https.ssl.keystore.type";
/// `elastic.https.ssl.endpoint.identification.algorithm`: `https` or empty (no host check).
pub const SSL_ENDPOINT_IDENTIFICATION_ALGORITHM: &str =
    "elastic.https.ssl.endpoint.identification.algorithm";

const GROUP_CONNECTOR: &str = "Connector";
const GROUP_CONVERSION: &str = "Data Conversion";
const GROUP_SECURITY: &str = "Security";

/// What a record with a null value (a tombstone) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullValueBehavior {
    /// Skip it.
    Ignore,
    /// Delete the document with the record's id.
    Delete,
    /// Treat it as a bad record (dead-letter queue or task failure, per `errors.tolerance`).
    Fail,
}

/// What a document Elasticsearch rejects as malformed does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedBehavior {
    /// Log at debug level and report it to the dead-letter queue if one is set up.
    Ignore,
    /// Log a warning and report it to the dead-letter queue if one is set up.
    Warn,
    /// Report it as an errant record: dead-letter queue with `errors.tolerance=all`, else the
    /// task fails.
    Fail,
}

/// How a record becomes a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// `index`: the document replaces any document with the same id.
    Insert,
    /// `update` with `doc_as_upsert`: fields are merged into an existing document.
    Upsert,
}

/// TLS material read from the `elastic.https.ssl.*` options.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM file of CA certificates to trust instead of the built-in roots.
    pub truststore: Option<PathBuf>,
    /// PEM file holding the client's private key and certificate chain.
    pub keystore: Option<PathBuf>,
    /// Whether the server's certificate must name the host in the URL.
    pub verify_hostname: bool,
}

/// The parsed configuration of the sink.
#[derive(Debug, Clone)]
pub struct ElasticsearchSinkConfig {
    /// Base URLs, without a trailing slash.
    pub urls: Vec<String>,
    /// Basic-auth user and password.
    pub basic_auth: Option<(String, String)>,
    /// Value of an `Authorization: ApiKey ...` header.
    pub api_key: Option<String>,
    /// Connect timeout.
    pub connection_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Gzip request bodies.
    pub compression: bool,
    /// Idle connection lifetime (`None`: keep).
    pub max_idle: Option<Duration>,
    /// Records per request.
    pub batch_size: usize,
    /// Bytes per request (`None`: no limit).
    pub bulk_size_bytes: Option<usize>,
    /// Concurrent requests.
    pub max_in_flight: usize,
    /// Records held before `put` waits.
    pub max_buffered: usize,
    /// Partial batch wait.
    pub linger: Duration,
    /// Flush and buffer-space wait.
    pub flush_timeout: Duration,
    /// Retries before an outage is reported.
    pub max_retries: usize,
    /// First retry delay.
    pub retry_backoff: Duration,
    /// Global `key.ignore`.
    pub key_ignore: bool,
    /// Topics with `key.ignore=true`.
    pub key_ignore_topics: HashSet<String>,
    /// Global `schema.ignore`.
    pub schema_ignore: bool,
    /// Topics with `schema.ignore=true`.
    pub schema_ignore_topics: HashSet<String>,
    /// String-keyed maps as objects.
    pub compact_map_entries: bool,
    /// Drop records that cannot be converted instead of reporting them.
    pub drop_invalid_message: bool,
    /// Tombstone handling.
    pub null_values: NullValueBehavior,
    /// Rejected-document handling.
    pub malformed_documents: MalformedBehavior,
    /// Insert or upsert.
    pub write_method: WriteMethod,
    /// Explicit topic-to-index names.
    pub topic_index_map: BTreeMap<String, String>,
    /// TLS settings.
    pub tls: TlsSettings,
}

/// The option declarations of the Elasticsearch sink.
pub fn config_def() -> ConfigDef {
    let connector = |key: ConfigKey| key.group(GROUP_CONNECTOR);
    let conversion = |key: ConfigKey| key.group(GROUP_CONVERSION);
    let security = |key: ConfigKey| key.group(GROUP_SECURITY);
    ConfigDef::new()
        .define(connector(
            ConfigKey::new(
                CONNECTION_URL,
                ConfigType::List,
                Importance::High,
                "Comma-separated Elasticsearch or OpenSearch URLs, such as \
                 http://es1:9200,http://es2:9200 or https://es3:9200. Requests are spread over \
                 them and move to the next one when one cannot be reached. A URL without a \
                 scheme is treated as http. Put credentials in connection.username and \
                 connection.password, not in the URL.",
            )
            .validator(Validator::NonEmpty)
            .display_name("Connection URLs"),
        ))
        .define(connector(
            ConfigKey::new(
                CONNECTION_USERNAME,
                ConfigType::String,
                Importance::Medium,
                "User for HTTP basic authentication; used when connection.password is set too.",
            )
            .optional()
            .display_name("Connection Username"),
        ))
        .define(connector(
            ConfigKey::new(
                CONNECTION_PASSWORD,
                ConfigType::Password,
                Importance::Medium,
                "Password for HTTP basic authentication; used when connection.username is set \
                 too. Use ${env:NAME} to keep it out of the file.",
            )
            .optional()
            .display_name("Connection Password"),
        ))
        .define(connector(
            ConfigKey::new(
                CONNECTION_API_KEY,
                ConfigType::Password,
                Importance::Medium,
                "An Elasticsearch API key, sent as 'Authorization: ApiKey ...': either the \
                 base64 'encoded' value Elasticsearch returns, or 'id:api_key'. Replaces \
                 connection.username/connection.password (not a Confluent option).",
            )
            .optional()
            .display_name("API Key"),
        ))
        .define(connector(
            ConfigKey::new(
                BATCH_SIZE,
                ConfigType::Int,
                Importance::Medium,
                "The number of records sent in one _bulk request.",
            )
            .default_value("2000")
            .validator(Validator::Between(1.0, 1_000_000.0))
            .display_name("Batch Size"),
        ))
        .define(connector(
            ConfigKey::new(
                BULK_SIZE_BYTES,
                ConfigType::Long,
                Importance::Low,
                "The most bytes sent in one _bulk request (-1: no limit). Whichever of \
                 batch.size and this is reached first closes the batch.",
            )
            .default_value("5242880")
            .validator(Validator::Between(-1.0, f64::from(i32::MAX)))
            .display_name("Bulk Size (bytes)"),
        ))
        .define(connector(
            ConfigKey::new(
                MAX_IN_FLIGHT_REQUESTS,
                ConfigType::Int,
                Importance::Medium,
                "The most _bulk requests in flight at once. Records with the same document id \
                 are never in two requests at once, so their order is kept.",
            )
            .default_value("5")
            .validator(Validator::Between(1.0, 1000.0))
            .display_name("Max In-flight Requests"),
        ))
        .define(connector(
            ConfigKey::new(
                MAX_BUFFERED_RECORDS,
                ConfigType::Int,
                Importance::Low,
                "The most records a task holds (waiting or in flight) before put waits for \
                 room; limits memory use.",
            )
            .default_value("20000")
            .validator(Validator::AtLeast(1.0))
            .display_name("Max Buffered Records"),
        ))
        .define(connector(
            ConfigKey::new(
                LINGER_MS,
                ConfigType::Long,
                Importance::Low,
                "How long a batch that is not full waits for more records before it is sent.",
            )
            .default_value("1")
            .validator(Validator::Between(0.0, 604_800_000.0))
            .display_name("Linger (ms)"),
        ))
        .define(connector(
            ConfigKey::new(
                FLUSH_TIMEOUT_MS,
                ConfigType::Long,
                Importance::Low,
                "How long a flush waits for every buffered record to be acknowledged, and how \
                 long put waits for buffer room. When it expires the call fails as retriable \
                 and the records stay buffered; offsets are not committed.",
            )
            .default_value("180000")
            .validator(Validator::Between(1000.0, 604_800_000.0))
            .display_name("Flush Timeout (ms)"),
        ))
        .define(connector(
            ConfigKey::new(
                FLUSH_SYNCHRONOUSLY,
                ConfigType::Boolean,
                Importance::Low,
                "Accepted for compatibility: sluice's flush always waits for every record.",
            )
            .default_value("false")
            .display_name("Flush synchronously"),
        ))
        .define(connector(
            ConfigKey::new(
                MAX_RETRIES,
                ConfigType::Int,
                Importance::Low,
                "Retries of a failed request (connection error, 429, 5xx) with exponential \
                 backoff before the failure is reported as an outage in the task status. The \
                 task keeps retrying after that instead of failing: the records are good.",
            )
            .default_value("5")
            .validator(Validator::AtLeast(0.0))
            .display_name("Max Retries"),
        ))
        .define(connector(
            ConfigKey::new(
                RETRY_BACKOFF_MS,
                ConfigType::Long,
                Importance::Low,
                "The wait before the first retry; each further retry waits up to twice as \
                 long, with jitter, up to 10 seconds (or this value if larger).",
            )
            .default_value("100")
            .validator(Validator::Between(0.0, 86_400_000.0))
            .display_name("Retry Backoff (ms)"),
        ))
        .define(connector(
            ConfigKey::new(
                CONNECTION_COMPRESSION,
                ConfigType::Boolean,
                Importance::Low,
                "Gzip-compress request bodies (the cluster needs http.compression, the default).",
            )
            .default_value("false")
            .display_name("Compression"),
        ))
        .define(connector(
            ConfigKey::new(
                MAX_CONNECTION_IDLE_TIME_MS,
                ConfigType::Int,
                Importance::Low,
                "How long an idle connection is kept before it is closed (-1: keep).",
            )
            .default_value("60000")
            .validator(Validator::Between(-1.0, 86_400_000.0))
            .display_name("Max Connection Idle Time"),
        ))
        .define(connector(
            ConfigKey::new(
                CONNECTION_TIMEOUT_MS,
                ConfigType::Int,
                Importance::Low,
                "How long to wait for a connection (TCP and TLS) to be established; a timeout \
                 is retried like a connection error and reported in the task status. 0: no \
                 limit (not recommended).",
            )
            .default_value("1000")
            .validator(Validator::Between(0.0, 43_200_000.0))
            .display_name("Connection Timeout"),
        ))
        .define(connector(
            ConfigKey::new(
                READ_TIMEOUT_MS,
                ConfigType::Int,
                Importance::Low,
                "How long to wait for the server to send a response: from sending a request to \
                 the start of its answer, then between reads. A timeout (a cluster that \
                 accepts the connection and stays silent) is retried like a connection error \
                 and reported in the task status. 0: no limit (not recommended).",
            )
            .default_value("3000")
            .validator(Validator::Between(0.0, 604_800_000.0))
            .display_name("Read Timeout"),
        ))
        .define(conversion(
            ConfigKey::new(
                KEY_IGNORE,
                ConfigType::Boolean,
                Importance::High,
                "Use topic+partition+offset as the document id instead of the record key. Use \
                 topic.key.ignore to set it for some topics only.",
            )
            .default_value("false")
            .display_name("Ignore Key mode"),
        ))
        .define(conversion(
            ConfigKey::new(
                SCHEMA_IGNORE,
                ConfigType::Boolean,
                Importance::Low,
                "Do not create a mapping from the record schema; Elasticsearch infers one \
                 (dynamic mapping). Use topic.schema.ignore to set it for some topics only.",
            )
            .default_value("false")
            .display_name("Ignore Schema mode"),
        ))
        .define(conversion(
            ConfigKey::new(
                COMPACT_MAP_ENTRIES,
                ConfigType::Boolean,
                Importance::Low,
                "Write maps with string keys as JSON objects ({\"k\": v}); when false, as \
                 arrays of {\"key\": k, \"value\": v}. Maps with other keys always use the \
                 array form.",
            )
            .default_value("true")
            .display_name("Compact Map Entries"),
        ))
        .define(conversion(
            ConfigKey::new(
                TOPIC_KEY_IGNORE,
                ConfigType::List,
                Importance::Low,
                "Topics for which key.ignore is true.",
            )
            .default_value("")
            .display_name("Topics for 'Ignore Key' mode"),
        ))
        .define(conversion(
            ConfigKey::new(
                TOPIC_SCHEMA_IGNORE,
                ConfigType::List,
                Importance::Low,
                "Topics for which schema.ignore is true.",
            )
            .default_value("")
            .display_name("Topics for 'Ignore Schema' mode"),
        ))
        .define(conversion(
            ConfigKey::new(
                DROP_INVALID_MESSAGE,
                ConfigType::Boolean,
                Importance::Low,
                "Drop (and log) records that cannot be turned into a document, such as a null \
                 key without key.ignore. When false they are reported as errant records \
                 (dead-letter queue with errors.tolerance=all, else the task fails).",
            )
            .default_value("false")
            .display_name("Drop invalid messages"),
        ))
        .define(conversion(
            ConfigKey::new(
                BEHAVIOR_ON_NULL_VALUES,
                ConfigType::String,
                Importance::Low,
                "What a record with a null value (a tombstone) does: 'ignore' skips it, \
                 'delete' deletes the document with its id (what keeps a read model true), \
                 'fail' reports it as an errant record.",
            )
            .default_value("fail")
            .validator(Validator::one_of(&["ignore", "delete", "fail"]))
            .display_name("Behavior for null-valued records"),
        ))
        .define(conversion(
            ConfigKey::new(
                BEHAVIOR_ON_MALFORMED_DOCUMENTS,
                ConfigType::String,
                Importance::Low,
                "What a document Elasticsearch rejects (mapping conflict, value that does not \
                 parse, bad id) does: 'ignore' and 'warn' skip it (logging at debug or warn \
                 level) after sending it to the dead-letter queue when one is set up; 'fail' \
                 reports it as an errant record: dead-letter queue with errors.tolerance=all, \
                 else the task fails. The other documents of the batch are written either way.",
            )
            .default_value("fail")
            .validator(Validator::one_of(&["ignore", "warn", "fail"]))
            .display_name("Behavior on malformed documents"),
        ))
        .define(conversion(
            ConfigKey::new(
                WRITE_METHOD,
                ConfigType::String,
                Importance::Low,
                "'insert' writes the record value as the whole document, replacing a document \
                 with the same id; 'upsert' creates the document or merges the record's fields \
                 into it.",
            )
            .default_value("insert")
            .validator(Validator::one_of(&["insert", "upsert"]))
            .display_name("Write Method"),
        ))
        .define(conversion(
            ConfigKey::new(
                TOPIC_INDEX_MAP,
                ConfigType::List,
                Importance::Low,
                "Index names for some topics, as topic:index pairs (orders:orders-v2,users:people). \
                 Other topics go to the index named like the topic, lowercased.",
            )
            .default_value("")
            .display_name("Topic to Index Map"),
        ))
        .define(conversion(
            ConfigKey::new(
                TYPE_NAME,
                ConfigType::String,
                Importance::Low,
                "Ignored: mapping types were removed in Elasticsearch 7. Accepted so that older \
                 configurations load.",
            )
            .optional()
            .display_name("Type Name"),
        ))
        .define(security(
            ConfigKey::new(
                SECURITY_PROTOCOL,
                ConfigType::String,
                Importance::Medium,
                "PLAINTEXT or SSL. https:// URLs always use TLS; SSL additionally requires \
                 every URL to be https://.",
            )
            .default_value("PLAINTEXT")
            .validator(Validator::one_of(&["PLAINTEXT", "SSL"]))
            .display_name("Security protocol"),
        ))
        .define(security(
            ConfigKey::new(
                SSL_TRUSTSTORE_LOCATION,
                ConfigType::String,
                Importance::Medium,
                "A PEM file of the CA certificates to trust for https:// URLs (for a cluster \
                 with its own CA). When set, only these are trusted.",
            )
            .optional()
            .display_name("Truststore location"),
        ))
        .define(security(
            ConfigKey::new(
                SSL_TRUSTSTORE_TYPE,
                ConfigType::String,
                Importance::Low,
                "Format of the truststore file; only PEM is supported (convert a JKS or \
                 PKCS12 store with keytool -exportcert -rfc or openssl pkcs12).",
            )
            .default_value("PEM")
            .validator(Validator::one_of(&["PEM"]))
            .display_name("Truststore type"),
        ))
        .define(security(
            ConfigKey::new(
                SSL_KEYSTORE_LOCATION,
                ConfigType::String,
                Importance::Low,
                "A PEM file with the client's unencrypted private key and certificate chain, \
                 for clusters that require client certificates.",
            )
            .optional()
            .display_name("Keystore location"),
        ))
        .define(security(
            ConfigKey::new(
                SSL_KEYSTORE_TYPE,
                ConfigType::String,
                Importance::Low,
                "Format of the keystore file; only PEM is supported.",
            )
            .default_value("PEM")
            .validator(Validator::one_of(&["PEM"]))
            .display_name("Keystore type"),
        ))
        .define(security(
            ConfigKey::new(
                SSL_ENDPOINT_IDENTIFICATION_ALGORITHM,
                ConfigType::String,
                Importance::Low,
                "'https' checks that the server certificate names the host of the URL; an \
                 empty value turns the check off (certificates are still verified).",
            )
            .default_value("https")
            .validator(Validator::custom(|v| match v.to_string().as_str() {
                "" | "https" | "HTTPS" => Ok(()),
                other => Err(format!("must be 'https' or empty (got '{other}')")),
            }))
            .display_name("Endpoint identification algorithm"),
        ))
}

impl ElasticsearchSinkConfig {
    /// Parses and checks `props` (every error found, each naming its option).
    ///
    /// # Errors
    /// [`sluice_sdk::Error::Config`] listing every bad option.
    pub fn parse(props: &Props) -> sluice_sdk::Result<Self> {
        let (config, mut errors) = config_def().parse_lenient(props);
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let ms =
            |name: &str| Duration::from_millis(config.get_i64(name).unwrap_or(0).max(0) as u64);
        let count = |name: &str| config.get_i64(name).unwrap_or(1).max(0) as usize;

        let urls = parse_urls(&config.get_list(CONNECTION_URL), &mut errors);
        let username = config
            .get_str(CONNECTION_USERNAME)
            .filter(|s| !s.is_empty());
        let password = config
            .get_password(CONNECTION_PASSWORD)
            .map(|p| p.value().to_string())
            .filter(|s| !s.is_empty());
        let api_key = config
            .get_password(CONNECTION_API_KEY)
            .map(|p| p.value().trim().to_string())
            .filter(|s| !s.is_empty());
        let basic_auth = match (username, password) {
            (Some(u), Some(p)) => Some((u.to_string(), p)),
            (Some(_), None) => {
                errors.push(
                    CONNECTION_PASSWORD,
                    "must be set when connection.username is set",
                );
                None
            }
            (None, Some(_)) => {
                errors.push(
                    CONNECTION_USERNAME,
                    "must be set when connection.password is set",
                );
                None
            }
            (None, None) => None,
        };
        if basic_auth.is_some() && api_key.is_some() {
            errors.push(
                CONNECTION_API_KEY,
                "cannot be combined with connection.username/connection.password; use one",
            );
        }
        let api_key = api_key.map(|k| encode_api_key(&k));

        let protocol = config.get_str(SECURITY_PROTOCOL).unwrap_or("PLAINTEXT");
        if protocol.eq_ignore_ascii_case("SSL") {
            for url in &urls {
                if !url.starts_with("https://") {
                    errors.push(
                        CONNECTION_URL,
                        format!(
                            "must use https:// when elastic.security.protocol is SSL (got '{url}')"
                        ),
                    );
                }
            }
        }
        let file_option = |name: &str, errors: &mut ConfigErrors| -> Option<PathBuf> {
            let path = PathBuf::from(config.get_str(name).filter(|s| !s.is_empty())?);
            if !path.is_file() {
                errors.push(
                    name,
                    format!("names '{}', which is not a readable file", path.display()),
                );
            }
            Some(path)
        };
        let tls = TlsSettings {
            truststore: file_option(SSL_TRUSTSTORE_LOCATION, &mut errors),
            keystore: file_option(SSL_KEYSTORE_LOCATION, &mut errors),
            verify_hostname: !config
                .get_str(SSL_ENDPOINT_IDENTIFICATION_ALGORITHM)
                .unwrap_or("https")
                .is_empty(),
        };

        let topic_index_map = parse_topic_index_map(&config.get_list(TOPIC_INDEX_MAP), &mut errors);

        let null_values = match config
            .get_str(BEHAVIOR_ON_NULL_VALUES)
            .unwrap_or("fail")
            .to_ascii_lowercase()
            .as_str()
        {
            "ignore" => NullValueBehavior::Ignore,
            "delete" => NullValueBehavior::Delete,
            _ => NullValueBehavior::Fail,
        };
        let malformed_documents = match config
            .get_str(BEHAVIOR_ON_MALFORMED_DOCUMENTS)
            .unwrap_or("fail")
            .to_ascii_lowercase()
            .as_str()
        {
            "ignore" => MalformedBehavior::Ignore,
            "warn" => MalformedBehavior::Warn,
            _ => MalformedBehavior::Fail,
        };
        let write_method = if config
            .get_str(WRITE_METHOD)
            .is_some_and(|m| m.eq_ignore_ascii_case("upsert"))
        {
            WriteMethod::Upsert
        } else {
            WriteMethod::Insert
        };
        let bulk_size_bytes = match config.get_i64(BULK_SIZE_BYTES) {
            Some(n) if n > 0 => Some(n as usize),
            _ => None,
        };
        let max_idle = match config.get_i64(MAX_CONNECTION_IDLE_TIME_MS) {
            Some(n) if n >= 0 => Some(Duration::from_millis(n as u64)),
            _ => None,
        };

        errors.into_result()?;
        Ok(Self {
            urls,
            basic_auth,
            api_key,
            connection_timeout: ms(CONNECTION_TIMEOUT_MS),
            read_timeout: ms(READ_TIMEOUT_MS),
            compression: config.get_bool(CONNECTION_COMPRESSION).unwrap_or(false),
            max_idle,
            batch_size: count(BATCH_SIZE).max(1),
            bulk_size_bytes,
            max_in_flight: count(MAX_IN_FLIGHT_REQUESTS).max(1),
            max_buffered: count(MAX_BUFFERED_RECORDS).max(1),
            linger: ms(LINGER_MS),
            flush_timeout: ms(FLUSH_TIMEOUT_MS),
            max_retries: count(MAX_RETRIES),
            retry_backoff: ms(RETRY_BACKOFF_MS),
            key_ignore: config.get_bool(KEY_IGNORE).unwrap_or(false),
            key_ignore_topics: config.get_list(TOPIC_KEY_IGNORE).into_iter().collect(),
            schema_ignore: config.get_bool(SCHEMA_IGNORE).unwrap_or(false),
            schema_ignore_topics: config.get_list(TOPIC_SCHEMA_IGNORE).into_iter().collect(),
            compact_map_entries: config.get_bool(COMPACT_MAP_ENTRIES).unwrap_or(true),
            drop_invalid_message: config.get_bool(DROP_INVALID_MESSAGE).unwrap_or(false),
            null_values,
            malformed_documents,
            write_method,
            topic_index_map,
            tls,
        })
    }

    /// Whether documents of `topic` take their id from topic+partition+offset.
    pub fn ignores_key(&self, topic: &str) -> bool {
        self.key_ignore || self.key_ignore_topics.contains(topic)
    }

    /// Whether no mapping is created for `topic`'s index.
    pub fn ignores_schema(&self, topic: &str) -> bool {
        self.schema_ignore || self.schema_ignore_topics.contains(topic)
    }

    /// The index that records of `topic` go to.
    pub fn index_for(&self, topic: &str) -> String {
        match self.topic_index_map.get(topic) {
            Some(index) => index.clone(),
            None => index_name_for_topic(topic),
        }
    }
}

/// The default index of a topic, as Confluent's sink names it: lowercased, cut to 255
/// characters, without a leading `-` or `_`, and `.`/`..` spelled `dot`/`dotdot`.
pub fn index_name_for_topic(topic: &str) -> String {
    let mut index: String = topic.to_lowercase();
    if index.len() > 255 {
        let mut cut = 255;
        while !index.is_char_boundary(cut) {
            cut -= 1;
        }
        index.truncate(cut);
    }
    if index.starts_with('-') || index.starts_with('_') {
        index.remove(0);
    }
    if index == "." || index == ".." {
        index = index.replace('.', "dot");
    }
    index
}

/// Why `name` cannot be an index name, following Elasticsearch's rules.
fn index_name_problem(name: &str) -> Option<String> {
    const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name != name.to_lowercase() {
        return Some("has upper-case letters".into());
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Some(format!("contains '{c}'"));
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("starts with '-', '_' or '+'".into());
    }
    if name == "." || name == ".." {
        return Some("is '.' or '..'".into());
    }
    if name.len() > 255 {
        return Some("is longer than 255 bytes".into());
    }
    None
}

fn parse_urls(raw: &[String], errors: &mut ConfigErrors) -> Vec<String> {
    let mut urls = Vec::with_capacity(raw.len());
    for url in raw {
        let with_scheme = if url.contains("://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        match reqwest::Url::parse(&with_scheme) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    errors.push(
                        CONNECTION_URL,
                        format!(
                            "must not carry credentials ('{}'); put them in connection.username \
                             and connection.password",
                            redact_url(&parsed)
                        ),
                    );
                    continue;
                }
                if parsed.host_str().is_none() {
                    errors.push(CONNECTION_URL, format!("has no host in '{url}'"));
                    continue;
                }
                urls.push(with_scheme.trim_end_matches('/').to_string());
            }
            Ok(parsed) => errors.push(
                CONNECTION_URL,
                format!(
                    "must use http:// or https:// (got '{}://' in '{url}')",
                    parsed.scheme()
                ),
            ),
            Err(e) => errors.push(
                CONNECTION_URL,
                format!("has an invalid URL '{url}': {e}; write it like http://host:9200"),
            ),
        }
    }
    urls
}

fn redact_url(url: &reqwest::Url) -> String {
    let mut copy = url.clone();
    let _ = copy.set_username("");
    let _ = copy.set_password(None);
    copy.to_string()
}

fn parse_topic_index_map(raw: &[String], errors: &mut ConfigErrors) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for pair in raw {
        let Some((topic, index)) = pair.split_once(':') else {
            errors.push(
                TOPIC_INDEX_MAP,
                format!("entries must be topic:index (got '{pair}')"),
            );
            continue;
        };
        let (topic, index) = (topic.trim(), index.trim());
        if topic.is_empty() {
            errors.push(TOPIC_INDEX_MAP, format!("has an empty topic in '{pair}'"));
            continue;
        }
        if let Some(problem) = index_name_problem(index) {
            errors.push(
                TOPIC_INDEX_MAP,
                format!("maps topic '{topic}' to '{index}', which {problem}; Elasticsearch index names are lowercase without \\ / * ? \" < > | space , # :"),
            );
            continue;
        }
        if map.insert(topic.to_string(), index.to_string()).is_some() {
            errors.push(
                TOPIC_INDEX_MAP,
                format!("maps topic '{topic}' more than once"),
            );
        }
    }
    map
}

/// The `Authorization: ApiKey` value: the key as given when it is already the base64
/// "encoded" form, or base64 of `id:key`.
fn encode_api_key(key: &str) -> String {
    use base64::Engine;
    if key.contains(':') {
        base64::engine::general_purpose::STANDARD.encode(key)
    } else {
        key.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_sdk::config::props;

    #[test]
    fn defaults_follow_confluent() {
        let c =
            ElasticsearchSinkConfig::parse(&props(&[(CONNECTION_URL, "http://es:9200/")])).unwrap();
        assert_eq!(c.urls, vec!["http://es:9200"]);
        assert_eq!(c.batch_size, 2000);
        assert_eq!(c.bulk_size_bytes, Some(5 * 1024 * 1024));
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.max_buffered, 20000);
        assert_eq!(c.linger, Duration::from_millis(1));
        assert_eq!(c.flush_timeout, Duration::from_secs(180));
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert_eq!(c.null_values, NullValueBehavior::Fail);
        assert_eq!(c.malformed_documents, MalformedBehavior::Fail);
        assert_eq!(c.write_method, WriteMethod::Insert);
        assert!(!c.key_ignore && !c.schema_ignore && c.compact_map_entries);
        assert!(c.basic_auth.is_none() && c.api_key.is_none());
        assert!(c.tls.verify_hostname);
    }

    #[test]
    fn enum_options_ignore_case_and_urls_get_a_scheme() {
        let c = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "es1:9200, https://es2:9243"),
            (BEHAVIOR_ON_NULL_VALUES, "DELETE"),
            (BEHAVIOR_ON_MALFORMED_DOCUMENTS, "Warn"),
            (WRITE_METHOD, "UPSERT"),
        ]))
        .unwrap();
        assert_eq!(c.urls, vec!["http://es1:9200", "https://es2:9243"]);
        assert_eq!(c.null_values, NullValueBehavior::Delete);
        assert_eq!(c.malformed_documents, MalformedBehavior::Warn);
        assert_eq!(c.write_method, WriteMethod::Upsert);
    }

    #[test]
    fn bad_options_are_named_with_the_fix() {
        let err = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "ftp://es:21,http://u:p@es:9200"),
            (CONNECTION_USERNAME, "elastic"),
            (TOPIC_INDEX_MAP, "orders:Orders,users"),
            (WRITE_METHOD, "merge"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'write.method' must be one of insert, upsert (got 'merge')"),
            "{err}"
        );
        let err = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "ftp://es:21,http://u:p@es:9200"),
            (CONNECTION_USERNAME, "elastic"),
            (TOPIC_INDEX_MAP, "orders:Orders,users"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'connection.url' must use http:// or https://"),
            "{err}"
        );
        assert!(err.contains("must not carry credentials"), "{err}");
        assert!(
            !err.contains("u:p@"),
            "credentials leak into the message: {err}"
        );
        assert!(
            err.contains(
                "option 'connection.password' must be set when connection.username is set"
            ),
            "{err}"
        );
        assert!(
            err.contains("maps topic 'orders' to 'Orders', which has upper-case"),
            "{err}"
        );
        assert!(
            err.contains("entries must be topic:index (got 'users')"),
            "{err}"
        );
    }

    #[test]
    fn ssl_requires_https_and_files_must_exist() {
        let err = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "http://es:9200"),
            (SECURITY_PROTOCOL, "SSL"),
            (SSL_TRUSTSTORE_LOCATION, "/nonexistent/ca.pem"),
            (SSL_TRUSTSTORE_TYPE, "JKS"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "option 'elastic.https.ssl.truststore.type' must be one of PEM (got 'JKS')"
            ),
            "{err}"
        );
        let err = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "http://es:9200"),
            (SECURITY_PROTOCOL, "SSL"),
            (SSL_TRUSTSTORE_LOCATION, "/nonexistent/ca.pem"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("must use https:// when elastic.security.protocol is SSL"),
            "{err}"
        );
        assert!(
            err.contains("'/nonexistent/ca.pem', which is not a readable file"),
            "{err}"
        );
    }

    #[test]
    fn api_keys_are_encoded_once() {
        let c = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "http://es:9200"),
            (
                CONNECTION_API_KEY,
                "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw",
            ),
        ]))
        .unwrap();
        assert_eq!(
            c.api_key.as_deref(),
            Some("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
        );
        let c = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "http://es:9200"),
            (
                CONNECTION_API_KEY,
                "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
            ),
        ]))
        .unwrap();
        assert_eq!(
            c.api_key.as_deref(),
            Some("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
        );
    }

    #[test]
    fn index_names_follow_confluent() {
        assert_eq!(index_name_for_topic("Orders"), "orders");
        assert_eq!(index_name_for_topic("_private"), "private");
        assert_eq!(index_name_for_topic(".."), "dotdot");
        let c = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "http://es:9200"),
            (TOPIC_INDEX_MAP, "pg.orders:orders-read, Users:people"),
        ]))
        .unwrap();
        assert_eq!(c.index_for("pg.orders"), "orders-read");
        assert_eq!(c.index_for("Users"), "people");
        assert_eq!(c.index_for("Other"), "other");
    }

    #[test]
    fn per_topic_ignores_apply() {
        let c = ElasticsearchSinkConfig::parse(&props(&[
            (CONNECTION_URL, "http://es:9200"),
            (TOPIC_KEY_IGNORE, "logs"),
            (TOPIC_SCHEMA_IGNORE, "raw"),
        ]))
        .unwrap();
        assert!(c.ignores_key("logs") && !c.ignores_key("orders"));
        assert!(c.ignores_schema("raw") && !c.ignores_schema("orders"));
    }
}
