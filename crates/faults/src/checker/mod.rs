//! Linearizability of a history, key by key (the store has no multi-key
//! operations, so a history is linearizable iff each key's is).
//!
//! `search` decides one key; this module prepares its operations (a
//! refused operation never happened and is left out; so is a read that got
//! no answer, which has no effect), checks the keys in parallel on every
//! core, each within a time budget of its own, and for a key that is not
//! linearizable finds a small failing sub-history to show (`shrink`).
//! Running out of time is a failure of the run, never a pass: the verdict
//! then says how far the search got.
//!
//! The workload keeps each key's history short (it moves to fresh keys
//! after a bounded number of operations), so what a key costs does not grow
//! with the length of the run; the per-key figures (operations, states
//! explored, time) show it.

mod search;
mod shrink;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{Op, Outcome, Record};
pub use search::{Found, Searched};

/// One operation as the search sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub op: Op,
    pub outcome: Outcome,
    /// Invocation time.
    pub call: u64,
    /// Return time; `None` for an indeterminate operation (it may take
    /// effect at any later time, or never).
    pub ret: Option<u64>,
    /// Index of the record it came from.
    pub record: usize,
}

/// The verdict on one key, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct KeyVerdict {
    pub key: u32,
    /// Operations checked (after leaving out those without effect).
    pub ops: usize,
    pub verdict: Verdict,
    /// Configurations (set of linearized operations, register state) the
    /// search explored: its cost, whatever the machine.
    pub states: u64,
    /// For an undecided key, how far the search got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// For a violation: a small failing sub-history, as record indices in
    /// invocation order, the last-returning offender marked.
    pub witness: Vec<usize>,
    pub culprit: Option<usize>,
    /// Time the search took (not counting the witness's).
    pub millis: u64,
}

/// How far the search on an undecided key got.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    /// The most answered operations it had linearized at once...
    pub linearized: usize,
    /// ... of these.
    pub answered: usize,
    /// At that point, the invocation time of the earliest answered
    /// operation still to place (nanoseconds since the run started).
    pub frontier_ns: Option<u64>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at most {} of {} answered operations linearized", self.linearized, self.answered)?;
        if let Some(t) = self.frontier_ns {
            write!(f, ", the history explained up to {:.3} s", t as f64 / 1e9)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The time budget ran out before a verdict: a failure.
    Unknown,
}

/// How much checking a history may cost.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Time the search may take on one key.
    pub per_key: Duration,
    /// Keys checked at once (at least 1).
    pub threads: usize,
}

impl Budget {
    /// `per_key` on every core of the machine.
    pub fn per_key(per_key: Duration) -> Budget {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Budget { per_key, threads }
    }
}

/// The operations of one key that the search needs.
pub fn operations(records: &[Record], key: u32) -> Vec<Operation> {
    by_key(records).remove(&key).unwrap_or_default()
}

/// The search's operations of every key, in one pass over the records
/// (a key whose records all had no effect has none).
fn by_key(records: &[Record]) -> BTreeMap<u32, Vec<Operation>> {
    let mut keys: BTreeMap<u32, Vec<Operation>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let ops = keys.entry(r.key).or_default();
        let ret = match &r.outcome {
            Outcome::Ok { .. } => Some(r.return_ns),
            Outcome::Fail { .. } => continue,
            Outcome::Indeterminate { .. } if !r.op.is_write() => continue,
            Outcome::Indeterminate { .. } => None,
        };
        let o = Operation { op: r.op, outcome: r.outcome.clone(), call: r.invoke_ns, ret, record: i };
        ops.push(o);
    }
    keys
}

/// Checks one key's operations before `deadline`.
pub fn check_ops(ops: &[Operation], deadline: Instant) -> Found {
    search::search(ops, deadline).found
}

/// Checks every key of `records`, `budget.threads` keys at a time, the
/// largest first (so that one long key does not start last); the verdicts
/// come in key order. A key whose records all had no effect is still
/// listed, with no operations.
pub fn check(records: &[Record], budget: Budget) -> Vec<KeyVerdict> {
    let keys: Vec<(u32, Vec<Operation>)> = by_key(records).into_iter().collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(keys[i].1.len()));
    let next = AtomicUsize::new(0);
    let verdicts = Mutex::new(Vec::with_capacity(keys.len()));
    std::thread::scope(|s| {
        for _ in 0..budget.threads.clamp(1, keys.len().max(1)) {
            s.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (key, ops) = &keys[i];
                    let v = check_key(*key, ops, budget.per_key);
                    verdicts.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                }
            });
        }
    });
    let mut verdicts = verdicts.into_inner().unwrap_or_else(|e| e.into_inner());
    verdicts.sort_by_key(|v| v.key);
    verdicts
}

fn check_key(key: u32, ops: &[Operation], budget: Duration) -> KeyVerdict {
    let started = Instant::now();
    let searched = search::search(ops, started + budget);
    let millis = started.elapsed().as_millis() as u64;
    let verdict = match searched.found {
        Found::Linearizable => Verdict::Linearizable,
        Found::NotLinearizable => Verdict::NotLinearizable,
        Found::BudgetExceeded => Verdict::Unknown,
    };
    let progress = (verdict == Verdict::Unknown).then_some(Progress {
        linearized: searched.deepest,
        answered: searched.answered,
        frontier_ns: searched.frontier_ns,
    });
    let (witness, culprit) = if verdict == Verdict::NotLinearizable {
        // A few seconds to make it readable; the full history is on disk.
        let w = shrink::shrink(ops, Instant::now() + Duration::from_secs(5));
        (w.ops.iter().map(|o| o.record).collect(), w.culprit.map(|o| o.record))
    } else {
        (Vec::new(), None)
    };
    KeyVerdict { key, ops: ops.len(), verdict, states: searched.states, progress, witness, culprit, millis }
}
