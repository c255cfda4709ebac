//! Security: listeners and their protocols, TLS, SASL authentication and ACL authorization,
//! with Kafka's names and semantics so that clients and habits carry over.
//!
//! - this module: [`SecurityProtocol`], listener parsing (`listeners`,
//!   `advertised.listeners`, `listener.security.protocol.map`) and [`KafkaPrincipal`].
//! - [`tls`]: the rustls server configuration from PEM files, reloaded when the files change,
//!   and the principal of a TLS client certificate.
//! - [`scram`]: SCRAM-SHA-256/512 (RFC 5802, RFC 7677) arithmetic and the client side of the
//!   exchange, which the runtime's own clients use.
//! - [`credentials`]: the durable store of salted SCRAM credentials.
//! - [`sasl`]: the server side of SaslHandshake / SaslAuthenticate on one connection.
//! - [`acl`]: Kafka's ACL model, its durable store, and the authorizer.

pub mod acl;
pub mod credentials;
pub(crate) mod sasl;
pub mod scram;
pub(crate) mod tls;

use std::fmt;
use std::net::SocketAddr;

use crate::{Error, Result};

/// How a listener's connections are secured, as Kafka's `security.protocol` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS; the principal is the client certificate's subject, if one is presented.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication inside TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, with its Kafka name.
    pub const ALL: [(Self, &'static str); 4] = [
        (Self::Plaintext, "PLAINTEXT"),
        (Self::Ssl, "SSL"),
        (Self::SaslPlaintext, "SASL_PLAINTEXT"),
        (Self::SaslSsl, "SASL_SSL"),
    ];

    /// The protocol named `name` (case-insensitive), if it is one of Kafka's four.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
    }

    /// Kafka's name for the protocol.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, n)| *n)
            .unwrap_or("PLAINTEXT")
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before anything else.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the `listeners` setting, before binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener's name (`PLAINTEXT`, `SASL_SSL`, or a name mapped by
    /// `listener.security.protocol.map`).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// `host:port` to bind (an empty host binds every interface, as in Kafka).
    pub bind: String,
    /// `host:port` advertised to clients, from `advertised.listeners` (port 0: the bound port).
    pub advertised: Option<(String, u16)>,
}

/// A bound listener.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) name: String,
    pub(crate) protocol: SecurityProtocol,
    pub(crate) local_addr: SocketAddr,
    pub(crate) advertised_host: String,
    pub(crate) advertised_port: i32,
}

/// Splits `host:port` (IPv6 hosts in brackets); an empty host stays empty.
fn split_host_port(setting: &str, text: &str) -> Result<(String, u16)> {
    let bad = || {
        Error::Config(format!(
            "broker setting '{setting}': '{text}' is not host:port (e.g. 127.0.0.1:9092)"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
fn parse_protocol_map(map: &str) -> Result<Vec<(String, SecurityProtocol)>> {
    let mut out = Vec::new();
    for entry in map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            Error::Config(format!(
                "broker setting 'listener.security.protocol.map': entry '{entry}' is not NAME:PROTOCOL (e.g. INTERNAL:SASL_SSL)"
            ))
        })?;
        let protocol = SecurityProtocol::from_name(protocol.trim()).ok_or_else(|| {
            Error::Config(format!(
                "broker setting 'listener.security.protocol.map': '{}' is not a security protocol (use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)",
                protocol.trim()
            ))
        })?;
        out.push((name.trim().to_ascii_uppercase(), protocol));
    }
    Ok(out)
}

/// Parses the broker's `listeners`, `advertised.listeners` and
/// `listener.security.protocol.map` settings.
///
/// `listeners` is Kafka's `NAME://host:port,...` list or, as before listeners had names, a
/// single `host:port` (a PLAINTEXT listener). `advertised.listeners` is the same kind of list
/// (matched by name) or a single `host:port` for the first listener.
///
/// # Errors
/// [`Error::Config`] naming the setting and the entry that cannot be understood.
pub fn parse_listeners(
    listeners: &str,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
) -> Result<Vec<ListenerSpec>> {
    let map = match protocol_map {
        Some(map) => parse_protocol_map(map)?,
        None => Vec::new(),
    };
    let protocol_of = |name: &str| -> Result<SecurityProtocol> {
        if let Some((_, p)) = map.iter().find(|(n, _)| n == name) {
            return Ok(*p);
        }
        SecurityProtocol::from_name(name).ok_or_else(|| {
            Error::Config(format!(
                "broker setting 'listeners': listener '{name}' is not a security protocol name; map it to one in listener.security.protocol.map (e.g. {name}:SASL_SSL)"
            ))
        })
    };
    let mut specs: Vec<ListenerSpec> = Vec::new();
    for entry in listeners
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, address) = match entry.split_once("://") {
            Some((name, address)) => (name.trim().to_ascii_uppercase(), address),
            None => ("PLAINTEXT".to_owned(), entry),
        };
        let protocol = protocol_of(&name)?;
        split_host_port("listeners", address)?;
        if specs.iter().any(|s| s.name == name) {
            return Err(Error::Config(format!(
                "broker setting 'listeners': listener name '{name}' appears twice; give each listener its own name and map it in listener.security.protocol.map"
            )));
        }
        specs.push(ListenerSpec {
            name,
            protocol,
            bind: address.to_owned(),
            advertised: None,
        });
    }
    if specs.is_empty() {
        return Err(Error::Config(
            "broker setting 'listeners' is empty; give e.g. PLAINTEXT://127.0.0.1:9092".to_owned(),
        ));
    }
    if let Some(advertised) = advertised {
        for entry in advertised
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            match entry.split_once("://") {
                Some((name, address)) => {
                    let name = name.trim().to_ascii_uppercase();
                    let spec = specs.iter_mut().find(|s| s.name == name).ok_or_else(|| {
                        Error::Config(format!(
                            "broker setting 'advertised.listeners': listener '{name}' is not in 'listeners'"
                        ))
                    })?;
                    spec.advertised = Some(split_host_port("advertised.listeners", address)?);
                }
                None => {
                    specs[0].advertised = Some(split_host_port("advertised.listeners", entry)?);
                }
            }
        }
    }
    Ok(specs)
}

/// The principal a connection acts as, as Kafka writes it: `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    /// `User` for every principal this broker produces.
    pub principal_type: String,
    /// The user name, the certificate subject, or `ANONYMOUS`.
    pub name: String,
}

/// Kafka's principal type for users.
pub const USER_TYPE: &str = "User";
/// The name of unauthenticated principals.
pub const ANONYMOUS: &str = "ANONYMOUS";

impl KafkaPrincipal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: USER_TYPE.to_owned(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of PLAINTEXT connections.
    pub fn anonymous() -> Self {
        Self::user(ANONYMOUS)
    }

    /// Parses `Type:name` (the name may itself contain colons, as certificate subjects do not
    /// but other names might).
    ///
    /// # Errors
    /// A message when there is no `Type:` part.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Self {
                principal_type: kind.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!(
                "'{text}' is not a principal; write Type:name, e.g. User:alice"
            )),
        }
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_in_kafka_syntax() {
        let specs = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092, SASL_SSL://0.0.0.0:9093,INTERNAL://:9094",
            Some("SASL_SSL://broker.example.com:19093"),
            Some("INTERNAL:SASL_PLAINTEXT"),
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[0].bind, "127.0.0.1:9092");
        assert_eq!(specs[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(
            specs[1].advertised,
            Some(("broker.example.com".to_owned(), 19093))
        );
        assert_eq!(specs[2].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(specs[2].bind, ":9094");
        let plain = parse_listeners("127.0.0.1:0", Some("localhost:9092"), None).unwrap();
        assert_eq!(plain[0].name, "PLAINTEXT");
        assert_eq!(plain[0].advertised, Some(("localhost".to_owned(), 9092)));
    }

    #[test]
    fn bad_listeners_name_the_setting() {
        let err = parse_listeners("EXTERNAL://:9092", None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("listener.security.protocol.map"), "{err}");
        let err = parse_listeners("SSL://host", None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'listeners'"), "{err}");
        let err = parse_listeners("SSL://:1", Some("PLAINTEXT://h:2"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("advertised.listeners"), "{err}");
        let err = parse_listeners("A://:1", None, Some("A:TLS"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS"), "{err}");
        assert_eq!(
            KafkaPrincipal::parse("User:CN=a,O=b").unwrap().name,
            "CN=a,O=b"
        );
        assert!(KafkaPrincipal::parse("alice").is_err());
    }
}
