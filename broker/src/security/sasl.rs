//! The server side of SASL on one connection (KIP-43, KIP-152): SaslHandshake picks the
//! mechanism, then SaslAuthenticate requests carry its tokens (or, after a v0 handshake, raw
//! length-prefixed tokens with no Kafka header, as old clients send them).
//!
//! On a SASL listener nothing but ApiVersions, SaslHandshake and SaslAuthenticate is answered
//! before authentication succeeds. A failure is answered with SASL_AUTHENTICATION_FAILED and a
//! message that does not say whether the user exists, then the connection is closed.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::credentials::CredentialStore;
use super::scram::{ScramCredential, ScramError, ScramMechanism, ScramServer, ServerStep};
use super::KafkaPrincipal;
use crate::api::encode_response;

/// A SASL mechanism this broker implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// RFC 4616; the password is checked against the stored SCRAM credentials.
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(ScramMechanism),
}

impl Mechanism {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(Self::Plain);
        }
        ScramMechanism::from_name(name).map(Self::Scram)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }
}

#[derive(Debug)]
enum Exchange {
    Plain,
    Scram(ScramServer),
}

#[derive(Debug)]
enum State {
    /// Waiting for SaslHandshake.
    Handshake,
    /// Mechanism chosen; tokens arrive in SaslAuthenticate requests (`raw == false`) or as
    /// bare frames after a v0 handshake.
    Authenticating {
        mechanism: Mechanism,
        raw: bool,
        exchange: Exchange,
    },
    Authenticated,
}

/// What the connection does after a SASL step.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send the frame and keep reading.
    Reply(Result<BytesMut, String>),
    /// Send the frame; from now on the connection acts as the principal.
    Authenticated(KafkaPrincipal, Result<BytesMut, String>),
    /// Send the frame, if any, then close. `reason` is for the (rate-limited) log only.
    Refuse {
        frame: Option<Result<BytesMut, String>>,
        reason: String,
    },
}

/// Kafka's message for a failed authentication; it does not say which part was wrong.
fn failure_message(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// The SASL state of one connection.
#[derive(Debug)]
pub(crate) struct SaslAuthenticator {
    /// Whether the listener requires SASL.
    required: bool,
    enabled: Vec<Mechanism>,
    state: State,
}

impl SaslAuthenticator {
    pub(crate) fn new(required: bool, enabled: Vec<Mechanism>) -> Self {
        Self {
            required,
            enabled,
            state: State::Handshake,
        }
    }

    /// Whether requests other than ApiVersions and SASL's own must wait.
    pub(crate) fn blocks_requests(&self) -> bool {
        self.required && !matches!(self.state, State::Authenticated)
    }

    /// Whether the next frame is a raw token (after a v0 handshake), not a Kafka request.
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Authenticating { raw: true, .. })
    }

    pub(crate) fn handshake(
        &mut self,
        header: &RequestHeader,
        request: SaslHandshakeRequest,
    ) -> Outcome {
        let mechanisms: Vec<StrBytes> = self
            .enabled
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let respond = |code: i16| {
            encode_response(
                header,
                &ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default()
                        .with_error_code(code)
                        .with_mechanisms(mechanisms.clone()),
                ),
            )
        };
        if !self.required || matches!(self.state, State::Authenticated) {
            // Kafka answers this way on listeners without SASL, and to re-authentication
            // (KIP-368), which this broker does not ask for.
            return Outcome::Reply(respond(ResponseError::IllegalSaslState.code()));
        }
        if !matches!(self.state, State::Handshake) {
            return Outcome::Refuse {
                frame: Some(respond(ResponseError::IllegalSaslState.code())),
                reason: "SaslHandshake in the middle of an exchange".to_owned(),
            };
        }
        let Some(mechanism) =
            Mechanism::from_name(request.mechanism.as_str()).filter(|m| self.enabled.contains(m))
        else {
            return Outcome::Refuse {
                frame: Some(respond(ResponseError::UnsupportedSaslMechanism.code())),
                reason: format!(
                    "SASL mechanism '{}' is not enabled (sasl.enabled.mechanisms)",
                    request.mechanism.as_str()
                ),
            };
        };
        self.state = State::Authenticating {
            mechanism,
            raw: header.request_api_version == 0,
            exchange: match mechanism {
                Mechanism::Plain => Exchange::Plain,
                Mechanism::Scram(m) => Exchange::Scram(ScramServer::new(m)),
            },
        };
        Outcome::Reply(respond(0))
    }

    pub(crate) fn authenticate(
        &mut self,
        header: &RequestHeader,
        request: SaslAuthenticateRequest,
        credentials: &CredentialStore,
    ) -> Outcome {
        let respond = |code: i16, message: Option<String>, bytes: Vec<u8>| {
            encode_response(
                header,
                &ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string))
                        .with_auth_bytes(Bytes::from(bytes)),
                ),
            )
        };
        let unexpected = Some("SaslAuthenticate not expected before SaslHandshake v1".to_owned());
        if !self.required || matches!(self.state, State::Authenticated) {
            return Outcome::Reply(respond(
                ResponseError::IllegalSaslState.code(),
                unexpected,
                Vec::new(),
            ));
        }
        if !matches!(self.state, State::Authenticating { raw: false, .. }) {
            return Outcome::Refuse {
                frame: Some(respond(
                    ResponseError::IllegalSaslState.code(),
                    unexpected,
                    Vec::new(),
                )),
                reason: "SaslAuthenticate not expected on this connection now".to_owned(),
            };
        }
        match self.step(&request.auth_bytes, credentials) {
            Step::Continue(challenge) => Outcome::Reply(respond(0, None, challenge)),
            Step::Done(principal, last) => {
                Outcome::Authenticated(principal, respond(0, None, last))
            }
            Step::Failed { mechanism, reason } => Outcome::Refuse {
                frame: Some(respond(
                    ResponseError::SaslAuthenticationFailed.code(),
                    Some(failure_message(mechanism)),
                    Vec::new(),
                )),
                reason,
            },
        }
    }

    /// A raw token after a v0 handshake; the answer is a bare length-prefixed token.
    pub(crate) fn raw_token(&mut self, token: &[u8], credentials: &CredentialStore) -> Outcome {
        let frame = |bytes: Vec<u8>| {
            let mut out = BytesMut::with_capacity(4 + bytes.len());
            out.put_i32(bytes.len() as i32);
            out.put_slice(&bytes);
            Ok(out)
        };
        match self.step(token, credentials) {
            Step::Continue(challenge) => Outcome::Reply(frame(challenge)),
            Step::Done(principal, last) => Outcome::Authenticated(principal, frame(last)),
            Step::Failed { reason, .. } => Outcome::Refuse {
                frame: None,
                reason,
            },
        }
    }

    fn step(&mut self, token: &[u8], credentials: &CredentialStore) -> Step {
        let State::Authenticating {
            mechanism,
            exchange,
            ..
        } = &mut self.state
        else {
            return Step::Failed {
                mechanism: Mechanism::Plain,
                reason: "SASL token outside an exchange".to_owned(),
            };
        };
        let mechanism = *mechanism;
        let result = match exchange {
            Exchange::Plain => {
                plain(token, |user, m| credentials.get(user, m)).map(|user| (user, Vec::new()))
            }
            Exchange::Scram(server) => {
                let Mechanism::Scram(m) = mechanism else {
                    unreachable!("a SCRAM exchange has a SCRAM mechanism")
                };
                match server.step(token, |user| credentials.get(user, m)) {
                    Ok(ServerStep::Continue(challenge)) => return Step::Continue(challenge),
                    Ok(ServerStep::Done { user, response }) => Ok((user, response)),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok((user, last)) => {
                self.state = State::Authenticated;
                Step::Done(KafkaPrincipal::user(user), last)
            }
            Err(e) => {
                self.state = State::Handshake;
                Step::Failed {
                    mechanism,
                    reason: format!("SASL {} authentication failed: {e}", mechanism.name()),
                }
            }
        }
    }
}

enum Step {
    Continue(Vec<u8>),
    Done(KafkaPrincipal, Vec<u8>),
    Failed {
        mechanism: Mechanism,
        reason: String,
    },
}

/// Checks a PLAIN message (`authzid NUL authcid NUL password`) against the SCRAM store.
fn plain(
    token: &[u8],
    lookup: impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<String, ScramError> {
    let malformed = |why: &str| ScramError::Malformed(why.to_owned());
    let text = std::str::from_utf8(token).map_err(|_| malformed("PLAIN message is not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "PLAIN message is not authzid NUL user NUL password",
        ));
    };
    if user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Err(malformed(
            "PLAIN authorization id differs from the user name",
        ));
    }
    let bad = || ScramError::BadCredentials {
        user: user.to_owned(),
    };
    let (mechanism, credential) = [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .find_map(|m| lookup(user, m).map(|c| (m, c)))
        .ok_or_else(bad)?;
    if credential.matches_password(mechanism, password) {
        Ok(user.to_owned())
    } else {
        Err(bad())
    }
}

/// Runs a SASL token from the network through every mechanism's server side, as a first and
/// as a second message, with a known user; for the fuzz target (nothing may panic).
pub(crate) fn exercise_token(token: &[u8]) {
    for m in ScramMechanism::ALL {
        // Derived keys from a fixed salted password: no PBKDF2 per input.
        let credential = ScramCredential::from_salted_password(m, vec![1; 16], &[2; 64], 4096);
        let _ = ScramServer::new(m).step(token, |_| Some(credential.clone()));
        let mut server = ScramServer::new(m);
        if server
            .step(b"n,,n=user,r=fuzz", |_| Some(credential.clone()))
            .is_ok()
        {
            let _ = server.step(token, |_| None);
        }
    }
    let _ = plain(token, |_, _| None);
}
