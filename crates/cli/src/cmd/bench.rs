//! `ringkv bench`: a closed-loop load generator.
//!
//! `clients` tasks each issue one request at a time over `connections`
//! shared gRPC connections, for `duration` after a `warmup`, and record each
//! latency in an HDR histogram. Throughput is completed operations per
//! second of measured time. This is the baseline tool; the comparison with
//! etcd builds on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use num_bigint::BigInt;
use ringkv_client::{Client, ClientOptions, Outcome};
use serde::Serialize;

/// Which operation the load consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `set` of fresh keys: every operation is a replicated insert.
    Set,
    /// Linearizable `get` of preloaded keys, uniformly at random.
    Get,
    /// `get` then `testAndSet` of the version read, on preloaded keys.
    Tas,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Workload::Set)]
    pub workload: Workload,
    /// Concurrent client tasks, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// gRPC connections the tasks share (default: min(clients, 16)).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Measured time, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured time before, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Keys preloaded for `get` and `tas`.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Bytes of data per value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub workload: Workload,
    pub clients: usize,
    pub connections: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub async fn run(args: BenchArgs, addr: &str, json: bool) -> anyhow::Result<()> {
    if args.clients == 0 || args.duration <= 0.0 {
        bail!("--clients and --duration must be positive");
    }
    let result = measure(&args, addr).await?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{:?} clients={} connections={}: {:.0} ops/s over {:.1}s ({} ops, {} errors)\n  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            result.workload, result.clients, result.connections, result.ops_per_s, result.seconds, result.ops,
            result.errors, result.p50_ms, result.p90_ms, result.p99_ms, result.p999_ms, result.max_ms
        );
    }
    Ok(())
}

/// Runs the load described by `args` and returns its figures.
pub async fn measure(args: &BenchArgs, addr: &str) -> anyhow::Result<BenchResult> {
    let connections = args.connections.unwrap_or(args.clients.min(16)).max(1);
    let opts = ClientOptions { timeout: Duration::from_secs(10), ..ClientOptions::default() };
    let pool: Vec<Client> = (0..connections)
        .map(|_| Client::new(addr, opts.clone()))
        .collect::<Result<_, _>>()
        .context("bad --addr")?;
    let value = vec![b'v'; args.value_size];
    if args.workload != Workload::Set {
        preload(&pool[0], args.keys, &value).await?;
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let client = pool[i % connections].clone();
            let ctx = Task { id: i as u64, workload: args.workload, keys: args.keys, value: value.clone() };
            tokio::spawn(ctx.run(client, measuring.clone(), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    stop.store(true, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();
    let mut hist = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(BenchResult {
        workload: args.workload,
        clients: args.clients,
        connections,
        ops: hist.len(),
        errors,
        seconds,
        ops_per_s: hist.len() as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
    })
}

async fn preload(client: &Client, keys: u64, value: &[u8]) -> anyhow::Result<()> {
    for k in 0..keys {
        let r = client.set(&BigInt::from(k), 0, value.to_vec()).await.context("preloading keys")?;
        if !matches!(r.outcome, Outcome::Success | Outcome::Error) {
            bail!("preload of key {k} answered {}", r.outcome);
        }
    }
    Ok(())
}

/// One client task's loop.
struct Task {
    id: u64,
    workload: Workload,
    keys: u64,
    value: Vec<u8>,
}

impl Task {
    async fn run(self, client: Client, measuring: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> (Histogram<u64>, u64) {
        let mut hist = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let mut errors = 0;
        let mut rng = self.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let ok = self.one(&client, n, &mut rng).await;
            if measuring.load(Ordering::Relaxed) {
                if ok {
                    let _ = hist.record(started.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            n += 1;
        }
        (hist, errors)
    }

    async fn one(&self, client: &Client, n: u64, rng: &mut u64) -> bool {
        // xorshift: cheap, per-task, good enough to spread keys.
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let key = BigInt::from(*rng % self.keys.max(1));
        match self.workload {
            Workload::Set => {
                // Fresh keys, disjoint per task: each op is a real insert.
                let key = BigInt::from(1u64 << 40) + BigInt::from(self.id) * BigInt::from(1u64 << 32) + n;
                client.set(&key, 0, self.value.clone()).await.is_ok()
            }
            Workload::Get => client.get(&key).await.is_ok(),
            Workload::Tas => match client.get(&key).await {
                Ok(r) => {
                    let version = r.value.map_or(1, |v| v.version);
                    client.test_and_set(&key, 0, self.value.clone(), version).await.is_ok()
                }
                Err(_) => false,
            },
        }
    }
}
