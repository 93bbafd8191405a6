//! The Slurm launch files (`examples/slurm/`) on a real single-node Slurm cluster started by
//! `scripts/slurm.sh start`: a 4-task array over uneven shards, one task requeued mid-run, the
//! merge chained with `--dependency=afterok`; the merged outputs equal a one-process run's. Then
//! the two tasks of an `srun -n 2` step. The same array again over shards in the local S3 server
//! (`scripts/s3.sh start`), writing into it and merged there.
//!
//! `.ci/run` starts the cluster and sets `SLUICE_TEST_SLURM=1`: then a missing or broken
//! cluster fails the test. Elsewhere it runs when a cluster answers (`SLURM_CONF`, else
//! `.cache/slurm/slurm.conf` when the script made one) and skips, saying so, when none does.

use super::ranks::{assert_same_as_one_machine, report_content, uneven_corpus};
use super::s3::{outputs, Server};
use super::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn slurm_conf() -> Option<String> {
    std::env::var("SLURM_CONF").ok().or_else(|| {
        let ours = repo().join(".cache/slurm/slurm.conf");
        ours.is_file().then(|| ours.to_string_lossy().into_owned())
    })
}

fn slurm(conf: &Option<String>, program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(conf) = conf {
        cmd.env("SLURM_CONF", conf);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// The state of job `id` (`RUNNING`, `COMPLETED`, ...), as `scontrol show job` says.
fn job_state(conf: &Option<String>, id: &str) -> String {
    let out = slurm(conf, "scontrol", &["show", "job", id]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|f| f.strip_prefix("JobState="))
        .unwrap_or("UNKNOWN")
        .to_string()
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "slurm test: {what} after {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Skips (returns `None`, saying so) where no cluster answers, unless the test is required.
/// The single-node cluster runs one test's jobs at a time: a second test would find the node
/// busy (`sinfo` says `alloc`, not `idle`) and its tasks queued behind the first's.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster() -> Option<Option<String>> {
    let required = std::env::var_os("SLUICE_TEST_SLURM").is_some_and(|v| v != "0");
    let conf = slurm_conf();
    if !cluster_answers(&conf) {
        assert!(
            !required,
            "SLUICE_TEST_SLURM is set but no Slurm cluster answers (SLURM_CONF={conf:?}): \
             scripts/slurm.sh start"
        );
        eprintln!("skipped: no Slurm cluster answers (start one with scripts/slurm.sh start)");
        return None;
    }
    Some(conf)
}

/// Twelve shards of 1,000 to 3,000 documents (100 to 300 kB) under `dir/corpus`, and the config
/// of the array: at zstd level 19 each shard takes a good part of a second, so a task requeued
/// after its first shard is caught mid-run.
fn array_corpus(dir: &Path) -> (PathBuf, PathBuf) {
    let corpus = dir.join("corpus");
    for s in 0..12usize {
        let one = dir.join(format!("one-{s}"));
        generate_corpus(&one, 1, 1000 + (s * 577 % 11) * 200, 20 + s as u64);
        std::fs::create_dir_all(&corpus).unwrap();
        std::fs::rename(
            one.join("part-000.jsonl.zst"),
            corpus.join(format!("part-{s:02}.jsonl.zst")),
        )
        .unwrap();
    }
    (corpus, test_config(dir, "zstd_level = 19"))
}

/// `examples/slurm/submit.sh` with a world of 4 over `input` into `output` (paths or URLs), task
/// 1 requeued by Slurm after its first shard, and the merge job chained after the array, waited
/// for. Returns the jobs' logs.
fn array_with_a_requeued_task(
    conf: &Option<String>,
    dir: &Path,
    config: &Path,
    input: &str,
    output: &str,
    env: &BTreeMap<String, String>,
) -> String {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut submit = Command::new(repo().join("examples/slurm/submit.sh"));
    submit
        .arg(format!("--chdir={}", logs.display()))
        .envs(env)
        // "shard done" lines in the tasks' logs tell when a task is part-way.
        .env("SLUICE_LOG", "info")
        .env("SLUICE_BIN", BIN)
        .env("SLUICE_CONFIG", config)
        .env("SLUICE_INPUT", input)
        .env("SLUICE_OUTPUT", output)
        .env("SLUICE_WORLD_SIZE", "4");
    if let Some(conf) = conf {
        submit.env("SLURM_CONF", conf);
    }
    let submitted = submit.output().unwrap();
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let line = String::from_utf8_lossy(&submitted.stdout).into_owned();
    // `array job J, merge job M`
    let ids: Vec<&str> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let (array, merge) = (ids[0].to_string(), ids[1].to_string());
    let task = format!("{array}_1");

    // Task 1 is killed part-way, by Slurm itself, and requeued.
    let task_log = logs.join(format!("sluice-filter-{array}_1.log"));
    wait_for("task 1 to finish a shard", Duration::from_secs(120), || {
        std::fs::read_to_string(&task_log).is_ok_and(|t| t.contains("shard done"))
    });
    let requeue = slurm(conf, "scontrol", &["requeue", &task]);
    assert!(requeue.status.success(), "{}", stderr(&requeue));
    // Slurm holds a requeued job back two minutes once it is pending again; let it go at once.
    wait_for(
        "task 1 to be pending again",
        Duration::from_secs(60),
        || job_state(conf, &task) == "PENDING",
    );
    let release = slurm(
        conf,
        "scontrol",
        &["update", &format!("jobid={task}"), "StartTime=now"],
    );
    assert!(release.status.success(), "{}", stderr(&release));
    wait_for("the merge job", Duration::from_secs(240), || {
        let state = job_state(conf, &merge);
        assert!(
            !["FAILED", "CANCELLED", "TIMEOUT"].contains(&state.as_str())
                && !slurm(conf, "squeue", &["-h", "-j", &merge, "-o", "%r"])
                    .stdout
                    .starts_with(b"DependencyNeverSatisfied"),
            "merge job {merge}: {state}; logs: {}",
            logs_text(&logs)
        );
        state == "COMPLETED"
    });
    let text = logs_text(&logs);
    // The first attempt of task 1 was stopped part-way (SIGTERM from the requeue), the second
    // finished its share without redoing what the first had done.
    assert!(text.contains("attempt 2"), "{text}");
    assert!(text.contains("interrupted by signal 15"), "{text}");
    assert!(text.contains("merged 4 ranks"), "{text}");
    // Each task's log says where its rank and world size came from.
    assert!(
        text.contains("rank 1 of 4 (rank from SLURM_ARRAY_TASK_ID, world size from --world-size)"),
        "{text}"
    );
    text
}

#[test]
fn a_slurm_array_with_a_requeued_task_and_its_merge_equal_one_process() {
    let _alone = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, config) = array_corpus(tmp.path());
    let reference = tmp.path().join("reference");
    run_ok(&config, &[&corpus], &reference, &[]);

    let out = tmp.path().join("out");
    array_with_a_requeued_task(
        &conf,
        tmp.path(),
        &config,
        path_str(&corpus),
        path_str(&out),
        &BTreeMap::new(),
    );
    let record = read_json(&out.join("ranks/rank-00001-of-00004.json"));
    assert_eq!(record["rank_source"], "slurm_array");
    assert!(record["report"]["shards"]["skipped"].as_u64().unwrap() >= 1);
    assert_same_as_one_machine(&out, &reference);

    // Two tasks of one `srun -n 2` step: ranks from SLURM_PROCID, world size from SLURM_NTASKS.
    let small = tmp.path().join("small");
    uneven_corpus(&small, 4, 3, 1);
    let quick = tmp.path().join("quick");
    std::fs::create_dir_all(&quick).unwrap();
    let quick_config = test_config(&quick, "zstd_level = 3");
    let small_reference = tmp.path().join("small-reference");
    run_ok(&quick_config, &[&small], &small_reference, &[]);
    let stepped = tmp.path().join("stepped");
    let srun = slurm(
        &conf,
        "srun",
        &[
            "-n",
            "2",
            BIN,
            "run",
            "-q",
            "-c",
            path_str(&quick_config),
            "-i",
            path_str(&small),
            "-o",
            path_str(&stepped),
        ],
    );
    assert!(srun.status.success(), "{}", stderr(&srun));
    let record = read_json(&stepped.join("ranks/rank-00001-of-00002.json"));
    assert_eq!(record["rank_source"], "srun");
    assert_eq!(record["world_source"], "srun");
    assert!(sluice(&["merge", path_str(&stepped)]).status.success());
    assert_same_as_one_machine(&stepped, &small_reference);
}

/// Whether `sinfo` reports an idle node within 10 s (a client whose controller is down retries
/// for a minute).
fn cluster_answers(conf: &Option<String>) -> bool {
    let mut sinfo = Command::new("sinfo");
    sinfo
        .args(["-h", "-o", "%t"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(conf) = conf {
        sinfo.env("SLURM_CONF", conf);
    }
    let Ok(mut child) = sinfo.spawn() else {
        return false; // not installed
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                let _ = child.stdout.take().unwrap().read_to_string(&mut out);
                return status.success() && out.contains("idle");
            }
            Ok(None) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

fn logs_text(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            format!(
                "== {}\n{}",
                p.display(),
                std::fs::read_to_string(p).unwrap_or_default()
            )
        })
        .collect()
}

/// The same array over shards in the local S3 server, writing into it: the merge (on the URL)
/// gives the outputs of one local process. Needs the S3 test server as well (`.ci/run` starts
/// both).
#[test]
fn a_slurm_array_over_object_storage_with_a_requeued_task_equals_one_local_process() {
    let _alone = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(conf) = cluster() else { return };
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, config) = array_corpus(tmp.path());
    let reference = tmp.path().join("reference");
    run_ok(&config, &[&corpus], &reference, &[]);
    server.clear("slurm");
    server.upload(&corpus, "slurm/corpus");

    let out_url = server.url("slurm/out");
    array_with_a_requeued_task(
        &conf,
        tmp.path(),
        &config,
        &server.url("slurm/corpus/"),
        &out_url,
        &server.env,
    );
    let downloaded = tmp.path().join("downloaded");
    let (keys, uploads) = server.download("slurm/out", &downloaded);
    assert_eq!(uploads, 0, "no multipart upload is left open: {keys:?}");
    let record = read_json(&downloaded.join("ranks/rank-00001-of-00004.json"));
    assert_eq!(record["rank_source"], "slurm_array");
    assert!(record["report"]["shards"]["skipped"].as_u64().unwrap() >= 1);
    assert_eq!(outputs(&downloaded), outputs(&reference));
    assert_eq!(report_content(&downloaded), report_content(&reference));
}
