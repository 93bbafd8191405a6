//! Gathering a batched stage's calls across chunks and shards, with a bounded wait.
//!
//! A model wants many windows per call (a GPU hundreds), but a chunk's group holds only the
//! documents of one chunk that want the stage: ~28 at a 2% escalation rate. With gathering on
//! (`run.gather_documents > 0`), a chunk task hands its documents to the stage's [`Gatherer`]
//! instead of calling the model itself, and waits; whichever waiting task finds the batch ready
//! takes every queued request and makes **one** call for all of them, then hands each task its
//! results. The batch is ready when it holds `run.gather_documents` documents, when every chunk
//! task at work is waiting (nobody else could add: chunk tasks say they are at work with
//! [`Gatherers::at_work`]), or when the oldest request has waited `run.gather_wait_ms`: the wait
//! is bounded.
//!
//! * **Byte-identical outputs.** Which documents share a call depends on timing, so gathering is
//!   used only for stages whose measurements are bit-for-bit independent of the batch
//!   ([`crate::stage::StageRuntime::batch_exact`]); for the others calls stay per group, as
//!   without gathering.
//! * **Bounded memory.** Requests hold copies of their texts (each cut to the stage's
//!   `max_bytes` by the model anyway) only while their chunk, which holds a permit, waits.
//! * **No deadlock.** A gathered call runs on the gatherers' own thread pool, never on the
//!   workers' pool: a model's parallel work (tokenizing, matrix products) on the workers' pool
//!   could be stolen by a worker that then runs a chunk task waiting for this very call. Waiting
//!   tasks block; the model pool has as many threads as the run has workers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stage::StageError;
use crate::stages::Evidence;

/// How calls are gathered (`[run]` keys `gather_documents`, `gather_wait_ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherOptions {
    /// Documents per gathered call, at most (a call is made sooner when every task waits).
    pub documents: usize,
    /// How long the oldest request may wait for others.
    pub wait: Duration,
}

/// One optional gatherer per stage, started by a run, the count of chunk tasks at work, and the
/// pool gathered calls run on.
#[derive(Default)]
pub struct Gatherers {
    stages: Vec<Option<Gatherer>>,
    at_work: Arc<AtomicUsize>,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Gatherers {
    pub fn get(&self, stage: usize) -> Option<&Gatherer> {
        self.stages.get(stage).and_then(Option::as_ref)
    }

    /// Starts gathering for `stage`, its calls on a pool of `threads` threads (shared by every
    /// stage's gatherer).
    pub(crate) fn start(
        &mut self,
        stage: usize,
        options: GatherOptions,
        threads: usize,
    ) -> Result<(), String> {
        if self.stages.len() <= stage {
            self.stages.resize_with(stage + 1, || None);
        }
        let pool = match &self.pool {
            Some(pool) => pool.clone(),
            None => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("sluice-model-{i}"))
                    .build()
                    .map_err(|e| e.to_string())?;
                self.pool.insert(Arc::new(pool)).clone()
            }
        };
        self.stages[stage] = Some(Gatherer::new(options, self.at_work.clone(), pool));
        Ok(())
    }

    /// Marks a task that may hand requests to a gatherer as at work until the guard drops.
    pub fn at_work(&self) -> AtWork {
        self.at_work.fetch_add(1, Ordering::SeqCst);
        AtWork(self.at_work.clone())
    }

    /// `(stage, calls, documents)` of each stage's gatherer so far.
    pub fn calls(&self) -> Vec<(usize, u64, u64)> {
        self.stages
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (i, g.calls(), g.documents())))
            .collect()
    }
}

/// A task at work (see [`Gatherers::at_work`]).
pub struct AtWork(Arc<AtomicUsize>);

impl Drop for AtWork {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Results = Result<Vec<Option<Evidence>>, StageError>;

/// Merges concurrent requests of one batched stage into fewer, larger calls.
pub struct Gatherer {
    options: GatherOptions,
    /// Tasks that may still hand in requests.
    at_work: Arc<AtomicUsize>,
    /// Where calls run (see the module docs).
    pool: Arc<rayon::ThreadPool>,
    state: Mutex<State>,
    changed: Condvar,
    calls: AtomicU64,
    documents: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Request>,
    queued_documents: usize,
    /// Results of calls made, by ticket, until their task picks them up.
    done: HashMap<u64, Results>,
    /// Tasks whose request is queued or being measured (not those whose results are ready: they
    /// are about to go on, and may hand in more).
    waiting: usize,
    next_ticket: u64,
    /// A task is making a call, on this thread.
    busy: Option<std::thread::ThreadId>,
}

struct Request {
    ticket: u64,
    texts: Vec<String>,
    since: Instant,
}

impl Gatherer {
    pub fn new(
        options: GatherOptions,
        at_work: Arc<AtomicUsize>,
        pool: Arc<rayon::ThreadPool>,
    ) -> Gatherer {
        Gatherer {
            options,
            at_work,
            pool,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            calls: AtomicU64::new(0),
            documents: AtomicU64::new(0),
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Documents measured so far.
    pub fn documents(&self) -> u64 {
        self.documents.load(Ordering::Relaxed)
    }

    /// Measures `texts` in a call gathered with other tasks' requests; `call` measures a whole
    /// gathered batch (one result per text, in order).
    pub fn measure(
        &self,
        texts: &[&str],
        mut call: impl FnMut(&[&str]) -> Results + Send,
    ) -> Results {
        let me = std::thread::current().id();
        let ticket = {
            let mut st = self.state.lock().expect("gatherer lock");
            // Should this thread ever run another chunk task while its call waits, that task
            // cannot wait for the call below it on its own stack: it measures alone.
            if st.busy == Some(me) {
                drop(st);
                let result = self.call_on_pool(&mut call, texts);
                return self.count(texts.len(), result);
            }
            let ticket = st.next_ticket;
            st.next_ticket += 1;
            st.queue.push_back(Request {
                ticket,
                texts: texts.iter().map(|t| t.to_string()).collect(),
                since: Instant::now(),
            });
            st.queued_documents += texts.len();
            st.waiting += 1;
            ticket
        };
        self.changed.notify_all();
        loop {
            let mut st = self.state.lock().expect("gatherer lock");
            if let Some(result) = st.done.remove(&ticket) {
                return result;
            }
            if st.busy.is_none() && self.ready(&st) {
                st.busy = Some(me);
                let batch = self.take(&mut st);
                drop(st);
                // Whatever happens in the call (a panic too), the gatherer is free again after
                // and every task of the batch gets an answer.
                let mut free = Free {
                    gatherer: self,
                    unanswered: batch.iter().map(|r| r.ticket).collect(),
                };
                let all: Vec<&str> = batch
                    .iter()
                    .flat_map(|r| r.texts.iter().map(String::as_str))
                    .collect();
                let result = self.call_on_pool(&mut call, &all);
                let result = self.count(all.len(), result);
                let mut st = self.state.lock().expect("gatherer lock");
                st.waiting -= batch.len();
                distribute(&mut st.done, batch, result);
                drop(st);
                free.unanswered.clear();
                drop(free);
                continue;
            }
            let _ = self
                .changed
                .wait_timeout(st, Duration::from_millis(1))
                .expect("gatherer lock");
        }
    }

    /// Runs `call` on the model pool from a thread of its own, so that the calling worker waits
    /// without taking other tasks of its pool (rayon would have a waiting worker run queued
    /// chunk tasks, whose requests then could not join this call).
    fn call_on_pool(
        &self,
        call: &mut (impl FnMut(&[&str]) -> Results + Send),
        texts: &[&str],
    ) -> Results {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.pool.install(|| call(texts)))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn count(&self, documents: usize, result: Results) -> Results {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.documents
            .fetch_add(documents as u64, Ordering::Relaxed);
        result
    }

    /// Whether the queued requests should be measured now.
    fn ready(&self, st: &State) -> bool {
        let Some(oldest) = st.queue.front() else {
            return false;
        };
        st.queued_documents >= self.options.documents
            || st.waiting >= self.at_work.load(Ordering::SeqCst).max(1)
            || oldest.since.elapsed() >= self.options.wait
    }

    /// Whole requests from the front of the queue, up to `documents` documents (at least one).
    fn take(&self, st: &mut State) -> Vec<Request> {
        let mut batch = Vec::new();
        let mut documents = 0;
        while let Some(next) = st.queue.front() {
            if !batch.is_empty() && documents + next.texts.len() > self.options.documents {
                break;
            }
            documents += next.texts.len();
            batch.push(st.queue.pop_front().expect("front exists"));
        }
        st.queued_documents -= documents;
        batch
    }
}

/// Frees the gatherer when a call ends, answers the requests a panicking call left unanswered,
/// and wakes the waiting tasks.
struct Free<'g> {
    gatherer: &'g Gatherer,
    unanswered: Vec<u64>,
}

impl Drop for Free<'_> {
    fn drop(&mut self) {
        let mut st = match self.gatherer.state.lock() {
            Ok(st) => st,
            Err(poisoned) => poisoned.into_inner(),
        };
        st.busy = None;
        st.waiting -= self.unanswered.len();
        for ticket in self.unanswered.drain(..) {
            st.done.insert(
                ticket,
                Err(StageError {
                    message: "internal error: a gathered call panicked".into(),
                }),
            );
        }
        drop(st);
        self.gatherer.changed.notify_all();
    }
}

/// Splits a gathered call's results back to its requests (an error to each of them).
fn distribute(done: &mut HashMap<u64, Results>, batch: Vec<Request>, result: Results) {
    match result {
        Ok(all) => {
            let mut all = all.into_iter();
            for request in batch {
                let mine: Vec<Option<Evidence>> = all.by_ref().take(request.texts.len()).collect();
                done.insert(request.ticket, Ok(mine));
            }
        }
        Err(error) => {
            for request in batch {
                done.insert(request.ticket, Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Outcome;
    use crate::stages::classifier::ClassifierEvidence;
    use crate::stages::Judged;

    /// A fake model: the "score" of a text is its length.
    fn measure(texts: &[&str]) -> Results {
        Ok(texts
            .iter()
            .map(|t| {
                Some(Evidence::Classifier(Judged {
                    outcome: Outcome::Pass,
                    roles: Vec::new(),
                    suppressed: None,
                    evidence: ClassifierEvidence {
                        score: Some(t.len() as f32),
                        windows: vec![],
                        tokens: t.len(),
                        drop_threshold: 0.0,
                        review_threshold: 0.0,
                        model_hash: String::new(),
                        error: None,
                    },
                }))
            })
            .collect())
    }

    fn scores(results: &Results) -> Vec<f32> {
        results
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.as_ref().unwrap().score().unwrap())
            .collect()
    }

    #[test]
    fn concurrent_requests_share_calls_and_each_gets_its_own_results() {
        let mut gatherers = Gatherers::default();
        gatherers
            .start(
                0,
                GatherOptions {
                    documents: 1000,
                    wait: Duration::from_secs(5),
                },
                2,
            )
            .unwrap();
        let (tasks, rounds) = (8, 4);
        let barrier = std::sync::Barrier::new(tasks);
        let started = Instant::now();
        let gatherers = &gatherers;
        std::thread::scope(|scope| {
            for task in 0..tasks {
                let barrier = &barrier;
                scope.spawn(move || {
                    // A chunk task with several groups: at work from its start to its end.
                    let _at_work = gatherers.at_work();
                    barrier.wait();
                    for round in 0..rounds {
                        let texts: Vec<String> = (0..1 + (task + round) % 5)
                            .map(|d| "x".repeat(task * 100 + round * 10 + d))
                            .collect();
                        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                        let result = gatherers.get(0).unwrap().measure(&texts, measure);
                        let expected: Vec<f32> = texts.iter().map(|t| t.len() as f32).collect();
                        assert_eq!(scores(&result), expected);
                    }
                });
            }
        });
        let gatherer = gatherers.get(0).unwrap();
        // Every task at work waiting fires a call: tasks wait for each other, so there are far
        // fewer calls than requests, and no request waited the 5 s bound.
        let requests = (tasks * rounds) as u64;
        assert!(
            gatherer.calls() <= requests / 2,
            "{} calls",
            gatherer.calls()
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        let documents: usize = (0..tasks)
            .flat_map(|t| (0..rounds).map(move |r| 1 + (t + r) % 5))
            .sum();
        assert_eq!(gatherer.documents(), documents as u64);
        assert_eq!(gatherers.calls(), [(0, gatherer.calls(), documents as u64)]);
    }

    #[test]
    fn a_lone_request_waits_at_most_the_bounded_wait_and_errors_reach_everyone() {
        let at_work = Arc::new(AtomicUsize::new(8));
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        let gatherer = Gatherer::new(
            GatherOptions {
                documents: 1000,
                wait: Duration::from_millis(20),
            },
            at_work.clone(),
            pool.clone(),
        );
        let started = Instant::now();
        let result = gatherer.measure(&["abc"], measure);
        assert_eq!(scores(&result), [3.0]);
        assert!(started.elapsed() < Duration::from_secs(2));
        let failed = gatherer.measure(&["a", "b"], |_| {
            Err(StageError {
                message: "model failed".into(),
            })
        });
        assert_eq!(failed.unwrap_err().message, "model failed");
        // A full batch goes at once, without waiting.
        let gatherer = Gatherer::new(
            GatherOptions {
                documents: 2,
                wait: Duration::from_secs(60),
            },
            at_work,
            pool,
        );
        assert_eq!(scores(&gatherer.measure(&["ab", "c"], measure)), [2.0, 1.0]);
    }
}
