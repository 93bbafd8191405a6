//! Screening a fine-tuning dataset: run the cascade, then give one verdict a CI job can act on.
//!
//! The screen config is a sluice config with one more table, `[screen]`, holding the limits
//! (see `configs/finetune-screen.toml`). *Flagged* documents are those the cascade dropped or
//! sent to review. The verdict is `reject` when the flagged count or fraction crosses a reject
//! limit (a dataset that looks built to strip safety behaviour), else `review` when more than
//! `review_above` documents are flagged (they are listed for a person), else `accept`.
//!
//! **Fail closed.** A screen must never accept what it could not read: lines that are not
//! readable records (`errors/`) count as flagged unless `errors_are_flagged = false`, and a
//! dataset of which more than `max_error_fraction` (default a half) is unreadable, or that has no
//! line at all, gets no verdict but an error (exit 3): it is probably in a layout the config
//! does not describe.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_core::{Config, ConfigError};

/// The `[screen]` table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScreenLimits {
    /// Reject when more than this fraction of the documents is flagged.
    #[serde(default)]
    pub reject_fraction: Option<f64>,
    /// Reject when more than this many documents are flagged.
    #[serde(default)]
    pub reject_count: Option<u64>,
    /// Review when more than this many documents are flagged (default 0: any).
    #[serde(default)]
    pub review_above: u64,
    /// Lines that are not documents (errors/) also count as flagged (the default: a screen
    /// fails closed).
    #[serde(default = "yes")]
    pub errors_are_flagged: bool,
    /// More than this fraction of unreadable lines is an error, not a verdict.
    #[serde(default = "half")]
    pub max_error_fraction: f64,
    /// `[screen.triggers]`: the trigger table's limits (see `triggers.rs`).
    #[serde(default)]
    pub triggers: crate::triggers::TriggerLimits,
}

impl Default for ScreenLimits {
    fn default() -> Self {
        ScreenLimits {
            reject_fraction: None,
            reject_count: None,
            review_above: 0,
            errors_are_flagged: true,
            max_error_fraction: half(),
            triggers: Default::default(),
        }
    }
}

fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}

/// Ordered: a signal can only make a verdict stricter (`max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Review,
    Reject,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Review => "review",
            Verdict::Reject => "reject",
        }
    }
}

/// Reads a screen config: the `[screen]` limits and the cascade config around them.
pub fn load_config(path: &Path) -> Result<(Config, ScreenLimits), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let parse_error = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message: message.trim_end().replace('\n', " "),
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let limits = match table.remove("screen") {
        Some(value) => ScreenLimits::deserialize(value).map_err(|e| ConfigError::Invalid {
            key: "screen".into(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?,
        None => ScreenLimits::default(),
    };
    for (key, value) in [
        ("screen.reject_fraction", limits.reject_fraction),
        ("screen.max_error_fraction", Some(limits.max_error_fraction)),
    ] {
        if value.is_some_and(|f| !(0.0..=1.0).contains(&f)) {
            return Err(ConfigError::Invalid {
                key: key.into(),
                message: "must be between 0 and 1".into(),
            });
        }
    }
    if let Some((key, message)) = limits.triggers.invalid() {
        return Err(ConfigError::Invalid {
            key: format!("screen.triggers.{key}"),
            message: message.into(),
        });
    }
    let rest = toml::to_string(&table).map_err(|e| parse_error(e.to_string()))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    let config = Config::from_toml(&rest, &base).map_err(|e| match e {
        ConfigError::Parse { message, .. } => parse_error(message),
        other => other,
    })?;
    Ok((config, limits))
}

/// Why a dataset gets no verdict.
pub fn unreadable(limits: &ScreenLimits, lines: u64, errors: u64) -> Option<String> {
    if lines == 0 {
        return Some("the dataset has no line to screen".into());
    }
    let fraction = errors as f64 / lines as f64;
    (fraction > limits.max_error_fraction).then(|| {
        format!(
            "{errors} of {lines} lines ({:.1}%) are not readable records, over \
             screen.max_error_fraction ({}): is the dataset in the layout the config describes \
             (input.format, input.text_fields or input.text_field)? See errors/ with --output",
            fraction * 100.0,
            limits.max_error_fraction
        )
    })
}

/// The verdict on `documents` lines of which `flagged` were flagged.
pub fn verdict(limits: &ScreenLimits, documents: u64, flagged: u64) -> Verdict {
    let fraction = if documents == 0 {
        0.0
    } else {
        flagged as f64 / documents as f64
    };
    if limits.reject_count.is_some_and(|n| flagged > n)
        || limits.reject_fraction.is_some_and(|f| fraction > f)
    {
        Verdict::Reject
    } else if flagged > limits.review_above {
        Verdict::Review
    } else {
        Verdict::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_decide_the_verdict() {
        let limits = ScreenLimits {
            reject_fraction: Some(0.05),
            reject_count: Some(100),
            review_above: 0,
            errors_are_flagged: false,
            max_error_fraction: 0.5,
            triggers: Default::default(),
        };
        assert_eq!(verdict(&limits, 1000, 0), Verdict::Accept);
        assert_eq!(verdict(&limits, 1000, 1), Verdict::Review);
        assert_eq!(verdict(&limits, 1000, 50), Verdict::Review);
        assert_eq!(verdict(&limits, 1000, 51), Verdict::Reject);
        assert_eq!(verdict(&limits, 1_000_000, 101), Verdict::Reject);
        assert_eq!(verdict(&ScreenLimits::default(), 10, 0), Verdict::Accept);
        // Unreadable datasets get no verdict.
        let defaults = ScreenLimits::default();
        assert!(defaults.errors_are_flagged);
        assert!(unreadable(&defaults, 0, 0).is_some());
        assert!(unreadable(&defaults, 100, 51).is_some());
        assert!(unreadable(&defaults, 100, 50).is_none());
    }

    #[test]
    fn the_bundled_config_loads_and_unknown_screen_keys_are_named() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let (config, limits) = load_config(&repo.join("configs/finetune-screen.toml")).unwrap();
        assert!(!config.stages.is_empty());
        assert!(limits.reject_fraction.is_some());
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.toml");
        std::fs::write(&path, "[screen]\nreject_fractoin = 0.1\n").unwrap();
        let err = load_config(&path).unwrap_err().to_string();
        assert!(
            err.contains("screen") && err.contains("reject_fractoin"),
            "{err}"
        );
    }
}
