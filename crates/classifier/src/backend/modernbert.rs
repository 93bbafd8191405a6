//! Not yet implemented: loading reports an unsupported architecture.

use super::Loaded;
use crate::config::{HeadConfig, ModelFiles};
use crate::error::{ClassifierError, Result};

pub(crate) fn load(
    files: &ModelFiles,
    _config_bytes: &[u8],
    _weights: Vec<u8>,
    head: &HeadConfig,
    _device: &candle_core::Device,
) -> Result<Loaded> {
    Err(ClassifierError::UnsupportedArchitecture {
        architecture: head
            .architectures
            .as_ref()
            .and_then(|a| a.first().cloned())
            .unwrap_or_default(),
        path: files.config(),
    })
}
