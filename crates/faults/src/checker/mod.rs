//! Linearizability of a history, key by key (the store has no multi-key
//! operations, so a history is linearizable iff each key's is).
//!
//! `search` decides one key; this module prepares its operations (a
//! refused operation never happened and is left out; so is a read that got
//! no answer, which has no effect), gives each key a share of the time
//! budget, and for a key that is not linearizable finds a small failing
//! sub-history to show (`shrink`). Running out of time is a failure of the
//! run, never a pass.

mod search;
mod shrink;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{Op, Outcome, Record};
pub use search::Found;

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

/// The verdict on one key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyVerdict {
    pub key: u32,
    /// Operations checked (after leaving out those without effect).
    pub ops: usize,
    pub verdict: Verdict,
    /// For a violation: a small failing sub-history, as record indices in
    /// invocation order, the last-returning offender marked.
    pub witness: Vec<usize>,
    pub culprit: Option<usize>,
    /// Time the search took (not counting the witness's).
    pub millis: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The time budget ran out before a verdict: a failure.
    Unknown,
}

/// The operations of one key that the search needs.
pub fn operations(records: &[Record], key: u32) -> Vec<Operation> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key == key)
        .filter_map(|(i, r)| {
            let ret = match &r.outcome {
                Outcome::Ok { .. } => Some(r.return_ns),
                Outcome::Fail { .. } => return None,
                Outcome::Indeterminate { .. } if !r.op.is_write() => return None,
                Outcome::Indeterminate { .. } => None,
            };
            Some(Operation { op: r.op, outcome: r.outcome.clone(), call: r.invoke_ns, ret, record: i })
        })
        .collect()
}

/// Checks one key's operations before `deadline`.
pub fn check_ops(ops: &[Operation], deadline: Instant) -> Found {
    search::search(ops, deadline)
}

/// Checks every key of `records`, within `budget` in all.
pub fn check(records: &[Record], budget: Duration) -> Vec<KeyVerdict> {
    let keys: BTreeMap<u32, usize> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.key).or_default() += 1;
        m
    });
    let total = keys.values().sum::<usize>().max(1);
    let start = Instant::now();
    let mut verdicts = Vec::new();
    let mut through = 0;
    for (&key, &count) in &keys {
        // Each key may use its share by size plus whatever earlier keys left.
        through += count;
        let deadline = start + budget.mul_f64(through as f64 / total as f64);
        verdicts.push(check_key(records, key, deadline));
    }
    verdicts
}

fn check_key(records: &[Record], key: u32, deadline: Instant) -> KeyVerdict {
    let started = Instant::now();
    let ops = operations(records, key);
    let found = check_ops(&ops, deadline);
    let millis = started.elapsed().as_millis() as u64;
    let verdict = match found {
        Found::Linearizable => Verdict::Linearizable,
        Found::NotLinearizable => Verdict::NotLinearizable,
        Found::BudgetExceeded => Verdict::Unknown,
    };
    let (witness, culprit) = if verdict == Verdict::NotLinearizable {
        // A few seconds to make it readable; the full history is on disk.
        let w = shrink::shrink(&ops, Instant::now() + Duration::from_secs(5));
        (w.ops.iter().map(|o| o.record).collect(), w.culprit.map(|o| o.record))
    } else {
        (Vec::new(), None)
    };
    KeyVerdict { key, ops: ops.len(), verdict, witness, culprit, millis }
}
