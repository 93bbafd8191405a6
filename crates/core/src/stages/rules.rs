//! `type = "rules"`: regular-expression keyword rules.
//!
//! Two ways to learn which rules match a document, chosen by `strategy`:
//!
//! * `each`: every rule's own regex, one after another. Each single regex gets the `regex`
//!   crate's literal prefilter (memchr/Teddy on the rule's required words), so most of the text is
//!   skipped at memory speed: measured 1,330 MB/s for the 4 rules of `hazard-cascade.toml`.
//! * `set`: one `RegexSet` over all rules, a single scan whatever the rule count, but without a
//!   prefilter: 215 MB/s for the same 4 rules (64 MB/s on non-ASCII text, where Unicode `\b`
//!   pushes it off the lazy DFA). It wins once there are many rules.
//! * `auto` (default): `each` up to 16 rules, `set` above.
//!
//! Either way, only the rules that matched are run again to count matches and record spans.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use crate::config::BuildContext;
use crate::document::Document;
use crate::error::ConfigError;
use crate::stage::{
    count_key, Action, Detail, Evidence, Outcome, Reason, Scratch, Stage, StageStats,
};

/// Compiled regexes may use this much memory each; generous, so big alternations still build.
const REGEX_SIZE_LIMIT: usize = 64 << 20;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub id: String,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub strategy: RulesStrategy,
}

/// How a rules stage finds the rules that match (see the module docs for measurements).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RulesStrategy {
    #[default]
    Auto,
    Each,
    Set,
}

/// Up to this many rules, `auto` runs each rule's prefiltered regex; above, one `RegexSet`.
pub const EACH_MAX_RULES: usize = 16;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    /// Rust `regex` syntax.
    pub pattern: String,
    #[serde(default)]
    pub case_insensitive: bool,
    /// The rule fires when the pattern matches at least this many times (non-overlapping).
    #[serde(default = "one")]
    pub min_matches: usize,
    pub action: Action,
}

fn one() -> usize {
    1
}

pub struct RulesStage {
    id: String,
    /// `Some` when the stage scans with one `RegexSet`, `None` when it runs each rule.
    set: Option<RegexSet>,
    rules: Vec<CompiledRule>,
    max_spans: usize,
}

struct CompiledRule {
    id: String,
    regex: Regex,
    min_matches: usize,
    action: Action,
}

/// Evidence of a rules stage: the rules that matched.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RulesEvidence {
    pub rules: Vec<RuleHit>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleHit {
    pub id: String,
    pub action: Action,
    /// Whether `matches >= min_matches`.
    pub fired: bool,
    pub matches: usize,
    pub min_matches: usize,
    /// Byte spans into the document text, at most `output.max_spans`.
    pub spans: Vec<Span>,
}

/// A byte range `[start, end)` of the document text.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl RulesConfig {
    pub fn build(&self, ctx: &BuildContext) -> Result<RulesStage, ConfigError> {
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut patterns = Vec::with_capacity(self.rules.len());
        let mut seen = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = format!("{}.rules[{i}] ({})", ctx.key, rule.id);
            let invalid = |message: String| ConfigError::Invalid {
                key: key.clone(),
                message,
            };
            if rule.id.is_empty() {
                return Err(invalid("rule id must not be empty".into()));
            }
            if !seen.insert(rule.id.as_str()) {
                return Err(invalid(format!("rule id `{}` is used twice", rule.id)));
            }
            if rule.min_matches == 0 {
                return Err(invalid("min_matches must be at least 1".into()));
            }
            let regex = RegexBuilder::new(&rule.pattern)
                .case_insensitive(rule.case_insensitive)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| invalid(format!("invalid regex: {}", one_line(&e.to_string()))))?;
            if regex.is_match("") {
                return Err(invalid("pattern matches the empty string".into()));
            }
            patterns.push(if rule.case_insensitive {
                format!("(?i:{})", rule.pattern)
            } else {
                format!("(?:{})", rule.pattern)
            });
            rules.push(CompiledRule {
                id: rule.id.clone(),
                regex,
                min_matches: rule.min_matches,
                action: rule.action,
            });
        }
        let use_set = match self.strategy {
            RulesStrategy::Each => false,
            RulesStrategy::Set => true,
            RulesStrategy::Auto => rules.len() > EACH_MAX_RULES,
        };
        // Built even when unused: it checks that the rules combine, whatever the strategy.
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| ConfigError::Invalid {
                key: format!("{}.rules", ctx.key),
                message: format!("cannot combine rules: {}", one_line(&e.to_string())),
            })?;
        Ok(RulesStage {
            id: self.id.clone(),
            set: use_set.then_some(set),
            rules,
            max_spans: ctx.max_spans,
        })
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Stage for RulesStage {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "rules"
    }

    fn evaluate(
        &self,
        doc: &Document<'_>,
        _scratch: &mut Scratch,
        stats: &mut StageStats,
    ) -> Option<Evidence> {
        let text: &str = &doc.text;
        let matched: Vec<usize> = match &self.set {
            Some(set) => set.matches(text).into_iter().collect(),
            None => (0..self.rules.len())
                .filter(|&i| self.rules[i].regex.is_match(text))
                .collect(),
        };
        if matched.is_empty() {
            return None;
        }
        let mut hits = Vec::new();
        let mut outcome = Outcome::Pass;
        let mut reasons = Vec::new();
        for index in matched {
            let rule = &self.rules[index];
            let mut spans = Vec::new();
            let mut matches = 0;
            for m in rule.regex.find_iter(text) {
                matches += 1;
                if spans.len() < self.max_spans {
                    spans.push(Span {
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
            let fired = matches >= rule.min_matches;
            let rule_outcome = if fired {
                Outcome::from(rule.action)
            } else {
                Outcome::Pass
            };
            if fired {
                outcome = outcome.max(rule_outcome);
                reasons.push(Reason {
                    stage: self.id.clone(),
                    rule: Some(rule.id.clone()),
                    action: rule_outcome,
                });
            }
            count_key(&mut stats.rules, &rule.id, matches as u64, rule_outcome);
            hits.push(RuleHit {
                id: rule.id.clone(),
                action: rule.action,
                fired,
                matches,
                min_matches: rule.min_matches,
                spans,
            });
        }
        Some(Evidence {
            outcome,
            reasons,
            detail: Detail::Rules(RulesEvidence { rules: hits }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::path::Path;

    fn stage(toml_rules: &str) -> Result<RulesStage, ConfigError> {
        stage_with(toml_rules, "auto")
    }

    fn stage_with(toml_rules: &str, strategy: &str) -> Result<RulesStage, ConfigError> {
        let config: RulesConfig =
            toml::from_str(&format!("id = 'r'\nstrategy = '{strategy}'\n{toml_rules}")).unwrap();
        config.build(&BuildContext {
            base_dir: Path::new("."),
            max_spans: 2,
            key: "stages[0] (r)".into(),
        })
    }

    fn run(stage: &RulesStage, text: &str) -> Option<Evidence> {
        let doc = Document {
            text: Cow::Borrowed(text),
            id: None,
        };
        stage.evaluate(
            &doc,
            &mut Scratch::default(),
            &mut StageStats::new("r", "rules"),
        )
    }

    #[test]
    fn strongest_fired_action_wins_and_spans_are_exact() {
        let s = stage(
            "[[rules]]\nid='t'\npattern='needle'\naction='tag'\n\
             [[rules]]\nid='d'\npattern='(?:synthe[a-z]+ route)'\ncase_insensitive=true\naction='drop'",
        )
        .unwrap();
        let text = "é needle and a SYNTHESIS ROUTE, needle, needle";
        let e = run(&s, text).unwrap();
        assert_eq!(e.outcome, Outcome::Drop);
        let Detail::Rules(r) = e.detail else { panic!() };
        assert_eq!(r.rules.len(), 2);
        let t = &r.rules[0];
        assert_eq!(
            (t.matches, t.spans.len()),
            (3, 2),
            "spans capped, count not"
        );
        for span in &t.spans {
            assert_eq!(&text[span.start..span.end], "needle");
        }
        let span = r.rules[1].spans[0];
        assert_eq!(&text[span.start..span.end], "SYNTHESIS ROUTE");
        assert_eq!(e.reasons.len(), 2);
        assert!(run(&s, "nothing here").is_none());
    }

    #[test]
    fn each_and_set_strategies_agree() {
        let rules = "[[rules]]\nid='a'\npattern='\\bstep by step\\b.{0,20}\\bbomb'\ncase_insensitive=true\naction='drop'\n\
                     [[rules]]\nid='b'\npattern='ricin|sarin'\naction='escalate'\n\
                     [[rules]]\nid='c'\npattern='x{3}'\nmin_matches=2\naction='tag'";
        let each = stage_with(rules, "each").unwrap();
        let set = stage_with(rules, "set").unwrap();
        assert!(each.set.is_none() && set.set.is_some());
        for text in [
            "STEP BY STEP: a bomb, ricin",
            "sarin xxx xxx é",
            "xxx only once",
            "nothing",
            "Ünïcödé step by step — bomb",
        ] {
            let (a, b) = (run(&each, text), run(&set, text));
            assert_eq!(a.is_some(), b.is_some(), "{text}");
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(a.outcome, b.outcome, "{text}");
                assert_eq!(a.reasons, b.reasons, "{text}");
                let (Detail::Rules(a), Detail::Rules(b)) = (a.detail, b.detail) else {
                    panic!()
                };
                assert_eq!(a, b, "{text}");
            }
        }
    }

    #[test]
    fn min_matches_holds_back_firing() {
        let s = stage("[[rules]]\nid='x'\npattern='ab'\nmin_matches=3\naction='escalate'").unwrap();
        assert_eq!(run(&s, "ab ab").unwrap().outcome, Outcome::Pass);
        assert_eq!(run(&s, "ab ab ab").unwrap().outcome, Outcome::Escalate);
    }

    #[test]
    fn bad_rules_are_named() {
        let err = stage("[[rules]]\nid='broken'\npattern='(unclosed'\naction='drop'")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("rules[0] (broken)") && err.contains("invalid regex"),
            "{err}"
        );
        let err = stage("[[rules]]\nid='e'\npattern='a*'\naction='drop'")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("empty string"), "{err}");
    }
}
