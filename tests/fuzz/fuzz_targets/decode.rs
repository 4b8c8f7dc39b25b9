//! The request decoder (RESP multibulk and inline) on arbitrary bytes.
#![no_main]

// Each target uses half of the shared harness.
#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode_input(data));
