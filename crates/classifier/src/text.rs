//! From text to token windows: byte budget, tokenizing, windowing.

use std::path::{Path, PathBuf};

use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::backend::hashed::HashedTokenizer;
use crate::error::{ClassifierError, Result};

/// The token windows of one document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Encoded {
    /// Token ids of each window, special tokens included.
    pub windows: Vec<Vec<u32>>,
    /// Tokens (words for hashed-ngram) in the byte-truncated text, special tokens excluded.
    pub tokens: usize,
}

/// Cuts `text` to at most `max_bytes` bytes, backing off to a char boundary.
pub fn truncate_to_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

pub(crate) enum TextEncoder {
    HuggingFace {
        tokenizer: Box<Tokenizer>,
        path: PathBuf,
        stride: usize,
    },
    Hashed {
        tokenizer: HashedTokenizer,
        max_words: usize,
        stride: usize,
    },
}

impl TextEncoder {
    /// Loads `tokenizer.json` and configures windowing (truncation with overflow) on it.
    pub fn hugging_face(path: &Path, max_tokens: usize, stride: usize) -> Result<TextEncoder> {
        let err = |message: String| ClassifierError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(ClassifierError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "tokenizer.json not found",
                ),
            });
        }
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let added = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        // tokenizers asserts (panics) unless stride < max_len - added tokens: check first.
        if max_tokens <= added + stride {
            return Err(ClassifierError::InvalidOptions(format!(
                "max_tokens ({max_tokens}) must exceed stride ({stride}) plus the {added} special \
                 tokens added to each window"
            )));
        }
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                stride,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(TextEncoder::HuggingFace {
            tokenizer: Box::new(tokenizer),
            path: path.to_path_buf(),
            stride,
        })
    }

    pub fn hashed(tokenizer: HashedTokenizer, max_words: usize, stride: usize) -> Result<Self> {
        if max_words <= stride {
            return Err(ClassifierError::InvalidOptions(format!(
                "max_tokens ({max_words}) must exceed stride ({stride})"
            )));
        }
        Ok(TextEncoder::Hashed {
            tokenizer,
            max_words,
            stride,
        })
    }

    /// Windows of each text (texts are already cut to the byte budget).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        match self {
            TextEncoder::HuggingFace {
                tokenizer,
                path,
                stride,
            } => {
                let encodings = tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| {
                    ClassifierError::Tokenizer {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
                Ok(encodings
                    .into_iter()
                    .map(|encoding| {
                        let mut windows = Vec::with_capacity(1 + encoding.get_overflowing().len());
                        let mut content = 0;
                        for part in std::iter::once(&encoding).chain(encoding.get_overflowing()) {
                            content += part
                                .get_special_tokens_mask()
                                .iter()
                                .filter(|&&m| m == 0)
                                .count();
                            windows.push(part.get_ids().to_vec());
                        }
                        // Consecutive windows share exactly `stride` tokens.
                        let tokens = content.saturating_sub((windows.len() - 1) * stride);
                        Encoded { windows, tokens }
                    })
                    .collect())
            }
            TextEncoder::Hashed {
                tokenizer,
                max_words,
                stride,
            } => Ok(texts
                .iter()
                .map(|text| {
                    let (windows, tokens) = tokenizer.encode(text, *max_words, *stride);
                    Encoded { windows, tokens }
                })
                .collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_budget_respects_char_boundaries() {
        assert_eq!(truncate_to_bytes("hello", 10), "hello");
        assert_eq!(truncate_to_bytes("hello", 3), "hel");
        // "é" is two bytes: cutting inside it backs off.
        assert_eq!(truncate_to_bytes("aé", 2), "a");
        assert_eq!(truncate_to_bytes("aé", 3), "aé");
        assert_eq!(truncate_to_bytes("日本", 1), "");
        assert_eq!(truncate_to_bytes("", 0), "");
    }
}
