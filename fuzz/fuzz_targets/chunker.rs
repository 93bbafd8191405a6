//! `open_shard` + `LineChunker` over arbitrary bytes, plain, zstd and gzip: see
//! `sluice_io::fuzzing::chunker` for the input layout and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_io::fuzzing::chunker(data));
