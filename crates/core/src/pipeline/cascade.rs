//! The built cascade: the stages in order, and how a document (or a group of them) goes through
//! them.
//!
//! For each stage in config order: if the verdict so far lets the stage see the document
//! ([`Verdict::wants`]: never after a drop, and only what the stage asks for), the stage measures
//! it, the stage's config decides the evidence, and [`Verdict::record`] combines the outcome.
//! Stages that measure in batches (a model) split the cascade into segments: the per-document
//! stages before the first batched stage run as each line is parsed ([`Cascade::judge_until_batch`]),
//! and the rest runs on a group of documents ([`Cascade::judge_rest`]), the batched stage seeing
//! all of the group's documents that want it in one call.

use std::borrow::Cow;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::config::{AuditScope, Config};
use crate::decision::Verdict;
use crate::document::{Document, FieldExtractor, RoleView};
use crate::error::ConfigError;
use crate::stage::{StageError, StageStats};
use crate::stages::{Evidence, Scratch, Stage, StageConfig};

use super::chunk::BATCH_DOCUMENTS;
use super::gather::{GatherOptions, Gatherers};

/// The built cascade: stages plus everything needed to turn a line into a verdict and records.
pub struct Cascade {
    configs: Vec<StageConfig>,
    stages: Vec<Stage>,
    /// Consecutive stages run together: a run of per-document stages, or one batched stage.
    segments: Vec<Segment>,
    pub extractor: FieldExtractor,
    pub audit: AuditScope,
    pub config_hash: String,
    pub max_line_bytes: usize,
    pub chunk_bytes: usize,
    /// Batched stages' calls gathered across chunks, while a run has them started.
    gatherers: Gatherers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    stages: Range<usize>,
    batched: bool,
}

impl Cascade {
    /// Builds every stage (compiling rules, loading lists and models) before any document is
    /// read; errors name the config key.
    pub fn new(config: &Config) -> Result<Cascade, ConfigError> {
        let stages = config.build_stages()?;
        let mut segments: Vec<Segment> = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            let batched = stage.batched();
            match segments.last_mut() {
                Some(last) if !batched && !last.batched => last.stages.end = i + 1,
                _ => segments.push(Segment {
                    stages: i..i + 1,
                    batched,
                }),
            }
        }
        Ok(Cascade {
            configs: config.stages.clone(),
            stages,
            segments,
            extractor: config.extractor()?,
            audit: config.output.audit,
            config_hash: config.hash()?,
            max_line_bytes: config.input.max_line_bytes,
            chunk_bytes: config.run.chunk_bytes,
            gatherers: Gatherers::default(),
        })
    }

    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    pub fn stage_id(&self, i: usize) -> &str {
        self.configs[i].id()
    }

    pub fn stage_config(&self, i: usize) -> &StageConfig {
        &self.configs[i]
    }

    pub fn stage_configs(&self) -> &[StageConfig] {
        &self.configs
    }

    pub fn stage(&self, i: usize) -> &Stage {
        &self.stages[i]
    }

    /// Empty counters, one per stage, in cascade order.
    pub fn stage_stats(&self) -> Vec<StageStats> {
        self.configs
            .iter()
            .map(|c| StageStats::new(c.id(), c.kind()))
            .collect()
    }

    /// A worker's buffers, one per stage.
    pub fn new_scratch(&self) -> Vec<Scratch> {
        self.stages.iter().map(Stage::new_scratch).collect()
    }

    /// The text stage `i` judges of `doc`: the parts of its roles, or all of it; `None` when it
    /// does not look at the document (no part of its roles).
    pub fn stage_text<'d>(&self, i: usize, doc: &'d Document<'_>) -> Option<Cow<'d, str>> {
        Some(match view(doc, &self.configs[i])? {
            None => Cow::Borrowed(&*doc.text),
            Some(view) => Cow::Owned(view.text.into_owned()),
        })
    }

    /// Whether some stage measures in batches (then documents are judged in groups).
    pub fn has_batched_stage(&self) -> bool {
        self.segments.iter().any(|s| s.batched)
    }

    /// Whether the first batched stage will want this document (for cutting groups).
    pub fn wants_first_batch(&self, verdict: &Verdict) -> bool {
        self.segments
            .iter()
            .find(|s| s.batched)
            .is_some_and(|s| verdict.wants(&self.configs[s.stages.start]))
    }

    /// Runs the per-document stages before the first batched stage (all stages when none is
    /// batched) on one document. `times` has one entry per stage.
    pub fn judge_until_batch(
        &self,
        doc: &Document<'_>,
        verdict: &mut Verdict,
        scratch: &mut [Scratch],
        times: &mut [Duration],
    ) {
        if let Some(first) = self.segments.first().filter(|s| !s.batched) {
            self.judge_one(first.stages.clone(), doc, verdict, scratch, times);
        }
    }

    /// Runs the rest of the cascade (from the first batched stage on) on a group of documents
    /// that went through [`judge_until_batch`](Self::judge_until_batch).
    pub fn judge_rest(
        &self,
        group: &mut [(Document<'_>, Verdict)],
        scratch: &mut [Scratch],
        times: &mut [Duration],
    ) -> Result<(), StageError> {
        let first = usize::from(self.segments.first().is_some_and(|s| !s.batched));
        for segment in &self.segments[first..] {
            if segment.batched {
                self.judge_batch(segment.stages.start, group, scratch, times)?;
            } else {
                for (doc, verdict) in group.iter_mut() {
                    self.judge_one(segment.stages.clone(), doc, verdict, scratch, times);
                }
            }
        }
        Ok(())
    }

    /// The whole cascade on a group of documents (as `sluice eval` uses it).
    pub fn judge_all(
        &self,
        group: &mut [(Document<'_>, Verdict)],
        scratch: &mut [Scratch],
        times: &mut [Duration],
    ) -> Result<(), StageError> {
        for (doc, verdict) in group.iter_mut() {
            self.judge_until_batch(doc, verdict, scratch, times);
        }
        self.judge_rest(group, scratch, times)
    }

    /// Per-document stages `range` on one document.
    fn judge_one(
        &self,
        range: Range<usize>,
        doc: &Document<'_>,
        verdict: &mut Verdict,
        scratch: &mut [Scratch],
        times: &mut [Duration],
    ) {
        for i in range {
            let config = &self.configs[i];
            if !verdict.wants(config) {
                if verdict.is_dropped() {
                    break;
                }
                continue;
            }
            let started = Instant::now();
            let view = match view(doc, config) {
                Some(view) => view,
                // No part with the stage's roles: the stage does not look at the document.
                None => continue,
            };
            let seen = view.as_ref().unwrap_or(doc);
            let mut found = self.stages[i].measure(seen, &mut scratch[i]);
            if let Some(evidence) = &mut found {
                place(evidence, seen);
                config.decide(evidence);
            }
            times[i] += started.elapsed();
            verdict.record(i, &self.configs, found);
        }
    }

    /// Batched stage `i` on the documents of `group` that want it, in calls of at most
    /// [`BATCH_DOCUMENTS`] documents (gathered with other chunks' when a run allows it).
    fn judge_batch(
        &self,
        i: usize,
        group: &mut [(Document<'_>, Verdict)],
        scratch: &mut [Scratch],
        times: &mut [Duration],
    ) -> Result<(), StageError> {
        let config = &self.configs[i];
        let wanted: Vec<usize> = (0..group.len())
            .filter(|&d| group[d].1.wants(config) && sees(&group[d].0, config))
            .collect();
        for call in wanted.chunks(BATCH_DOCUMENTS) {
            // The text each document shows the stage: the parts of its roles, or all of it.
            let views: Vec<Option<Document>> = call
                .iter()
                .map(|&d| view(&group[d].0, config).flatten())
                .collect();
            let seen: Vec<&Document> = call
                .iter()
                .zip(&views)
                .map(|(&d, v)| v.as_ref().unwrap_or(&group[d].0))
                .collect();
            let texts: Vec<&str> = seen.iter().map(|doc| &*doc.text).collect();
            let started = Instant::now();
            let stage = &self.stages[i];
            let measured = match self.gatherers.get(i) {
                Some(gatherer) => {
                    gatherer.measure(&texts, |all| stage.measure_batch(all, &mut scratch[i]))?
                }
                None => stage.measure_batch(&texts, &mut scratch[i])?,
            };
            let mut measured: Vec<Option<Evidence>> = measured;
            for (found, doc) in measured.iter_mut().zip(&seen) {
                if let Some(evidence) = found {
                    place(evidence, doc);
                    config.decide(evidence);
                }
            }
            drop(texts);
            drop(seen);
            drop(views);
            for (&d, found) in call.iter().zip(measured) {
                group[d].1.record(i, &self.configs, found);
            }
            times[i] += started.elapsed();
        }
        Ok(())
    }

    /// Lets batched stages gather their calls across chunks and shards (see `gather.rs`): those
    /// whose measurements do not depend on the batch, their calls on a pool of `threads`. Returns the ids of the batched stages that
    /// gather, and of those that cannot (their calls stay per group).
    pub fn start_gathering(
        &mut self,
        options: GatherOptions,
        threads: usize,
    ) -> Result<(Vec<String>, Vec<String>), String> {
        let (mut gathering, mut not) = (Vec::new(), Vec::new());
        for (i, stage) in self.stages.iter().enumerate() {
            if !stage.batched() {
                continue;
            }
            if stage.batch_exact() {
                self.gatherers.start(i, options, threads)?;
                gathering.push(self.configs[i].id().to_string());
            } else {
                not.push(self.configs[i].id().to_string());
            }
        }
        Ok((gathering, not))
    }

    /// The gatherers a run started, with what they did.
    pub fn gatherers(&self) -> &Gatherers {
        &self.gatherers
    }
}

/// How stage `config` sees `doc`: `None` when it does not look at it (no part has one of its
/// `roles`), `Some(None)` when it sees the document as it is, `Some(Some(view))` when it sees
/// only the parts of its roles, joined anew. The one place where `roles` is applied: stages
/// never see roles.
fn view<'d>(doc: &'d Document<'_>, config: &StageConfig) -> Option<Option<Document<'d>>> {
    let roles = config.roles();
    if roles.is_empty() || doc.parts.is_empty() {
        return Some(None);
    }
    match doc.with_roles(roles) {
        RoleView::Nothing => None,
        RoleView::Whole(_) => Some(None),
        RoleView::Some(view) => Some(Some(view)),
    }
}

/// Whether stage `config` looks at `doc` at all (what [`view`] says, without building a view).
fn sees(doc: &Document<'_>, config: &StageConfig) -> bool {
    let roles = config.roles();
    roles.is_empty()
        || doc.parts.is_empty()
        || doc.parts.iter().any(|p| {
            p.role
                .as_deref()
                .is_some_and(|r| roles.iter().any(|w| w == r))
        })
}

/// For a document of parts: the evidence's spans moved to offsets within their part (naming
/// the part and its role), and the roles of the parts judged recorded.
fn place(evidence: &mut Evidence, doc: &Document<'_>) {
    if doc.parts.is_empty() {
        return;
    }
    evidence.place_spans(&|span| {
        if let Some(part) = doc.part_at(*span.start, *span.end) {
            *span.start -= part.range.start;
            *span.end -= part.range.start;
            *span.part = Some(part.path.clone());
            *span.role = part.role.as_deref().map(str::to_string);
        }
    });
    let roles = doc.roles();
    if !roles.is_empty() {
        evidence.set_roles(roles.into_iter().map(str::to_string).collect());
    }
}
