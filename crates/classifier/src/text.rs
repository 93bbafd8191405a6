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

/// Bytes of text tokenized per window token when only the first window is needed. English
/// averages ~4–5 bytes per WordPiece token; a prefix that turns out too short is detected and the
/// whole text tokenized, so this only has to be generous, not safe.
pub(crate) const FIRST_WINDOW_BYTES_PER_TOKEN: usize = 16;

/// The longest prefix of `text` of at most `max_bytes` bytes that ends where a whitespace run
/// starts (so its last word is whole), or all of `text` when it fits.
fn word_prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let head = truncate_to_bytes(text, max_bytes);
    // The char after `head` may continue its last word: back off to the whitespace before it.
    let Some(space) = head.rfind(char::is_whitespace) else {
        return text;
    };
    head[..space].trim_end()
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
        let bytes = std::fs::read(path).map_err(|source| ClassifierError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // The tokenizers crate panics on some malformed files (an `expect` when a `decoder` is
        // cut short, as in a truncated download): check the JSON first, and catch what is left.
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
            .map_err(|e| err(format!("not valid JSON: {e}")))?;
        let mut tokenizer = std::panic::catch_unwind(|| Tokenizer::from_bytes(&bytes))
            .map_err(|_| err("the tokenizers library failed on this file (a panic)".into()))?
            .map_err(|e| err(e.to_string()))?;
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
        // Some files load and then fail on every text (a template naming a special token it does
        // not define panics inside the tokenizers crate): try one now, so that it is a load error.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tokenizer.encode("a test text, 1 2 3", true)
        })) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(err(format!("cannot tokenize a test text: {e}"))),
            Err(_) => {
                return Err(err(
                    "the tokenizers library fails on a test text with this file (a panic); is \
                     its post_processor consistent?"
                        .into(),
                ))
            }
        }
        Ok(TextEncoder::HuggingFace {
            tokenizer: Box::new(tokenizer),
            path: path.to_path_buf(),
            stride,
        })
    }

    /// The largest token id the tokenizer can produce (added and special tokens included), or
    /// `None` for hashed-ngram (whose ids are buckets, in range by construction).
    pub fn max_token_id(&self) -> Option<u32> {
        match self {
            TextEncoder::HuggingFace { tokenizer, .. } => {
                tokenizer.get_vocab(true).into_values().max()
            }
            TextEncoder::Hashed { .. } => None,
        }
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

    /// The first window of each text (texts are already cut to the byte budget), tokenizing
    /// only a prefix of long texts: [`FIRST_WINDOW_BYTES_PER_TOKEN`] bytes per window token, cut
    /// back to the start of a whitespace run so every word in it is whole. Tokenizers work word
    /// by word, so when that prefix still overflows the window its first window is the text's;
    /// when it does not (a prefix mostly of spaces, say), the whole text is tokenized instead.
    /// `tokens` counts the prefix only.
    pub fn encode_first_windows(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let max_tokens = match self {
            TextEncoder::HuggingFace { tokenizer, .. } => tokenizer
                .get_truncation()
                .map_or(usize::MAX, |t| t.max_length),
            TextEncoder::Hashed { max_words, .. } => *max_words,
        };
        let budget = max_tokens.saturating_mul(FIRST_WINDOW_BYTES_PER_TOKEN);
        let prefixes: Vec<&str> = texts.iter().map(|t| word_prefix(t, budget)).collect();
        let mut encoded = self.encode_batch(&prefixes)?;
        for ((e, text), prefix) in encoded.iter_mut().zip(texts).zip(&prefixes) {
            if e.windows.len() < 2 && prefix.len() < text.len() {
                *e = self.encode_batch(&[text])?.remove(0);
            }
            e.windows.truncate(1);
        }
        Ok(encoded)
    }

    /// Windows of each text (texts are already cut to the byte budget).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        match self {
            TextEncoder::HuggingFace {
                tokenizer,
                path,
                stride,
            } => {
                let failed = |message: String| ClassifierError::Tokenizer {
                    path: path.clone(),
                    message,
                };
                // A panic inside the tokenizers crate (on a strange but loadable tokenizer.json)
                // is this batch's error, not the process's end.
                let encodings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tokenizer.encode_batch(texts.to_vec(), true)
                }))
                .map_err(|_| failed("the tokenizers library failed on this text (a panic)".into()))?
                .map_err(|e| failed(e.to_string()))?;
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

    /// The first window from a tokenized prefix equals the first window of the whole text, for
    /// every fixture's tokenizer (WordPiece, SentencePiece, byte-level BPE) and MiniLM's.
    #[test]
    fn first_windows_from_a_prefix_match_the_whole_text() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models");
        let text = "The quick brown fox, jumping over the lazy dog's back: naïve café \
                    crème brûlée at 12:30!  Tabs\tand\nnewlines   and    spaces... \
                    ünïcödé, 日本語のテキスト, emoji 🦀 and URLs https://example.com/a?b=c ";
        let long = text.repeat(20);
        let spaces = format!("{}{}", " ".repeat(3000), text.repeat(3));
        let mut paths: Vec<PathBuf> = ["bert", "xlm-roberta", "modernbert", "deberta-v2"]
            .iter()
            .map(|name| models.join(name).join("tokenizer.json"))
            .collect();
        if let Some(cache) = std::env::var_os("SLUICE_MODEL_CACHE") {
            let minilm = PathBuf::from(cache).join("all-MiniLM-L6-v2/tokenizer.json");
            if minilm.is_file() {
                paths.push(minilm);
            }
        }
        for path in &paths {
            let name = path.display();
            for (max_tokens, stride) in [(16, 4), (24, 0)] {
                let encoder = TextEncoder::hugging_face(path, max_tokens, stride).unwrap();
                for t in [long.as_str(), &spaces, &long[..200], "short"] {
                    let full = encoder.encode_batch(&[t]).unwrap().remove(0);
                    let first = encoder.encode_first_windows(&[t]).unwrap().remove(0);
                    assert_eq!(first.windows, full.windows[..1], "{name} {max_tokens}");
                }
            }
        }
    }

    /// Found by the `model_loader` fuzz target: the tokenizers crate panics (an `expect` in its
    /// decoder deserializer) on a tokenizer.json cut inside its `decoder`, such as a truncated
    /// download. It must be an error naming the file.
    #[test]
    fn a_truncated_tokenizer_json_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let whole = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/bert/tokenizer.json"),
        )
        .unwrap();
        let decoder = whole
            .windows(10)
            .position(|w| w == b"\"decoder\":")
            .unwrap();
        for bytes in [
            &b"{\"decoder\":"[..],
            b"{\"decoder\": {\"type\": \"WordPiece\", ",
            &whole[..decoder + 12],
            &whole[..whole.len() / 2],
            b"",
        ] {
            std::fs::write(&path, bytes).unwrap();
            match TextEncoder::hugging_face(&path, 16, 2) {
                Err(ClassifierError::Tokenizer { path: p, message }) => {
                    assert_eq!(p, path);
                    assert!(message.contains("not valid JSON"), "{message}");
                }
                Err(other) => panic!("expected a tokenizer error, got {other}"),
                Ok(_) => panic!("a truncated tokenizer.json loaded"),
            }
        }
    }

    /// Found by the `model_loader` fuzz target: a template post-processor naming a special token
    /// that its `special_tokens` lacks loads, then panics (an `expect` in the tokenizers crate) on
    /// every text. It must be refused at load, naming the file.
    #[test]
    fn a_template_with_an_undefined_special_token_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/bert/tokenizer.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let specials = json["post_processor"]["special_tokens"]
            .as_object_mut()
            .unwrap();
        specials.remove("[SEP]").unwrap();
        std::fs::write(&path, json.to_string()).unwrap();
        match TextEncoder::hugging_face(&path, 16, 2) {
            Err(ClassifierError::Tokenizer { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains("panic"), "{message}");
            }
            Err(other) => panic!("expected a tokenizer error, got {other}"),
            Ok(encoder) => {
                // Loading may not notice; encoding must then fail, not panic.
                let err = encoder.encode_batch(&["a text"]).err();
                panic!("loaded; encoding gave {err:?}");
            }
        }
    }

    #[test]
    fn word_prefix_ends_before_whitespace() {
        assert_eq!(word_prefix("one two three", 100), "one two three");
        assert_eq!(word_prefix("one two three", 9), "one two");
        assert_eq!(word_prefix("one two three", 8), "one two");
        assert_eq!(word_prefix("one two  \n three", 11), "one two");
        assert_eq!(word_prefix("onetwothree four", 5), "onetwothree four");
    }
}
