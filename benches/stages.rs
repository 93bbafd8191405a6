//! Criterion benchmarks of each step of the sluice pipeline, one group per step, every figure as
//! bytes of *uncompressed JSONL input* per second (criterion prints MB/s, or MiB/s), so that the
//! groups compare with each other and with the `mb_per_second` of `report.json`'s `timings`.
//!
//! Inputs are generated once per run with [`sluice_core::synthetic::write_corpus`] (seeded, so
//! identical from run to run) into a temporary directory: a ~20 MB zstd shard whose documents
//! get 1–3 planted terms (the hazard list, 64 of the generated 5,000 terms and 4 phrases that
//! trigger the rules) at a 5% hit rate.
//!
//! * `decompress_and_chunk`: `sluice_io::open_shard` + `LineChunker` (4 MiB chunks) reading the
//!   zstd shard to its end: the reader thread's work.
//! * `parse_fields`: `FieldExtractor::extract` (`text` and `id`) on every line.
//! * `rules_stage`: stage 0 of `configs/hazard-cascade.toml` (4 rules; `strategy = "auto"`,
//!   i.e. one prefiltered regex per rule) on every document's text, and the same rules with
//!   `strategy = "set"` (one `RegexSet` pass).
//! * `terms_stage`: stage 1 of `configs/hazard-cascade.toml` (36 terms, NFKC) on the same
//!   documents, with `normalize = "none"` for comparison, and the same stage with a generated
//!   5,000-term list (random 1–3 word phrases): `engine = "auto"` with NFKC on and off, and
//!   with NFKC and `engine` forced to `dfa`, `nfa` and `words`; and `benches/terms-5000.tsv` (the
//!   list of `benches/compare.sh`, whose words mostly do not occur in the text), `engine = "auto"`
//!   and `"words"`. The generated list is the word index's hard case: its ~5,000 terms share ~100
//!   first words, 18 of them common English words ("the", "new", "data", ...) that each start ~280
//!   terms, so every occurrence of such a word in the text verifies ~280 candidates.
//! * `compress_frame`: `sluice_io::compress_frame` of one 4 MiB chunk of JSONL at zstd levels
//!   1, 2 and 3 and gzip levels 1 and 6 (the output side of every worker).
//! * `text_stages_threads`: the text stages of `benches/hazard-5000.toml` (4 rules, 5,000 terms)
//!   over every document on a pool of 1 and 2 threads (and every core, if more): the scaling of
//!   the matching alone.
//! * `cascade_end_to_end`: `sluice_core::run` with `configs/hazard-cascade.toml` on one thread
//!   over 2 zstd shards × 10 MB, into a fresh output directory per iteration (fsyncs included;
//!   removing the directory is not timed).
//!
//! Run: `cargo bench --bench stages` (all groups, a few minutes), one group with
//! `cargo bench --bench stages -- terms_stage`, a quick pass with
//! `cargo bench --bench stages -- --warm-up-time 1 --measurement-time 3`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use sluice_core::config::StageConfig;
use sluice_core::document::{Document, FieldExtractor};
use sluice_core::rng::SplitMix64 as Rng;
use sluice_core::stages::rules::RulesStrategy;
use sluice_core::stages::terms::{Normalize, TermEngine, TermsConfig};
use sluice_core::stages::Stage;
use sluice_core::synthetic::{write_corpus, SyntheticOptions};
use sluice_core::{Config, RunOptions};
use sluice_io::{compress_frame, open_shard, Chunk, ChunkerOptions, Compression, LineChunker};

/// Uncompressed size of the shard of the per-step groups.
const SHARD_BYTES: u64 = 20_000_000;
/// Uncompressed size of the end-to-end corpus, and its shard count.
const CORPUS_BYTES: u64 = 20_000_000;
const CORPUS_SHARDS: usize = 2;
/// Documents that get planted terms.
const HIT_RATE: f64 = 0.05;
/// Size of the generated term list, and how many of its terms are planted in documents.
const LARGE_LIST_TERMS: usize = 5_000;
const PLANTED_LARGE_TERMS: usize = 64;
const FRAME_BYTES: usize = 4 << 20;
/// Planted like terms, so that each rule of `hazard-cascade.toml` but the two-match one fires
/// now and then (and the end-to-end run drops, escalates and tags some documents).
const RULE_TRIGGERS: &[&str] = &[
    "step-by-step guide to nerve agents",
    "synthesis of sarin",
    "weaponized anthrax",
    "click here to subscribe",
];

const CHUNKER: ChunkerOptions = ChunkerOptions {
    target_chunk_bytes: 4 << 20,
    max_line_bytes: 32 << 20,
};

/// Words of the generated term list. None of them occurs in the synthetic text (whose vocabulary
/// is common English), so a generated term is found only where the generator planted it; the
/// `LEADS` do occur there, so the automaton also walks partial matches as it would on real text.
const TERM_WORDS: &str = "\
    phosphonate carbamate hydrazine arsine nitrile oxime azide cyanide peroxide sulfide \
    fluoride chloride toxin spore virion prion plasmid vector culture bacillus pathogen \
    isotope centrifuge cascade yellowcake exploit payload loader dropper rootkit stager \
    implant beacon wiper keylogger botnet shellcode aerosol lyophilized stabilized \
    weaponized polymorphic precursor reagent enrichment detonator fuse primer propellant \
    oxidizer catalyst solvent distillation reactor fission tritium cesium cobalt strontium \
    uranium plutonium polonium thallium mycotoxin aflatoxin saxitoxin tetrodotoxin abrin \
    brucella tularemia glanders melioidosis variola ebola marburg nipah hantavirus serotype \
    backdoor ransomware cryptor obfuscator injector sideload persistence exfiltration c2 \
    zeroday";
const LEADS: &str = "\
    the new data model system network software water energy public local high large small \
    early national research science";

fn pick<'a>(rng: &mut Rng, words: &[&'a str]) -> &'a str {
    words[rng.below(words.len())]
}

/// `count` distinct 1–3 word phrases, each with at least one word of [`TERM_WORDS`].
fn generate_terms(count: usize) -> Vec<String> {
    let words: Vec<&str> = TERM_WORDS.split_whitespace().collect();
    let leads: Vec<&str> = LEADS.split_whitespace().collect();
    let mut rng = Rng::new(5000);
    let mut seen = HashSet::new();
    let mut terms = Vec::with_capacity(count);
    while terms.len() < count {
        let term = match rng.next_u64() % 3 {
            0 => pick(&mut rng, &words).to_string(),
            1 => format!("{} {}", pick(&mut rng, &leads), pick(&mut rng, &words)),
            _ => format!(
                "{} {} {}",
                pick(&mut rng, &leads),
                pick(&mut rng, &words),
                pick(&mut rng, &words)
            ),
        };
        if seen.insert(term.clone()) {
            terms.push(term);
        }
    }
    terms
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The term column of a `term<TAB>category<TAB>weight` list.
fn list_terms(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("term list is readable")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap_or_default().trim().to_string())
        .collect()
}

/// Everything the groups share, generated once.
struct Fixture {
    /// Holds the shard, the term list and the end-to-end corpus and outputs.
    dir: tempfile::TempDir,
    shard: PathBuf,
    /// The shard, decompressed and cut into chunks.
    chunks: Vec<Chunk>,
    /// Uncompressed bytes of the shard, newlines included.
    input_bytes: u64,
    config: Config,
    large_list: PathBuf,
    corpus: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::from_file(&repo_root().join("configs/hazard-cascade.toml"))
            .expect("configs/hazard-cascade.toml parses");

        let generated = generate_terms(LARGE_LIST_TERMS);
        let large_list = dir.path().join("terms-5000.tsv");
        let mut tsv = String::from("# generated by benches/stages.rs\n");
        for (i, term) in generated.iter().enumerate() {
            let category = ["chem", "bio", "rad", "cyber"][i % 4];
            let _ = writeln!(tsv, "{term}\t{category}\t1");
        }
        std::fs::write(&large_list, tsv).expect("write term list");
        let mut buckets = HashMap::<&str, usize>::new();
        for term in &generated {
            *buckets
                .entry(term.split(' ').next().unwrap_or(""))
                .or_default() += 1;
        }
        eprintln!(
            "generated list: {} terms, {} bytes, {} distinct first words (largest: {} terms)",
            generated.len(),
            generated.iter().map(String::len).sum::<usize>(),
            buckets.len(),
            buckets.values().max().unwrap_or(&0)
        );

        let mut planted = list_terms(&repo_root().join("configs/lists/hazard-terms.tsv"));
        planted.extend(generated.iter().take(PLANTED_LARGE_TERMS).cloned());
        planted.extend(RULE_TRIGGERS.iter().map(|t| t.to_string()));
        let options = SyntheticOptions {
            seed: 7,
            total_bytes: SHARD_BYTES,
            shards: 1,
            hit_rate: HIT_RATE,
            terms: planted,
            compression: Compression::Zstd,
            level: 3,
        };
        let shard_dir = dir.path().join("shard");
        std::fs::create_dir(&shard_dir).expect("mkdir");
        let shard = write_corpus(&shard_dir, &options)
            .expect("generate shard")
            .remove(0);

        let corpus = dir.path().join("corpus");
        std::fs::create_dir(&corpus).expect("mkdir");
        write_corpus(
            &corpus,
            &SyntheticOptions {
                seed: 11,
                total_bytes: CORPUS_BYTES,
                shards: CORPUS_SHARDS,
                ..options
            },
        )
        .expect("generate corpus");

        let (_, reader) = open_shard(&shard).expect("open shard");
        let mut chunker = LineChunker::new(reader, CHUNKER);
        let mut chunks = Vec::new();
        loop {
            let mut chunk = Chunk::default();
            if !chunker.next_chunk(&mut chunk).expect("read shard") {
                break;
            }
            chunks.push(chunk);
        }
        let input_bytes = chunks
            .iter()
            .map(|c| (c.data.len() + c.lines.len()) as u64)
            .sum();
        Fixture {
            dir,
            shard,
            chunks,
            input_bytes,
            config,
            large_list,
            corpus,
        }
    }

    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .flat_map(|c| (0..c.lines.len()).map(move |i| c.line_bytes(i)))
    }

    fn documents(&self) -> Vec<Document<'_>> {
        let extractor = self.extractor();
        self.lines()
            .map(|line| extractor.extract(line).expect("synthetic lines parse"))
            .collect()
    }

    fn extractor(&self) -> FieldExtractor {
        FieldExtractor::new(
            &self.config.input.text_field,
            self.config.input.id_field.as_deref(),
        )
    }

    /// The config with its terms stage (stage 1) changed by `edit`.
    fn with_terms(&self, edit: impl FnOnce(&mut TermsConfig)) -> Config {
        let mut config = self.config.clone();
        match &mut config.stages[1] {
            StageConfig::Terms(terms) => edit(terms),
            other => panic!("stage 1 of hazard-cascade.toml is {other:?}, not terms"),
        }
        config
    }
}

/// Stage `index` of `config`, built, with its config (which decides its evidence).
fn stage(config: &Config, index: usize) -> (StageConfig, Stage) {
    let stage = config
        .build_stages()
        .expect("stages build")
        .swap_remove(index);
    (config.stages[index].clone(), stage)
}

/// Measures and decides `doc` as the cascade does; whether the stage found something.
fn judge(
    config: &StageConfig,
    stage: &Stage,
    doc: &Document<'_>,
    scratch: &mut sluice_core::stages::Scratch,
) -> bool {
    match stage.measure(doc, scratch) {
        Some(mut evidence) => {
            config.decide(&mut evidence);
            black_box(&evidence);
            true
        }
        None => false,
    }
}

/// Documents on which `stage` returns evidence, for the one-line sanity summary.
fn matched(stage: &(StageConfig, Stage), docs: &[Document<'_>]) -> usize {
    let mut scratch = stage.1.new_scratch();
    docs.iter()
        .filter(|d| judge(&stage.0, &stage.1, d, &mut scratch))
        .count()
}

fn bench_stage(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    stage: &(StageConfig, Stage),
    docs: &[Document<'_>],
) {
    eprintln!(
        "{name}: evidence on {} of {} documents",
        matched(stage, docs),
        docs.len()
    );
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut scratch = stage.1.new_scratch();
            let mut found = 0usize;
            for doc in docs {
                found += usize::from(judge(&stage.0, &stage.1, doc, &mut scratch));
            }
            black_box(found)
        })
    });
}

fn decompress_and_chunk(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("decompress_and_chunk");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(f.input_bytes));
    group.bench_function("zstd_4MiB_chunks", |b| {
        let mut chunk = Chunk::default();
        b.iter(|| {
            let (_, reader) = open_shard(&f.shard).expect("open shard");
            let mut chunker = LineChunker::new(reader, CHUNKER);
            let mut lines = 0usize;
            while chunker.next_chunk(&mut chunk).expect("read shard") {
                lines += chunk.lines.len();
            }
            lines
        })
    });
    group.finish();
}

fn parse_fields(c: &mut Criterion, f: &Fixture) {
    let extractor = f.extractor();
    let lines: Vec<&[u8]> = f.lines().collect();
    let mut group = c.benchmark_group("parse_fields");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(f.input_bytes));
    group.bench_function("text_and_id", |b| {
        b.iter(|| {
            let mut text_bytes = 0usize;
            for line in &lines {
                let doc = extractor.extract(line).expect("synthetic lines parse");
                text_bytes += doc.text.len();
            }
            text_bytes
        })
    });
    // The same documents as chat records (a user turn, the first fifth of the text, and the
    // assistant's answer): the multi-part walk of `format = "chat"`. Throughput is of these
    // (slightly larger) lines.
    let chat: Vec<String> = lines.iter().map(|line| as_chat(line)).collect();
    let chat_extractor = FieldExtractor::with_sources(
        &sluice_core::document::InputFormat::Chat
            .sources()
            .expect("chat has sources"),
        f.config.input.id_field.as_deref(),
    )
    .expect("chat sources are valid");
    group.throughput(Throughput::Bytes(
        chat.iter().map(|l| l.len() as u64 + 1).sum(),
    ));
    group.bench_function("chat_messages", |b| {
        b.iter(|| {
            let mut text_bytes = 0usize;
            for line in &chat {
                let doc = chat_extractor
                    .extract(line.as_bytes())
                    .expect("chat lines parse");
                text_bytes += doc.text.len();
            }
            text_bytes
        })
    });
    group.finish();
}

/// A `{"text"}` line as a chat record of two messages.
fn as_chat(line: &[u8]) -> String {
    let mut value: serde_json::Value = serde_json::from_slice(line).expect("synthetic JSON");
    let text = value["text"].as_str().expect("a text").to_string();
    let mut cut = text.len() / 5;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let object = value.as_object_mut().expect("an object");
    object.remove("text");
    object.insert(
        "messages".into(),
        serde_json::json!([
            {"role": "user", "content": &text[..cut]},
            {"role": "assistant", "content": &text[cut..]},
        ]),
    );
    value.to_string()
}

fn rules_stage(c: &mut Criterion, f: &Fixture, docs: &[Document<'_>]) {
    let mut set = f.config.clone();
    match &mut set.stages[0] {
        StageConfig::Rules(rules) => rules.strategy = RulesStrategy::Set,
        other => panic!("stage 0 of hazard-cascade.toml is {other:?}, not rules"),
    }
    let mut group = c.benchmark_group("rules_stage");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(f.input_bytes));
    for (name, config) in [("hazard_cascade", &f.config), ("hazard_cascade_set", &set)] {
        let rules = stage(config, 0);
        bench_stage(&mut group, name, &rules, docs);
    }
    group.finish();
}

fn terms_stage(c: &mut Criterion, f: &Fixture, docs: &[Document<'_>]) {
    let large = |normalize, engine| {
        f.with_terms(|t| {
            t.lists = vec![f.large_list.clone()];
            t.normalize = normalize;
            t.engine = engine;
        })
    };
    let bench_list = |engine| {
        f.with_terms(|t| {
            t.lists = vec![repo_root().join("benches/terms-5000.tsv")];
            t.engine = engine;
        })
    };
    let variants = [
        ("hazard_36_nfkc", f.config.clone()),
        (
            "hazard_36_no_nfkc",
            f.with_terms(|t| t.normalize = Normalize::None),
        ),
        (
            "generated_5000_nfkc",
            large(Normalize::Nfkc, TermEngine::Auto),
        ),
        (
            "generated_5000_no_nfkc",
            large(Normalize::None, TermEngine::Auto),
        ),
        (
            "generated_5000_nfkc_dfa",
            large(Normalize::Nfkc, TermEngine::Dfa),
        ),
        (
            "generated_5000_nfkc_nfa",
            large(Normalize::Nfkc, TermEngine::Nfa),
        ),
        (
            "generated_5000_nfkc_words",
            large(Normalize::Nfkc, TermEngine::Words),
        ),
        ("bench_list_5000_nfkc", bench_list(TermEngine::Auto)),
        ("bench_list_5000_nfkc_words", bench_list(TermEngine::Words)),
    ];
    let mut group = c.benchmark_group("terms_stage");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(f.input_bytes));
    for (name, config) in &variants {
        let terms = stage(config, 1);
        bench_stage(&mut group, name, &terms, docs);
    }
    group.finish();
}

fn compress(c: &mut Criterion, f: &Fixture) {
    // One chunk's worth of output: whole JSONL lines with their newlines, cut to 4 MiB.
    let mut data = Vec::with_capacity(FRAME_BYTES + (1 << 20));
    for line in f.lines() {
        if data.len() >= FRAME_BYTES {
            break;
        }
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    data.truncate(FRAME_BYTES);
    let mut group = c.benchmark_group("compress_frame");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(data.len() as u64));
    for (name, compression, level) in [
        ("zstd_1", Compression::Zstd, 1),
        ("zstd_2", Compression::Zstd, 2),
        ("zstd_3", Compression::Zstd, 3),
        ("gzip_1", Compression::Gzip, 1),
        ("gzip_6", Compression::Gzip, 6),
    ] {
        let mut out = Vec::new();
        compress_frame(&data, compression, level, &mut out).expect("compress");
        eprintln!(
            "{name}: 4 MiB -> {} bytes (ratio {:.2})",
            out.len(),
            data.len() as f64 / out.len() as f64
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                compress_frame(&data, compression, level, &mut out).expect("compress");
                out.len()
            })
        });
    }
    group.finish();
}

/// The text stages of `benches/hazard-5000.toml` (4 rules, then 5,000 terms with NFKC) over every
/// document, on a pool of 1, 2, ... threads: how the matching itself scales, apart from reading,
/// compression and the pipeline's other threads. Documents go to the threads in runs of 64, each
/// run with its own scratch and counters, as a worker does with a chunk.
fn text_stages_threads(c: &mut Criterion, f: &Fixture, docs: &[Document<'_>]) {
    use rayon::prelude::*;
    let config = Config::from_file(&repo_root().join("benches/hazard-5000.toml"))
        .expect("benches/hazard-5000.toml parses");
    let stages = config.build_stages().expect("stages build");
    let mut group = c.benchmark_group("text_stages_threads");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(f.input_bytes));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2];
    if cores > 2 {
        counts.push(cores);
    }
    for threads in counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        group.bench_function(format!("hazard_5000_{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    docs.par_chunks(64)
                        .map(|run| {
                            let mut scratch: Vec<_> =
                                stages.iter().map(Stage::new_scratch).collect();
                            let mut found = 0usize;
                            for doc in run {
                                for ((stage, config), scratch) in
                                    stages.iter().zip(&config.stages).zip(&mut scratch)
                                {
                                    found += usize::from(judge(config, stage, doc, scratch));
                                }
                            }
                            found
                        })
                        .sum::<usize>()
                })
            })
        });
    }
    group.finish();
}

fn cascade_end_to_end(c: &mut Criterion, f: &Fixture) {
    let outputs = f.dir.path().join("outputs");
    std::fs::create_dir(&outputs).expect("mkdir");
    let run = |output: &Path| {
        let options = RunOptions {
            inputs: vec![f.corpus.display().to_string()],
            output: Some(output.to_path_buf()),
            threads: Some(1),
            force: true,
            progress: None,
            ..Default::default()
        };
        sluice_core::run(&f.config, &options).expect("run succeeds")
    };
    // One untimed run for the byte count and a sanity line.
    let probe = tempfile::tempdir_in(&outputs).expect("temp dir");
    let report = run(probe.path());
    assert!(!report.failed(), "a shard failed");
    eprintln!(
        "cascade_end_to_end: {} documents, {} bytes in; {}",
        report.input.documents,
        report.input.bytes,
        sluice_core::stats::Destination::ALL
            .iter()
            .map(|d| format!("{} {}", d.name(), report.destinations.get(*d).documents))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "cascade_end_to_end: wall {:.3} s; CPU per step: {}",
        report.throughput.wall_seconds,
        report
            .timings
            .iter()
            .map(|t| format!("{} {:.3} s", t.step, t.cpu_seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(probe);

    let mut group = c.benchmark_group("cascade_end_to_end");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(report.input.bytes));
    group.bench_function("hazard_cascade_1_thread", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(&outputs).expect("temp dir"),
            |out| {
                black_box(run(out.path()));
                // Returned so that removing the directory happens outside the timing.
                out
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn stages(c: &mut Criterion) {
    let fixture = Fixture::new();
    let docs = fixture.documents();
    eprintln!(
        "fixture: {} documents, {} bytes uncompressed, shard {} bytes zstd",
        docs.len(),
        fixture.input_bytes,
        std::fs::metadata(&fixture.shard).map_or(0, |m| m.len())
    );
    decompress_and_chunk(c, &fixture);
    parse_fields(c, &fixture);
    rules_stage(c, &fixture, &docs);
    terms_stage(c, &fixture, &docs);
    compress(c, &fixture);
    text_stages_threads(c, &fixture, &docs);
    cascade_end_to_end(c, &fixture);
}

criterion_group!(benches, stages);
criterion_main!(benches);
