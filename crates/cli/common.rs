//! What several commands share: loading a config with its `--device` override, and sizing the
//! model's thread pool from `--threads`.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, OnceLock};

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

/// The flag a long command stops on: SIGINT or SIGTERM store their number there (the run stops
/// taking chunks, removes its temporary files and says how to resume); a second such signal ends
/// the process at once, as without a handler.
pub fn stop_on_signals() -> &'static AtomicUsize {
    static STOP: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    STOP.get_or_init(|| {
        let stop = Arc::new(AtomicUsize::new(0));
        let again = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so it sees `again` as it was before this signal set it.
            let _ = signal_hook::flag::register_conditional_default(signal, again.clone());
            let _ = signal_hook::flag::register(signal, again.clone());
            let _ = signal_hook::flag::register_usize(signal, stop.clone(), signal as usize);
        }
        stop
    })
}

/// This process's command line, for the lock of the output directory it writes.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
