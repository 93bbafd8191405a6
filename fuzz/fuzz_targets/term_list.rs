//! Term-list parsing and the matcher built from it: see `sluice_terms::fuzzing::term_list`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_terms::fuzzing::term_list(data));
