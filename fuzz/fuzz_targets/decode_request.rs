//! Fuzzes request decoding as the broker does it: header, body at the advertised versions,
//! for Produce the record-batch framing and CRC checks, for SaslAuthenticate the SCRAM and
//! PLAIN server sides; and the same bytes as a raw SASL token (after a v0 handshake). Any
//! panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_broker::decode_request_frame(bytes::Bytes::copy_from_slice(data));
    sluice_broker::exercise_sasl_token(data);
});
