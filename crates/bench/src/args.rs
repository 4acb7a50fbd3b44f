//! The command line of `ringkv bench` and what each workload means.

use std::path::PathBuf;

use anyhow::bail;
use serde::Serialize;

/// Which system the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Ringkv,
    /// etcd's v3 gRPC API (`--addr` lists its client URLs' host:port).
    Etcd,
}

/// What each operation is. The same on both targets; the etcd mapping is in
/// `target/etcd.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Insert of a fresh key every time (ringkv `set`; etcd `Put`).
    Set,
    /// Compare-and-set on the version last seen for a preloaded key (ringkv
    /// `testAndSet`; etcd `Txn` comparing the key's version).
    Tas,
    /// Linearizable read of a preloaded key.
    Get,
    /// Serializable read (the contacted replica's state, possibly stale).
    GetSerializable,
    /// `--read-ratio` linearizable reads, the rest `tas`.
    Mixed,
}

/// How keys are chosen among the preloaded ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    Uniform,
    /// Zipf with exponent `--zipf-s`: a few hot keys.
    Zipfian,
}

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BenchArgs {
    /// The system to load.
    #[arg(long, value_enum, default_value_t = TargetKind::Ringkv)]
    pub target: TargetKind,
    #[arg(long, value_enum, default_value_t = Workload::Set)]
    pub workload: Workload,
    /// Concurrent client tasks, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// gRPC connections (HTTP/2) the tasks share, spread round-robin over
    /// the addresses (default: min(clients, 16)).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Measured time, in seconds (ignored with --ops).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many measured operations instead of after --duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Unmeasured time before, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Keys preloaded for the read and testAndSet workloads.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Bytes per key (at least 8).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Bytes of data per value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Zipf exponent for --distribution zipfian.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_s: f64,
    /// Share of reads in the mixed workload (0..1).
    #[arg(long, default_value_t = 0.5)]
    pub read_ratio: f64,
    /// Skip preloading (the keys are already there from an earlier run).
    #[arg(long)]
    pub no_preload: bool,
    /// Write the results as JSON to this file.
    #[arg(long = "json-file", value_name = "FILE")]
    pub json_file: Option<PathBuf>,
    /// Write a latency-by-percentile plot to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl BenchArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        if self.clients == 0 || self.connections == Some(0) {
            bail!("--clients and --connections must be at least 1");
        }
        if self.ops.is_none() && !positive(self.duration) {
            bail!("--duration must be positive");
        }
        if self.warmup < 0.0 {
            bail!("--warmup cannot be negative");
        }
        if self.key_size < 8 {
            bail!("--key-size must be at least 8");
        }
        if self.keys == 0 || self.keys >= crate::keys::FRESH {
            bail!("--keys must be between 1 and 2^55");
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            bail!("--read-ratio must be between 0 and 1");
        }
        if self.distribution == Distribution::Zipfian && !positive(self.zipf_s) {
            bail!("--zipf-s must be positive");
        }
        Ok(())
    }

    pub fn connections(&self) -> usize {
        self.connections.unwrap_or(self.clients.min(16))
    }

    /// Whether the workload works on preloaded keys.
    pub fn needs_preload(&self) -> bool {
        self.workload != Workload::Set
    }
}

/// Greater than zero (so NaN is not).
fn positive(x: f64) -> bool {
    x > 0.0
}

#[cfg(test)]
impl BenchArgs {
    /// The defaults, as the command line gives them.
    pub fn parse_for_test() -> BenchArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        Cli::parse_from(["bench"]).args
    }
}
