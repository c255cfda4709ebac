//! Signed internal requests (KIP-507), as Kafka Connect's: the leader of a `sessioned` group
//! writes a random session key to the config topic and renews it every
//! `inter.worker.key.ttl.ms`; a member handing task configurations to the leader
//! (`POST /connectors/{c}/tasks`) signs the request body with it
//! (`X-Connect-Authorization`: base64 of the HMAC, `X-Connect-Request-Signature-Algorithm`:
//! its JCA name), and the leader refuses a request whose signature is missing (400) or wrong
//! (403). Anyone who can reach a worker's REST port therefore cannot write task
//! configurations, and REST authentication can let these requests through on their signature.

use std::time::Duration;

use base64::Engine;
use ring::rand::SecureRandom;

use crate::cluster::config_log::SessionKey;

/// The header holding the signature.
pub const SIGNATURE_HEADER: &str = "X-Connect-Authorization";
/// The header naming the signature's algorithm.
pub const ALGORITHM_HEADER: &str = "X-Connect-Request-Signature-Algorithm";
/// Kafka Connect's default key and signature algorithm.
pub const DEFAULT_ALGORITHM: &str = "HmacSHA256";

fn algorithm(name: &str) -> Option<ring::hmac::Algorithm> {
    match name {
        "HmacSHA256" => Some(ring::hmac::HMAC_SHA256),
        "HmacSHA384" => Some(ring::hmac::HMAC_SHA384),
        "HmacSHA512" => Some(ring::hmac::HMAC_SHA512),
        _ => None,
    }
}

/// Whether sluice can sign and verify with the JCA algorithm `name`.
pub fn is_supported(name: &str) -> bool {
    algorithm(name).is_some()
}

/// A fresh random key for `algorithm` (as long as the hash's output, as Java's KeyGenerator
/// makes them), created at `now_ms`.
pub fn new_key(algorithm_name: &str, now_ms: i64) -> SessionKey {
    let len = algorithm(algorithm_name).map_or(32, |a| a.digest_algorithm().output_len());
    let mut key = vec![0u8; len];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .expect("the system's random source works");
    SessionKey {
        key,
        algorithm: algorithm_name.to_string(),
        creation_timestamp: now_ms,
    }
}

/// Whether `key` is older than `ttl` at `now_ms`.
pub fn expired(key: &SessionKey, ttl: Duration, now_ms: i64) -> bool {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(key.creation_timestamp) >= ttl_ms
}

/// When `key` expires, in ms since the epoch.
pub fn expiry_ms(key: &SessionKey, ttl: Duration) -> i64 {
    key.creation_timestamp
        .saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The signature of `body` with `key`, base64, and the algorithm's name; `None` for an
/// algorithm sluice does not have.
pub fn sign(key: &SessionKey, algorithm_name: &str, body: &[u8]) -> Option<String> {
    let alg = algorithm(algorithm_name)?;
    let tag = ring::hmac::sign(&ring::hmac::Key::new(alg, &key.key), body);
    Some(base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No signature where one is required (400).
    Missing,
    /// An algorithm this worker does not verify (400).
    Algorithm(String),
    /// A signature that does not match (403).
    Invalid,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("Internal request missing required signature"),
            Self::Algorithm(a) => write!(
                f,
                "Internal request signature algorithm {a} is not one this worker verifies (HmacSHA256, HmacSHA384, HmacSHA512)"
            ),
            Self::Invalid => f.write_str("Internal request contained invalid signature."),
        }
    }
}

/// Checks a request: `signature` is the (algorithm, base64 signature) it carried, `key` the
/// leader's current session key. Without a key (a group not `sessioned`), only unsigned
/// requests pass; a signature the leader cannot check is refused, never waved through.
///
/// # Errors
/// The [`Refusal`].
pub fn verify(
    key: Option<&SessionKey>,
    signature: Option<(&str, &str)>,
    body: &[u8],
) -> Result<(), Refusal> {
    match (key, signature) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(Refusal::Missing),
        (None, Some(_)) => Err(Refusal::Invalid),
        (Some(key), Some((alg, signature))) => {
            let Some(algorithm) = algorithm(alg) else {
                return Err(Refusal::Algorithm(alg.to_string()));
            };
            let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
                return Err(Refusal::Invalid);
            };
            ring::hmac::verify(&ring::hmac::Key::new(algorithm, &key.key), body, &tag)
                .map_err(|_| Refusal::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_nothing_else_does() {
        let key = new_key(DEFAULT_ALGORITHM, 1_000);
        assert_eq!(key.key.len(), 32);
        let body = br#"[{"task.class":"x"}]"#;
        let sig = sign(&key, DEFAULT_ALGORITHM, body).unwrap();
        assert_eq!(
            verify(Some(&key), Some((DEFAULT_ALGORITHM, &sig)), body),
            Ok(())
        );
        // Another body, another key, no signature, a foreign algorithm.
        assert_eq!(
            verify(Some(&key), Some((DEFAULT_ALGORITHM, &sig)), b"[]"),
            Err(Refusal::Invalid)
        );
        let other = new_key(DEFAULT_ALGORITHM, 1_000);
        assert_eq!(
            verify(Some(&other), Some((DEFAULT_ALGORITHM, &sig)), body),
            Err(Refusal::Invalid)
        );
        assert_eq!(verify(Some(&key), None, body), Err(Refusal::Missing));
        assert_eq!(
            verify(Some(&key), Some(("HmacMD5", &sig)), body),
            Err(Refusal::Algorithm("HmacMD5".into()))
        );
        // Without a key, a signature cannot be checked and is refused.
        assert_eq!(
            verify(None, Some((DEFAULT_ALGORITHM, &sig)), body),
            Err(Refusal::Invalid)
        );
        assert_eq!(verify(None, None, body), Ok(()));
    }

    #[test]
    fn keys_expire_after_their_ttl() {
        let key = new_key("HmacSHA512", 10_000);
        assert_eq!(key.key.len(), 64);
        let ttl = Duration::from_secs(3600);
        assert!(!expired(&key, ttl, 10_000 + 3_599_999));
        assert!(expired(&key, ttl, 10_000 + 3_600_000));
        assert_eq!(expiry_ms(&key, ttl), 3_610_000);
    }

    #[test]
    fn java_mac_output_is_matched() {
        // RFC 4231 test case 2: HMAC-SHA256 of "what do ya want for nothing?" with key "Jefe"
        // (what javax.crypto.Mac "HmacSHA256" gives).
        let key = SessionKey {
            key: b"Jefe".to_vec(),
            algorithm: DEFAULT_ALGORITHM.into(),
            creation_timestamp: 0,
        };
        let sig = sign(&key, DEFAULT_ALGORITHM, b"what do ya want for nothing?").unwrap();
        let hex: String = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
