//! What several commands share: loading a config with its `--device` override, and sizing the
//! model's thread pool from `--threads`.

use anyhow::Result;
use sluice_core::Config;

/// Loads the config with the `--device` override applied.
pub fn load_config(path: &std::path::Path, device: Option<&str>) -> Result<Config> {
    let mut config = Config::from_file(path)?;
    if let Some(device) = device {
        config.set_device(device);
    }
    Ok(config)
}

/// Makes `--threads N` hold for the classifier too: candle sizes its element-wise thread pool
/// once, from `CANDLE_NUM_THREADS` or else the core count, whatever pool calls it. Called before
/// any model is loaded and before the progress bar starts its thread; a value the user set wins.
pub fn cap_model_threads(threads: usize) {
    if threads > 0 && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    }
}
