//! `type = "terms"`: large term lists matched with aho-corasick (see the `sluice-terms` crate),
//! with thresholds on what was found.
//!
//! The stage fires when **every** configured threshold holds: at least `min_distinct` distinct
//! terms, `min_total` hits, `min_weight` summed weight of the distinct terms, `min_density` hits
//! per 1,000 words, and for each `min_per_category` entry that many distinct terms of that
//! category. The published cascade rule, "two or more distinct hazard terms escalate", is
//! `min_distinct = 2, action = "escalate"`. Every threshold and the value it was compared with
//! are recorded in the audit, so a reviewer can see how close a document came.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sluice_terms::{
    load_term_list, Boundary, CaseMode, Engine, MatchScratch, MatcherOptions, TermMatch,
    TermMatcher, WordChars,
};

use crate::decision::{fire, Action, Outcome};
use crate::document::Document;
use crate::error::ConfigError;
use crate::stage::{
    parse_count, parse_number, BuildContext, LabeledSpan, Setting, SpanPlace, StageEvidence,
    StageKind, StageRuntime, StageStats,
};

/// Category used in counters for terms listed without one.
pub const UNCATEGORIZED: &str = "uncategorized";

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    #[default]
    None,
    /// Unicode NFKC before matching (fullwidth letters, ligatures); spans still point into the
    /// original text.
    Nfkc,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TermEngine {
    /// DFA while the term count keeps it small, else a contiguous NFA.
    #[default]
    Auto,
    Dfa,
    Nfa,
    /// Whole-word lists: look words of ASCII text up among the terms' first words; cost
    /// independent of the list size. Needs `whole_word = true`.
    Words,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TermsConfig {
    pub id: String,
    /// Term list files (one term per line, optional TAB-separated category and weight, `#`
    /// comments), relative to the config file.
    pub lists: Vec<PathBuf>,
    /// Category of terms listed without one.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default = "yes")]
    pub whole_word: bool,
    #[serde(default = "yes")]
    pub case_insensitive: bool,
    #[serde(default)]
    pub normalize: Normalize,
    #[serde(default)]
    pub engine: TermEngine,
    /// Word chars for `whole_word` and word counts: `unicode` (regex `\w`) or `python`
    /// (`isalnum() or "_"`). Not serialized when default, so existing config hashes stay.
    #[serde(default, skip_serializing_if = "is_default")]
    pub word_chars: WordCharsSetting,
    /// With `case_insensitive`: `fold` (simple case folding) or `lower` (Python's `str.lower()`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub case: CaseSetting,
    /// `word-edges` (a side is checked where the term's edge is a word char) or `flanked`
    /// (both sides, always: C4's `(?:\W|^)term(?:\W|$)`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub boundary: BoundarySetting,
    #[serde(default = "one")]
    pub min_distinct: usize,
    #[serde(default = "one")]
    pub min_total: usize,
    #[serde(default)]
    pub min_weight: f64,
    /// Hits per 1,000 words.
    #[serde(default)]
    pub min_density: f64,
    #[serde(default)]
    pub min_per_category: BTreeMap<String, usize>,
    pub action: Action,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WordCharsSetting {
    #[default]
    Unicode,
    Python,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CaseSetting {
    #[default]
    Fold,
    Lower,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BoundarySetting {
    #[default]
    WordEdges,
    Flanked,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}

pub struct TermsStage {
    matcher: TermMatcher,
    lists: usize,
    max_spans: usize,
}

/// Evidence of a terms stage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TermsEvidence {
    pub distinct: usize,
    pub total: usize,
    pub weight: f64,
    pub words: usize,
    /// Hits per 1,000 words.
    pub density: f64,
    /// Distinct terms per category.
    pub categories: BTreeMap<String, usize>,
    /// Every distinct term found, with its hit count.
    pub terms: Vec<TermCount>,
    /// Byte spans into the document text, in text order, at most `output.max_spans`.
    pub spans: Vec<TermSpan>,
    pub spans_truncated: bool,
    /// Every threshold and the value it was compared with (filled in by the decision).
    pub thresholds: Vec<Threshold>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TermCount {
    pub term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub count: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TermSpan {
    pub term: String,
    pub start: usize,
    pub end: usize,
    /// The document part the span is in (its offsets are within it), for documents of parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// One threshold, the value it was compared with, and whether it held.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Threshold {
    pub name: String,
    pub required: f64,
    pub actual: f64,
    pub crossed: bool,
}

/// Names of the thresholds, as in evidence and in `--set STAGE.NAME=VALUE`.
const MIN_DISTINCT: &str = "min_distinct";
const MIN_TOTAL: &str = "min_total";
const MIN_WEIGHT: &str = "min_weight";
const MIN_DENSITY: &str = "min_density";
const MIN_PER_CATEGORY: &str = "min_per_category.";

impl TermsConfig {
    fn list_paths(&self, ctx: &BuildContext) -> Vec<(String, PathBuf)> {
        self.lists
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("{}.lists[{i}]", ctx.key), ctx.resolve(p)))
            .collect()
    }

    /// Every threshold of the stage against a document's counts: the stage fires when all are
    /// crossed.
    fn thresholds(&self, e: &TermsEvidence) -> Vec<Threshold> {
        let mut out = Vec::with_capacity(4 + self.min_per_category.len());
        let mut push = |name: String, required: f64, actual: f64| {
            out.push(Threshold {
                name,
                required,
                actual,
                crossed: actual >= required,
            })
        };
        push(
            MIN_DISTINCT.into(),
            self.min_distinct as f64,
            e.distinct as f64,
        );
        push(MIN_TOTAL.into(), self.min_total as f64, e.total as f64);
        if self.min_weight > 0.0 {
            push(MIN_WEIGHT.into(), self.min_weight, e.weight);
        }
        if self.min_density > 0.0 {
            push(MIN_DENSITY.into(), self.min_density, e.density);
        }
        for (category, &required) in &self.min_per_category {
            let actual = e.categories.get(category).copied().unwrap_or(0);
            push(
                format!("{MIN_PER_CATEGORY}{category}"),
                required as f64,
                actual as f64,
            );
        }
        out
    }
}

impl StageKind for TermsConfig {
    type Runtime = TermsStage;
    type Evidence = TermsEvidence;

    fn id(&self) -> &str {
        &self.id
    }

    /// The bytes of every list, each named as the config names it: the hash must not depend on
    /// the directory the config was loaded from.
    fn hashed_inputs(&self, ctx: &BuildContext) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        self.list_paths(ctx)
            .into_iter()
            .zip(&self.lists)
            .map(|((key, path), name)| {
                std::fs::read(&path)
                    .map(|bytes| (name.display().to_string(), bytes))
                    .map_err(|e| ConfigError::Invalid {
                        key,
                        message: format!("cannot read term list {}: {e}", path.display()),
                    })
            })
            .collect()
    }

    fn build(&self, ctx: &BuildContext) -> Result<TermsStage, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { key, message };
        if self.lists.is_empty() {
            return Err(ctx.invalid("lists", "name at least one term list"));
        }
        if self.min_distinct == 0 || self.min_total == 0 {
            return Err(ctx.invalid(
                MIN_DISTINCT,
                "min_distinct and min_total must be at least 1",
            ));
        }
        // A NaN threshold would compare false against everything (and hash like any other NaN).
        for (key, value) in [(MIN_WEIGHT, self.min_weight), (MIN_DENSITY, self.min_density)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ctx.invalid(key, format!("must be a finite number of at least 0, not {value}")));
            }
        }
        let mut entries = Vec::new();
        for (key, path) in self.list_paths(ctx) {
            // The loader says what is wrong: missing, a directory, a bad line.
            let list = load_term_list(&path, self.category.as_deref())
                .map_err(|e| invalid(key.clone(), e.to_string()))?;
            entries.extend(list);
        }
        if entries.is_empty() {
            return Err(ctx.invalid("lists", "the term lists hold no term"));
        }
        // A threshold on a category no term has could never be met: the stage would never fire.
        let categories: std::collections::BTreeSet<&str> = entries
            .iter()
            .map(|e| e.category.as_deref().unwrap_or(UNCATEGORIZED))
            .collect();
        if let Some(missing) = self
            .min_per_category
            .keys()
            .find(|c| !categories.contains(c.as_str()))
        {
            return Err(ctx.invalid(
                &format!("{MIN_PER_CATEGORY}{missing}"),
                format!(
                    "no term of the lists has category `{missing}` (categories: {})",
                    categories.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let options = MatcherOptions {
            whole_word: self.whole_word,
            case_insensitive: self.case_insensitive,
            normalize_nfkc: self.normalize == Normalize::Nfkc,
            engine: match self.engine {
                TermEngine::Auto => Engine::Auto,
                TermEngine::Dfa => Engine::Dfa,
                TermEngine::Nfa => Engine::Nfa,
                TermEngine::Words => Engine::Words,
            },
            word_chars: match self.word_chars {
                WordCharsSetting::Unicode => WordChars::Unicode,
                WordCharsSetting::Python => WordChars::Python,
            },
            case: match self.case {
                CaseSetting::Fold => CaseMode::Fold,
                CaseSetting::Lower => CaseMode::Lower,
            },
            boundary: match self.boundary {
                BoundarySetting::WordEdges => Boundary::WordEdges,
                BoundarySetting::Flanked => Boundary::Flanked,
            },
        };
        if self.case != CaseSetting::Fold && !self.case_insensitive {
            return Err(ctx.invalid(
                "case",
                "case applies only with case_insensitive = true",
            ));
        }
        let matcher = TermMatcher::new(entries, options)
            .map_err(|e| ctx.invalid("lists", e.to_string()))?;
        Ok(TermsStage {
            matcher,
            lists: self.lists.len(),
            max_spans: ctx.max_spans,
        })
    }

    /// The stage fires when every threshold is crossed; the thresholds and the values compared
    /// are recorded in the evidence.
    fn decide(&self, evidence: &mut TermsEvidence) -> Outcome {
        evidence.thresholds = self.thresholds(evidence);
        fire(evidence.thresholds.iter().all(|t| t.crossed), self.action)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<Setting, String> {
        let loosens = match key {
            MIN_DISTINCT => {
                let n = parse_count(value, 1)?;
                std::mem::replace(&mut self.min_distinct, n) > n
            }
            MIN_TOTAL => {
                let n = parse_count(value, 1)?;
                std::mem::replace(&mut self.min_total, n) > n
            }
            MIN_WEIGHT => {
                let x = parse_number(value, 0.0, f64::MAX)?;
                std::mem::replace(&mut self.min_weight, x) > x
            }
            MIN_DENSITY => {
                let x = parse_number(value, 0.0, f64::MAX)?;
                std::mem::replace(&mut self.min_density, x) > x
            }
            other => match other.strip_prefix(MIN_PER_CATEGORY) {
                Some(category) if !category.is_empty() => {
                    let n = parse_count(value, 0)?;
                    self.min_per_category
                        .insert(category.to_string(), n)
                        .unwrap_or(0)
                        > n
                }
                _ => {
                    return Err(format!(
                        "terms stage `{}` has no threshold `{other}` (min_distinct, min_total, \
                         min_weight, min_density, min_per_category.CAT)",
                        self.id
                    ))
                }
            },
        };
        Ok(Setting { loosens })
    }
}

/// A worker's buffers for the matcher.
#[derive(Default)]
pub struct TermsScratch {
    matcher: MatchScratch,
    matches: Vec<TermMatch>,
}

impl StageRuntime for TermsStage {
    type Evidence = TermsEvidence;
    type Scratch = TermsScratch;

    fn measure(&self, doc: &Document<'_>, scratch: &mut TermsScratch) -> Option<TermsEvidence> {
        let text: &str = &doc.text;
        let matches = &mut scratch.matches;
        matches.clear();
        self.matcher.find_into(text, &mut scratch.matcher, matches);
        if matches.is_empty() {
            return None;
        }
        let entries = self.matcher.terms();
        // Distinct terms with their hit counts, in order of term index.
        let mut ids: Vec<u32> = matches.iter().map(|m| m.term).collect();
        ids.sort_unstable();
        let mut counts: Vec<(u32, usize)> = Vec::new();
        for id in ids {
            match counts.last_mut() {
                Some((last, n)) if *last == id => *n += 1,
                _ => counts.push((id, 1)),
            }
        }
        let total = matches.len();
        let mut weight = 0.0;
        let mut categories: BTreeMap<String, usize> = BTreeMap::new();
        let terms = counts
            .iter()
            .map(|&(id, count)| {
                let entry = &entries[id as usize];
                weight += f64::from(entry.weight);
                let category = entry.category.as_deref().unwrap_or(UNCATEGORIZED);
                *categories.entry(category.to_string()).or_default() += 1;
                TermCount {
                    term: entry.term.clone(),
                    category: entry.category.clone(),
                    count,
                }
            })
            .collect();
        let words = self.matcher.count_words(text);
        let spans = matches
            .iter()
            .take(self.max_spans)
            .map(|m| TermSpan {
                term: entries[m.term as usize].term.clone(),
                start: m.start,
                end: m.end,
                part: None,
                role: None,
            })
            .collect();
        Some(TermsEvidence {
            distinct: counts.len(),
            total,
            weight,
            words,
            density: total as f64 * 1000.0 / words.max(1) as f64,
            categories,
            terms,
            spans,
            spans_truncated: total > self.max_spans,
            thresholds: Vec::new(),
        })
    }

    fn describe(&self) -> String {
        crate::stats::plural(self.lists as u64, "term list")
    }
}

impl StageEvidence for TermsEvidence {
    fn count(&self, outcome: Outcome, stats: &mut StageStats) {
        let mut category_hits: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &self.terms {
            stats.count_key("terms", &t.term, t.count as u64, outcome);
            *category_hits
                .entry(t.category.as_deref().unwrap_or(UNCATEGORIZED))
                .or_default() += t.count as u64;
        }
        for (category, hits) in category_hits {
            stats.count_key("categories", category, hits, outcome);
        }
    }

    fn describe(&self) -> String {
        format!(
            "distinct {}, total {}, weight {}, density {:.1}/1000 words; {}",
            self.distinct,
            self.total,
            self.weight,
            self.density,
            self.terms
                .iter()
                .map(|t| format!(
                    "{} ({}) x{}",
                    t.term,
                    t.category.as_deref().unwrap_or("-"),
                    t.count
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn spans(&self, _stage: &str, out: &mut Vec<LabeledSpan>) {
        out.extend(self.spans.iter().map(|s| LabeledSpan {
            start: s.start,
            end: s.end,
            label: s.term.clone(),
            part: s.part.clone(),
            role: s.role.clone(),
        }));
    }

    fn place_spans(&mut self, place: &dyn Fn(&mut SpanPlace)) {
        for s in &mut self.spans {
            place(&mut SpanPlace {
                start: &mut s.start,
                end: &mut s.end,
                part: &mut s.part,
                role: &mut s.role,
            });
        }
    }

    fn keys(&self, family: &str) -> Vec<&str> {
        match family {
            "terms" => self.terms.iter().map(|t| t.term.as_str()).collect(),
            "categories" => self
                .terms
                .iter()
                .map(|t| t.category.as_deref().unwrap_or(UNCATEGORIZED))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::io::Write;

    type Built = (TermsConfig, TermsStage);

    fn stage(extra: &str, list: &str) -> (tempfile::TempDir, Result<Built, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::File::create(dir.path().join("t.tsv"))
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
        let config: TermsConfig = toml::from_str(&format!(
            "id = 't'\nlists = ['t.tsv']\naction = 'escalate'\n{extra}"
        ))
        .unwrap();
        let built = config
            .build(&BuildContext {
                base_dir: dir.path(),
                max_spans: 3,
                key: "stages[1] (t)".into(),
            })
            .map(|stage| (config, stage));
        (dir, built)
    }

    fn run(stage: &Built, text: &str) -> Option<(Outcome, TermsEvidence)> {
        let doc = Document::single(Cow::Borrowed(text), None);
        let mut evidence = stage.1.measure(&doc, &mut TermsScratch::default())?;
        Some((stage.0.decide(&mut evidence), evidence))
    }

    #[test]
    fn two_distinct_terms_escalate_one_does_not() {
        let (_d, s) = stage(
            "min_distinct = 2",
            "# hazard terms\nsarin\tchem\nanthrax\tbio\t2.5\n",
        );
        let s = s.unwrap();
        let (outcome, e) = run(&s, "Sarin, sarin and more SARIN.").unwrap();
        assert_eq!((outcome, e.distinct, e.total), (Outcome::Pass, 1, 3));
        let text = "Ünïcödé: sarin then ANTHRAX.";
        let (outcome, e) = run(&s, text).unwrap();
        assert_eq!(outcome, Outcome::Escalate);
        assert_eq!(e.weight, 3.5);
        assert_eq!(e.categories["bio"], 1);
        for span in &e.spans {
            assert!(text[span.start..span.end].eq_ignore_ascii_case(&span.term));
        }
        assert!(run(&s, "nothing to see").is_none());
    }

    #[test]
    fn category_and_density_thresholds() {
        let (_d, s) = stage(
            "min_per_category = { bio = 2 }\nmin_density = 100.0",
            "sarin\tchem\nanthrax\tbio\nricin\tbio\n",
        );
        let s = s.unwrap();
        let (outcome, e) = run(&s, "anthrax sarin").unwrap();
        assert_eq!(outcome, Outcome::Pass);
        assert!(e
            .thresholds
            .iter()
            .any(|t| t.name == "min_per_category.bio" && !t.crossed));
        assert_eq!(run(&s, "anthrax ricin").unwrap().0, Outcome::Escalate);
        let long = format!("anthrax ricin {}", "word ".repeat(100));
        assert_eq!(
            run(&s, &long).unwrap().0,
            Outcome::Pass,
            "density below 100/1000 words"
        );
    }

    #[test]
    fn spans_are_capped_but_totals_are_not() {
        let (_d, s) = stage("", "x\n");
        let (_, e) = run(&s.unwrap(), "x x x x x").unwrap();
        assert_eq!((e.total, e.spans.len(), e.spans_truncated), (5, 3, true));
    }

    #[test]
    fn python_semantics_options() {
        // The C4 preset's settings: Python's `\w` (a combining mark ends a word), lower(), flanked.
        let c4 = "word_chars = 'python'\ncase = 'lower'\nboundary = 'flanked'";
        let (_d, s) = stage(c4, "ass\n\u{1F595}\n");
        let s = s.unwrap();
        assert_eq!(run(&s, "ASS\u{0301}").unwrap().1.words, 1);
        assert!(run(&s, "x\u{1F595}").is_none());
        assert!(run(&s, "A\u{017F}S").is_none());
        let (_d, s) = stage("", "ass\n\u{1F595}\n");
        let s = s.unwrap();
        assert!(run(&s, "ASS\u{0301}").is_none());
        assert!(run(&s, "x\u{1F595}").is_some());
        // Defaults are not serialized (config hashes of existing configs stay the same).
        let config: TermsConfig =
            toml::from_str("id = 't'\nlists = ['t.tsv']\naction = 'drop'").unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            !json.contains("word_chars") && !json.contains("case\"") && !json.contains("boundary")
        );
        let config: TermsConfig = toml::from_str(&format!(
            "id = 't'\nlists = ['t.tsv']\naction = 'drop'\n{c4}"
        ))
        .unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            json.contains(r#""word_chars":"python","case":"lower","boundary":"flanked""#),
            "{json}"
        );
        let (_d, s) = stage("case_insensitive = false\ncase = 'lower'", "x\n");
        assert!(s.err().unwrap().to_string().contains("stages[1] (t).case"));
    }

    #[test]
    fn a_list_that_is_a_directory_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lists.tsv")).unwrap();
        let config: TermsConfig =
            toml::from_str("id = 't'\nlists = ['lists.tsv']\naction = 'drop'").unwrap();
        let err = config
            .build(&BuildContext {
                base_dir: dir.path(),
                max_spans: 1,
                key: "stages[1] (t)".into(),
            })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is a directory") && err.contains("lists[0]"), "{err}");
    }

    #[test]
    fn missing_list_is_a_config_error_naming_the_key() {
        let config: TermsConfig =
            toml::from_str("id = 't'\nlists = ['nope.txt']\naction = 'drop'").unwrap();
        let err = config
            .build(&BuildContext {
                base_dir: std::path::Path::new("/nonexistent"),
                max_spans: 1,
                key: "stages[1] (t)".into(),
            })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("stages[1] (t).lists[0]") && err.contains("nope.txt"),
            "{err}"
        );
    }

    #[test]
    fn rethresholding_decides_recorded_evidence_again() {
        let (_d, s) = stage("min_distinct = 2", "sarin\tchem\nanthrax\tbio\n");
        let (mut config, stage) = s.unwrap();
        let (outcome, mut evidence) = run(&(config.clone(), stage), "sarin and anthrax").unwrap();
        assert_eq!(outcome, Outcome::Escalate);
        assert_eq!(config.set("min_distinct", "3"), Ok(Setting { loosens: false }));
        assert_eq!(config.decide(&mut evidence), Outcome::Pass);
        assert_eq!(evidence.thresholds[0].required, 3.0);
        assert!(!evidence.thresholds[0].crossed);
        assert_eq!(config.set("min_per_category.bio", "1"), Ok(Setting { loosens: false }));
        assert_eq!(config.set("min_per_category.bio", "0"), Ok(Setting { loosens: true }));
        assert_eq!(config.set("min_weight", "0.5"), Ok(Setting { loosens: false }));
        for (key, value) in [("min_distinct", "0"), ("min_weight", "-1"), ("min_weight", "nan"), ("bogus", "1")] {
            assert!(config.set(key, value).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn numeric_thresholds_must_be_finite_and_not_negative() {
        for (extra, key) in [
            ("min_weight = nan", "min_weight"),
            ("min_weight = -1.0", "min_weight"),
            ("min_density = inf", "min_density"),
            ("min_per_category = { bio = 1 }", "min_per_category.bio"),
        ] {
            let (_d, s) = stage(extra, "x\n");
            let err = s.err().unwrap().to_string();
            assert!(err.contains(&format!("stages[1] (t).{key}")), "{extra}: {err}");
        }
    }
}
