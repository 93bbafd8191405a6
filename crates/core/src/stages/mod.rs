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
    #[serde(flatten)]
    pub evidence: E,
}

/// A stage's config together with the keys every stage type has, handled here once rather than
/// in each stage: `roles`, the parts of a document the stage judges (see `pipeline/cascade.rs`).
/// Written in the stage's own table; its other keys are the stage type's (`deny_unknown_fields`
/// still holds for them: `roles` is taken out of the table before the stage type reads it).
#[derive(Clone, Debug, Serialize)]
pub struct Staged<C> {
    #[serde(flatten)]
    pub config: C,
    /// Only parts with one of these roles are judged; empty: the whole document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
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
                let mut roles = None;
                let config = C::deserialize(de::value::MapAccessDeserializer::new(WithoutRoles {
                    map,
                    roles: &mut roles,
                }))?;
                Ok(Staged {
                    config,
                    roles: roles.unwrap_or_default(),
                })
            }
        }
        d.deserialize_map(Table(std::marker::PhantomData))
    }
}

/// A stage table with its `roles` key taken out (into `roles`) as it is read.
struct WithoutRoles<'r, M> {
    map: M,
    roles: &'r mut Option<Vec<String>>,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for WithoutRoles<'_, M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        loop {
            let Some(key) = self.map.next_key::<String>()? else {
                return Ok(None);
            };
            if key != "roles" {
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
            if self.roles.is_some() {
                return Err(de::Error::duplicate_field("roles"));
            }
            *self.roles = Some(self.map.next_value()?);
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
                        true
                    })*
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }

            pub fn set_device(&mut self, device: &str) {
                match self { $(StageConfig::$variant(c) => c.set_device(device),)* }
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
                        .map(|evidence| Evidence::$variant(Judged { outcome: Outcome::Pass, roles: Vec::new(), evidence })),)*
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
                        .map(|e| e.map(|evidence| Evidence::$variant(Judged { outcome: Outcome::Pass, roles: Vec::new(), evidence })))
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

            pub fn reasons(&self, stage: &str, out: &mut Vec<Reason>) {
                match self { $(Evidence::$variant(j) => j.evidence.reasons(stage, j.outcome, out),)* }
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
