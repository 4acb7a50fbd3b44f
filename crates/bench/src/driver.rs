//! The closed loop: `clients` tasks, each with one request in flight, over
//! the target's connections; a warm-up whose operations are not counted;
//! then `--duration` seconds (or `--ops` operations) measured into one HDR
//! histogram per task, merged at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{BenchArgs, Workload};
use crate::keys::{key_bytes, KeyChooser};
use crate::report::BenchResult;
use crate::target::{Cas, Conn};

/// Requests in flight while preloading.
const PRELOAD_CONCURRENCY: u64 = 64;

/// What the tasks share.
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Operations measured so far, all tasks.
    done: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// One task's figures.
struct Tally {
    hist: Histogram<u64>,
    errors: u64,
    conflicts: u64,
}

pub async fn measure<C: Conn>(args: &BenchArgs, conns: Vec<C>) -> anyhow::Result<BenchResult> {
    let value = Bytes::from(vec![b'v'; args.value_size]);
    if args.needs_preload() && !args.no_preload {
        preload(args, &conns, &value).await?;
    }
    let run: u64 = rand::random();
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let task = Task {
            conn: conns[i % conns.len()].clone(),
            keys: KeyChooser::new(args, run, i as u64)?,
            versions: HashMap::new(),
            workload: args.workload,
            read_ratio: args.read_ratio,
            key_size: args.key_size,
            value: value.clone(),
            shared: shared.clone(),
        };
        tasks.push(tokio::spawn(task.run()));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    shared.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    watch(args, &shared, started).await;
    shared.stop.store(true, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();

    let mut hist = Histogram::<u64>::new(3)?;
    let (mut errors, mut conflicts) = (0, 0);
    for t in tasks {
        let tally = t.await?;
        hist.add(tally.hist)?;
        errors += tally.errors;
        conflicts += tally.conflicts;
    }
    let first_error = shared.first_error.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(BenchResult::new(args, &hist, errors, conflicts, seconds, first_error))
}

/// Waits until the measured time or count is reached, drawing progress.
async fn watch(args: &BenchArgs, shared: &Shared, started: Instant) {
    let bar = match args.ops {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new((args.duration * 10.0).ceil() as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        bar.set_message(format!("{done} ops, {:.0} ops/s", done as f64 / elapsed.max(1e-3)));
        let finished = match args.ops {
            Some(n) => {
                bar.set_position(done.min(n));
                done >= n
            }
            None => {
                bar.set_position((elapsed * 10.0) as u64);
                elapsed >= args.duration
            }
        };
        if finished {
            break;
        }
    }
    bar.finish_and_clear();
}

/// Writes keys 0..keys, `PRELOAD_CONCURRENCY` at a time.
async fn preload<C: Conn>(args: &BenchArgs, conns: &[C], value: &Bytes) -> anyhow::Result<()> {
    let mut workers = Vec::new();
    for w in 0..PRELOAD_CONCURRENCY.min(args.keys) {
        let conn = conns[w as usize % conns.len()].clone();
        let (keys, key_size, value) = (args.keys, args.key_size, value.clone());
        workers.push(tokio::spawn(async move {
            let mut k = w;
            while k < keys {
                conn.insert(key_bytes(k, key_size), value.clone())
                    .await
                    .with_context(|| format!("preloading key {k}"))?;
                k += PRELOAD_CONCURRENCY;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

struct Task<C> {
    conn: C,
    keys: KeyChooser,
    /// The version this task last saw of each key it touched.
    versions: HashMap<u64, i64>,
    workload: Workload,
    read_ratio: f64,
    key_size: usize,
    value: Bytes,
    shared: Arc<Shared>,
}

/// How one operation ended.
enum Done {
    Ok,
    Conflict,
}

impl<C: Conn> Task<C> {
    async fn run(mut self) -> Tally {
        let mut tally =
            Tally { hist: Histogram::new(3).expect("3 significant digits is valid"), errors: 0, conflicts: 0 };
        while !self.shared.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let result = self.one().await;
            if !self.shared.measuring.load(Ordering::Relaxed) {
                continue;
            }
            match result {
                Ok(done) => {
                    let _ = tally.hist.record(started.elapsed().as_micros() as u64);
                    tally.conflicts += matches!(done, Done::Conflict) as u64;
                    self.shared.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tally.errors += 1;
                    if let Ok(mut first) = self.shared.first_error.lock() {
                        first.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        }
        tally
    }

    async fn one(&mut self) -> anyhow::Result<Done> {
        match self.workload {
            Workload::Set => {
                let k = self.keys.fresh();
                if !self.conn.insert(key_bytes(k, self.key_size), self.value.clone()).await? {
                    bail!("fresh key {k} already existed");
                }
                Ok(Done::Ok)
            }
            Workload::Get => self.read(true).await,
            Workload::GetSerializable => self.read(false).await,
            Workload::Tas => self.cas().await,
            Workload::Mixed if self.keys.chance(self.read_ratio) => self.read(true).await,
            Workload::Mixed => self.cas().await,
        }
    }

    async fn read(&mut self, linearizable: bool) -> anyhow::Result<Done> {
        let k = self.keys.existing();
        match self.conn.get(key_bytes(k, self.key_size), linearizable).await? {
            Some(v) => {
                self.versions.insert(k, v);
                Ok(Done::Ok)
            }
            None => bail!("preloaded key {k} is missing"),
        }
    }

    /// Compare-and-set on the version last seen (1, as preloaded, if never
    /// seen); a conflict teaches the current version for next time.
    async fn cas(&mut self) -> anyhow::Result<Done> {
        let k = self.keys.existing();
        let version = self.versions.get(&k).copied().unwrap_or(1);
        match self.conn.cas(key_bytes(k, self.key_size), version, self.value.clone()).await? {
            Cas::Done(v) => {
                self.versions.insert(k, v);
                Ok(Done::Ok)
            }
            Cas::Conflict(Some(v)) => {
                self.versions.insert(k, v);
                Ok(Done::Conflict)
            }
            Cas::Conflict(None) => bail!("preloaded key {k} is missing"),
        }
    }
}
