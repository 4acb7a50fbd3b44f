//! The workload: `clients` concurrent closed-loop clients issuing random
//! get, getAt, set, put, testAndSet, del and delVersion on a few hot keys
//! at a time, so that operations collide, each recorded with its times and
//! outcome. A getAt mostly asks for a version likely still kept, sometimes
//! for one likely dropped (the servers keep `model::MAX_VERSIONS`) or not
//! yet written, so that every answer of the table shows up.
//!
//! Keys are independent over time, as in Jepsen's independent workloads:
//! each of the `keys` hot slots hands out a bounded number of operations
//! (`ops_per_key`, readers' included) on one key, then moves to a fresh
//! key, so every key's history is short and checked on its own, however
//! long the run. Beside them, a handful of long-lived keys are used from
//! the start to the end at a low rate (`long_ops` operations each, spread
//! over the run), so that data written before many faults is read after
//! them; and at the end every key, retired ones included, is read back.
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

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use num_bigint::BigInt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringkv_client::{Client, ClientError, ClientOptions, Outcome as ClientOutcome, Reply};

use crate::history::{Op, Outcome, Record, Status, Val};
use crate::model::MAX_VERSIONS;

/// What the clients do.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub clients: usize,
    /// Hot keys in use at once; every client works on all of them.
    pub keys: u32,
    /// Operations on one hot key (by any client) before a fresh key takes
    /// its place.
    pub ops_per_key: u64,
    /// Long-lived keys, used from the start of the run to its end.
    pub long_keys: u32,
    /// Operations on each long-lived key over the whole run.
    pub long_ops: u64,
    /// How long the clients run (the long-lived keys' operations are
    /// spread over it).
    pub duration: Duration,
    /// Deadline of one operation, retries included.
    pub op_timeout: Duration,
    pub seed: u64,
}

/// Key ids from here up are long-lived keys (`L0`, `L1`, ...); below, hot
/// key `generation × slots + slot`.
pub const LONG_LIVED: u32 = 1 << 31;

/// The store key the harness uses for its key `k` (away from 0, which
/// readiness probes read).
pub fn store_key(k: u32) -> BigInt {
    BigInt::from(1000 + i64::from(k))
}

/// A key id as the report shows it: `L<i>` for a long-lived key, the
/// number for a hot one.
pub struct KeyName(pub u32);

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.checked_sub(LONG_LIVED) {
            Some(i) => write!(f, "L{i}"),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Which keys the next operations go to, shared by every client: each hot
/// slot counts the operations it hands out and moves to a fresh key every
/// `ops_per_key`; a long-lived key gets an operation whenever the run's
/// elapsed share of `long_ops` is not yet handed out, but never more than
/// one operation in `LONG_SHARE` (a slow build must not spend its
/// operations there).
struct Keys {
    slots: u32,
    ops_per_key: u64,
    long_keys: u32,
    long_total: u64,
    duration: Duration,
    handed: Vec<AtomicU64>,
    long_handed: AtomicU64,
    /// Every operation handed out, hot or long-lived.
    all_handed: AtomicU64,
    /// The last version seen on each long-lived key, by any client (each
    /// client sees too few of its operations to keep its own).
    long_seen: Vec<AtomicI64>,
}

/// At most one operation in this many goes to a long-lived key.
const LONG_SHARE: u64 = 20;

/// Where the next operation goes.
#[derive(Clone, Copy)]
enum Target {
    Hot { slot: u32, key: u32 },
    Long { index: u32, key: u32 },
}

impl Keys {
    fn new(spec: &WorkloadSpec) -> Keys {
        let slots = spec.keys.max(1);
        Keys {
            slots,
            ops_per_key: spec.ops_per_key.max(1),
            long_keys: spec.long_keys,
            long_total: spec.long_ops * u64::from(spec.long_keys),
            duration: spec.duration,
            handed: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            long_handed: AtomicU64::new(0),
            all_handed: AtomicU64::new(0),
            long_seen: (0..spec.long_keys).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    /// A long-lived key if one is due `elapsed` into the run, else the
    /// current key of hot slot `slot`.
    fn take(&self, slot: u32, elapsed: Duration) -> Target {
        self.all_handed.fetch_add(1, Ordering::Relaxed);
        if let Some(index) = self.long_due(elapsed) {
            return Target::Long { index, key: LONG_LIVED + index };
        }
        let n = self.handed[slot as usize].fetch_add(1, Ordering::Relaxed);
        let generation = n / self.ops_per_key;
        Target::Hot {
            slot,
            key: (generation * u64::from(self.slots) + u64::from(slot)).min(LONG_LIVED as u64 - 1) as u32,
        }
    }

    fn long_due(&self, elapsed: Duration) -> Option<u32> {
        if self.long_keys == 0 {
            return None;
        }
        let share = elapsed.as_secs_f64() / self.duration.as_secs_f64().max(1e-3);
        let due = ((self.long_total as f64 * share) as u64)
            .min(self.long_total)
            .min(self.all_handed.load(Ordering::Relaxed) / LONG_SHARE);
        let mut n = self.long_handed.load(Ordering::Relaxed);
        while n < due {
            match self.long_handed.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some((n % u64::from(self.long_keys)) as u32),
                Err(now) => n = now,
            }
        }
        None
    }
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
        Op::Put { data } => client.put(&k, data as i64, data.to_string()).await,
        Op::GetAt { version } => client.get_at(&k, version).await,
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
    /// Per hot slot: the key it was on and the last version seen there;
    /// testAndSet and delVersion mostly use it, so that they often succeed.
    seen: Vec<(u32, i64)>,
    next_data: u64,
}

impl Chooser {
    fn next(&mut self, keys: &Keys, elapsed: Duration) -> (Target, Op) {
        let slot = self.rng.random_range(0..keys.slots);
        let target = keys.take(slot, elapsed);
        self.next_data += 1;
        let data = self.next_data;
        let op = match target {
            Target::Hot { slot, key } => {
                let seen = &mut self.seen[slot as usize];
                if seen.0 != key {
                    // A fresh key starts absent.
                    *seen = (key, 0);
                }
                let seen = seen.1;
                let version = self.version(seen);
                match self.rng.random_range(0..100) {
                    0..30 => Op::Get,
                    30..42 => Op::GetAt { version: self.past_version(seen) },
                    42..52 => Op::Set { data },
                    52..62 => Op::Put { data },
                    62..84 => Op::TestAndSet { version, data },
                    84..88 => Op::Del,
                    _ => Op::DelVersion { version },
                }
            }
            // Mostly kept present, so that what is read at the end was
            // written long before.
            Target::Long { index, .. } => {
                let seen = keys.long_seen[index as usize].load(Ordering::Relaxed);
                let version = self.version(seen);
                match self.rng.random_range(0..100) {
                    0..35 => Op::Get,
                    35..50 => Op::GetAt { version: self.past_version(seen) },
                    50..58 => Op::Set { data },
                    58..68 => Op::Put { data },
                    68..95 => Op::TestAndSet { version, data },
                    _ => Op::DelVersion { version },
                }
            }
        };
        (target, op)
    }

    fn version(&mut self, seen: i64) -> i64 {
        if self.rng.random_bool(0.8) {
            seen.max(1)
        } else {
            self.rng.random_range(1..=seen + 2)
        }
    }

    /// A version for getAt, from `seen`, the last one seen: mostly one
    /// likely kept (the servers keep `MAX_VERSIONS`), sometimes one likely
    /// dropped already or one not written yet.
    fn past_version(&mut self, seen: i64) -> i64 {
        let kept = i64::from(MAX_VERSIONS);
        let back = match self.rng.random_range(0..100) {
            0..75 => self.rng.random_range(0..kept),
            75..90 => self.rng.random_range(kept..2 * kept),
            _ => -self.rng.random_range(1..=2),
        };
        (seen - back).max(1)
    }

    fn saw(&mut self, keys: &Keys, target: Target, r: &Record) {
        let Outcome::Ok { status, value } = &r.outcome else { return };
        let seen = match target {
            Target::Hot { slot, key } if self.seen[slot as usize].0 == key => &mut self.seen[slot as usize].1,
            Target::Hot { .. } => return,
            Target::Long { index, .. } => {
                let long = &keys.long_seen[index as usize];
                let v = seen_after(long.load(Ordering::Relaxed), r.op, *status, *value);
                long.store(v, Ordering::Relaxed);
                return;
            }
        };
        *seen = seen_after(*seen, r.op, *status, *value);
    }
}

/// The key's version after an answer `status, value` to `op`, given that
/// the last one seen was `seen` (0: absent).
fn seen_after(seen: i64, op: Op, status: Status, value: Option<Val>) -> i64 {
    match (op, status, value) {
        (Op::TestAndSet { version, .. }, Status::Success, _) => version + 1,
        (Op::Set { .. }, Status::Success, _) => 1,
        // The value it replaced, if any.
        (Op::Put { .. }, Status::Success, replaced) => replaced.map_or(1, |v| v.version + 1),
        (Op::Del | Op::DelVersion { .. }, Status::Success, _) => 0,
        // A kept version, maybe an older one: the key is at least there.
        (Op::GetAt { .. }, Status::Success, Some(v)) => seen.max(v.version),
        (_, _, Some(v)) => v.version,
        _ => 0,
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
    let keys = Arc::new(Keys::new(spec));
    for w in 0..spec.clients + addrs.len() {
        let reader = w >= spec.clients;
        let addrs = addrs.to_vec();
        let stop = stop.clone();
        let spec = spec.clone();
        let keys = keys.clone();
        tasks.spawn(async move {
            let mut chooser = Chooser {
                rng: StdRng::seed_from_u64(spec.seed.wrapping_mul(1_000_003).wrapping_add(w as u64)),
                seen: vec![(u32::MAX, 0); keys.slots as usize],
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
                let (target, op) = match chooser.next(&keys, start.elapsed()) {
                    (target, _) if reader => (target, Op::Get),
                    next => next,
                };
                let key = match target {
                    Target::Hot { key, .. } | Target::Long { key, .. } => key,
                };
                let r = perform(c, w as u32, key, op, start).await;
                chooser.saw(&keys, target, &r);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(slots: u32, ops_per_key: u64, long_keys: u32, long_ops: u64) -> Keys {
        Keys::new(&WorkloadSpec {
            clients: 1,
            keys: slots,
            ops_per_key,
            long_keys,
            long_ops,
            duration: Duration::from_secs(100),
            op_timeout: Duration::from_secs(1),
            seed: 1,
        })
    }

    fn key(t: Target) -> u32 {
        match t {
            Target::Hot { key, .. } | Target::Long { key, .. } => key,
        }
    }

    #[test]
    fn the_version_seen_follows_the_answers() {
        let v = |version, data| Some(Val { version, data });
        let put = Op::Put { data: 9 };
        assert_eq!(seen_after(0, put, Status::Success, None), 1, "a put on an absent key inserts");
        assert_eq!(seen_after(3, put, Status::Success, v(6, 1)), 7, "one more than the value replaced");
        let at = Op::GetAt { version: 2 };
        assert_eq!(seen_after(5, at, Status::Success, v(2, 1)), 5, "an older kept version says nothing new");
        assert_eq!(seen_after(1, at, Status::Success, v(2, 1)), 2);
        assert_eq!(seen_after(5, at, Status::ErrorWv, v(8, 1)), 8, "the current value");
        assert_eq!(seen_after(5, at, Status::ErrorNe, None), 0);
        assert_eq!(seen_after(5, Op::TestAndSet { version: 5, data: 1 }, Status::Success, v(5, 1)), 6);
        assert_eq!(seen_after(5, Op::Del, Status::Success, v(5, 1)), 0);
        assert_eq!(seen_after(0, Op::Set { data: 1 }, Status::Error, v(4, 1)), 4);
    }

    #[test]
    fn get_at_asks_mostly_for_kept_versions_and_sometimes_dropped_or_future_ones() {
        let mut c = Chooser { rng: StdRng::seed_from_u64(3), seen: Vec::new(), next_data: 0 };
        let seen = 20;
        let kept = 20 - i64::from(MAX_VERSIONS) + 1..=20;
        let (mut within, mut dropped, mut future) = (0, 0, 0);
        for _ in 0..1000 {
            match c.past_version(seen) {
                v if kept.contains(&v) => within += 1,
                v if v < *kept.start() => dropped += 1,
                _ => future += 1,
            }
        }
        assert!(within > 600 && dropped > 80 && future > 40, "{within} kept, {dropped} dropped, {future} future");
        assert!((0..200).all(|_| c.past_version(0) >= 1 && c.past_version(2) >= 1), "never below 1");
    }

    #[test]
    fn a_hot_slot_moves_to_a_fresh_key_after_its_operations() {
        let k = keys(3, 4, 0, 0);
        let slot1: Vec<u32> = (0..9).map(|_| key(k.take(1, Duration::ZERO))).collect();
        assert_eq!(slot1, [1, 1, 1, 1, 4, 4, 4, 4, 7]);
        let slot0: Vec<u32> = (0..5).map(|_| key(k.take(0, Duration::ZERO))).collect();
        assert_eq!(slot0, [0, 0, 0, 0, 3], "slots never share a key");
    }

    #[test]
    fn long_lived_keys_get_their_share_spread_over_the_run() {
        let k = keys(2, 1000, 2, 10);
        let long = |k: &Keys, at: u64, tries: usize| {
            (0..tries)
                .map(|_| k.take(0, Duration::from_secs(at)))
                .filter_map(|t| match t {
                    Target::Long { index, key } => Some((index, key)),
                    Target::Hot { .. } => None,
                })
                .collect::<Vec<_>>()
        };
        assert!(long(&k, 0, 400).is_empty(), "nothing due at the start");
        let half = long(&k, 50, 400);
        assert_eq!(half.len(), 10, "half of 2 × 10 at half time");
        assert_eq!(half[..2], [(0, LONG_LIVED), (1, LONG_LIVED + 1)], "in turn");
        assert_eq!(long(&k, 100, 400).len(), 10);
        assert!(long(&k, 500, 400).is_empty(), "never more than long_ops each");
        // When operations are few, at most one in LONG_SHARE.
        let slow = keys(2, 1000, 2, 1000);
        assert_eq!(long(&slow, 100, 200).len(), 10);
        assert_eq!(KeyName(LONG_LIVED + 1).to_string(), "L1");
        assert_eq!(KeyName(12).to_string(), "12");
    }
}
