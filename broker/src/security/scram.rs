//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them (KIP-84): the
//! credential arithmetic, the server side of the exchange, and a client for the runtime's own
//! connections and the command-line tools.
//!
//! The broker keeps only the salt, the iteration count, `StoredKey = H(HMAC(SaltedPassword,
//! "Client Key"))` and `ServerKey = HMAC(SaltedPassword, "Server Key")`: enough to check a
//! client's proof, never enough to log in as it. A PLAIN password is checked by deriving the
//! same keys from it.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};

/// Kafka's smallest accepted iteration count for SCRAM credentials.
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's largest accepted iteration count.
pub const MAX_ITERATIONS: u32 = 16384;
/// Iterations used when none are given (Kafka's `kafka-configs` default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Bytes of salt in new credentials.
const SALT_BYTES: usize = 32;
/// Bytes of randomness in a nonce.
const NONCE_BYTES: usize = 24;

/// One of the two SCRAM mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    /// The SASL name, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism with SASL name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The code of the mechanism in AlterUserScramCredentials / DescribeUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The mechanism with wire code `code`.
    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the broker stores for one user and mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Random bytes from the system's secure generator.
///
/// # Panics
/// When the operating system has no random source, which no supported system lacks.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system's random source");
    out
}

/// A new random salt.
pub fn random_salt() -> Vec<u8> {
    random_bytes(SALT_BYTES)
}

/// `Hi(password, salt, iterations)`: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.output_len()];
    pbkdf2::derive(
        mechanism.pbkdf2(),
        NonZeroU32::new(iterations.max(1)).expect("at least 1"),
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

impl ScramCredential {
    /// The stored form of a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.mac(salted_password, b"Client Key");
        Self {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.mac(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// A credential for `password` with a new random salt.
    pub fn from_password(mechanism: ScramMechanism, password: &str, iterations: u32) -> Self {
        let salt = random_salt();
        let salted = salted_password(mechanism, password, &salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Whether `password` is the one this credential was made from (for SASL/PLAIN).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let salted = salted_password(mechanism, password, &self.salt, self.iterations);
        let candidate =
            Self::from_salted_password(mechanism, self.salt.clone(), &salted, self.iterations);
        constant_time_eq(&candidate.stored_key, &self.stored_key)
    }
}

/// Compares without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`).
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The value of attribute `key` (`n=`, `r=`, ...) in a SCRAM message.
fn attribute(message: &str, key: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
}

/// Why an exchange failed. Only [`ScramError::client_message`] is ever shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message is not SCRAM as Kafka speaks it.
    Malformed(String),
    /// Unknown user or wrong password (the two are not told apart to the client).
    BadCredentials {
        /// The user name the client gave.
        user: String,
    },
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed SCRAM message: {why}"),
            Self::BadCredentials { user } => {
                write!(f, "invalid credentials for user '{user}'")
            }
        }
    }
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub(crate) struct ScramServer {
    mechanism: ScramMechanism,
    state: ServerState,
}

#[derive(Debug)]
enum ServerState {
    Initial,
    SentFirst {
        user: String,
        /// `None` for an unknown user: the exchange goes on with a made-up salt and fails at
        /// the proof, so a client cannot tell unknown users from wrong passwords.
        credential: Option<ScramCredential>,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// What one step of the server side produced.
#[derive(Debug)]
pub(crate) enum ServerStep {
    /// Send this challenge and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as this user; send the final message.
    Done { user: String, response: Vec<u8> },
}

impl ScramServer {
    pub(crate) fn new(mechanism: ScramMechanism) -> Self {
        Self {
            mechanism,
            state: ServerState::Initial,
        }
    }

    /// Processes one client message. `lookup` finds a user's credential for this mechanism.
    pub(crate) fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ServerStep, ScramError> {
        let malformed = |why: &str| ScramError::Malformed(why.to_owned());
        let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Initial => {
                // gs2-header "n,," or "n,a=authzid," then the bare message.
                let mut parts = text.splitn(3, ',');
                let cbind = parts.next().unwrap_or_default();
                let authzid = parts.next().ok_or_else(|| malformed("no GS2 header"))?;
                let bare = parts
                    .next()
                    .ok_or_else(|| malformed("no client-first message"))?;
                if cbind != "n" && cbind != "y" {
                    return Err(malformed("channel binding is not supported"));
                }
                let user = attribute(bare, 'n')
                    .and_then(decode_saslname)
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| malformed("no user name"))?;
                if let Some(authzid) = authzid.strip_prefix("a=") {
                    if decode_saslname(authzid).as_deref() != Some(user.as_str()) {
                        return Err(malformed("authorization id differs from the user name"));
                    }
                }
                if attribute(bare, 'm').is_some() {
                    return Err(malformed("mandatory extensions are not supported"));
                }
                if bare.split(',').any(|p| p.starts_with("tokenauth=")) {
                    return Err(malformed("delegation tokens are not supported"));
                }
                let client_nonce = attribute(bare, 'r')
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| malformed("no nonce"))?;
                let nonce = format!("{client_nonce}{}", BASE64.encode(random_bytes(NONCE_BYTES)));
                let credential = lookup(&user);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (made_up_salt(self.mechanism, &user), DEFAULT_ITERATIONS),
                };
                let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
                let response = server_first.clone().into_bytes();
                self.state = ServerState::SentFirst {
                    user,
                    credential,
                    client_first_bare: bare.to_owned(),
                    server_first,
                    nonce,
                };
                Ok(ServerStep::Continue(response))
            }
            ServerState::SentFirst {
                user,
                credential,
                client_first_bare,
                server_first,
                nonce,
            } => {
                let (without_proof, proof) = text
                    .rsplit_once(",p=")
                    .ok_or_else(|| malformed("no proof"))?;
                if attribute(without_proof, 'r') != Some(nonce.as_str()) {
                    return Err(malformed("nonce differs from the server's"));
                }
                let binding = attribute(without_proof, 'c').ok_or_else(|| malformed("no c="))?;
                if binding != "biws" && binding != "eSws" {
                    return Err(malformed("channel binding is not supported"));
                }
                let proof = BASE64
                    .decode(proof)
                    .map_err(|_| malformed("proof is not base64"))?;
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let Some(credential) = credential else {
                    return Err(ScramError::BadCredentials { user });
                };
                let m = self.mechanism;
                let client_signature = m.mac(&credential.stored_key, auth_message.as_bytes());
                if proof.len() != client_signature.len() {
                    return Err(ScramError::BadCredentials { user });
                }
                let client_key: Vec<u8> = proof
                    .iter()
                    .zip(&client_signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
                    return Err(ScramError::BadCredentials { user });
                }
                let server_signature = m.mac(&credential.server_key, auth_message.as_bytes());
                Ok(ServerStep::Done {
                    user,
                    response: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
                })
            }
            ServerState::Done => Err(malformed("the exchange is already over")),
        }
    }
}

/// A salt for an unknown user that stays the same across attempts, so probing cannot tell
/// a made-up user from a real one by a changing salt.
fn made_up_salt(mechanism: ScramMechanism, user: &str) -> Vec<u8> {
    static SECRET: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| random_bytes(32));
    let mut salt = mechanism.mac(secret, user.as_bytes());
    salt.truncate(SALT_BYTES);
    salt
}

/// The client side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange for `user`.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        let nonce = BASE64.encode(random_bytes(NONCE_BYTES));
        Self {
            mechanism,
            password: password.to_owned(),
            client_first_bare: format!("n={},r={nonce}", encode_saslname(user)),
            nonce,
            server_signature: None,
        }
    }

    /// The first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The answer to the server's first message.
    ///
    /// # Errors
    /// A message when the server's message is not valid SCRAM.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server's SCRAM message is not UTF-8".to_owned())?;
        let nonce = attribute(server_first, 'r')
            .filter(|n| n.starts_with(&self.nonce))
            .ok_or("the server's SCRAM nonce does not extend ours")?;
        let salt = attribute(server_first, 's')
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or("the server's SCRAM salt is missing")?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=1_000_000).contains(i))
            .ok_or("the server's SCRAM iteration count is missing")?;
        let m = self.mechanism;
        let salted = salted_password(m, &self.password, &salt, iterations);
        let client_key = m.mac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = m.mac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.mac(&salted, b"Server Key");
        self.server_signature = Some(m.mac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message, which proves the server knows the credential.
    ///
    /// # Errors
    /// A message when the server reported an error or its signature is wrong.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(server_final);
        if let Some(error) = attribute(&text, 'e') {
            return Err(format!("the server refused the SCRAM exchange: {error}"));
        }
        let signature = attribute(&text, 'v')
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or("the server's final SCRAM message has no signature")?;
        match &self.server_signature {
            Some(expected) if constant_time_eq(expected, &signature) => Ok(()),
            _ => Err(
                "the server's SCRAM signature is wrong: it does not know this user's credential"
                    .to_owned(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_example_verifies() {
        // RFC 7677 section 3: user "user", password "pencil".
        let m = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(m, "pencil", &salt, 4096);
        let credential = ScramCredential::from_salted_password(m, salt, &salted, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let server_signature = m.mac(&credential.server_key, auth.as_bytes());
        assert_eq!(
            BASE64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(credential.matches_password(m, "pencil"));
        assert!(!credential.matches_password(m, "pencil2"));
    }

    #[test]
    fn client_and_server_agree_and_wrong_passwords_fail() {
        for m in ScramMechanism::ALL {
            let credential = ScramCredential::from_password(m, "s3cret", 4096);
            let mut client = ScramClient::new(m, "al,ice", "s3cret");
            let mut server = ScramServer::new(m);
            let ServerStep::Continue(first) = server
                .step(&client.client_first(), |u| {
                    (u == "al,ice").then(|| credential.clone())
                })
                .unwrap()
            else {
                panic!("expected a challenge")
            };
            let last = client.client_final(&first).unwrap();
            let ServerStep::Done { user, response } = server.step(&last, |_| None).unwrap() else {
                panic!("expected success")
            };
            assert_eq!(user, "al,ice");
            client.verify_server_final(&response).unwrap();

            for (name, password) in [("al,ice", "wrong"), ("mallory", "s3cret")] {
                let mut client = ScramClient::new(m, name, password);
                let mut server = ScramServer::new(m);
                let ServerStep::Continue(first) = server
                    .step(&client.client_first(), |u| {
                        (u == "al,ice").then(|| credential.clone())
                    })
                    .unwrap()
                else {
                    panic!("expected a challenge")
                };
                let last = client.client_final(&first).unwrap();
                let err = server.step(&last, |_| None).unwrap_err();
                assert!(matches!(err, ScramError::BadCredentials { .. }), "{err}");
            }
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let m = ScramMechanism::Sha512;
        for bad in [
            &b""[..],
            b"n",
            b"p=x,,n=a,r=b",
            b"n,,r=abc",
            b"n,,n=a",
            b"\xff\xfe",
        ] {
            assert!(ScramServer::new(m).step(bad, |_| None).is_err());
        }
    }
}
