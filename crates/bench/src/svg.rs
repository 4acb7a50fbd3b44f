//! The latency plot: latency (ms, linear) against percentile on the usual
//! "nines" axis (x = log10(1 / (1 - p))), so that p50, p90, p99 and p99.9
//! are evenly spaced, as HdrHistogram's own plots draw it. Hand-written:
//! one polyline and its axes do not need a plotting library.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

use crate::report::BenchResult;

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 30.0;
const RIGHT: f64 = 20.0;
/// The x axis ends at p99.999.
const MAX_NINES: f64 = 5.0;

pub fn write(result: &BenchResult, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, render(result)).with_context(|| format!("cannot write {}", path.display()))
}

fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(10f64.powf(-MAX_NINES));
    (1.0 / rest).log10().min(MAX_NINES)
}

pub fn render(r: &BenchResult) -> String {
    let max_ms = r.percentiles.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |pct: f64| LEFT + nines(pct) / MAX_NINES * pw;
    let y = |ms: f64| TOP + ph - ms / max_ms * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="13">{:?} {:?}, {} clients: {:.0} ops/s</text>"#,
        r.target, r.workload, r.clients, r.ops_per_s
    );
    for (i, label) in ["0", "90", "99", "99.9", "99.99", "99.999"].iter().enumerate() {
        let px = LEFT + i as f64 / MAX_NINES * pw;
        let _ = writeln!(s, r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/>"##, TOP + ph);
        let _ = writeln!(s, r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}%</text>"#, TOP + ph + 15.0);
    }
    for i in 0..=4 {
        let ms = max_ms * i as f64 / 4.0;
        let py = y(ms);
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/>"##, LEFT + pw);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.2}</text>"#, LEFT - 5.0, py + 4.0);
    }
    let _ =
        writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#, LEFT + pw / 2.0, H - 5.0);
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    let points: Vec<String> = r.percentiles.iter().map(|&(p, ms)| format!("{:.1},{:.1}", x(p), y(ms))).collect();
    let _ = writeln!(s, r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##, points.join(" "));
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_spaces_the_usual_percentiles_evenly() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
    }
}
