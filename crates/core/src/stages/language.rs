//! `type = "language"`: language identification of the document text.
//!
//! Two engines, both compiled into the binary (nothing is downloaded), chosen by `engine`:
//!
//! * `whichlang` (default): a linear model over hashed character n-grams (Quickwit's crate), 16
//!   languages, ~4.5 µs for 1,000 bytes: its cost grows with the bytes read and nothing else. It
//!   gives no confidence, so `min_confidence` does not apply. A document in a language it does
//!   not know gets the nearest one it does (Polish is often taken for English).
//! * `whatlang`: trigram profiles of 70 languages with a confidence, but ~70 µs per document
//!   whatever its length (every profile is compared), about 15 times slower.
//!
//! Either reads the first `max_bytes` bytes only, which bounds the cost per document; the
//! language of a page is settled well before its end (the README has the speed and agreement
//! with labeled text of both engines at several prefix lengths). A document is *in language*
//! when the identified language is one of `languages` (and, with whatlang, its confidence is at
//! least `min_confidence`); the others get `action` (drop, review, tag or escalate). The
//! evidence, recorded for every document so that the report counts documents per language, is
//! the language and (whatlang) the confidence; `min_confidence` can be re-set by `sluice
//! rethreshold` (a raised one can flag documents that passed before: with `output.audit =
//! "flagged"` those have no record, so only lowering it is exact there).
//!
//! Codes are ISO 639-1 (`en`) where the language has one, else ISO 639-3 (`eng` is accepted too
//! in the config); `und` when no language could be identified (no letters, or too little text).

use serde::{Deserialize, Serialize};

use crate::decision::{fire, Action, Outcome};
use crate::document::Document;
use crate::error::ConfigError;
use crate::stage::{
    parse_number, BuildContext, Setting, StageEvidence, StageKind, StageRuntime, StageStats,
};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    pub id: String,
    /// The languages documents should be in: ISO 639-1 (`en`) or 639-3 (`eng`) codes.
    pub languages: Vec<String>,
    #[serde(default)]
    pub engine: LanguageEngine,
    /// With whatlang: below this confidence (0 to 1) a document is in no language.
    #[serde(default)]
    pub min_confidence: f64,
    /// Bytes of text identified (from the start; cut back to a character boundary).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// What happens to documents not in `languages`.
    pub action: Action,
}

/// Which identifier the stage runs (see the module docs).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LanguageEngine {
    #[default]
    Whichlang,
    Whatlang,
}

fn default_max_bytes() -> usize {
    200
}

/// Language codes: ISO 639-3 as whatlang names them, and ISO 639-1 where one exists.
const CODES: [(&str, &str); 70] = [
    ("afr", "af"),
    ("aka", "ak"),
    ("amh", "am"),
    ("ara", "ar"),
    ("aze", "az"),
    ("bel", "be"),
    ("ben", "bn"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("cmn", "zh"),
    ("cym", "cy"),
    ("dan", "da"),
    ("deu", "de"),
    ("ell", "el"),
    ("eng", "en"),
    ("epo", "eo"),
    ("est", "et"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("guj", "gu"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ind", "id"),
    ("ita", "it"),
    ("jav", "jv"),
    ("jpn", "ja"),
    ("kan", "kn"),
    ("kat", "ka"),
    ("khm", "km"),
    ("kor", "ko"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("mkd", "mk"),
    ("mya", "my"),
    ("nep", "ne"),
    ("nld", "nl"),
    ("nob", "nb"),
    ("ori", "or"),
    ("pan", "pa"),
    ("pes", "fa"),
    ("pol", "pl"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rus", "ru"),
    ("sin", "si"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("sna", "sn"),
    ("spa", "es"),
    ("srp", "sr"),
    ("swe", "sv"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tuk", "tk"),
    ("tur", "tr"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("uzb", "uz"),
    ("vie", "vi"),
    ("yid", "yi"),
    ("zul", "zu"),
];

impl LanguageConfig {
    /// The codes the configured engine can identify, as recorded.
    fn engine_codes(&self) -> Vec<&'static str> {
        match self.engine {
            LanguageEngine::Whatlang => CODES.iter().map(|(_, two)| *two).collect(),
            LanguageEngine::Whichlang => whichlang::LANGUAGES
                .iter()
                .filter_map(|l| known(l.three_letter_code()))
                .collect(),
        }
    }
}

/// The code sluice records for a language: ISO 639-1 where it has one.
fn code(lang: whatlang::Lang) -> &'static str {
    let three = lang.code();
    CODES
        .iter()
        .find(|(t, _)| *t == three)
        .map_or(three, |(_, two)| two)
}

/// A config's code (639-1 or 639-3) as the recorded one; `None` when whatlang does not know it.
fn known(code: &str) -> Option<&'static str> {
    CODES
        .iter()
        .find(|(three, two)| *three == code || *two == code)
        .map(|(_, two)| *two)
}

/// Recorded when no language was identified.
pub const UNDETERMINED: &str = "und";

pub struct LanguageStage {
    engine: LanguageEngine,
    max_bytes: usize,
    languages: usize,
}

/// Evidence of a language stage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LanguageEvidence {
    /// The identified language (`und`: none).
    pub language: String,
    /// Confidence of the identification, 0 to 1 (whatlang only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Whether `language` is one of the configured languages (filled in by the decision).
    pub allowed: bool,
    /// The confidence it needed (filled in by the decision).
    pub min_confidence: f64,
}

impl StageKind for LanguageConfig {
    type Runtime = LanguageStage;
    type Evidence = LanguageEvidence;

    fn id(&self) -> &str {
        &self.id
    }

    fn build(&self, ctx: &BuildContext) -> Result<LanguageStage, ConfigError> {
        if self.languages.is_empty() {
            return Err(ctx.invalid("languages", "name at least one language, e.g. [\"en\"]"));
        }
        for (i, code) in self.languages.iter().enumerate() {
            let identifiable = match self.engine {
                LanguageEngine::Whatlang => known(code).is_some(),
                LanguageEngine::Whichlang => known(code).is_some_and(|c| {
                    whichlang::LANGUAGES.iter().any(|l| known(l.three_letter_code()) == Some(c))
                }),
            };
            if !identifiable {
                return Err(ctx.invalid(
                    &format!("languages[{i}]"),
                    format!(
                        "`{code}` is not a language {:?} can identify (ISO 639-1 or 639-3 of: {}){}",
                        self.engine,
                        self.engine_codes().join(", "),
                        if self.engine == LanguageEngine::Whichlang {
                            "; engine = \"whatlang\" knows 70 languages"
                        } else {
                            ""
                        }
                    )
                    .to_lowercase(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err(ctx.invalid("min_confidence", "must be between 0 and 1"));
        }
        if self.min_confidence > 0.0 && self.engine == LanguageEngine::Whichlang {
            return Err(ctx.invalid(
                "min_confidence",
                "needs engine = \"whatlang\" (whichlang gives no confidence)",
            ));
        }
        if !(16..=1 << 20).contains(&self.max_bytes) {
            return Err(ctx.invalid("max_bytes", "must be between 16 and 1048576"));
        }
        Ok(LanguageStage {
            engine: self.engine,
            max_bytes: self.max_bytes,
            languages: self.languages.len(),
        })
    }

    /// In language when identified as one of `languages` with at least `min_confidence`.
    fn decide(&self, e: &mut LanguageEvidence) -> Outcome {
        e.allowed = self
            .languages
            .iter()
            .any(|l| known(l) == Some(e.language.as_str()));
        e.min_confidence = self.min_confidence;
        let confident = e.confidence.unwrap_or(1.0) >= self.min_confidence;
        fire(!(e.allowed && confident), self.action)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<Setting, String> {
        match key {
            "min_confidence" if self.engine == LanguageEngine::Whichlang => Err(format!(
                "language stage `{}` runs whichlang, which gives no confidence",
                self.id
            )),
            "min_confidence" => {
                let x = parse_number(value, 0.0, 1.0)?;
                // A raised minimum can flag documents that passed (and have no record).
                let loosens = x > std::mem::replace(&mut self.min_confidence, x);
                Ok(Setting { loosens })
            }
            other => Err(format!(
                "language stage `{}` has no threshold `{other}` (min_confidence)",
                self.id
            )),
        }
    }
}

impl StageRuntime for LanguageStage {
    type Evidence = LanguageEvidence;
    type Scratch = ();

    fn measure(&self, doc: &Document<'_>, _scratch: &mut ()) -> Option<LanguageEvidence> {
        let text = sluice_classifier::truncate_to_bytes(&doc.text, self.max_bytes);
        let (language, confidence) = match self.engine {
            // whichlang answers English for a text without a feature (no letters, no digits):
            // that is no identification.
            LanguageEngine::Whichlang if !text.chars().any(char::is_alphabetic) => {
                (UNDETERMINED, None)
            }
            LanguageEngine::Whichlang => {
                let three = whichlang::detect_language(text).three_letter_code();
                (known(three).unwrap_or(UNDETERMINED), None)
            }
            LanguageEngine::Whatlang => match whatlang::detect(text) {
                Some(info) => (code(info.lang()), Some(info.confidence())),
                None => (UNDETERMINED, Some(0.0)),
            },
        };
        Some(LanguageEvidence {
            language: language.to_string(),
            confidence,
            allowed: false,
            min_confidence: 0.0,
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} kept, identified by {:?} on the first {} bytes",
            crate::stats::plural(self.languages as u64, "language"),
            self.engine,
            self.max_bytes,
        )
        .to_lowercase()
    }
}

impl StageEvidence for LanguageEvidence {
    fn count(&self, outcome: Outcome, stats: &mut StageStats) {
        stats.count_key("languages", &self.language, 1, outcome);
    }

    fn describe(&self) -> String {
        let confidence = match self.confidence {
            Some(c) => format!(" (confidence {c:.2}, needed {})", self.min_confidence),
            None => String::new(),
        };
        format!(
            "{}{confidence}{}",
            self.language,
            if self.allowed { "" } else { ", not an allowed language" }
        )
    }

    fn keys(&self, family: &str) -> Vec<&str> {
        match family {
            "languages" => vec![self.language.as_str()],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::path::Path;

    fn built(extra: &str) -> Result<(LanguageConfig, LanguageStage), ConfigError> {
        let config: LanguageConfig =
            toml::from_str(&format!("id = 'lang'\naction = 'drop'\n{extra}")).unwrap();
        let stage = config.build(&BuildContext {
            base_dir: Path::new("."),
            max_spans: 4,
            key: "stages[0] (lang)".into(),
        })?;
        Ok((config, stage))
    }

    fn judge(stage: &(LanguageConfig, LanguageStage), text: &str) -> (Outcome, LanguageEvidence) {
        let doc = Document::single(Cow::Borrowed(text), None);
        let mut e = stage.1.measure(&doc, &mut ()).expect("always evidence");
        (stage.0.decide(&mut e), e)
    }

    const ENGLISH: &str = "The committee met on Tuesday to discuss the new budget for the \
        public library, which has been closed for repairs since the storm last winter.";
    const GERMAN: &str = "Der Ausschuss traf sich am Dienstag, um den neuen Haushalt für die \
        öffentliche Bibliothek zu besprechen, die seit dem Sturm im letzten Winter geschlossen ist.";

    #[test]
    fn documents_in_other_languages_get_the_action() {
        for engine in ["whichlang", "whatlang"] {
            let stage = built(&format!("languages = ['en']\nengine = '{engine}'")).unwrap();
            let (outcome, e) = judge(&stage, ENGLISH);
            assert_eq!((outcome, e.language.as_str(), e.allowed), (Outcome::Pass, "en", true));
            let (outcome, e) = judge(&stage, GERMAN);
            assert_eq!((outcome, e.language.as_str(), e.allowed), (Outcome::Drop, "de", false));
            // 639-3 codes work as well.
            let both = built(&format!("languages = ['eng', 'de']\nengine = '{engine}'")).unwrap();
            assert_eq!(judge(&both, GERMAN).0, Outcome::Pass, "{engine}");
            // No letters: undetermined, and not in any language.
            let (outcome, e) = judge(&stage, "1234 5678 ---");
            assert_eq!((outcome, e.language.as_str()), (Outcome::Drop, UNDETERMINED), "{engine}");
            assert_eq!(e.confidence.is_some(), engine == "whatlang");
        }
    }

    #[test]
    fn only_the_first_max_bytes_are_identified() {
        let stage = built("languages = ['en']\nmax_bytes = 160").unwrap();
        let mixed = format!("{ENGLISH} {}", GERMAN.repeat(20));
        assert_eq!(judge(&stage, &mixed).1.language, "en");
        let whole = built("languages = ['en']\nmax_bytes = 100000").unwrap();
        assert_eq!(judge(&whole, &mixed).1.language, "de");
    }

    #[test]
    fn min_confidence_decides_and_can_be_re_set() {
        let (mut config, stage) =
            built("languages = ['en']\nengine = 'whatlang'\nmin_confidence = 0.0").unwrap();
        // A short text: English, with a low confidence.
        let (outcome, mut e) = judge(&(config.clone(), stage), "I think so too");
        assert_eq!((outcome, e.language.as_str()), (Outcome::Pass, "en"), "{e:?}");
        let confidence = e.confidence.unwrap();
        assert!(confidence < 0.5, "{e:?}");
        assert_eq!(config.set("min_confidence", "0.5"), Ok(Setting { loosens: true }));
        assert_eq!(config.decide(&mut e), Outcome::Drop);
        assert_eq!(e.min_confidence, 0.5);
        assert_eq!(config.set("min_confidence", "0"), Ok(Setting { loosens: false }));
        assert_eq!(config.decide(&mut e), Outcome::Pass);
        assert!(config.set("min_confidence", "1.5").is_err());
        assert!(config.set("languages", "de").is_err());
        // whichlang has no confidence to threshold.
        let (mut fast, _) = built("languages = ['en']").unwrap();
        assert!(fast.set("min_confidence", "0.5").unwrap_err().contains("no confidence"));
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (extra, key) in [
            ("languages = []", "stages[0] (lang).languages"),
            ("languages = ['xx']", "stages[0] (lang).languages[0]"),
            ("languages = ['pl']", "knows 70 languages"),
            ("languages = ['en']\nengine = 'whatlang'\nmin_confidence = 2.0", "min_confidence"),
            ("languages = ['en']\nmin_confidence = 0.5", "needs engine = \"whatlang\""),
            ("languages = ['en']\nmax_bytes = 1", "max_bytes"),
        ] {
            let err = built(extra).err().unwrap().to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        assert!(built("languages = ['pl']\nengine = 'whatlang'").is_ok());
    }

    #[test]
    fn every_code_maps_both_ways() {
        for lang in whatlang::Lang::all() {
            let recorded = code(*lang);
            assert_eq!(known(recorded), Some(recorded), "{lang:?}");
            assert_eq!(known(lang.code()), Some(recorded), "{lang:?}");
        }
        assert_eq!(whatlang::Lang::all().len(), CODES.len());
        for lang in whichlang::LANGUAGES {
            assert!(known(lang.three_letter_code()).is_some(), "{lang:?}");
        }
    }
}
