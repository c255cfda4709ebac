//! Security of the worker's own Kafka-protocol connections: the worker-group membership client
//! (`cluster/`) and the admin tools that speak APIs librdkafka does not wrap (`sluice acls`,
//! `sluice configs`). They read the same properties as librdkafka (`security.protocol`,
//! `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`, `ssl.endpoint.identification.algorithm`),
//! so one set of worker settings configures every client; TLS is rustls.
//!
//! It also reads Kafka's Java `client.properties` (for `--command-config`) and translates it to
//! librdkafka's names: `sasl.jaas.config` gives the user name and password, PEM trust and key
//! stores give the CA and client certificate files.

use crate::config_providers::parse_properties;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufReader};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_broker::SecurityProtocol;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// User name and password for SASL PLAIN or SCRAM.
#[derive(Clone)]
pub struct SaslLogin {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// `sasl.username`.
    pub username: String,
    /// `sasl.password`.
    pub password: String,
}

impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .finish()
    }
}

/// How to open and authenticate a connection to a broker.
#[derive(Clone)]
pub struct ClientSecurity {
    protocol: SecurityProtocol,
    sasl: Option<SaslLogin>,
    tls: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Default for ClientSecurity {
    fn default() -> Self {
        Self::plaintext()
    }
}

impl ClientSecurity {
    /// No TLS, no SASL.
    pub fn plaintext() -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: None,
        }
    }

    /// The security protocol.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// The SASL login, on SASL protocols.
    pub fn sasl(&self) -> Option<&SaslLogin> {
        self.sasl.as_ref()
    }

    /// Reads librdkafka's security properties from `props` (other keys are ignored).
    ///
    /// # Errors
    /// A message naming the property that is missing or cannot be used.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| {
            props
                .get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let protocol = match get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(p) => SecurityProtocol::from_name(&p).ok_or_else(|| {
                format!("security.protocol '{p}' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
            })?,
        };
        let sasl = if protocol.uses_sasl() {
            let mechanism = get("sasl.mechanism")
                .or_else(|| get("sasl.mechanisms"))
                .unwrap_or_else(|| "GSSAPI".to_owned())
                .to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                return Err(format!(
                    "sasl.mechanism '{mechanism}' is not supported here; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                ));
            }
            let username = get("sasl.username").ok_or_else(|| {
                format!("security.protocol {protocol} needs sasl.username (and sasl.password)")
            })?;
            let password = props.get("sasl.password").cloned().ok_or_else(|| {
                format!("security.protocol {protocol} needs sasl.password for user '{username}'")
            })?;
            Some(SaslLogin {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        let tls = if protocol.uses_tls() {
            Some(Arc::new(tls_config(props)?))
        } else {
            None
        };
        Ok(Self {
            protocol,
            sasl,
            tls,
        })
    }

    /// Connects to `broker` (`host:port`) and finishes the TLS handshake when the protocol
    /// has TLS. SASL comes after, on the Kafka protocol.
    ///
    /// # Errors
    /// The connection or the TLS handshake failed.
    pub async fn connect(&self, broker: &str) -> io::Result<KafkaStream> {
        let stream = TcpStream::connect(broker).await?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(KafkaStream::Plain(stream));
        };
        let host = broker
            .rsplit_once(':')
            .map_or(broker, |(h, _)| h)
            .trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("broker host '{host}': {e}"),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
        let stream = connector.connect(name, stream).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("TLS handshake with {broker} failed: {e} (check ssl.ca.location and that the listener speaks TLS)"),
            )
        })?;
        Ok(KafkaStream::Tls(Box::new(stream)))
    }
}

fn read_pem(property: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{property}: cannot read {path}: {e}"))
}

fn certs(property: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{property}: unreadable PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{property}: no PEM certificate found"));
    }
    Ok(certs)
}

fn tls_config(props: &BTreeMap<String, String>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match props
        .get("ssl.ca.location")
        .filter(|v| !v.trim().is_empty())
    {
        Some(path) => {
            for cert in certs("ssl.ca.location", &read_pem("ssl.ca.location", path)?)? {
                roots.add(cert).map_err(|e| {
                    format!("ssl.ca.location: a CA certificate cannot be used: {e}")
                })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| format!("ssl.ca.location: {e}"))?;
    let check_host = !props
        .get("ssl.endpoint.identification.algorithm")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("none") || v.trim().is_empty());
    let verifier: Arc<dyn ServerCertVerifier> = if check_host {
        verifier
    } else {
        Arc::new(NoHostnameCheck(verifier))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let cert = props
        .get("ssl.certificate.location")
        .filter(|v| !v.trim().is_empty());
    let key = props
        .get("ssl.key.location")
        .filter(|v| !v.trim().is_empty());
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = certs(
                "ssl.certificate.location",
                &read_pem("ssl.certificate.location", cert)?,
            )?;
            let key = rustls_pemfile::private_key(&mut BufReader::new(
                read_pem("ssl.key.location", key)?.as_slice(),
            ))
            .map_err(|e| format!("ssl.key.location: unreadable PEM key: {e}"))?
            .ok_or("ssl.key.location: no unencrypted PEM private key found")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("ssl.certificate.location / ssl.key.location: {e}"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("ssl.certificate.location and ssl.key.location must be set together".to_owned()),
    }
}

/// `ssl.endpoint.identification.algorithm=none`: the chain is verified, the host name is not.
#[derive(Debug)]
struct NoHostnameCheck(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connection to a broker: plain TCP or TLS.
#[derive(Debug)]
pub enum KafkaStream {
    /// PLAINTEXT and SASL_PLAINTEXT.
    Plain(TcpStream),
    /// SSL and SASL_SSL.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for KafkaStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for KafkaStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Reads a Java `.properties` file (`key=value` or `key: value`, `#` and `!` comments,
/// trailing `\` joining lines), as Kafka's `--command-config` files are written; parsed by
/// [`parse_properties`], the one the config providers and the REST users file use too.
///
/// # Errors
/// The file cannot be read.
pub fn read_properties_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(parse_properties(&text))
}

/// Java client properties translated to librdkafka's (and [`ClientSecurity`]'s) names:
/// `sasl.jaas.config` becomes `sasl.username` / `sasl.password`; PEM `ssl.truststore.location`
/// becomes `ssl.ca.location`; a PEM `ssl.keystore.location` (chain and key in one file)
/// becomes `ssl.certificate.location` and `ssl.key.location`. Properties librdkafka knows
/// under the same name pass unchanged.
///
/// # Errors
/// A JKS or PKCS12 store (librdkafka reads PEM), or a `sasl.jaas.config` without a user name
/// and password.
pub fn librdkafka_properties(
    java: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in java {
        match key.as_str() {
            "sasl.jaas.config" => {
                let field = |name: &str| {
                    let at = value.find(&format!("{name}="))? + name.len() + 1;
                    let rest = &value[at..];
                    let rest = rest.strip_prefix('"')?;
                    let end = rest.find('"')?;
                    Some(rest[..end].to_owned())
                };
                let (Some(user), Some(password)) = (field("username"), field("password")) else {
                    return Err("sasl.jaas.config must name username=\"...\" and password=\"...\" (ScramLoginModule or PlainLoginModule)".to_owned());
                };
                out.insert("sasl.username".to_owned(), user);
                out.insert("sasl.password".to_owned(), password);
            }
            "ssl.truststore.type" | "ssl.keystore.type" => {
                if !value.trim().eq_ignore_ascii_case("PEM") {
                    return Err(format!(
                        "{key}={value}: only PEM stores can be used; convert with keytool and openssl"
                    ));
                }
            }
            "ssl.truststore.location" => {
                out.insert("ssl.ca.location".to_owned(), value.clone());
            }
            "ssl.keystore.location" => {
                out.insert("ssl.certificate.location".to_owned(), value.clone());
                out.insert("ssl.key.location".to_owned(), value.clone());
            }
            "ssl.truststore.password" | "ssl.keystore.password" | "ssl.key.password" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(algorithm) = out.get_mut("ssl.endpoint.identification.algorithm") {
        // Java's "" (no check) is librdkafka's "none".
        if algorithm.trim().is_empty() {
            *algorithm = "none".to_owned();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_client_properties_translate_to_librdkafka() {
        let java = parse_properties(
            "# admin client\nsecurity.protocol=SASL_SSL\nsasl.mechanism = SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"admin\" password=\"s3=cret\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location=/etc/ca.pem\nssl.endpoint.identification.algorithm=\n",
        );
        let props = librdkafka_properties(&java).unwrap();
        assert_eq!(props["security.protocol"], "SASL_SSL");
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(props["sasl.username"], "admin");
        assert_eq!(props["sasl.password"], "s3=cret");
        assert_eq!(props["ssl.ca.location"], "/etc/ca.pem");
        assert_eq!(props["ssl.endpoint.identification.algorithm"], "none");
        assert!(!props.contains_key("sasl.jaas.config"));
        let err = librdkafka_properties(&parse_properties("ssl.truststore.type=JKS")).unwrap_err();
        assert!(err.contains("PEM"), "{err}");
    }

    #[test]
    fn security_settings_are_checked_by_name() {
        let props = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            ClientSecurity::from_properties(&props(&[]))
                .unwrap()
                .protocol(),
            SecurityProtocol::Plaintext
        );
        let err = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
        ]))
        .unwrap_err();
        assert!(err.contains("sasl.username"), "{err}");
        let err =
            ClientSecurity::from_properties(&props(&[("security.protocol", "TLS")])).unwrap_err();
        assert!(err.contains("security.protocol"), "{err}");
        let login = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "scram-sha-256"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
        ]))
        .unwrap();
        assert_eq!(login.sasl().unwrap().mechanism, "SCRAM-SHA-256");
        assert!(!format!("{login:?}").contains("\"p\""));
    }
}
