//! One run spread over ranks (issue 13): `run --rank R --world-size W` in parallel into one
//! output directory, `merge`, kills and reruns, another world size, refusals, the schedulers'
//! variables. No scheduler needed: ranks are plain processes here (the Slurm test is in
//! `slurm.rs`).

use super::*;
use std::process::Child;

/// Shards of very different sizes (so a split by count and one by bytes differ), `part-NN`;
/// `scale` multiplies their documents.
pub fn uneven_corpus(dir: &Path, shards: usize, seed: u64, scale: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for s in 0..shards {
        let one = dir.join(format!("tmp-{s}"));
        // 200 to ~4000 documents: sizes over a 20x range.
        let docs = (200 + (s * 7919 + seed as usize * 31) % 19 * 200) * scale;
        generate_corpus(&one, 1, docs, seed + s as u64);
        std::fs::rename(
            one.join("part-000.jsonl.zst"),
            dir.join(format!("part-{s:02}.jsonl.zst")),
        )
        .unwrap();
        std::fs::remove_dir(&one).unwrap();
    }
}

/// `sluice run ... --rank R --world-size W` (world size left out when `None`), started.
pub fn spawn_rank(
    config: &Path,
    corpus: &Path,
    out: &Path,
    rank: usize,
    world: Option<usize>,
    extra: &[&str],
) -> Child {
    let rank = rank.to_string();
    let world = world.map(|w| w.to_string());
    let mut args = vec![
        "run",
        "-c",
        path_str(config),
        "-i",
        path_str(corpus),
        "-o",
        path_str(out),
        "-q",
        "--rank",
        &rank,
    ];
    if let Some(world) = &world {
        args.extend(["--world-size", world]);
    }
    args.extend_from_slice(extra);
    Command::new(BIN)
        .args(&args)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every rank of a world at once, like `for r in ...; do sluice run --rank $r & done; wait`.
fn run_world(config: &Path, corpus: &Path, out: &Path, world: usize, extra: &[&str]) {
    let children: Vec<Child> = (0..world)
        .map(|r| spawn_rank(config, corpus, out, r, Some(world), extra))
        .collect();
    for (r, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "rank {r}: {}", stderr(&out));
    }
}

fn merge(out: &Path) -> Output {
    sluice(&["merge", path_str(out)])
}

/// The tree a one-machine run leaves (without the reports' timings), from a merged directory:
/// its `ranks/` records are the only files a one-machine run has not.
pub fn merged_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut t = tree(dir);
    t.retain(|k, _| !k.starts_with("ranks/"));
    t
}

/// `report.json` without what depends on when and where it ran.
pub fn report_content(dir: &Path) -> Value {
    let mut report = read_json(&dir.join("report.json"));
    let object = report.as_object_mut().unwrap();
    for timed in ["throughput", "timings", "ranks"] {
        object.remove(timed);
    }
    report
}

/// `report.html` without its directory name and throughput section.
pub fn html_content(dir: &Path) -> String {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let html = html.replace(path_str(dir), "OUT");
    let start = html.find("<h2>Throughput per step</h2>").unwrap();
    let end = html.find("<h2>Shards</h2>").unwrap();
    format!("{}{}", &html[..start], &html[end..])
}

pub fn assert_same_as_one_machine(merged: &Path, reference: &Path) {
    let (a, b) = (merged_tree(merged), merged_tree(reference));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{name} differs from the one-machine run's"
        );
    }
    assert_eq!(report_content(merged), report_content(reference));
    assert_eq!(html_content(merged), html_content(reference));
}

#[test]
fn four_ranks_in_parallel_merge_to_the_files_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    uneven_corpus(&corpus, 12, 5, 1);
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("reference");
    run_ok(&config, &[&corpus], &reference, &[]);

    let out = tmp.path().join("out");
    run_world(&config, &corpus, &out, 4, &["-j", "1"]);
    // Before the merge the readers say what to do.
    let early = sluice(&["audit", path_str(&out), "summary"]);
    assert_eq!(early.status.code(), Some(2));
    assert!(
        stderr(&early).contains("run `sluice merge"),
        "{}",
        stderr(&early)
    );

    let merged = merge(&out);
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert!(
        stderr(&merged).contains("merged 4 ranks"),
        "{}",
        stderr(&merged)
    );
    assert_same_as_one_machine(&out, &reference);

    // Per-rank bytes and time; the split is by bytes: within one shard of the mean.
    let report = read_json(&out.join("report.json"));
    let ranks = report["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 4);
    let sizes: Vec<u64> = (0..12)
        .map(|s| {
            std::fs::metadata(corpus.join(format!("part-{s:02}.jsonl.zst")))
                .unwrap()
                .len()
        })
        .collect();
    let bytes: Vec<u64> = ranks.iter().map(|r| r["bytes"].as_u64().unwrap()).collect();
    assert_eq!(bytes.iter().sum::<u64>(), sizes.iter().sum::<u64>());
    let spread = bytes.iter().max().unwrap() - bytes.iter().min().unwrap();
    assert!(spread <= *sizes.iter().max().unwrap(), "{bytes:?}");
    for r in ranks {
        assert!(r["wall_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["source"], "flag");
        assert_eq!(r["done"], r["shards"]);
    }
    // The page shows them too.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let table = &html[html.find("<table id=\"ranks\">").expect("a ranks table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), 1 + 4);
    let record = read_json(&out.join("ranks/rank-00002-of-00004.json"));
    assert_eq!(record["rank_source"], "flag");
    assert_eq!(record["world_source"], "flag");

    // The readers work on the merged directory as on a one-machine run's.
    let summary = sluice(&["audit", path_str(&out), "summary"]);
    assert!(summary.status.success(), "{}", stderr(&summary));
    let redone = tmp.path().join("redone");
    let rethreshold = sluice(&[
        "rethreshold",
        path_str(&out),
        "--set",
        "hazard-terms.min_distinct=3",
        "-o",
        path_str(&redone),
        "-q",
    ]);
    assert!(rethreshold.status.success(), "{}", stderr(&rethreshold));
    let report_cmd = sluice(&["report", path_str(&out)]);
    assert!(report_cmd.status.success(), "{}", stderr(&report_cmd));
}

#[test]
fn a_killed_rank_is_named_by_merge_and_its_rerun_completes_the_job() {
    let slow = SlowRun::new();
    let tmp = &slow.tmp;
    let reference = slow.reference();
    let slow_extra = ["-j", "1"];
    // A fresh directory: ranks 0-2 of 4 finish, rank 3 is killed part-way.
    let out = tmp.path().join("four");
    for r in 0..3 {
        let done = spawn_rank(&slow.config, &slow.corpus, &out, r, Some(4), &[])
            .wait_with_output()
            .unwrap();
        assert!(done.status.success(), "{}", stderr(&done));
    }
    let others = done_records(&out);
    let share = 24 - others;
    assert!(share >= 3, "rank 3's share: {share}");
    let mut rank3 = spawn_rank(&slow.config, &slow.corpus, &out, 3, Some(4), &slow_extra);
    let mut done_at_kill = 0;
    for _ in 0..6000 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(
            rank3.try_wait().unwrap().is_none(),
            "rank 3 finished before the kill"
        );
        done_at_kill = done_records(&out) - others;
        if done_at_kill >= 1 {
            // The same rank a second time is refused while the first runs.
            let twice = spawn_rank(&slow.config, &slow.corpus, &out, 3, None, &[])
                .wait_with_output()
                .unwrap();
            assert_eq!(twice.status.code(), Some(2));
            assert!(
                stderr(&twice).contains("rank 3 of 4 is already running"),
                "{}",
                stderr(&twice)
            );
            // So is a merge, and a one-process run.
            let early = merge(&out);
            assert_eq!(early.status.code(), Some(2), "{}", stderr(&early));
            assert!(
                stderr(&early).contains("rank 3 is still running"),
                "{}",
                stderr(&early)
            );
            rank3.kill().unwrap(); // SIGKILL: no record of rank 3's end
            rank3.wait().unwrap();
            // It may have finished another shard during the checks above.
            done_at_kill = done_records(&out) - others;
            break;
        }
    }
    assert!(done_at_kill >= 1 && done_at_kill < share, "{done_at_kill}");

    let incomplete = merge(&out);
    assert_eq!(incomplete.status.code(), Some(1), "{}", stderr(&incomplete));
    let text = stderr(&incomplete);
    assert!(text.contains("not filtered yet"), "{text}");
    assert!(
        text.contains("re-run rank 3 (with --world-size 4)"),
        "{text}"
    );
    assert!(text.contains(&format!("rank 3: {share} shards")), "{text}");
    assert!(text.contains("no record"), "{text}");
    let manifest = read_json(&out.join("manifest.json"));
    let pending = manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "pending")
        .count();
    assert_eq!(pending, share - done_at_kill);

    // The rerun (world size from the run's record) skips what rank 3 finished.
    let rerun = spawn_rank(&slow.config, &slow.corpus, &out, 3, None, &[])
        .wait_with_output()
        .unwrap();
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let record = read_json(&out.join("ranks/rank-00003-of-00004.json"));
    assert_eq!(record["world_source"], "run_record");
    assert_eq!(record["report"]["shards"]["skipped"], done_at_kill as u64);
    let merged = merge(&out);
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert_same_as_one_machine(&out, &reference);
    assert!(!tree(&out).keys().any(|k| k.contains(".tmp-sluice")));
}

fn done_records(out: &Path) -> usize {
    let done = out.join("ranks/done");
    std::fs::read_dir(done).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count()
    })
}

#[test]
fn another_world_size_skips_what_is_done_and_redoes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    uneven_corpus(&corpus, 10, 9, 1);
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("reference");
    run_ok(&config, &[&corpus], &reference, &[]);

    // Of a world of 2, only rank 0 ran.
    let out = tmp.path().join("out");
    let first = spawn_rank(&config, &corpus, &out, 0, Some(2), &[])
        .wait_with_output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let done_by_rank0 = done_records(&out);
    assert!(done_by_rank0 > 0 && done_by_rank0 < 10);
    let incomplete = merge(&out);
    assert_eq!(incomplete.status.code(), Some(1));
    assert!(stderr(&incomplete).contains("re-run rank 1 (with --world-size 2)"));

    // The whole job again over 3 ranks: refused without --repartition...
    let refused = spawn_rank(&config, &corpus, &out, 0, Some(3), &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("pinned to 2 ranks"),
        "{}",
        stderr(&refused)
    );
    // ... and with it every shard is done once: what rank 0 of 2 finished is skipped.
    run_world(&config, &corpus, &out, 3, &["--repartition"]);
    let skipped: u64 = (0..3)
        .map(|r| {
            read_json(&out.join(format!("ranks/rank-{r:05}-of-00003.json")))["report"]["shards"]
                ["skipped"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(skipped, done_by_rank0 as u64);
    assert_eq!(read_json(&out.join("ranks/run.json"))["world_size"], 3);
    assert_eq!(read_json(&out.join("ranks/run.json"))["partition"], 1);
    let merged = merge(&out);
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert_same_as_one_machine(&out, &reference);

    // And back to one process, as a world of one.
    let single = spawn_rank(&config, &corpus, &out, 0, Some(1), &["--repartition"])
        .wait_with_output()
        .unwrap();
    assert!(single.status.success(), "{}", stderr(&single));
    let record = read_json(&out.join("ranks/rank-00000-of-00001.json"));
    assert_eq!(record["report"]["shards"]["skipped"], 10);
}

#[test]
fn refusals_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    uneven_corpus(&corpus, 4, 3, 1);
    let config = test_config(tmp.path(), "zstd_level = 3");
    std::fs::create_dir_all(tmp.path().join("other-config")).unwrap();
    let other = test_config(&tmp.path().join("other-config"), "zstd_level = 4");

    // A one-process run's directory is not taken over by ranks, nor the reverse.
    let single = tmp.path().join("single");
    run_ok(&config, &[&corpus], &single, &[]);
    let rank = spawn_rank(&config, &corpus, &single, 0, Some(2), &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(rank.status.code(), Some(2));
    assert!(
        stderr(&rank).contains("holds a one-machine run"),
        "{}",
        stderr(&rank)
    );
    let not_ranked = merge(&single);
    assert_eq!(not_ranked.status.code(), Some(2));
    assert!(
        stderr(&not_ranked).contains("already whole"),
        "{}",
        stderr(&not_ranked)
    );

    let out = tmp.path().join("out");
    run_world(&config, &corpus, &out, 2, &[]);
    let plain = run_with(&config, &[&corpus], &out, &[]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        stderr(&plain).contains("holds a run spread over 2 ranks"),
        "{}",
        stderr(&plain)
    );

    // Rank out of range, world size unknown, world size without rank.
    let high = spawn_rank(&config, &corpus, &out, 2, None, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(high.status.code(), Some(2));
    assert!(
        stderr(&high).contains("is not below the world size 2"),
        "{}",
        stderr(&high)
    );
    let fresh = tmp.path().join("fresh");
    let unknown = spawn_rank(&config, &corpus, &fresh, 0, None, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("give --world-size"),
        "{}",
        stderr(&unknown)
    );
    let no_rank = run_with(&config, &[&corpus], &fresh, &["--world-size", "2"]);
    assert_eq!(no_rank.status.code(), Some(2));
    assert!(stderr(&no_rank).contains("--world-size needs --rank"));

    // Another config: refused; forced, it re-pins the run and the merge refuses the mix, naming
    // the ranks to re-run.
    let changed = spawn_rank(&other, &corpus, &out, 0, None, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(changed.status.code(), Some(2));
    assert!(
        stderr(&changed).contains("another config"),
        "{}",
        stderr(&changed)
    );
    let forced = spawn_rank(&other, &corpus, &out, 0, None, &["--force"])
        .wait_with_output()
        .unwrap();
    assert!(forced.status.success(), "{}", stderr(&forced));
    let mixed = merge(&out);
    assert_eq!(mixed.status.code(), Some(2));
    let text = stderr(&mixed);
    assert!(text.contains("different configs"), "{text}");
    assert!(
        text.contains("re-run ranks 1 with the run's config"),
        "{text}"
    );
    assert!(!out.join("manifest.json").exists());
    // Rank 1 re-run under the new config: its shards are redone and the merge is whole.
    let rerun = spawn_rank(&other, &corpus, &out, 1, None, &[])
        .wait_with_output()
        .unwrap();
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(merge(&out).status.success());
}

#[test]
fn scheduler_variables_give_the_rank_and_a_retry_keeps_the_pinned_world_size() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    uneven_corpus(&corpus, 6, 4, 1);
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("reference");
    run_ok(&config, &[&corpus], &reference, &[]);
    let out = tmp.path().join("out");
    let with_env = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "run",
            "-c",
            path_str(&config),
            "-i",
            path_str(&corpus),
            "-o",
            path_str(&out),
        ])
        .args(extra)
        .current_dir(repo());
        for var in [
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_COUNT",
            "SLURM_PROCID",
            "SLURM_NTASKS",
            "SLURM_STEP_ID",
            "JOB_COMPLETION_INDEX",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(vars.iter().copied());
        cmd.output().unwrap()
    };
    // An array task with the world size given pins it.
    let task0 = with_env(
        &[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
        &["--world-size", "3"],
    );
    assert!(task0.status.success(), "{}", stderr(&task0));
    assert!(
        stderr(&task0)
            .contains("rank 0 of 3 (rank from SLURM_ARRAY_TASK_ID, world size from --world-size)"),
        "{}",
        stderr(&task0)
    );
    // A retry of task 2 alone counts one task: the run record's 3 holds.
    let retry = with_env(
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ],
        &[],
    );
    assert!(retry.status.success(), "{}", stderr(&retry));
    let record = read_json(&out.join("ranks/rank-00002-of-00003.json"));
    assert_eq!(record["rank_source"], "slurm_array");
    assert_eq!(record["world_source"], "run_record");
    // A Kubernetes pod, index 1.
    let pod = with_env(&[("JOB_COMPLETION_INDEX", "1")], &["--world-size", "3"]);
    assert!(pod.status.success(), "{}", stderr(&pod));
    let record = read_json(&out.join("ranks/rank-00001-of-00003.json"));
    assert_eq!(record["rank_source"], "kubernetes");
    let merged = merge(&out);
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert!(stderr(&merged).contains("rank from SLURM_ARRAY_TASK_ID"));
    assert_same_as_one_machine(&out, &reference);

    // srun: SLURM_PROCID of SLURM_NTASKS, into another directory.
    let srun_out = tmp.path().join("srun");
    for procid in ["0", "1"] {
        let mut cmd = Command::new(BIN);
        let task = cmd
            .args([
                "run",
                "-q",
                "-c",
                path_str(&config),
                "-i",
                path_str(&corpus),
            ])
            .args(["-o", path_str(&srun_out)])
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .envs([
                ("SLURM_PROCID", procid),
                ("SLURM_NTASKS", "2"),
                ("SLURM_STEP_ID", "0"),
            ])
            .output()
            .unwrap();
        assert!(task.status.success(), "{}", stderr(&task));
    }
    let record = read_json(&srun_out.join("ranks/rank-00001-of-00002.json"));
    assert_eq!(record["rank_source"], "srun");
    assert_eq!(record["world_source"], "srun");
    assert!(merge(&srun_out).status.success());
    assert_same_as_one_machine(&srun_out, &reference);
}

#[test]
fn a_failed_shard_is_named_by_merge_with_the_rank_to_re_run() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    uneven_corpus(&corpus, 6, 6, 1);
    // A shard cut short inside a zstd frame: that shard fails, the others complete.
    let broken = corpus.join("part-03.jsonl.zst");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let config = test_config(tmp.path(), "zstd_level = 3");
    let out = tmp.path().join("out");
    let children: Vec<Child> = (0..3)
        .map(|r| spawn_rank(&config, &corpus, &out, r, Some(3), &[]))
        .collect();
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    // The rank with the broken shard exits 1, like a one-process run.
    let owner = codes
        .iter()
        .position(|c| *c == Some(1))
        .expect("one rank failed");
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        2,
        "{codes:?}"
    );

    // Readers refuse the unmerged directory, saying what to do.
    for args in [
        vec!["report", path_str(&out)],
        vec![
            "rethreshold",
            path_str(&out),
            "--set",
            "hazard-terms.min_distinct=3",
            "-o",
        ],
    ] {
        let mut args = args;
        let redone = tmp.path().join("redone");
        if args[0] == "rethreshold" {
            args.push(path_str(&redone));
        }
        let refused = sluice(&args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&refused).contains("sluice merge"),
            "{}",
            stderr(&refused)
        );
    }

    let merged = merge(&out);
    assert_eq!(merged.status.code(), Some(1), "{}", stderr(&merged));
    let text = stderr(&merged);
    assert!(text.contains("shard part-03.jsonl.zst failed"), "{text}");
    assert!(
        text.contains(&format!("re-run rank {owner} (with --world-size 3)")),
        "{text}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["shards"]["failed"], 1);
    assert_eq!(report["shards"]["done"], 5);
    assert_eq!(report["failed_shards"][0]["name"], "part-03.jsonl.zst");
    // Every document of the done shards is counted once.
    assert_eq!(
        report["input"]["documents"],
        ["kept", "dropped", "review", "errors"]
            .iter()
            .map(|d| report["destinations"][d]["documents"].as_u64().unwrap())
            .sum::<u64>()
    );

    // The shard repaired: its size changed, so the listing did, and with it the partition
    // (by bytes). A lone rank is refused; the whole job with --repartition redoes only it.
    std::fs::write(&broken, &bytes).unwrap();
    let alone = spawn_rank(&config, &corpus, &out, owner, None, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2));
    assert!(
        stderr(&alone).contains("the inputs differ"),
        "{}",
        stderr(&alone)
    );
    run_world(&config, &corpus, &out, 3, &["--repartition"]);
    let redone: u64 = (0..3)
        .map(|r| {
            read_json(&out.join(format!("ranks/rank-{r:05}-of-00003.json")))["report"]["shards"]
                ["done"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(redone, 1);
    let whole = merge(&out);
    assert!(whole.status.success(), "{}", stderr(&whole));
}

/// The `args` list of the first container in a Job manifest (`- item` lines under `args:`, or
/// an inline `[a, b]`).
fn manifest_args(yaml: &str) -> Vec<String> {
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("args:"));
    let first = lines.next().expect("an args: key").trim_start();
    if let Some(inline) = first
        .strip_prefix("args:")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return inline
            .trim_matches(['[', ']'])
            .split(',')
            .map(|a| a.trim().to_string())
            .collect();
    }
    lines
        .map(str::trim_start)
        .take_while(|l| l.starts_with("- "))
        .map(|l| l[2..].trim().to_string())
        .collect()
}

#[test]
fn the_kubernetes_indexed_job_runs_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    uneven_corpus(&corpus, 6, 7, 1);
    let reference = tmp.path().join("reference");
    let config = repo().join("configs/hazard-cascade.toml");
    run_ok(&config, &[&corpus], &reference, &[]);
    let out = tmp.path().join("out");
    // The pods' buckets, here local directories (the same run into the local S3 server is
    // tested in tests/cli/s3.rs).
    let local = |arg: &str| {
        arg.replace("s3://my-corpus/dclm/", path_str(&corpus))
            .replace("s3://my-filtered/dclm-hazard/", path_str(&out))
            .replace(
                "/config/",
                &format!("{}/", repo().join("configs").display()),
            )
    };
    let job = std::fs::read_to_string(repo().join("examples/kubernetes/filter-job.yaml")).unwrap();
    let completions: usize = job
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let args: Vec<String> = manifest_args(&job).iter().map(|a| local(a)).collect();
    assert!(
        args.contains(&format!("--world-size={completions}")),
        "{args:?}"
    );
    for index in 0..completions {
        let pod = Command::new(BIN)
            .args(&args)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .unwrap();
        assert!(pod.status.success(), "pod {index}: {}", stderr(&pod));
        assert!(stderr(&pod).contains("rank from JOB_COMPLETION_INDEX"));
    }
    let merge_job =
        std::fs::read_to_string(repo().join("examples/kubernetes/merge-job.yaml")).unwrap();
    let args: Vec<String> = manifest_args(&merge_job).iter().map(|a| local(a)).collect();
    let merged = Command::new(BIN).args(&args).output().unwrap();
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert_same_as_one_machine(&out, &reference);
}
