//! TLS for the SSL and SASL_SSL listeners: a rustls server configuration built from PEM files
//! (no OpenSSL), rebuilt when those files change so that renewed certificates apply to new
//! connections without a restart, and the principal of a verified client certificate.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::KafkaPrincipal;
use crate::config::BrokerConfig;
use crate::{Error, Result};

/// Where a PEM item comes from: a file, or the PEM text itself (Kafka's
/// `ssl.keystore.certificate.chain` and `ssl.keystore.key` hold the text).
#[derive(Debug, Clone)]
enum PemSource {
    File(PathBuf),
    Inline(String),
}

impl PemSource {
    fn from_setting(value: &str) -> Self {
        if value.trim_start().starts_with("-----BEGIN") {
            Self::Inline(value.to_owned())
        } else {
            Self::File(PathBuf::from(value))
        }
    }

    fn read(&self, setting: &str) -> Result<Vec<u8>> {
        match self {
            Self::Inline(text) => Ok(text.as_bytes().to_vec()),
            Self::File(path) => fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "broker setting '{setting}': cannot read {}: {e}",
                    path.display()
                ))
            }),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Inline(_) => None,
        }
    }
}

/// How client certificates are asked for (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Requested,
    Required,
}

/// The files and choices a TLS configuration is built from.
#[derive(Debug, Clone)]
struct TlsSources {
    /// (setting name, source) of the chain and of the key; the same file for
    /// `ssl.keystore.location`.
    chain: (&'static str, PemSource),
    key: (&'static str, PemSource),
    client_auth: ClientAuth,
    truststore: Option<PathBuf>,
}

impl TlsSources {
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = [self.chain.1.path(), self.key.1.path()]
            .into_iter()
            .flatten()
            .map(Path::to_path_buf)
            .collect();
        files.extend(self.truststore.clone());
        files.dedup();
        files
    }
}

/// The TLS side of the broker: the current server configuration and how to rebuild it.
#[derive(Debug)]
pub(crate) struct TlsContext {
    current: RwLock<Arc<ServerConfig>>,
    sources: TlsSources,
    /// Modification times of the files, as last loaded.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl TlsContext {
    /// The TLS configuration of `config`, or `None` when no listener uses TLS.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting whose file cannot be read or used.
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<Option<Arc<Self>>> {
        if !config
            .listener_specs()?
            .iter()
            .any(|l| l.protocol.uses_tls())
        {
            return Ok(None);
        }
        let (chain, key) = match &config.ssl_keystore_location {
            Some(path) => (
                ("ssl.keystore.location", PemSource::File(path.clone())),
                ("ssl.keystore.location", PemSource::File(path.clone())),
            ),
            None => (
                (
                    "ssl.keystore.certificate.chain",
                    PemSource::from_setting(
                        config
                            .ssl_keystore_certificate_chain
                            .as_deref()
                            .unwrap_or_default(),
                    ),
                ),
                (
                    "ssl.keystore.key",
                    PemSource::from_setting(config.ssl_keystore_key.as_deref().unwrap_or_default()),
                ),
            ),
        };
        let client_auth = match config.ssl_client_auth.to_ascii_lowercase().as_str() {
            "required" => ClientAuth::Required,
            "requested" => ClientAuth::Requested,
            _ => ClientAuth::None,
        };
        let sources = TlsSources {
            chain,
            key,
            client_auth,
            truststore: config.ssl_truststore_location.clone(),
        };
        let stamps = stamps(&sources.files());
        let server = build(&sources)?;
        Ok(Some(Arc::new(Self {
            current: RwLock::new(Arc::new(server)),
            sources,
            stamps: Mutex::new(stamps),
        })))
    }

    /// An acceptor with the current configuration.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read()))
    }

    /// Rebuilds the configuration when a file changed since it was last loaded; a file that
    /// cannot be used keeps the previous configuration (and is tried again next time).
    /// Returns whether a new configuration was loaded.
    pub(crate) fn reload_if_changed(&self) -> bool {
        let files = self.sources.files();
        let now = stamps(&files);
        if *self.stamps.lock() == now {
            return false;
        }
        match build(&self.sources) {
            Ok(server) => {
                *self.current.write() = Arc::new(server);
                *self.stamps.lock() = now;
                info!(files = ?files, "TLS certificates reloaded; new connections use them");
                true
            }
            Err(e) => {
                warn!(error = %e, "changed TLS files cannot be used; keeping the previous certificates");
                false
            }
        }
    }

    /// Checks the files every `interval` until `shutdown`.
    pub(crate) async fn run_reload(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let this = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
    }
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

fn read_certs(setting: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "broker setting '{setting}': unreadable PEM certificates: {e}"
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "broker setting '{setting}': no PEM certificate (-----BEGIN CERTIFICATE-----) found"
        )));
    }
    Ok(certs)
}

fn read_key(setting: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .map_err(|e| {
            Error::Config(format!(
                "broker setting '{setting}': unreadable PEM private key: {e}"
            ))
        })?
        .ok_or_else(|| {
            Error::Config(format!(
                "broker setting '{setting}': no unencrypted PEM private key found (PKCS#8, PKCS#1 or SEC1; decrypt an encrypted key with `openssl pkey`)"
            ))
        })
}

fn build(sources: &TlsSources) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(sources.chain.0, &sources.chain.1.read(sources.chain.0)?)?;
    let key = read_key(sources.key.0, &sources.key.1.read(sources.key.0)?)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let builder = match (sources.client_auth, &sources.truststore) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(truststore)) => {
            let setting = "ssl.truststore.location";
            let pem = PemSource::File(truststore.clone()).read(setting)?;
            let mut roots = RootCertStore::empty();
            for cert in read_certs(setting, &pem)? {
                roots.add(cert).map_err(|e| {
                    Error::Config(format!(
                        "broker setting '{setting}': a CA certificate cannot be used: {e}"
                    ))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| Error::Config(format!("broker setting '{setting}': {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        Error::Config(format!(
            "broker setting '{}': the certificate and private key cannot be used together: {e}",
            sources.key.0
        ))
    })
}

/// The principal of a verified client certificate, as Kafka's default
/// `ssl.principal.mapping.rules` names it: `User:` and the subject's distinguished name in
/// RFC 2253 form (`CN=alice,OU=eng,O=example`).
pub(crate) fn certificate_principal(cert: &CertificateDer<'_>) -> Option<KafkaPrincipal> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    Some(KafkaPrincipal::user(
        cert.tbs_certificate.subject.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -x509 -subj "/C=DE/O=sluice tests/OU=ops/CN=admin"`; openssl prints its
    /// subject `-nameopt RFC2253` as `CN=admin,OU=ops,O=sluice tests,C=DE`, as Kafka does.
    const OPENSSL_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB2TCCAX+gAwIBAgIUZa8sWP0qyCZrGHTPKT4x7gL8ivEwCgYIKoZIzj0EAwIw\nQjELMAkGA1UEBhMCREUxFTATBgNVBAoMDHNsdWljZSB0ZXN0czEMMAoGA1UECwwD\nb3BzMQ4wDAYDVQQDDAVhZG1pbjAeFw0yNjEyMDcxODMzNTRaFw0zNjEyMDQxODMz\nNTRaMEIxCzAJBgNVBAYTAkRFMRUwEwYDVQQKDAxzbHVpY2UgdGVzdHMxDDAKBgNV\nBAsMA29wczEOMAwGA1UEAwwFYWRtaW4wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\nAASmI/uodPUDePgJeqpL/s/46o3plichnr3uQpigDvKoQ44Y5YvRP80u3yf9JpRx\nOuXO2i26CpJzLr+HcFjs2YOQo1MwUTAdBgNVHQ4EFgQUzZXNZPowU34WEHYSHp8O\nVqkyFCowHwYDVR0jBBgwFoAUzZXNZPowU34WEHYSHp8OVqkyFCowDwYDVR0TAQH/\nBAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAkRVPqMOGQbqGgY2RycL44caSvSCc\nQ0ZAmWP6gbQhCF0CIGySrtLqtS16AcmXhqyuJvrAjTN7v20kWF4CdCMIJyY7\n-----END CERTIFICATE-----\n";

    #[test]
    fn certificate_subjects_read_as_kafka_principals() {
        let cert = read_certs("test", OPENSSL_CERT.as_bytes())
            .unwrap()
            .remove(0);
        assert_eq!(
            certificate_principal(&cert).unwrap().to_string(),
            "User:CN=admin,OU=ops,O=sluice tests,C=DE"
        );
    }
}
