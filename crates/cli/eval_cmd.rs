//! `sluice eval`: arguments, the terminal tables, the JSON and CSV files around
//! `sluice_core::eval`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use sluice_classifier::metrics::BinaryMetrics;
use sluice_core::eval::{evaluate, EvalError, EvalOptions, EvalReport};
use sluice_core::stats::plural;
use sluice_core::{Cascade, Config};

use crate::EXIT_OK;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The TOML config whose cascade is measured.
    #[arg(short, long)]
    pub config: PathBuf,
    /// Labeled JSONL (optionally .zst or .gz); the text is read as the config's [input] says
    /// (input.text_field, input.format or input.text_fields).
    #[arg(long)]
    pub data: PathBuf,
    /// Field holding the label (string, integer or boolean; dots descend into objects).
    #[arg(long, default_value = "label")]
    pub label_field: String,
    /// Field holding the text. Overrides the config's input.text_field.
    #[arg(long)]
    pub text_field: Option<String>,
    /// Record layout: text, chat, sharegpt, alpaca, prompt-completion, auto. Overrides input.format.
    #[arg(long)]
    pub format: Option<sluice_core::document::InputFormat>,
    /// The label that counts as positive (default: the classifier's score label when the data
    /// has it, else 1 or true).
    #[arg(long)]
    pub positive: Option<String>,
    /// Count review (the classifier's middle band; escalation without a classifier) as not
    /// flagged. By default review counts as flagged: it leaves the kept set.
    #[arg(long)]
    pub review_negative: bool,
    /// Also score the documents the classifier would not see (without changing any verdict), for
    /// a ROC AUC and sweep of the model over every document.
    #[arg(long)]
    pub score_all: bool,
    /// Thresholds of the sweep, comma-separated [default: 0.05 to 0.95 by 0.05].
    #[arg(long, value_delimiter = ',')]
    pub thresholds: Option<Vec<f64>>,
    /// Write the full report as JSON here ("-": stdout, instead of the tables).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the threshold sweep as CSV here.
    #[arg(long)]
    pub sweep: Option<PathBuf>,
    /// Run the classifier on this device (cpu, cuda, cuda:N, metal). Overrides the config.
    #[arg(long)]
    pub device: Option<String>,
}

pub fn eval_command(args: EvalArgs) -> Result<u8> {
    let mut config = Config::from_file(&args.config)?;
    if let Some(device) = &args.device {
        config.set_device(device);
    }
    if let Some(field) = &args.text_field {
        config.input.text_field = field.clone();
    }
    if let Some(format) = args.format {
        config.input.format = Some(format);
    }
    let cascade = Cascade::new(&config)?;
    let (_, reader) = sluice_io::open_shard(&args.data)
        .with_context(|| format!("cannot open --data {}", args.data.display()))?;
    let options = EvalOptions {
        label_field: args.label_field.clone(),
        positive: args.positive.clone(),
        review_is_positive: !args.review_negative,
        score_all: args.score_all,
        thresholds: args.thresholds.clone(),
    };
    let report = match evaluate(&cascade, reader, &args.data.display().to_string(), &options) {
        Ok(report) => report,
        // Bad labeled data or options: a usage error, nothing was written.
        Err(e @ (EvalError::Data { .. } | EvalError::Options(_))) => {
            return crate::train_cmd::usage_error(e)
        }
        Err(e) => return Err(e.into()),
    };
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let json_to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    match &args.json {
        Some(_) if json_to_stdout => print!("{json}"),
        Some(path) => std::fs::write(path, &json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {}
    }
    if let Some(path) = &args.sweep {
        std::fs::write(path, sweep_csv(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !json_to_stdout {
        print!("{}", tables(&report));
    }
    Ok(EXIT_OK)
}

fn num(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn csv_num(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.6}"))
}

/// The sweep as CSV: one row per threshold, cascade then classifier columns.
pub fn sweep_csv(report: &EvalReport) -> String {
    let all = report
        .sweep
        .first()
        .is_some_and(|r| r.classifier_all_documents.is_some());
    let mut out = String::from(
        "threshold,cascade_flagged,cascade_tp,cascade_fp,cascade_precision,cascade_recall,\
         cascade_f1,cascade_fpr,classifier_precision,classifier_recall,classifier_f1,classifier_fpr",
    );
    if all {
        out.push_str(",all_precision,all_recall,all_f1,all_fpr");
    }
    out.push('\n');
    let cols = |m: &BinaryMetrics| {
        format!(
            "{},{},{},{}",
            csv_num(m.precision),
            csv_num(m.recall),
            csv_num(m.f1),
            csv_num(m.false_positive_rate)
        )
    };
    for row in &report.sweep {
        let c = &row.cascade;
        let _ = write!(
            out,
            "{},{},{},{},{},{}",
            row.threshold,
            c.tp + c.fp,
            c.tp,
            c.fp,
            cols(c),
            cols(&row.classifier)
        );
        if let Some(m) = &row.classifier_all_documents {
            let _ = write!(out, ",{}", cols(m));
        }
        out.push('\n');
    }
    out
}

/// Right-aligned columns, the first left-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut parts = Vec::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            parts.push(if i == 0 {
                format!("{cell:<w$}")
            } else {
                format!("{cell:>w$}")
            });
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn metric_cells(m: &BinaryMetrics) -> Vec<String> {
    vec![
        (m.tp + m.fp).to_string(),
        num(m.precision),
        num(m.recall),
        num(m.f1),
        num(m.false_positive_rate),
    ]
}

/// The terminal report.
pub fn tables(r: &EvalReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sluice eval: {} from {}: {} positive (label {:?}), {} negative",
        plural(r.documents, "document"),
        r.data,
        r.positives,
        r.positive_label,
        r.negatives
    );
    let _ = writeln!(
        s,
        "flagged = dropped{}; recall is over all {} positives\n",
        if r.review_counts_as_positive {
            ", escalated or sent to review"
        } else {
            " or escalated (review counts as kept)"
        },
        r.positives
    );
    let mut rows = Vec::new();
    for st in &r.stages {
        let mut row = vec![
            st.id.clone(),
            st.kind.clone(),
            st.evaluated.to_string(),
            if st.kind == "classifier" {
                "-".into()
            } else {
                pct(st.escalated_fraction)
            },
            pct(st.dropped_fraction),
            if st.kind == "classifier" {
                pct(st.reviewed as f64 / r.documents.max(1) as f64)
            } else {
                "-".into()
            },
        ];
        row.extend(metric_cells(&st.metrics));
        rows.push(row);
    }
    let c = &r.cascade;
    let mut row = vec![
        "cascade".into(),
        "(final)".into(),
        r.documents.to_string(),
        "-".into(),
        pct(c.dropped as f64 / r.documents.max(1) as f64),
        pct(c.review as f64 / r.documents.max(1) as f64),
    ];
    row.extend(metric_cells(&c.metrics));
    rows.push(row);
    s.push_str(&table(
        &[
            "stage",
            "type",
            "evaluated",
            "escalated",
            "dropped",
            "review",
            "flagged",
            "precision",
            "recall",
            "f1",
            "fpr",
        ],
        &rows,
    ));
    if let Some(cl) = &r.classifier {
        let _ = writeln!(
            s,
            "\nclassifier {}: judged {} ({} positive), {} failed; drop >= {}, review >= {}",
            cl.id,
            plural(cl.judged, "document"),
            cl.judged_positives,
            cl.failed,
            cl.drop_threshold,
            cl.review_threshold
        );
        let _ = writeln!(s, "  ROC AUC {} over {}", num(cl.roc_auc), cl.roc_auc_scope);
        match cl.roc_auc_all_documents {
            Some(auc) => {
                let _ = writeln!(
                    s,
                    "  ROC AUC {} over all {} (--score-all)",
                    num(Some(auc)),
                    plural(r.documents, "document")
                );
            }
            None if r
                .sweep
                .first()
                .is_some_and(|x| x.classifier_all_documents.is_some()) => {}
            None => {
                let _ = writeln!(
                    s,
                    "  (--score-all also scores the documents the stage does not see, for an AUC over all)"
                );
            }
        }
        let _ = writeln!(
            s,
            "  prefilter: {} positives dropped before the classifier; {} never reached it and were kept: recall lost {}",
            cl.positives_dropped_before,
            cl.positives_missed_by_prefilter,
            num(cl.recall_lost_by_prefilter)
        );
    }
    if !r.sweep.is_empty() {
        let all = r.sweep[0].classifier_all_documents.is_some();
        let _ = writeln!(
            s,
            "\nthreshold sweep: cascade = text-stage drops + classifier score >= threshold; \
             classifier = the model alone on the documents it judged{}",
            if all { "; all = on every document" } else { "" }
        );
        let mut header = vec![
            "threshold",
            "flagged",
            "precision",
            "recall",
            "f1",
            "fpr",
            "clf precision",
            "clf recall",
        ];
        if all {
            header.extend(["all precision", "all recall"]);
        }
        let rows: Vec<Vec<String>> = r
            .sweep
            .iter()
            .map(|row| {
                let mut cells = vec![format!("{}", row.threshold)];
                cells.extend(metric_cells(&row.cascade));
                cells.push(num(row.classifier.precision));
                cells.push(num(row.classifier.recall));
                if let Some(m) = &row.classifier_all_documents {
                    cells.push(num(m.precision));
                    cells.push(num(m.recall));
                }
                cells
            })
            .collect();
        s.push_str(&table(&header, &rows));
    }
    s
}
