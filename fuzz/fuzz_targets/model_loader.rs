//! Arbitrary `config.json`, `model.safetensors` and `tokenizer.json` in a checkpoint directory:
//! see `sluice_classifier::fuzzing::model_loader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_classifier::fuzzing::model_loader(data));
