#![no_main]
//! `nca::fuzz_entry::ocsp_request`: the same entry point the test suite replays the corpus through.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nca::fuzz_entry::ocsp_request(data));
