#![no_main]
//! `nca::fuzz_entry::registry_answer`: the same entry point the test suite replays the corpus through.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nca::fuzz_entry::registry_answer(data));
