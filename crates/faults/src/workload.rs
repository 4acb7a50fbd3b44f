//! The workload: `clients` concurrent closed-loop clients issuing random
//! get, set, testAndSet, del and delVersion on a few keys, so that
//! operations collide, each recorded with its times and outcome.
//!
//! Each client talks to one replica (client w starts on replica w mod n),
//! so a deposed or lagging replica is asked too, which is where stale reads
//! would come from. Besides the `clients` mixed clients, every replica has
//! a reader of its own that only reads and never moves: a deposed leader
//! (paused, partitioned) keeps being asked for as long as it answers. A
//! client uses the client library with a short deadline: the
//! library resends a write in its exactly-once session until then, so an
//! answer, even to a resent write, is exact, and the sessions are tested
//! as well. An operation without an answer by the deadline is
//! indeterminate (a read without an answer had no effect); after one, the
//! client starts afresh on the next replica, with a new session, as
//! Jepsen's crashed process is replaced by a new one.
//!
//! Every written datum is unique (client and counter), so a read says
//! which write it saw.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use num_bigint::BigInt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringkv_client::{Client, ClientError, ClientOptions, Outcome as ClientOutcome, Reply};

use crate::history::{Op, Outcome, Record, Status, Val};

/// What the clients do.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub clients: usize,
    pub keys: u32,
    /// Deadline of one operation, retries included.
    pub op_timeout: Duration,
    pub seed: u64,
}

/// The store key the harness uses for its key `k` (away from 0, which
/// readiness probes read).
pub fn store_key(k: u32) -> BigInt {
    BigInt::from(1000 + i64::from(k))
}

/// One operation by client number `who` through `client`, recorded.
pub async fn perform(client: &Client, who: u32, key: u32, op: Op, start: Instant) -> Record {
    let invoke_ns = start.elapsed().as_nanos() as u64;
    let k = store_key(key);
    let result = match op {
        Op::Get => client.get(&k).await,
        Op::Set { data } => client.set(&k, data as i64, data.to_string()).await,
        Op::Del => client.del(&k).await,
        Op::DelVersion { version } => client.del_version(&k, version).await,
        Op::TestAndSet { version, data } => client.test_and_set(&k, data as i64, data.to_string(), version).await,
    };
    let return_ns = start.elapsed().as_nanos() as u64;
    Record { client: who, key, op, invoke_ns, return_ns, outcome: outcome(result) }
}

fn outcome(result: Result<Reply, ClientError>) -> Outcome {
    match result {
        Ok(reply) => Outcome::Ok {
            status: match reply.outcome {
                ClientOutcome::Success => Status::Success,
                ClientOutcome::Error => Status::Error,
                ClientOutcome::ErrorNe => Status::ErrorNe,
                ClientOutcome::ErrorWv => Status::ErrorWv,
            },
            value: reply.value.map(|v| Val {
                version: v.version,
                data: std::str::from_utf8(&v.data).ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX),
            }),
        },
        // Refused as malformed: checked before anything is proposed.
        Err(ClientError::InvalidArgument(why)) => Outcome::Fail { why },
        Err(e) => Outcome::Indeterminate { why: e.to_string() },
    }
}

/// A client's random choices.
struct Chooser {
    rng: StdRng,
    keys: u32,
    /// The last version seen per key: testAndSet and delVersion mostly use
    /// it, so that they often succeed.
    seen: Vec<i64>,
    next_data: u64,
}

impl Chooser {
    fn next(&mut self) -> (u32, Op) {
        let key = self.rng.random_range(0..self.keys);
        let seen = self.seen[key as usize];
        let version = if self.rng.random_bool(0.8) { seen.max(1) } else { self.rng.random_range(1..=seen + 2) };
        self.next_data += 1;
        let data = self.next_data;
        let op = match self.rng.random_range(0..100) {
            0..40 => Op::Get,
            40..55 => Op::Set { data },
            55..80 => Op::TestAndSet { version, data },
            80..85 => Op::Del,
            _ => Op::DelVersion { version },
        };
        (key, op)
    }

    fn saw(&mut self, r: &Record) {
        if let Outcome::Ok { status, value } = &r.outcome {
            let v = match (r.op, status, value) {
                (Op::TestAndSet { version, .. }, Status::Success, _) => version + 1,
                (Op::Set { .. }, Status::Success, _) => 1,
                (_, _, Some(v)) if !matches!((r.op, status), (Op::Del | Op::DelVersion { .. }, Status::Success)) => {
                    v.version
                }
                _ => 0,
            };
            self.seen[r.key as usize] = v;
        }
    }
}

/// Runs the clients against `addrs` until `stop` is set, then returns every
/// record (in no particular order), or why a client task failed.
pub async fn run(
    spec: &WorkloadSpec,
    addrs: &[std::net::SocketAddr],
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Record>, String> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..spec.clients + addrs.len() {
        let reader = w >= spec.clients;
        let addrs = addrs.to_vec();
        let stop = stop.clone();
        let spec = spec.clone();
        tasks.spawn(async move {
            let mut chooser = Chooser {
                rng: StdRng::seed_from_u64(spec.seed.wrapping_mul(1_000_003).wrapping_add(w as u64)),
                keys: spec.keys,
                seen: vec![0; spec.keys as usize],
                // Unique across clients: the client in the high bits.
                next_data: (w as u64 + 1) << 40,
            };
            let opts =
                ClientOptions { timeout: spec.op_timeout, connect_timeout: Duration::from_millis(500), ring: false };
            let mut home = if reader { w - spec.clients } else { w % addrs.len() };
            let mut records = Vec::new();
            let mut client = Client::new(&addrs[home].to_string(), opts.clone()).ok();
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = &client else { break };
                let (key, op) = match chooser.next() {
                    (key, _) if reader => (key, Op::Get),
                    next => next,
                };
                let r = perform(c, w as u32, key, op, start).await;
                chooser.saw(&r);
                let failed = !matches!(r.outcome, Outcome::Ok { .. });
                records.push(r);
                if failed && !reader {
                    home = (home + 1) % addrs.len();
                    client = Client::new(&addrs[home].to_string(), opts.clone()).ok();
                }
            }
            records
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.map_err(|e| format!("a client task failed: {e}"))?);
    }
    Ok(all)
}
