//! A small failing sub-history for a key that is not linearizable, so that
//! a person can see the violation rather than search thousands of lines.
//!
//! First the shortest failing prefix: cut the history at a return time;
//! operations invoked before the cut and answered after it become pending
//! (a write may or may not have happened yet, a read is dropped). Every
//! prefix of a linearizable history is linearizable, so failing is
//! monotonic in the cut and a binary search finds the first failing one;
//! the operation returning there is the culprit. Then observations (reads
//! and writes answered as not applied) are dropped, in chunks that halve
//! (delta debugging), while the rest still fails: dropping an observation only removes constraints, so
//! what remains fails for the reason the full history does. Writes that
//! took effect are kept: dropping one could fail the rest spuriously.

use std::time::Instant;

use super::search::{search, Found};
use super::Operation;
use crate::history::{Outcome, Status};

/// The sub-history and the operation that could not be linearized.
pub struct Witness {
    pub ops: Vec<Operation>,
    pub culprit: Option<Operation>,
}

fn fails(ops: &[Operation], deadline: Instant) -> bool {
    search(ops, deadline).found == Found::NotLinearizable
}

/// The history cut just after time `t`.
fn prefix(ops: &[Operation], t: u64) -> Vec<Operation> {
    ops.iter()
        .filter(|o| o.call <= t)
        .filter_map(|o| match o.ret {
            Some(r) if r > t && !o.op.is_write() => None,
            Some(r) if r > t => Some(Operation {
                ret: None,
                outcome: Outcome::Indeterminate { why: "pending at the cut".into() },
                ..o.clone()
            }),
            _ => Some(o.clone()),
        })
        .collect()
}

/// An answered operation that changed nothing: it only observes.
fn is_observation(o: &Operation) -> bool {
    matches!(o.outcome, Outcome::Ok { status, .. } if status != Status::Success || !o.op.is_write())
}

pub fn shrink(ops: &[Operation], deadline: Instant) -> Witness {
    let mut returns: Vec<u64> = ops.iter().filter_map(|o| o.ret).collect();
    returns.sort_unstable();
    returns.dedup();
    // Smallest index whose prefix fails; the whole history fails.
    let (mut lo, mut hi) = (0usize, returns.len().saturating_sub(1));
    while lo < hi && Instant::now() < deadline {
        let mid = (lo + hi) / 2;
        if fails(&prefix(ops, returns[mid]), deadline) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let Some(&cut) = returns.get(hi) else { return Witness { ops: ops.to_vec(), culprit: None } };
    let culprit = ops.iter().find(|o| o.ret == Some(cut)).cloned();
    let mut kept = prefix(ops, cut);
    // Delta debugging over the observations: try dropping them in chunks,
    // all at once first (often enough: a stale read needs only the writes
    // around it), halving the chunk when a drop would let the rest pass.
    let is_culprit = |o: &Operation| culprit.as_ref().is_some_and(|c| c.record == o.record);
    let mut chunk = kept.iter().filter(|o| is_observation(o) && !is_culprit(o)).count();
    while chunk > 0 && Instant::now() < deadline {
        let candidates: Vec<usize> =
            kept.iter().filter(|o| is_observation(o) && !is_culprit(o)).map(|o| o.record).collect();
        for group in candidates.chunks(chunk).rev() {
            if Instant::now() >= deadline {
                break;
            }
            let without: Vec<Operation> = kept.iter().filter(|o| !group.contains(&o.record)).cloned().collect();
            if fails(&without, deadline) {
                kept = without;
            }
        }
        chunk /= 2;
    }
    Witness { ops: kept, culprit }
}
