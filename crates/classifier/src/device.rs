//! Choosing the compute device once, at construction.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::error::ClassifierError;

/// Where the model runs. Parsed from `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`.
///
/// CUDA and Metal need the crate's `cuda` / `metal` cargo features; asking for one in a build
/// without it is a [`ClassifierError::DeviceUnavailable`], never a silent fallback to the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (candle's multi-threaded kernels).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
    /// An Apple GPU by ordinal.
    Metal(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = ClassifierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, ordinal) = match s.split_once(':') {
            Some((kind, n)) => {
                let n = n.parse::<usize>().map_err(|_| {
                    ClassifierError::InvalidOptions(format!("bad device ordinal in {s:?}"))
                })?;
                (kind.to_string(), n)
            }
            None => (s.clone(), 0),
        };
        match kind.as_str() {
            "cpu" if ordinal == 0 => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(ordinal)),
            "metal" => Ok(DeviceSpec::Metal(ordinal)),
            _ => Err(ClassifierError::InvalidOptions(format!(
                "unknown device {s:?} (expected cpu, cuda[:N] or metal[:N])"
            ))),
        }
    }
}

impl DeviceSpec {
    /// Opens the candle device. All `cfg` on accelerator features lives here.
    pub(crate) fn open(self) -> Result<Device, ClassifierError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => open_cuda(ordinal),
            DeviceSpec::Metal(ordinal) => open_metal(ordinal),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, ClassifierError> {
    Device::new_cuda(ordinal).map_err(|e| ClassifierError::DeviceUnavailable {
        device: DeviceSpec::Cuda(ordinal).to_string(),
        reason: e.to_string(),
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device, ClassifierError> {
    Err(ClassifierError::DeviceUnavailable {
        device: DeviceSpec::Cuda(ordinal).to_string(),
        reason: "sluice-classifier was built without the `cuda` feature".into(),
    })
}

#[cfg(feature = "metal")]
fn open_metal(ordinal: usize) -> Result<Device, ClassifierError> {
    Device::new_metal(ordinal).map_err(|e| ClassifierError::DeviceUnavailable {
        device: DeviceSpec::Metal(ordinal).to_string(),
        reason: e.to_string(),
    })
}

#[cfg(not(feature = "metal"))]
fn open_metal(ordinal: usize) -> Result<Device, ClassifierError> {
    Err(ClassifierError::DeviceUnavailable {
        device: DeviceSpec::Metal(ordinal).to_string(),
        reason: "sluice-classifier was built without the `metal` feature".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("metal".parse::<DeviceSpec>().unwrap(), DeviceSpec::Metal(0));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn cpu_always_opens() {
        assert!(DeviceSpec::Cpu.open().is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err();
        assert!(
            err.to_string().contains("without the `cuda` feature"),
            "{err}"
        );
    }
}
