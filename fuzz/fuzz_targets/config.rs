//! See `sluice_core::fuzzing::config` for the input layout and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::config(data));
