//! `timeline.html`: the run at a glance, an SVG with one row per client
//! (operations as bars from invocation to return, coloured by outcome) and
//! the faults as bands behind them. Operations of a failing sub-history
//! are outlined in red; hovering shows each one.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::history::{Outcome, Record};
use crate::report::Report;

/// Most operations drawn (a witness's always are): beyond that the page
/// gets too heavy for a browser, and history.jsonl has them all.
const MAX_DRAWN: usize = 60_000;

pub fn html(report: &Report, records: &[Record]) -> String {
    let marked: HashSet<usize> = report.checked.iter().flat_map(|k| k.witness.iter().copied()).collect();
    let end_ns =
        records.iter().map(|r| r.return_ns).chain(report.faults.iter().map(|f| f.end_ns)).max().unwrap_or(1).max(1);
    let rows = records.iter().map(|r| r.client).max().map_or(1, |m| m as usize + 1);
    let (width, row_h, top) = (1800.0f64, 14.0f64, 40.0f64);
    let x = |ns: u64| 60.0 + (ns as f64 / end_ns as f64) * (width - 80.0);
    let height = top + rows as f64 * row_h + 30.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><meta charset=utf-8><title>ringkv faults: {:?} seed {}</title>",
        report.scenario, report.seed
    );
    let _ = write!(
        s,
        "<h3 style='font-family:sans-serif'>ringkv faults: {:?}, seed {}, {} — {}</h3>",
        report.scenario,
        report.seed,
        if report.pass { "PASS" } else { "FAIL" },
        report.violations.join("; ")
    );
    let _ = write!(s, "<p style='font-family:sans-serif;font-size:12px'>rows: clients (the last: final reads); green: write ok, blue: read ok, orange: indeterminate, grey: failed; bands: faults; red outline: a failing sub-history.</p>");
    let _ = write!(s, "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='10'>");
    for f in &report.faults {
        let (a, b) = (x(f.start_ns), x(f.end_ns));
        let _ = write!(s, "<rect x='{a:.1}' y='{}' width='{:.1}' height='{:.1}' fill='#f5c2c2' opacity='0.5'><title>{:?} {:?} {:.3}s–{:.3}s {}</title></rect>",
            top - 12.0, (b - a).max(1.0), rows as f64 * row_h + 12.0, f.kind, f.nodes, f.start_ns as f64 / 1e9, f.end_ns as f64 / 1e9, f.repair);
        let _ = write!(s, "<text x='{a:.1}' y='{}'>{:?} {:?}</text>", top - 14.0, f.kind, f.nodes);
    }
    for c in 0..rows {
        let _ = write!(s, "<text x='2' y='{:.1}'>c{c}</text>", top + c as f64 * row_h + 10.0);
    }
    let step = records.len().div_ceil(MAX_DRAWN).max(1);
    for (i, r) in records.iter().enumerate() {
        if i % step != 0 && !marked.contains(&i) {
            continue;
        }
        let colour = match (&r.outcome, r.op.is_write()) {
            (Outcome::Ok { .. }, true) => "#3a3",
            (Outcome::Ok { .. }, false) => "#37c",
            (Outcome::Indeterminate { .. }, _) => "#f90",
            (Outcome::Fail { .. }, _) => "#999",
        };
        let stroke = if marked.contains(&i) { " stroke='red' stroke-width='2'" } else { "" };
        let (a, b) = (x(r.invoke_ns), x(r.return_ns));
        let _ = write!(s, "<rect x='{a:.1}' y='{:.1}' width='{:.1}' height='{}' fill='{colour}'{stroke}><title>client {} key {} [{:.4}s–{:.4}s] {} → {}</title></rect>",
            top + r.client as f64 * row_h + 2.0, (b - a).max(0.8), row_h - 4.0, r.client, r.key, r.invoke_ns as f64 / 1e9, r.return_ns as f64 / 1e9, r.op, escape(&r.outcome.to_string()));
    }
    let _ = write!(s, "</svg>");
    if step > 1 {
        let _ = write!(s, "<p style='font-family:sans-serif;font-size:12px'>One operation in {step} drawn; history.jsonl has all {}.</p>", records.len());
    }
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
