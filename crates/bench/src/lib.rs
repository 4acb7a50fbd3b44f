//! The load generator behind `ringkv bench`.
//!
//! One closed-loop driver (`driver`) runs the same workloads against either
//! system through the `target::Conn` trait, so ringkv and etcd are measured
//! by identical client code: the same tasks, the same connection count, the
//! same keys, values and key choice; only the final gRPC call differs
//! (`target/ringkv.rs`, `target/etcd.rs`).
//!
//! - `args`: the command line (`BenchArgs`) and what the workloads mean.
//! - `keys`: the key space: identical 8-byte keys on both systems, uniform
//!   or zipfian choice, fresh keys for inserts.
//! - `driver`: preload, warm-up, the client tasks, the progress bar.
//! - `report`: figures (HDR histogram percentiles), text and JSON.
//! - `svg`: the latency plot.

pub mod args;
pub mod driver;
pub mod keys;
pub mod report;
pub mod svg;
pub mod target;

pub use args::{BenchArgs, Distribution, TargetKind, Workload};
pub use report::BenchResult;

/// Runs the benchmark `args` describe against `addrs` and returns its figures
/// (also written to `--json` and `--svg` when given).
pub async fn run(args: &BenchArgs, addrs: &[String]) -> anyhow::Result<BenchResult> {
    args.check()?;
    let result = match args.target {
        TargetKind::Ringkv => driver::measure(args, target::ringkv::connect(addrs, args)?).await?,
        TargetKind::Etcd => driver::measure(args, target::etcd::connect(addrs, args)?).await?,
    };
    if let Some(path) = &args.json_file {
        report::write_json(&result, path)?;
    }
    if let Some(path) = &args.svg {
        svg::write(&result, path)?;
    }
    Ok(result)
}
