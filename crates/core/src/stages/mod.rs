//! The stage types, one file each, and **the registry**: one line per type below.
//!
//! A stage file holds a serde config implementing [`StageKind`] (with the decision and the
//! `--set` thresholds), a runtime implementing [`StageRuntime`] and an evidence type implementing
//! [`StageEvidence`]. The `stages!` line names the module, the variant, the config type and the
//! `type = "..."` the config file uses; from the list the macro generates the enums the rest of
//! sluice works with:
//!
//! * [`StageConfig`]: a `[[stages]]` table, tagged by `type`;
//! * [`Stage`]: the built runtime stages;
//! * [`Evidence`]: a stage's decided evidence ([`Judged`]: outcome plus evidence), tagged by
//!   `type` in audit records: the one type that both writes and reads them;
//! * [`Scratch`]: per-thread buffers.
//!
//! Nothing else in the code base names a stage type, so adding one is: a file, a line here, its
//! tests and docs.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::decision::{Outcome, Reason, Verdict};
use crate::document::Document;
use crate::error::ConfigError;
use crate::stage::{
    BuildContext, LabeledSpan, Setting, SpanPlace, StageError, StageEvidence, StageKind,
    StageRuntime, StageStats,
};

/// A stage's evidence with the outcome its config decided: what an audit record's `stages[]`
/// entry holds (`{"stage": ..., "type": ..., "outcome": ..., <evidence fields>}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged<E> {
    pub outcome: Outcome,
    /// The roles of the parts the stage judged (documents with roled parts only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The stage's `unless` stages that fired on the document: its outcome, as its evidence
    /// decided it, did not apply (the outcome above is then `pass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
    #[serde(flatten)]
    pub evidence: E,
}

/// A stage outcome that did not apply because of what earlier stages decided on the document
/// (see [`Staged::unless`] and [`Staged::only_if`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// The outcome the stage's evidence decided.
    pub outcome: Outcome,
    /// Its `unless` stages that fired, in cascade order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by: Vec<String>,
    /// Its `only_if` stages that did not fire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// A stage's config together with the keys every stage type has, handled here once rather than
/// in each stage: `roles`, the parts of a document the stage judges (see `pipeline/cascade.rs`),
/// and `unless`, earlier stages whose firing cancels this one's outcome (see
/// [`crate::decision::Verdict::record`]). Written in the stage's own table; its other keys are the
/// stage type's (`deny_unknown_fields` still holds for them: the common keys are taken out of
/// the table before the stage type reads it).
#[derive(Clone, Debug, Serialize)]
pub struct Staged<C> {
    #[serde(flatten)]
    pub config: C,
    /// Only parts with one of these roles are judged; empty: the whole document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Ids of earlier stages: when one of them fired on the document (an outcome other than
    /// `pass`), this stage's outcome does not apply; its evidence is still recorded, marked
    /// [`Suppressed`]. A hazard stage on answers `unless = ["refusal"]` lets safety data through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless: Vec<String>,
    /// Ids of earlier stages that must all have fired on the document for this stage's outcome
    /// to apply (a check of answers that matters only after a hazardous request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_if: Vec<String>,
}

impl<C> std::ops::Deref for Staged<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.config
    }
}

impl<C> std::ops::DerefMut for Staged<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.config
    }
}

impl<C> From<C> for Staged<C> {
    fn from(config: C) -> Staged<C> {
        Staged {
            config,
            roles: Vec::new(),
            unless: Vec::new(),
            only_if: Vec::new(),
        }
    }
}

impl<'de, C: Deserialize<'de>> Deserialize<'de> for Staged<C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Table<C>(std::marker::PhantomData<C>);
        impl<'de, C: Deserialize<'de>> Visitor<'de> for Table<C> {
            type Value = Staged<C>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a stage table")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Staged<C>, M::Error> {
                let mut common = [None, None, None];
                let config =
                    C::deserialize(de::value::MapAccessDeserializer::new(WithoutCommon {
                        map,
                        common: &mut common,
                    }))?;
                let [roles, unless, only_if] = common.map(Option::unwrap_or_default);
                Ok(Staged {
                    config,
                    roles,
                    unless,
                    only_if,
                })
            }
        }
        d.deserialize_map(Table(std::marker::PhantomData))
    }
}

/// The keys every stage table may have, in the order of [`WithoutCommon::common`].
const COMMON_KEYS: [&str; 3] = ["roles", "unless", "only_if"];

/// A stage table with its common keys ([`COMMON_KEYS`]) taken out as it is read.
struct WithoutCommon<'r, M> {
    map: M,
    common: &'r mut [Option<Vec<String>>; 3],
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for WithoutCommon<'_, M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        loop {
            let Some(key) = self.map.next_key::<String>()? else {
                return Ok(None);
            };
            let Some(at) = COMMON_KEYS.iter().position(|k| *k == key) else {
                return seed.deserialize(key.into_deserializer()).map(Some);
            };
            if self.common[at].is_some() {
                return Err(de::Error::duplicate_field(COMMON_KEYS[at]));
            }
            self.common[at] = Some(self.map.next_value()?);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.map.next_value_seed(seed)
    }
}

macro_rules! stages {
    ($($module:ident :: $variant:ident ($config:ident) = $name:literal;)*) => {
        $(pub mod $module;)*

        /// One `[[stages]]` table of the config, tagged by `type`.
        #[derive(Clone, Debug, Deserialize, Serialize)]
        #[serde(tag = "type")]
        pub enum StageConfig {
            $(#[serde(rename = $name)] $variant(Staged<$module::$config>),)*
        }

        /// A built stage, ready to measure documents. Shared by every worker thread.
        // A handful exist per run, matched on every document: not worth a box's indirection.
        #[allow(clippy::large_enum_variant)]
        pub enum Stage {
            $($variant(<$module::$config as StageKind>::Runtime),)*
        }

        /// A stage's decided evidence about a document, tagged by `type` in audit records.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Evidence {
            $(#[serde(rename = $name)] $variant(Judged<<$module::$config as StageKind>::Evidence>),)*
        }

        /// Per-thread buffers of one stage.
        pub enum Scratch {
            $($variant(<<$module::$config as StageKind>::Runtime as StageRuntime>::Scratch),)*
        }

        impl StageConfig {
            pub fn id(&self) -> &str {
                match self { $(StageConfig::$variant(c) => c.id(),)* }
            }

            /// The roles of the parts the stage judges (empty: the whole document).
            pub fn roles(&self) -> &[String] {
                match self { $(StageConfig::$variant(c) => &c.roles,)* }
            }

            /// The earlier stages whose firing cancels this stage's outcome.
            pub fn unless(&self) -> &[String] {
                match self { $(StageConfig::$variant(c) => &c.unless,)* }
            }

            /// The earlier stages that must all fire for this stage's outcome to apply.
            pub fn only_if(&self) -> &[String] {
                match self { $(StageConfig::$variant(c) => &c.only_if,)* }
            }

            /// The stage's `type` (`rules`, `terms`, ...), as in reasons, reports and records.
            pub fn kind(&self) -> &'static str {
                match self { $(StageConfig::$variant(_) => $name,)* }
            }

            pub fn build(&self, ctx: &BuildContext) -> Result<Stage, ConfigError> {
                match self { $(StageConfig::$variant(c) => c.build(ctx).map(Stage::$variant),)* }
            }

            pub fn hashed_inputs(
                &self,
                ctx: &BuildContext,
            ) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
                match self { $(StageConfig::$variant(c) => c.hashed_inputs(ctx),)* }
            }

            pub fn wants(&self, verdict: &Verdict) -> bool {
                match self { $(StageConfig::$variant(c) => c.wants(verdict),)* }
            }

            pub fn settles_escalation(&self) -> bool {
                match self { $(StageConfig::$variant(c) => c.settles_escalation(),)* }
            }

            /// Decides `evidence` under this config (see [`StageKind::decide`]); `false` when the
            /// evidence is of another stage type than the config (a corrupt audit record).
            pub fn decide(&self, evidence: &mut Evidence) -> bool {
                match (self, evidence) {
                    $((StageConfig::$variant(c), Evidence::$variant(j)) => {
                        j.outcome = c.decide(&mut j.evidence);
                        j.suppressed = None;
                        true
                    })*
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }

            pub fn set_device(&mut self, device: &str) {
                match self { $(StageConfig::$variant(c) => c.set_device(device),)* }
            }

            /// See [`StageKind::read_files`].
            pub fn read_files(
                &mut self,
                base_dir: &std::path::Path,
                key: &str,
            ) -> Result<(), ConfigError> {
                match self { $(StageConfig::$variant(c) => c.read_files(base_dir, key),)* }
            }

            /// `sluice rethreshold --set ID.KEY=VALUE` (see [`StageKind::set`]).
            pub fn set(&mut self, key: &str, value: &str) -> Result<Setting, String> {
                match self { $(StageConfig::$variant(c) => c.set(key, value),)* }
            }
        }

        impl Stage {
            pub fn new_scratch(&self) -> Scratch {
                match self { $(Stage::$variant(_) => Scratch::$variant(Default::default()),)* }
            }

            /// Measures one document (see [`StageRuntime::measure`]); the evidence's outcome is
            /// `pass` until its config decides it.
            pub fn measure(&self, doc: &Document<'_>, scratch: &mut Scratch) -> Option<Evidence> {
                match (self, scratch) {
                    $((Stage::$variant(s), Scratch::$variant(scratch)) => s
                        .measure(doc, scratch)
                        .map(|evidence| Evidence::$variant(Judged { outcome: Outcome::Pass, roles: Vec::new(), suppressed: None, evidence })),)*
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("scratch of another stage"),
                }
            }

            /// Measures a batch (see [`StageRuntime::measure_batch`]).
            pub fn measure_batch(
                &self,
                texts: &[&str],
                scratch: &mut Scratch,
            ) -> Result<Vec<Option<Evidence>>, StageError> {
                match (self, scratch) {
                    $((Stage::$variant(s), Scratch::$variant(scratch)) => Ok(s
                        .measure_batch(texts, scratch)?
                        .into_iter()
                        .map(|e| e.map(|evidence| Evidence::$variant(Judged { outcome: Outcome::Pass, roles: Vec::new(), suppressed: None, evidence })))
                        .collect()),)*
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("scratch of another stage"),
                }
            }

            pub fn batched(&self) -> bool {
                match self { $(Stage::$variant(s) => s.batched(),)* }
            }

            pub fn batch_exact(&self) -> bool {
                match self { $(Stage::$variant(s) => s.batch_exact(),)* }
            }

            pub fn describe(&self) -> String {
                match self { $(Stage::$variant(s) => s.describe(),)* }
            }

            pub fn check(&self) -> Vec<String> {
                match self { $(Stage::$variant(s) => s.check(),)* }
            }

            /// The stage's runtime, when it is of type `T` (for callers that need its own API).
            pub fn downcast<T: 'static>(&self) -> Option<&T> {
                match self { $(Stage::$variant(s) => (s as &dyn std::any::Any).downcast_ref::<T>(),)* }
            }
        }

        impl Evidence {
            pub fn kind(&self) -> &'static str {
                match self { $(Evidence::$variant(_) => $name,)* }
            }

            pub fn outcome(&self) -> Outcome {
                match self { $(Evidence::$variant(j) => j.outcome,)* }
            }

            /// The reasons of its outcome (none when the outcome was suppressed).
            pub fn reasons(&self, stage: &str, out: &mut Vec<Reason>) {
                if self.suppressed().is_some() {
                    return;
                }
                match self { $(Evidence::$variant(j) => j.evidence.reasons(stage, j.outcome, out),)* }
            }

            /// Why its decided outcome did not apply, if it did not.
            pub fn suppressed(&self) -> Option<&Suppressed> {
                match self { $(Evidence::$variant(j) => j.suppressed.as_ref(),)* }
            }

            /// Cancels its decided outcome: `by` (`unless` stages that fired) and `missing`
            /// (`only_if` stages that did not) say why.
            pub fn suppress(&mut self, by: Vec<String>, missing: Vec<String>) {
                match self { $(Evidence::$variant(j) => {
                    j.suppressed = Some(Suppressed { outcome: j.outcome, by, missing });
                    j.outcome = Outcome::Pass;
                })* }
            }

            pub fn count(&self, stats: &mut StageStats) {
                match self { $(Evidence::$variant(j) => j.evidence.count(j.outcome, stats),)* }
            }

            pub fn describe(&self) -> String {
                match self { $(Evidence::$variant(j) => j.evidence.describe(),)* }
            }

            pub fn spans(&self, stage: &str, out: &mut Vec<LabeledSpan>) {
                match self { $(Evidence::$variant(j) => j.evidence.spans(stage, out),)* }
            }

            pub fn keys(&self, family: &str) -> Vec<&str> {
                match self { $(Evidence::$variant(j) => j.evidence.keys(family),)* }
            }

            pub fn score(&self) -> Option<f32> {
                match self { $(Evidence::$variant(j) => j.evidence.score(),)* }
            }

            /// The roles of the parts the stage judged (empty for a one-text document).
            pub fn roles(&self) -> &[String] {
                match self { $(Evidence::$variant(j) => &j.roles,)* }
            }

            pub fn set_roles(&mut self, roles: Vec<String>) {
                match self { $(Evidence::$variant(j) => j.roles = roles,)* }
            }

            /// Turns spans' offsets into the judged text into offsets within their part, naming
            /// the part and its role (see [`StageEvidence::place_spans`]).
            pub fn place_spans(&mut self, place: &dyn Fn(&mut SpanPlace)) {
                match self { $(Evidence::$variant(j) => j.evidence.place_spans(place),)* }
            }
        }
    };
}

stages! {
    rules::Rules(RulesConfig) = "rules";
    terms::Terms(TermsConfig) = "terms";
    language::Language(LanguageConfig) = "language";
    encoded::Encoded(EncodedConfig) = "encoded";
    classifier::Classifier(ClassifierConfig) = "classifier";
}
