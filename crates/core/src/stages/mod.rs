//! The stages of the cascade, one file each: a serde config struct, its `build()`, the runtime
//! stage implementing [`crate::stage::Stage`], and the evidence it records.

mod classifier;
mod rules;
mod terms;

pub use classifier::{
    hash_files, AggregateConfig, ClassifierConfig, ClassifierEvidence, ClassifierMode,
    ClassifierStage, LabelConfig, OnError, Scored,
};
pub use rules::{
    RuleConfig, RuleHit, RulesConfig, RulesEvidence, RulesStage, RulesStrategy, Span,
    EACH_MAX_RULES,
};
pub use terms::{
    Normalize, TermCount, TermEngine, TermSpan, TermsConfig, TermsEvidence, TermsStage, Threshold,
};
