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

use crate::decision::{fire, Action, Outcome, Reason};
use crate::document::Document;
use crate::error::ConfigError;
use crate::stage::{
    parse_count, BuildContext, LabeledSpan, Setting, SpanPlace, StageEvidence, StageKind, StageRuntime,
    StageStats,
};

/// Compiled regexes may use this much memory each; generous, so big alternations still build.
const REGEX_SIZE_LIMIT: usize = 64 << 20;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub id: String,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Rule packs: TOML files of `[[rules]]` tables (relative to the config file), appended to
    /// `rules` when the config is read (see [`StageKind::read_files`]), so that a run's
    /// manifest holds the rules themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_files: Vec<std::path::PathBuf>,
    #[serde(default)]
    pub strategy: RulesStrategy,
}

/// A rule pack file: `[[rules]]` tables, as in a stage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulePack {
    rules: Vec<RuleConfig>,
}

impl RulesConfig {
    /// Appends the rules of `rule_files` (resolved against `base_dir`) to `rules`, and forgets
    /// the file names: the rules are then part of the config (its hash, a run's manifest).
    /// `key` names the stage in errors.
    fn read_rule_files(
        &mut self,
        base_dir: &std::path::Path,
        key: &str,
    ) -> Result<(), ConfigError> {
        for file in std::mem::take(&mut self.rule_files) {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base_dir.join(&file)
            };
            let invalid = |message: String| ConfigError::Invalid {
                key: format!("{key}.rule_files"),
                message,
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(format!("cannot read rule file {}: {e}", path.display())))?;
            let pack: RulePack = toml::from_str(&text).map_err(|e| {
                invalid(format!(
                    "rule file {}: {}",
                    path.display(),
                    one_line(&e.to_string())
                ))
            })?;
            self.rules.extend(pack.rules);
        }
        Ok(())
    }
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
    /// Accept a pattern that runs [`MAX_RULE_SLOWDOWN`] times slower than a plain word pattern.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_slow: bool,
}

fn one() -> usize {
    1
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// A rule whose regex scans the probe text this many times slower than [`CALIBRATION`] is
/// refused at build time (unless `allow_slow`): it would be the run's bottleneck by orders of
/// magnitude. Measured on the probe (release build): the calibration ~55 MB/s, ordinary rules
/// 300–36,000 MB/s (ratio under 0.2), a slow but reasonable `(?i)\w{3,}ing\b` 25 MB/s (2.2),
/// counted repeats of Unicode classes such as `\w{500}` 0.2–0.6 MB/s (ratio 100–230). The ratio,
/// unlike a speed, is about the same in an unoptimized build, and measured in CPU time (see
/// [`probe_seconds`]) it holds on a busy machine: waiting for a core does not count.
pub const MAX_RULE_SLOWDOWN: f64 = 30.0;
/// Above this slowdown a rule is accepted with a warning.
pub const WARN_RULE_SLOWDOWN: f64 = 5.0;
/// The pattern speeds are compared with: a plain word pattern.
const CALIBRATION: &str = r"\b[a-z]+q[a-z]*z\b";

/// Text a rule's speed is measured on: long words of ASCII and of accented letters (where
/// counted Unicode classes explode the regex engine's lazy DFA), ordinary prose with digits, and
/// a run of Greek.
fn probe_text() -> String {
    let mut probe = String::with_capacity(40 << 10);
    probe.push_str(&"a".repeat(8192));
    probe.push(' ');
    probe.push_str(&"é".repeat(4096));
    probe.push(' ');
    for i in 0..400 {
        probe.push_str(&format!("word{i} and some ordinary text, numbers 12345 "));
    }
    probe.push_str(&"Ω".repeat(2048));
    probe
}

/// Seconds `regex` takes to find all its matches in `probe`: the fastest of three runs (the
/// first also fills the lazy DFA's cache), or of fewer when one took longer than `enough`
/// seconds. Measured in the thread's CPU time where the platform has it, so that time spent
/// waiting for a core (a busy machine) does not count; wall-clock time elsewhere.
fn probe_seconds(regex: &Regex, probe: &str, enough: f64) -> f64 {
    let clock = || crate::stats::thread_cpu_time();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let (cpu, wall) = (clock(), std::time::Instant::now());
        std::hint::black_box(regex.find_iter(probe).count());
        let took = match (cpu, clock()) {
            (Some(start), Some(end)) => end.saturating_sub(start).as_secs_f64(),
            _ => wall.elapsed().as_secs_f64(),
        };
        best = best.min(took);
        if best > enough {
            break;
        }
    }
    best.max(1e-9)
}

/// How many times slower than the calibration `regex` scans the probe, and its seconds;
/// `reference` is the calibration's seconds, measured once per stage. A verdict of "too slow" is
/// measured again, calibration included, before it is believed: a config must not pass or fail
/// by what else the machine was doing.
fn probe_slowdown(regex: &Regex, calibration: &Regex, probe: &str, reference: f64) -> (f64, f64) {
    let mut reference = reference;
    let mut best = (f64::INFINITY, f64::INFINITY);
    for attempt in 0..2 {
        if attempt > 0 {
            reference = probe_seconds(calibration, probe, f64::INFINITY);
        }
        // A run that took longer than a refused pattern's would is not repeated.
        let seconds = probe_seconds(regex, probe, reference * MAX_RULE_SLOWDOWN);
        if seconds / reference < best.0 {
            best = (seconds / reference, seconds);
        }
        if best.0 <= MAX_RULE_SLOWDOWN {
            break;
        }
    }
    best
}

pub struct RulesStage {
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

/// A byte range `[start, end)` of the document text (of its part, for documents of parts).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl StageKind for RulesConfig {
    type Runtime = RulesStage;
    type Evidence = RulesEvidence;

    fn read_files(&mut self, base_dir: &std::path::Path, key: &str) -> Result<(), ConfigError> {
        self.read_rule_files(base_dir, key)
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn build(&self, ctx: &BuildContext) -> Result<RulesStage, ConfigError> {
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut patterns = Vec::with_capacity(self.rules.len());
        let mut seen = std::collections::BTreeSet::new();
        // The probe text, the calibration pattern and its seconds, measured once per stage.
        let probe = (!self.rules.is_empty()).then(|| {
            let (text, calibration) = (probe_text(), Regex::new(CALIBRATION).expect("valid"));
            let reference = probe_seconds(&calibration, &text, f64::INFINITY);
            (text, calibration, reference)
        });
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
            let (probe, calibration, reference) =
                probe.as_ref().expect("made when there are rules");
            if !rule.allow_slow {
                let (slowdown, seconds) = probe_slowdown(&regex, calibration, probe, *reference);
                tracing::debug!(rule = %key, slowdown, "rule speed checked");
                if slowdown > MAX_RULE_SLOWDOWN {
                    let mb_per_s = probe.len() as f64 / 1e6 / seconds;
                    return Err(invalid(format!(
                        "pattern runs at {mb_per_s:.2} MB/s on the probe text (long words), \
                         {slowdown:.0} times slower than a plain word pattern: counted repeats of \
                         Unicode classes (\\w{{500}}, [\\p{{L}}]{{500}}) are slow in the regex \
                         engine; use an ASCII class ((?-u:\\w){{500}}), a smaller count or `+`, \
                         or set allow_slow = true"
                    )));
                }
                if slowdown > WARN_RULE_SLOWDOWN {
                    tracing::warn!(rule = %key, slowdown, "a slow rule: it may limit the run's speed");
                }
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
            .map_err(|e| {
                ctx.invalid(
                    "rules",
                    format!("cannot combine rules: {}", one_line(&e.to_string())),
                )
            })?;
        Ok(RulesStage {
            set: use_set.then_some(set),
            rules,
            max_spans: ctx.max_spans,
        })
    }

    /// Each rule that matched fires when it matched `min_matches` times or more; the stage's
    /// outcome is the strongest action of its fired rules (`pass` when none fired).
    fn decide(&self, evidence: &mut RulesEvidence) -> Outcome {
        let mut outcome = Outcome::Pass;
        // Hits are in rule order, as the config lists them: one forward scan finds each.
        let mut rules = self.rules.iter();
        for hit in &mut evidence.rules {
            if let Some(rule) = rules.by_ref().find(|r| r.id == hit.id) {
                hit.min_matches = rule.min_matches;
            }
            hit.fired = hit.matches >= hit.min_matches;
            outcome = outcome.max(fire(hit.fired, hit.action));
        }
        outcome
    }

    fn set(&mut self, key: &str, value: &str) -> Result<Setting, String> {
        let Some(rule_id) = key.strip_suffix(".min_matches") else {
            return Err(format!(
                "rules stage `{}`: only RULE_ID.min_matches can be set",
                self.id
            ));
        };
        let stage = self.id.clone();
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.id == rule_id)
            .ok_or_else(|| format!("no rule `{rule_id}` in stage `{stage}`"))?;
        let n = parse_count(value, 1)?;
        let loosens = n < rule.min_matches;
        rule.min_matches = n;
        Ok(Setting { loosens })
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl StageRuntime for RulesStage {
    type Evidence = RulesEvidence;
    type Scratch = ();

    /// Each part of a document is matched on its own: no regex can match across parts (no
    /// separator could guarantee that: `\s+`, `(?s).` and `[^x]` match any), and `^`, `$`
    /// and `\b` see a part's edges as text edges.
    fn measure(&self, doc: &Document<'_>, _scratch: &mut ()) -> Option<RulesEvidence> {
        let text: &str = &doc.text;
        let mut matched: Vec<usize> = Vec::new();
        for range in doc.part_ranges() {
            let part = &text[range];
            match &self.set {
                Some(set) => matched.extend(set.matches(part)),
                None => matched.extend(
                    (0..self.rules.len()).filter(|&i| self.rules[i].regex.is_match(part)),
                ),
            }
        }
        if matched.is_empty() {
            return None;
        }
        matched.sort_unstable();
        matched.dedup();
        let hits = matched
            .into_iter()
            .map(|index| {
                let rule = &self.rules[index];
                let mut spans = Vec::new();
                let mut matches = 0;
                for range in doc.part_ranges() {
                    let offset = range.start;
                    for m in rule.regex.find_iter(&text[range]) {
                        matches += 1;
                        if spans.len() < self.max_spans {
                            spans.push(Span {
                                start: offset + m.start(),
                                end: offset + m.end(),
                                part: None,
                                role: None,
                            });
                        }
                    }
                }
                RuleHit {
                    id: rule.id.clone(),
                    action: rule.action,
                    fired: false,
                    matches,
                    min_matches: rule.min_matches,
                    spans,
                }
            })
            .collect();
        Some(RulesEvidence { rules: hits })
    }

    fn describe(&self) -> String {
        crate::stats::plural(self.rules.len() as u64, "rule")
    }
}

impl StageEvidence for RulesEvidence {
    /// One reason per fired rule.
    fn reasons(&self, stage: &str, _outcome: Outcome, out: &mut Vec<Reason>) {
        for hit in self.rules.iter().filter(|h| h.fired) {
            out.push(Reason {
                stage: stage.to_string(),
                rule: Some(hit.id.clone()),
                action: Outcome::from(hit.action),
            });
        }
    }

    fn count(&self, _outcome: Outcome, stats: &mut StageStats) {
        for hit in &self.rules {
            stats.count_key(
                "rules",
                &hit.id,
                hit.matches as u64,
                fire(hit.fired, hit.action),
            );
        }
    }

    fn describe(&self) -> String {
        self.rules
            .iter()
            .map(|h| {
                format!(
                    "{} x{} (min {}{})",
                    h.id,
                    h.matches,
                    h.min_matches,
                    if h.fired { ", fired" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn spans(&self, stage: &str, out: &mut Vec<LabeledSpan>) {
        for hit in &self.rules {
            for s in &hit.spans {
                out.push(LabeledSpan {
                    start: s.start,
                    end: s.end,
                    label: format!("{stage}/{}", hit.id),
                    part: s.part.clone(),
                    role: s.role.clone(),
                });
            }
        }
    }

    fn place_spans(&mut self, place: &dyn Fn(&mut SpanPlace)) {
        for hit in &mut self.rules {
            for s in &mut hit.spans {
                place(&mut SpanPlace {
                    start: &mut s.start,
                    end: &mut s.end,
                    part: &mut s.part,
                    role: &mut s.role,
                });
            }
        }
    }

    fn keys(&self, family: &str) -> Vec<&str> {
        match family {
            "rules" => self.rules.iter().map(|h| h.id.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::path::Path;

    /// A built rules stage with its config: measuring and deciding, as the cascade does.
    struct Built(RulesConfig, RulesStage);

    fn stage(toml_rules: &str) -> Result<Built, ConfigError> {
        stage_with(toml_rules, "auto")
    }

    fn stage_with(toml_rules: &str, strategy: &str) -> Result<Built, ConfigError> {
        let config: RulesConfig =
            toml::from_str(&format!("id = 'r'\nstrategy = '{strategy}'\n{toml_rules}")).unwrap();
        let built = config.build(&BuildContext {
            base_dir: Path::new("."),
            max_spans: 2,
            key: "stages[0] (r)".into(),
        })?;
        Ok(Built(config, built))
    }

    fn run(stage: &Built, text: &str) -> Option<(Outcome, RulesEvidence, Vec<Reason>)> {
        let doc = Document::single(Cow::Borrowed(text), None);
        let mut evidence = stage.1.measure(&doc, &mut ())?;
        let outcome = stage.0.decide(&mut evidence);
        let mut reasons = Vec::new();
        evidence.reasons("r", outcome, &mut reasons);
        Some((outcome, evidence, reasons))
    }

    #[test]
    fn strongest_fired_action_wins_and_spans_are_exact() {
        let s = stage(
            "[[rules]]\nid='t'\npattern='needle'\naction='tag'\n\
             [[rules]]\nid='d'\npattern='(?:synthe[a-z]+ route)'\ncase_insensitive=true\naction='drop'",
        )
        .unwrap();
        let text = "é needle and a SYNTHESIS ROUTE, needle, needle";
        let (outcome, r, reasons) = run(&s, text).unwrap();
        assert_eq!(outcome, Outcome::Drop);
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
        let span = r.rules[1].spans[0].clone();
        assert_eq!(&text[span.start..span.end], "SYNTHESIS ROUTE");
        assert_eq!(reasons.len(), 2);
        assert!(run(&s, "nothing here").is_none());
    }

    #[test]
    fn each_and_set_strategies_agree() {
        let rules = "[[rules]]\nid='a'\npattern='\\bstep by step\\b.{0,20}\\bbomb'\ncase_insensitive=true\naction='drop'\n\
                     [[rules]]\nid='b'\npattern='ricin|sarin'\naction='escalate'\n\
                     [[rules]]\nid='c'\npattern='x{3}'\nmin_matches=2\naction='tag'";
        let each = stage_with(rules, "each").unwrap();
        let set = stage_with(rules, "set").unwrap();
        assert!(each.1.set.is_none() && set.1.set.is_some());
        for text in [
            "STEP BY STEP: a bomb, ricin",
            "sarin xxx xxx é",
            "xxx only once",
            "nothing",
            "Ünïcödé step by step — bomb",
        ] {
            assert_eq!(run(&each, text), run(&set, text), "{text}");
        }
    }

    #[test]
    fn min_matches_holds_back_firing_and_rethresholding_decides_again() {
        let mut s = stage("[[rules]]\nid='x'\npattern='ab'\nmin_matches=3\naction='escalate'").unwrap();
        assert_eq!(run(&s, "ab ab").unwrap().0, Outcome::Pass);
        let (outcome, mut evidence, _) = run(&s, "ab ab ab").unwrap();
        assert_eq!(outcome, Outcome::Escalate);
        // The recorded evidence, decided again under a raised min_matches, as rethreshold does.
        assert_eq!(s.0.set("x.min_matches", "4"), Ok(Setting { loosens: false }));
        assert_eq!(s.0.decide(&mut evidence), Outcome::Pass);
        assert_eq!((evidence.rules[0].min_matches, evidence.rules[0].fired), (4, false));
        assert_eq!(s.0.set("x.min_matches", "2"), Ok(Setting { loosens: true }));
        assert!(s.0.set("y.min_matches", "2").unwrap_err().contains("no rule `y` in stage `r`"));
        assert!(s.0.set("x.min_matches", "0").is_err());
    }

    #[test]
    fn patterns_orders_of_magnitude_slower_than_the_rest_are_refused() {
        for pattern in ["\\w{500}", "[\\p{L}\\p{N}]{500}X"] {
            let rule = format!("[[rules]]\nid='slow'\npattern='{pattern}'\naction='tag'");
            let err = stage(&rule).err().expect("refused").to_string();
            assert!(err.contains("rules[0] (slow)") && err.contains("MB/s"), "{err}");
            assert!(stage(&format!("{rule}\nallow_slow = true")).is_ok());
        }
        // An ordinary bounded repeat is fine.
        assert!(stage("[[rules]]\nid='ok'\npattern='(?-u:\\w){500}'\naction='tag'").is_ok());
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
