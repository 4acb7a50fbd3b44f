//! What a run must have done to mean anything. A history in which no fault
//! was injected, or every write was refused, or the final reads never
//! happened is trivially linearizable: without these floors a server that
//! answers `UNAVAILABLE` to everything would pass.
//!
//! Per key the floor is a warning, not a failure: keys whose writes stalled
//! while its reads went on are named in the report. (Pauses and mixed
//! faults show such stalls today, writes failing for seconds with a
//! majority up: a liveness problem to find, not a linearizability one, and
//! a failure here would make every such run fail.)

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Outcome, Record, Status};
use crate::nemesis::FaultEvent;
use crate::workload::KeyName;

/// A key needs this many operations before its writes are held to the
/// floor: the last generation of hot keys may have had only a few.
pub const MIN_OPS_FOR_FLOOR: usize = 50;
/// Of a key's operations, at least one in this many must be an
/// acknowledged write (a write answered `SUCCESS`). The scenarios' runs
/// acknowledge about one in six; a group that refused writes for most of
/// the run falls far below.
pub const OPS_PER_ACKED_WRITE: usize = 50;

/// What the floors found: violations (the run fails) and warnings.
#[derive(Debug, Default, PartialEq)]
pub struct Floors {
    pub violations: Vec<String>,
    pub warnings: Vec<String>,
}

/// The floors. `records` is the workload's history without the final
/// reads; `final_reads` those reads; `faults` what the nemesis did.
pub fn check(faults: &[FaultEvent], records: &[Record], final_reads: &[Record]) -> Floors {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    if faults.is_empty() {
        out.push("no fault was injected: a run without faults proves nothing about them".to_string());
    }
    let keys = per_key(records);
    let (ops, acked) = keys.values().fold((0, 0), |(o, a), (ko, ka)| (o + ko, a + ka));
    let floor = (ops / OPS_PER_ACKED_WRITE).max(1);
    if acked < floor {
        out.push(format!(
            "{acked} acknowledged writes in {ops} operations, fewer than the floor of {floor} (1 in {OPS_PER_ACKED_WRITE}): the run did not exercise the writes"
        ));
    }
    for (key, (ops, acked)) in keys {
        let floor = (ops / OPS_PER_ACKED_WRITE).max(1);
        if ops >= MIN_OPS_FOR_FLOOR && acked < floor {
            warnings.push(format!(
                "key {}: {acked} acknowledged writes in {ops} operations, under 1 in {OPS_PER_ACKED_WRITE}: its writes stalled while its reads went on",
                KeyName(key)
            ));
        }
    }
    let read: BTreeSet<u32> = final_reads.iter().map(|r| r.key).collect();
    let used: BTreeSet<u32> = records.iter().map(|r| r.key).collect();
    let missing: Vec<String> = used.difference(&read).map(|&k| KeyName(k).to_string()).collect();
    if !missing.is_empty() {
        out.push(format!(
            "no final read of {} key(s) ({}): a lost acknowledged write there could not be seen",
            missing.len(),
            missing.join(", ")
        ));
    }
    Floors { violations: out, warnings }
}

/// Per key: its operations, and how many of them were acknowledged writes.
fn per_key(records: &[Record]) -> BTreeMap<u32, (usize, usize)> {
    let mut keys: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for r in records {
        let e = keys.entry(r.key).or_default();
        e.0 += 1;
        e.1 += usize::from(is_acked_write(r));
    }
    keys
}

fn is_acked_write(r: &Record) -> bool {
    r.op.is_write() && matches!(r.outcome, Outcome::Ok { status: Status::Success, .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;
    use crate::nemesis::FaultKind;

    fn record(key: u32, op: Op, status: Option<Status>) -> Record {
        let outcome = match status {
            Some(status) => Outcome::Ok { status, value: None },
            None => Outcome::Indeterminate { why: "deadline".into() },
        };
        Record { client: 0, key, op, invoke_ns: 0, return_ns: 1, outcome }
    }

    fn fault() -> FaultEvent {
        FaultEvent {
            kind: FaultKind::Kill,
            nodes: vec![0],
            on_leader: true,
            start_ns: 0,
            end_ns: 1,
            repair: "restart".into(),
        }
    }

    /// `n` operations on `key`, `acked` of them acknowledged writes, the
    /// rest reads.
    fn key_ops(key: u32, n: usize, acked: usize) -> Vec<Record> {
        (0..n)
            .map(|i| match i < acked {
                true => record(key, Op::Put { data: i as u64 }, Some(Status::Success)),
                false => record(key, Op::Get, Some(Status::Success)),
            })
            .collect()
    }

    fn final_read(key: u32) -> Record {
        record(key, Op::Get, Some(Status::Success))
    }

    #[test]
    fn a_run_with_faults_writes_and_final_reads_passes() {
        let records = key_ops(1, 500, 10);
        assert_eq!(check(&[fault()], &records, &[final_read(1)]), Floors::default());
    }

    #[test]
    fn no_fault_fails() {
        let v = check(&[], &key_ops(1, 500, 100), &[final_read(1)]).violations;
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("no fault was injected"), "{v:?}");
    }

    #[test]
    fn too_few_acknowledged_writes_fail_the_run_and_refused_ones_do_not_count() {
        let mut records = key_ops(1, 500, 9);
        // Refused and unanswered writes are not acknowledged.
        records.push(record(1, Op::TestAndSet { version: 1, data: 1 }, Some(Status::ErrorWv)));
        records.push(record(1, Op::Set { data: 2 }, None));
        let f = check(&[fault()], &records, &[final_read(1)]);
        assert_eq!(f.violations.len(), 1, "{f:?}");
        assert!(f.violations[0].contains("9 acknowledged writes in 502 operations"), "{f:?}");
        assert!(f.warnings[0].contains("key 1: 9 acknowledged writes in 502 operations"), "{f:?}");
    }

    #[test]
    fn a_key_whose_writes_stalled_is_a_warning() {
        let mut records = key_ops(1, 500, 100);
        records.extend(key_ops(2, 500, 0));
        let f = check(&[fault()], &records, &[final_read(1), final_read(2)]);
        assert!(f.violations.is_empty(), "{f:?}");
        assert_eq!(f.warnings.len(), 1, "{f:?}");
        assert!(f.warnings[0].contains("key 2: 0 acknowledged writes in 500 operations"), "{f:?}");
        // A key with few operations is not held to it.
        let mut records = key_ops(1, 500, 100);
        records.extend(key_ops(2, MIN_OPS_FOR_FLOOR - 1, 0));
        assert!(check(&[fault()], &records, &[final_read(1), final_read(2)]).warnings.is_empty());
    }

    #[test]
    fn a_key_without_its_final_read_fails() {
        let mut records = key_ops(1, 100, 10);
        records.extend(key_ops(2, 100, 10));
        let v = check(&[fault()], &records, &[final_read(1)]).violations;
        assert_eq!(v, vec!["no final read of 1 key(s) (2): a lost acknowledged write there could not be seen"]);
        let v = check(&[fault()], &records, &[]).violations;
        assert!(v[0].contains("no final read of 2 key(s) (1, 2)"), "{v:?}");
    }
}
