//! Fuzzes request decoding as the broker does it: header, body at the advertised versions,
//! and (for Produce) record-batch framing and CRC checks. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_broker::decode_request_frame(bytes::Bytes::copy_from_slice(data));
});
