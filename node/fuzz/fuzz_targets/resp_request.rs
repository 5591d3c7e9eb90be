//! Fuzz target: see `cellkv_node::fuzzing::resp_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cellkv_node::fuzzing::resp_request(data));
