//! Gathering a batched stage's calls across chunks and shards (placeholder: calls stay per
//! group of a chunk).

use crate::stage::StageError;
use crate::stages::{Evidence, Scratch, Stage};

/// One optional gatherer per stage.
#[derive(Default)]
pub struct Gatherers(Vec<Option<Gatherer>>);

impl Gatherers {
    pub fn get(&self, stage: usize) -> Option<&Gatherer> {
        self.0.get(stage).and_then(Option::as_ref)
    }
}

pub struct Gatherer;

impl Gatherer {
    pub fn measure(
        &self,
        stage: &Stage,
        texts: &[&str],
        scratch: &mut Scratch,
    ) -> Result<Vec<Option<Evidence>>, StageError> {
        stage.measure_batch(texts, scratch)
    }
}
