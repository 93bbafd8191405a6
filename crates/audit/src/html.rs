//! `report.html`: one self-contained page about a run — inline CSS, inline SVG charts, no network.
//! Every piece of text that comes from the corpus or the run (document text, ids, terms, rule ids,
//! shard names) goes through [`escape`]: a document containing `<script>` shows as text and never
//! runs. As a second wall, the page's Content-Security-Policy allows no source at all but its own
//! inline style and the one inline script whose SHA-256 it names ([`MEASURE_SCRIPT`]), so even
//! markup that slipped through escaping could neither run a script nor load anything.
//!
//! The page reads fine without script. The one script only measures the charts once laid out and
//! writes their sizes into `data-rendered` attributes (and the count into
//! `<html data-charts-rendered>`), so that a headless browser can check that the charts really
//! rendered — that is how the browser test in `tests/cli/audit.rs` checks the page.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use sluice_core::stats::{plural, Destination};

use crate::highlight::{escape, highlight_document, Style};
use crate::outdir::{Joined, OutDir};
use crate::select::Reservoir;
use crate::summary::{Summary, SCORE_BINS};
use crate::AuditError;

pub const REPORT_HTML: &str = "report.html";
/// Dropped documents shown in the report's sample table.
pub const SAMPLE_SIZE: usize = 20;
/// Text bytes shown per sampled document.
const TEXT_BYTES: usize = 4000;

/// Reads `out_dir` and writes `out_dir/report.html`; returns its path.
pub fn write_report(out_dir: &Path) -> Result<PathBuf, AuditError> {
    let out = OutDir::open(out_dir)?;
    // One pass over the records: counts, and a sample of the dropped ones' raw lines.
    let mut sample = Reservoir::new(SAMPLE_SIZE, 0);
    let summary = Summary::collect_with(&out, |view, line| {
        if view.decision == Destination::Dropped {
            sample.offer(line.to_vec());
        }
    })?;
    let dropped_total = sample.seen();
    let records = sample
        .into_sorted()
        .iter()
        .map(|line| {
            serde_json::from_slice(line).map_err(|e| AuditError::Inconsistent {
                shard: "audit".into(),
                message: format!("unreadable sampled record: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let joined = out.join(records)?;
    let html = render(&out, &summary, &joined, dropped_total);
    let path = out_dir.join(REPORT_HTML);
    out.storage
        .replace(REPORT_HTML, html.as_bytes(), None)
        .map_err(|e| AuditError::Write {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(path)
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3em .5em;vertical-align:top;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.text{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:12px;max-height:16em;overflow:auto}\
mark{background:#ffd54f;color:#000}.part{margin-bottom:.4em}.part>b{display:block;color:#555;font-family:system-ui,sans-serif}.muted{color:#777}svg.chart{display:block;margin:.5em 0}\
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}.card b{display:block;font-size:1.4em}";

/// The page's only script: records each chart's rendered size and drawn bars as attributes.
pub const MEASURE_SCRIPT: &str = "addEventListener('load',function(){var n=0;\
document.querySelectorAll('svg.chart').forEach(function(c){var r=c.getBoundingClientRect(),k=0;\
c.querySelectorAll('.bar').forEach(function(b){var q=b.getBoundingClientRect();if(q.width>0&&q.height>0)k++});\
c.setAttribute('data-rendered',Math.round(r.width)+'x'+Math.round(r.height));\
c.setAttribute('data-bars-drawn',k);n++});\
document.documentElement.setAttribute('data-charts-rendered',n)});";

/// The Content-Security-Policy: nothing from anywhere, but inline style and [`MEASURE_SCRIPT`].
pub fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(MEASURE_SCRIPT.as_bytes());
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

const COLORS: [&str; 4] = ["#4caf50", "#e53935", "#fb8c00", "#757575"];

/// A horizontal bar chart: one row per `(label, value, shown value)`.
fn bar_chart(id: &str, rows: &[(String, f64, String)], color: &str) -> String {
    if rows.is_empty() {
        return "<p class=\"muted\">(nothing to chart)</p>".into();
    }
    let (label_w, bar_w, row_h) = (220.0, 460.0, 24.0);
    let width = label_w + bar_w + 120.0;
    let height = row_h * rows.len() as f64 + 8.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-12);
    let mut s = format!(
        "<svg class=\"chart\" id=\"{id}\" data-chart=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let w = (value / max * bar_w).max(if *value > 0.0 { 2.0 } else { 0.0 });
        let color = if color.is_empty() {
            COLORS[i % COLORS.len()]
        } else {
            color
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\">{}</text>\
             <rect class=\"bar\" x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            label_w - 6.0,
            y + 15.0,
            escape(&clip(label, 34)),
            y + 3.0,
            row_h - 6.0,
            escape(label),
            escape(shown),
            label_w + w + 6.0,
            y + 15.0,
            escape(shown),
        );
    }
    s.push_str("</svg>");
    s
}

/// A vertical histogram of scores over `[0, 1]`, thresholds marked.
fn histogram(bins: &[u64], thresholds: Option<(f64, f64)>) -> String {
    let (w, h, pad) = (600.0, 200.0, 30.0);
    let max = bins.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = (w - 2.0 * pad) / bins.len() as f64;
    let mut s = format!(
        "<svg class=\"chart\" id=\"scores\" data-chart=\"scores\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">"
    );
    for (i, n) in bins.iter().enumerate() {
        let bh = *n as f64 / max * (h - 2.0 * pad);
        let x = pad + i as f64 * bw;
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#5c6bc0\"><title>{:.1}–{:.1}: {n}</title></rect>",
            h - pad - bh,
            bw - 2.0,
            i as f64 / bins.len() as f64,
            (i + 1) as f64 / bins.len() as f64,
        );
    }
    for k in 0..=bins.len() {
        if k % 2 == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{:.1}</text>",
                pad + k as f64 * bw,
                h - pad + 14.0,
                k as f64 / bins.len() as f64
            );
        }
    }
    if let Some((drop, review)) = thresholds {
        for (t, name, color) in [(review, "review", "#fb8c00"), (drop, "drop", "#e53935")] {
            let x = pad + t.clamp(0.0, 1.0) * (w - 2.0 * pad);
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{pad}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"{color}\">{name} {t}</text>",
                h - pad,
                pad - 6.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn clip(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(chars - 1).collect();
        out.push('…');
        out
    }
}

/// The page. `dropped_total`: dropped documents the sample was drawn from.
pub fn render(out: &OutDir, summary: &Summary, sample: &[Joined], dropped_total: u64) -> String {
    let m = &out.manifest;
    let mut h = String::with_capacity(64 << 10);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
         <title>sluice report</title><style>{CSS}</style><script>{MEASURE_SCRIPT}</script></head><body>\
         <h1>sluice report</h1><p class=\"muted\">{} — config {} — sluice {}</p>",
        content_security_policy(),
        escape(&out.path.display().to_string()),
        escape(&m.config_hash),
        escape(&m.sluice_version),
    );

    // Cards and destinations.
    let total = summary.destinations.total().documents;
    h.push_str("<div class=\"cards\">");
    let _ = write!(h, "<div class=\"card\"><b>{total}</b>documents</div>");
    for d in Destination::ALL {
        let n = summary.destinations.get(d).documents;
        let _ = write!(h, "<div class=\"card\"><b>{n}</b>{}</div>", d.name());
    }
    let _ = write!(
        h,
        "<div class=\"card\"><b>{}</b>audit records</div><div class=\"card\"><b>{}</b>shards</div></div>",
        summary.audited,
        summary.shards.len()
    );
    h.push_str("<h2>Documents per destination</h2>");
    let rows: Vec<(String, f64, String)> = Destination::ALL
        .iter()
        .map(|d| {
            let n = summary.destinations.get(*d).documents;
            let pct = if total > 0 {
                n as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            (d.name().to_string(), n as f64, format!("{n} ({pct:.1}%)"))
        })
        .collect();
    h.push_str(&bar_chart("destinations", &rows, ""));

    // Reasons.
    h.push_str("<h2>Drops and escalations per reason</h2>");
    let rows: Vec<(String, f64, String)> = summary
        .reasons
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.documents as f64,
                format!(
                    "{} ({} dropped, {} review)",
                    t.documents, t.dropped, t.review
                ),
            )
        })
        .collect();
    h.push_str(&bar_chart("reasons", &rows, "#e53935"));
    if !summary.categories.is_empty() {
        h.push_str("<h2>Term categories</h2>");
        let rows: Vec<(String, f64, String)> = summary
            .categories
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.documents as f64,
                    plural(t.documents, "document"),
                )
            })
            .collect();
        h.push_str(&bar_chart("categories", &rows, "#8e24aa"));
    }
    for (stage, family, keys) in summary.stage_key_counts() {
        let _ = write!(
            h,
            "<h2>Stage {}: documents per {}</h2>",
            escape(stage),
            escape(family)
        );
        let rows: Vec<(String, f64, String)> = keys
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    c.docs as f64,
                    format!(
                        "{} ({} dropped, {} escalated, {} tagged)",
                        c.docs, c.dropped, c.escalated, c.tagged
                    ),
                )
            })
            .collect();
        // An element id from config names: only [a-z0-9-] (the names are escaped where shown).
        let id: String = format!("keys-{stage}-{family}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        h.push_str(&bar_chart(&id, &rows, "#6d4c41"));
    }
    h.push_str("<h2>Top matched terms</h2>");
    let rows: Vec<(String, f64, String)> = summary
        .top_terms(20)
        .into_iter()
        .map(|(k, t)| {
            (
                k.to_string(),
                t.documents as f64,
                format!("{} docs, {} hits", t.documents, t.hits),
            )
        })
        .collect();
    h.push_str(&bar_chart("terms", &rows, "#3949ab"));

    // Scores.
    h.push_str("<h2>Classifier scores</h2>");
    if summary.scores.is_empty() {
        h.push_str("<p class=\"muted\" id=\"no-scores\">No audit record carries a classifier score (no classifier stage in this run).</p>");
    } else {
        let _ = write!(
            h,
            "<p>{} scored documents with an audit record, {SCORE_BINS} bins; dashed lines: the thresholds.</p>",
            summary.scored
        );
        h.push_str(&histogram(&summary.scores, summary.thresholds));
    }

    // Throughput.
    h.push_str("<h2>Throughput per step</h2>");
    match &out.report {
        Some(report) => {
            let t = &report.throughput;
            let _ = write!(
                h,
                "<p>{}, {:.1} MB in {:.2} s: {:.1} MB/s, {:.0} docs/s on {}.</p>",
                plural(t.documents, "document"),
                t.bytes as f64 / 1e6,
                t.wall_seconds,
                t.mb_per_second,
                t.docs_per_second,
                plural(t.threads as u64, "thread")
            );
            let rows: Vec<(String, f64, String)> = report
                .timings
                .iter()
                .map(|s| {
                    (
                        s.step.clone(),
                        s.cpu_seconds,
                        format!(
                            "{:.3} s CPU, {:.1}%, {:.0} MB/s",
                            s.cpu_seconds,
                            s.share * 100.0,
                            s.mb_per_second
                        ),
                    )
                })
                .collect();
            h.push_str(&bar_chart("timings", &rows, "#00897b"));
            if !report.ranks.is_empty() {
                h.push_str(&ranks_table(&report.ranks));
            }
        }
        None => h.push_str("<p class=\"muted\">No report.json: the run did not finish.</p>"),
    }

    // Shards.
    // With input.format = "auto", the layout the run detected in each file.
    let layout_of = |name: &str| {
        m.shards
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.layout.as_ref())
            .map(|l| format!("{} ({} of {})", l.layout, l.agreeing, l.looked_at))
    };
    let layouts = m.shards.iter().any(|e| e.layout.is_some());
    h.push_str("<h2>Shards</h2><table><tr><th>shard</th>");
    if layouts {
        h.push_str("<th>layout</th>");
    }
    h.push_str("<th>documents</th><th>kept</th><th>dropped</th><th>review</th><th>errors</th><th>audited</th></tr>");
    for s in &summary.shards {
        let layout = if layouts {
            format!(
                "<td>{}</td>",
                escape(&layout_of(&s.name).unwrap_or_default())
            )
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td>{layout}<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&s.name), s.documents, s.kept, s.dropped, s.review, s.errors, s.audited
        );
    }
    h.push_str("</table>");

    // Sample.
    let _ = write!(
        h,
        "<h2>Sampled dropped documents</h2><p>{} of {dropped_total} dropped documents (seed 0).</p>",
        sample.len()
    );
    h.push_str("<table id=\"sample\"><tr><th>id</th><th>where</th><th>reasons</th><th>evidence</th><th>text (matches marked)</th></tr>");
    for j in sample {
        let r = &j.record;
        let text = match &j.text {
            Some(text) => {
                let (mut shown, truncated) =
                    highlight_document(text, &j.parts, &r.spans(), Style::Html, TEXT_BYTES);
                if truncated {
                    shown.push_str("<span class=\"muted\"> … (truncated)</span>");
                }
                shown
            }
            None => "<span class=\"muted\">(text not found)</span>".into(),
        };
        // Each stage explains its own evidence (StageEvidence::describe), as in `audit show`.
        let evidence: Vec<String> = r
            .stages
            .iter()
            .map(|s| {
                format!(
                    "<div>{} ({}): {}</div>",
                    escape(&s.stage),
                    escape(s.evidence.kind()),
                    escape(&s.evidence.describe())
                )
            })
            .collect();
        let _ = write!(
            h,
            "<tr class=\"doc\"><td>{}</td><td>{}:{}</td><td>{}</td><td>{}</td><td><div class=\"text\">{text}</div></td></tr>",
            escape(&r.id),
            escape(&r.shard),
            r.line,
            escape(&r.reason_keys().join(", ")),
            evidence.concat(),
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// A merged run's ranks (`sluice merge`): each one's share and its last invocation.
fn ranks_table(ranks: &[sluice_core::ranks::merge::RankFigures]) -> String {
    let mut h = String::from(
        "<h2>Ranks</h2><table id=\"ranks\"><tr><th>rank</th><th>shards</th><th>MB (as stored)</th>\
         <th>done</th><th>failed</th><th>last run</th><th>host</th></tr>",
    );
    for r in ranks {
        let last = match (r.processed_bytes, r.wall_seconds) {
            (Some(bytes), Some(wall)) => format!(
                "{:.1} MB in {wall:.2} s{}",
                bytes as f64 / 1e6,
                r.interrupted
                    .map(|s| format!(", interrupted by signal {s}"))
                    .unwrap_or_default()
            ),
            _ => "no record (killed, or never ran)".into(),
        };
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            r.rank,
            r.shards,
            r.bytes as f64 / 1e6,
            r.done,
            r.failed,
            escape(&last),
            escape(r.host.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outdir::tests::run_fixture;

    #[test]
    fn the_page_escapes_corpus_text_and_allows_only_its_own_script() {
        let tmp = tempfile::tempdir().unwrap();
        let corpus = tmp.path().join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        std::fs::write(
            corpus.join("x.jsonl"),
            "{\"id\":\"<b>id</b>\",\"text\":\"Step by step: dirty bombs <script>alert(1)</script> <img src=x onerror=alert(2)> \\\"q\\\" & 'a'\"}\n",
        )
        .unwrap();
        let out = tmp.path().join("out");
        run_fixture(&corpus, &out, |_| {});
        let html = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
        assert!(
            html.contains("<mark>Step by step: dirty bombs</mark>"),
            "{html}"
        );
        assert!(html.contains(
            " &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt; &quot;q&quot; &amp; &#39;a&#39;"
        ));
        assert!(html.contains("<td>&lt;b&gt;id&lt;/b&gt;</td>"));
        assert!(!html.contains("<script>alert") && !html.contains("<img"));
        // One script, and the policy names exactly its hash.
        assert_eq!(html.matches("<script>").count(), 1);
        assert!(html.contains(&format!("<script>{MEASURE_SCRIPT}</script>")));
        let csp = content_security_policy();
        assert!(html.contains(&csp));
        assert!(csp.starts_with("default-src 'none';"));
        // sha256 of the script, base64: 44 characters.
        let hash = csp.split("'sha256-").nth(1).unwrap().trim_end_matches('\'');
        assert_eq!(hash.len(), 44);
    }
}
