//! sluice's half of `benches/ort/run.sh`: embeds batches of real text with a sentence-transformers
//! model through [`Classifier::embed`] (tokenizing included), writes the token ids it fed the
//! model and the embeddings it got, and times it. The script feeds the same ids to ONNX Runtime,
//! compares the embeddings and prints both speeds.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p sluice-classifier --example side_by_side -- \
//!     MODEL_DIR TEXTS_DIR OUT_DIR 32x128,32x256
//! ```
//!
//! For a shape `BxT`, the first B lines of `TEXTS_DIR/texts-T.jsonl` (`{"text": ...}`, each at
//! least T tokens long) are one batch of T-token windows (special tokens included). Writes
//! `OUT_DIR/ids-BxT.json` and `OUT_DIR/sluice-BxT-tN.f32` (N = threads; little-endian f32,
//! B × hidden), and prints one JSON line per shape: median wall and CPU seconds per batch over
//! `SIDE_BY_SIDE_RUNS` (default 7) passes of at least `SIDE_BY_SIDE_SECONDS` (default 1) each.

use std::path::PathBuf;
use std::time::Instant;

use sluice_classifier::{Classifier, ClassifierOptions};

fn main() {
    sluice_classifier::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, texts_dir, out_dir, shapes] = args.as_slice() else {
        eprintln!("usage: side_by_side MODEL_DIR TEXTS_DIR OUT_DIR BxT[,BxT...]");
        std::process::exit(2)
    };
    let (texts_dir, out_dir) = (PathBuf::from(texts_dir), PathBuf::from(out_dir));
    let runs = env_number("SIDE_BY_SIDE_RUNS", 7.0) as usize;
    let min_seconds = env_number("SIDE_BY_SIDE_SECONDS", 1.0);
    let threads = rayon::current_num_threads();
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    for shape in shapes.split(',') {
        let (batch, tokens) = shape
            .split_once('x')
            .and_then(|(b, t)| Some((b.parse::<usize>().ok()?, t.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("shape {shape:?}: expected BATCHxTOKENS"));
        let path = texts_dir.join(format!("texts-{tokens}.jsonl"));
        let lines = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let texts: Vec<String> = lines
            .lines()
            .take(batch)
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                value["text"].as_str().expect("a text field").to_owned()
            })
            .collect();
        assert_eq!(
            texts.len(),
            batch,
            "{}: fewer than {batch} texts",
            path.display()
        );
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

        let mut options = ClassifierOptions::new(model_dir);
        options.batch_size = batch;
        options.max_tokens = tokens;
        options.stride = 0;
        let model = Classifier::load(options).expect("load the model");
        let ids: Vec<Vec<u32>> = model
            .windows(&texts)
            .expect("tokenize")
            .into_iter()
            .map(|windows| windows.into_iter().next().unwrap_or_default())
            .collect();
        for (i, window) in ids.iter().enumerate() {
            assert_eq!(
                window.len(),
                tokens,
                "text {i} of {}: not {tokens} tokens",
                path.display()
            );
        }
        let embeddings = model.embed(&texts).expect("embed"); // also the warm-up
        std::fs::write(
            out_dir.join(format!("ids-{shape}.json")),
            serde_json::to_string(&ids).unwrap(),
        )
        .unwrap();
        let bytes: Vec<u8> = embeddings
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(
            out_dir.join(format!("sluice-{shape}-t{threads}.f32")),
            bytes,
        )
        .unwrap();

        let one = Instant::now();
        model.embed(&texts).unwrap();
        let reps = (min_seconds / one.elapsed().as_secs_f64()).ceil().max(1.0) as usize;
        let mut wall = Vec::with_capacity(runs);
        let mut cpu = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (start, start_cpu) = (Instant::now(), process_cpu_seconds());
            for _ in 0..reps {
                model.embed(&texts).unwrap();
            }
            wall.push(start.elapsed().as_secs_f64() / reps as f64);
            cpu.push((process_cpu_seconds() - start_cpu) / reps as f64);
        }
        let (wall_s, cpu_s) = (median(&mut wall.clone()), median(&mut cpu));
        println!(
            "{}",
            serde_json::json!({
                "shape": shape, "threads": threads, "tokens": batch * tokens,
                "wall_s": wall_s, "cpu_s": cpu_s, "wall_all_s": wall, "reps": reps,
            })
        );
    }
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// User + system CPU time of the whole process (all threads), in seconds.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
