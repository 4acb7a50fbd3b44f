//! A run's figures: throughput and latency percentiles from the merged HDR
//! histogram (microsecond resolution, 3 significant digits), printed as
//! text or written as JSON.

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::{BenchArgs, Distribution, TargetKind, Workload};

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub target: TargetKind,
    pub workload: Workload,
    pub clients: usize,
    pub connections: usize,
    pub keys: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub distribution: Distribution,
    pub read_ratio: Option<f64>,
    /// Completed operations in the measured time (conflicts included).
    pub ops: u64,
    /// Operations that failed (no answer, or an unexpected one).
    pub errors: u64,
    /// Compare-and-sets that found another version (answered, counted in ops).
    pub conflicts: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// (percentile, latency in ms) points for plotting.
    pub percentiles: Vec<(f64, f64)>,
}

impl BenchResult {
    pub fn new(
        args: &BenchArgs,
        hist: &Histogram<u64>,
        errors: u64,
        conflicts: u64,
        seconds: f64,
        first_error: Option<String>,
    ) -> BenchResult {
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| ms(hist.value_at_quantile(q));
        let percentiles = if hist.is_empty() {
            Vec::new()
        } else {
            hist.iter_quantiles(2).map(|v| (v.quantile_iterated_to() * 100.0, ms(v.value_iterated_to()))).collect()
        };
        BenchResult {
            target: args.target,
            workload: args.workload,
            clients: args.clients,
            connections: args.connections(),
            keys: args.keys,
            key_size: args.key_size,
            value_size: args.value_size,
            distribution: args.distribution,
            read_ratio: (args.workload == Workload::Mixed).then_some(args.read_ratio),
            ops: hist.len(),
            errors,
            conflicts,
            first_error,
            seconds,
            ops_per_s: hist.len() as f64 / seconds,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(hist.max()),
            percentiles,
        }
    }

    /// A few lines for a terminal.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{:?} {:?}: {} clients over {} connections, {} keys ({:?}), {}-byte keys, {}-byte values\n\
             {:.0} ops/s over {:.1}s ({} ops, {} errors, {} conflicts)\n\
             latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            self.target,
            self.workload,
            self.clients,
            self.connections,
            self.keys,
            self.distribution,
            self.key_size,
            self.value_size,
            self.ops_per_s,
            self.seconds,
            self.ops,
            self.errors,
            self.conflicts,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("\nfirst error: {e}"));
        }
        s
    }
}

pub fn write_json(result: &BenchResult, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(result)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
