//! The checker against histories whose verdict is known, and against a
//! brute-force checker on small random histories.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{check, check_ops, operations, Budget, Found, Operation, Verdict};
use crate::history::{Op, Outcome, Record, Status, Val};
use crate::model;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn val(version: i64, data: u64) -> Option<Val> {
    Some(Val { version, data })
}

fn ok(status: Status, value: Option<Val>) -> Outcome {
    Outcome::Ok { status, value }
}

fn lost() -> Outcome {
    Outcome::Indeterminate { why: "timeout".into() }
}

/// An operation from `call` to `ret` (`None`: indeterminate).
fn op(op: Op, outcome: Outcome, call: u64, ret: Option<u64>) -> Operation {
    Operation { op, outcome, call, ret, record: 0 }
}

fn verdict(ops: &[Operation]) -> Found {
    check_ops(ops, deadline())
}

use Status::*;

#[test]
fn sequential_history_is_linearizable() {
    let h = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::Get, ok(Success, val(1, 1)), 2, Some(3)),
        op(Op::TestAndSet { version: 1, data: 2 }, ok(Success, val(1, 1)), 4, Some(5)),
        op(Op::Get, ok(Success, val(2, 2)), 6, Some(7)),
        op(Op::DelVersion { version: 2 }, ok(Success, val(2, 2)), 8, Some(9)),
        op(Op::Get, ok(Error, None), 10, Some(11)),
    ];
    assert_eq!(verdict(&h), Found::Linearizable);
}

#[test]
fn stale_read_is_caught() {
    // The write of v2 is acknowledged before the read starts; the read
    // still returns v1.
    let h = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::TestAndSet { version: 1, data: 2 }, ok(Success, val(1, 1)), 2, Some(3)),
        op(Op::Get, ok(Success, val(1, 1)), 4, Some(5)),
    ];
    assert_eq!(verdict(&h), Found::NotLinearizable);
    // Overlapping the write instead, the same read is fine.
    let h = [h[0].clone(), h[1].clone(), op(Op::Get, ok(Success, val(1, 1)), 2, Some(5))];
    assert_eq!(verdict(&h), Found::Linearizable);
}

#[test]
fn lost_update_is_caught() {
    // Two clients both succeed a testAndSet from version 1: only one can.
    let h = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::TestAndSet { version: 1, data: 2 }, ok(Success, val(1, 1)), 2, Some(5)),
        op(Op::TestAndSet { version: 1, data: 3 }, ok(Success, val(1, 1)), 3, Some(6)),
    ];
    assert_eq!(verdict(&h), Found::NotLinearizable);
    // An acknowledged write then missing: the final read sees the old value.
    let h = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::Del, ok(Success, val(1, 1)), 2, Some(3)),
        op(Op::Set { data: 4 }, ok(Success, None), 4, Some(5)),
        op(Op::Get, ok(Error, None), 6, Some(7)),
    ];
    assert_eq!(verdict(&h), Found::NotLinearizable);
}

#[test]
fn double_applied_test_and_set_is_caught() {
    // One testAndSet (retried by its client) applied twice: the version
    // moves by two.
    let h = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::TestAndSet { version: 1, data: 2 }, ok(Success, val(1, 1)), 2, Some(3)),
        op(Op::Get, ok(Success, val(3, 2)), 4, Some(5)),
    ];
    assert_eq!(verdict(&h), Found::NotLinearizable);
}

#[test]
fn indeterminate_writes_may_or_may_not_take_effect() {
    let set = op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1));
    let tas = op(Op::TestAndSet { version: 1, data: 2 }, lost(), 2, None);
    // It took effect, late: long after it gave up.
    let seen = [
        set.clone(),
        tas.clone(),
        op(Op::Get, ok(Success, val(1, 1)), 10, Some(11)),
        op(Op::Get, ok(Success, val(2, 2)), 20, Some(21)),
    ];
    assert_eq!(verdict(&seen), Found::Linearizable);
    // It never took effect.
    let never = [set.clone(), tas.clone(), op(Op::Get, ok(Success, val(1, 1)), 20, Some(21))];
    assert_eq!(verdict(&never), Found::Linearizable);
    // But not before it was invoked.
    let late = op(Op::TestAndSet { version: 1, data: 2 }, lost(), 3, None);
    let early = [set.clone(), op(Op::Get, ok(Success, val(2, 2)), 1, Some(2)), late];
    assert_eq!(verdict(&early), Found::NotLinearizable);
    // And only once: after it is seen, the old value cannot come back.
    let flicker = [
        set,
        tas,
        op(Op::Get, ok(Success, val(2, 2)), 10, Some(11)),
        op(Op::Get, ok(Success, val(1, 1)), 20, Some(21)),
    ];
    assert_eq!(verdict(&flicker), Found::NotLinearizable);
}

/// set v1, then puts of 2, 3, 4, 5 (versions 2 to 5), one after another:
/// the servers keep versions 2 to 5.
fn five_versions() -> Vec<Operation> {
    let mut h = vec![op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1))];
    for d in 2..=5u64 {
        let t = 10 * d;
        h.push(op(Op::Put { data: d }, ok(Success, val(d as i64 - 1, d - 1)), t, Some(t + 1)));
    }
    h
}

#[test]
fn puts_and_reads_at_a_version_are_linearizable_when_right() {
    let mut h = five_versions();
    h.extend([
        op(Op::GetAt { version: 5 }, ok(Success, val(5, 5)), 100, Some(101)),
        op(Op::GetAt { version: 2 }, ok(Success, val(2, 2)), 102, Some(103)),
        op(Op::GetAt { version: 1 }, ok(ErrorWv, val(5, 5)), 104, Some(105)),
        op(Op::GetAt { version: 9 }, ok(ErrorWv, val(5, 5)), 106, Some(107)),
        op(Op::Del, ok(Success, val(5, 5)), 108, Some(109)),
        op(Op::GetAt { version: 5 }, ok(ErrorNe, None), 110, Some(111)),
        op(Op::Put { data: 6 }, ok(Success, None), 112, Some(113)),
        op(Op::GetAt { version: 1 }, ok(Success, val(1, 6)), 114, Some(115)),
    ]);
    assert_eq!(verdict(&h), Found::Linearizable);
    // Concurrent puts: their answers (the value each replaced) order them;
    // a read at a version overlapping them sees one of theirs.
    let h = [
        op(Op::Put { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::Put { data: 2 }, ok(Success, val(3, 3)), 2, Some(9)),
        op(Op::Put { data: 3 }, ok(Success, val(2, 4)), 3, Some(8)),
        op(Op::Put { data: 4 }, ok(Success, val(1, 1)), 4, Some(7)),
        op(Op::GetAt { version: 3 }, ok(Success, val(3, 3)), 5, Some(10)),
        op(Op::GetAt { version: 1 }, ok(Success, val(1, 1)), 11, Some(12)),
        op(Op::Get, ok(Success, val(4, 2)), 13, Some(14)),
    ];
    assert_eq!(verdict(&h), Found::Linearizable);
    // An indeterminate put that took effect shows in the next one's answer.
    let h = [
        op(Op::Put { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::Put { data: 2 }, lost(), 2, None),
        op(Op::Put { data: 3 }, ok(Success, val(2, 2)), 10, Some(11)),
        op(Op::GetAt { version: 2 }, ok(Success, val(2, 2)), 12, Some(13)),
    ];
    assert_eq!(verdict(&h), Found::Linearizable);
}

#[test]
fn a_wrong_answer_at_a_version_is_caught() {
    let with = |last: Operation| {
        let mut h = five_versions();
        h.push(last);
        verdict(&h)
    };
    let at = |version, status, value| op(Op::GetAt { version }, ok(status, value), 100, Some(101));
    assert_eq!(with(at(3, Success, val(3, 3))), Found::Linearizable);
    // A value that was never at that version.
    assert_eq!(with(at(3, Success, val(3, 4))), Found::NotLinearizable);
    // A version beyond the kept window (dropped by the fifth), answered
    // as if kept; or one not written yet.
    assert_eq!(with(at(1, Success, val(1, 1))), Found::NotLinearizable);
    assert_eq!(with(at(6, Success, val(6, 5))), Found::NotLinearizable);
    // A kept version answered as dropped, or with a stale current value.
    assert_eq!(with(at(2, ErrorWv, val(5, 5))), Found::NotLinearizable);
    assert_eq!(with(at(1, ErrorWv, val(4, 4))), Found::NotLinearizable);
    // An existing key said to be absent.
    assert_eq!(with(at(5, ErrorNe, None)), Found::NotLinearizable);
    // After del and set, the old versions are gone.
    let mut h = five_versions();
    h.extend([
        op(Op::Del, ok(Success, val(5, 5)), 100, Some(101)),
        op(Op::Set { data: 7 }, ok(Success, None), 102, Some(103)),
        op(Op::GetAt { version: 1 }, ok(Success, val(1, 1)), 104, Some(105)),
    ]);
    assert_eq!(verdict(&h), Found::NotLinearizable);
    // A put that claims to have replaced nothing on an existing key.
    let h = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::Put { data: 2 }, ok(Success, None), 2, Some(3)),
    ];
    assert_eq!(verdict(&h), Found::NotLinearizable);
}

#[test]
fn a_violation_at_a_version_comes_with_a_small_witness() {
    let mut h = five_versions();
    for i in 0..30u64 {
        h.push(op(Op::GetAt { version: 4 }, ok(Success, val(4, 4)), 100 + 2 * i, Some(101 + 2 * i)));
    }
    // Version 2, still kept, read as another write's data.
    h.push(op(Op::GetAt { version: 2 }, ok(Success, val(2, 3)), 200, Some(201)));
    let records: Vec<Record> = h
        .iter()
        .map(|o| Record {
            client: 0,
            key: 5,
            op: o.op,
            invoke_ns: o.call,
            return_ns: o.ret.unwrap(),
            outcome: o.outcome.clone(),
        })
        .collect();
    let v = &check(&records, Budget::per_key(Duration::from_secs(10)))[0];
    assert_eq!(v.verdict, Verdict::NotLinearizable);
    assert_eq!(v.culprit, Some(h.len() - 1));
    assert_eq!(v.witness, vec![0, 1, 2, 3, 4, h.len() - 1], "the writes and the wrong read, not the right ones");
}

#[test]
fn a_read_of_a_value_never_written_is_caught() {
    let h = [op(Op::Get, ok(Success, val(1, 99)), 0, Some(1))];
    assert_eq!(verdict(&h), Found::NotLinearizable);
}

#[test]
fn budget_exceeded_is_not_a_pass() {
    let h = [op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1))];
    // The search looks at the clock every few thousand steps: give it a
    // history that needs more than that, and no time.
    let mut big = h.to_vec();
    for i in 0..5000u64 {
        big.push(op(Op::Get, ok(Success, val(1, 1)), 2 + i, Some(3 + i)));
    }
    assert_eq!(check_ops(&big, Instant::now()), Found::BudgetExceeded);
    let records: Vec<Record> = big
        .iter()
        .map(|o| Record {
            client: 0,
            key: 0,
            op: o.op,
            invoke_ns: o.call,
            return_ns: o.ret.unwrap_or(u64::MAX),
            outcome: o.outcome.clone(),
        })
        .collect();
    let undecided = &check(&records, Budget::per_key(Duration::ZERO))[0];
    assert_eq!(undecided.verdict, Verdict::Unknown);
    // It says how far it got.
    let progress = undecided.progress.expect("progress of an undecided key");
    assert_eq!(progress.answered, 5001);
    assert!(progress.linearized < progress.answered, "{progress:?}");
    assert!(undecided.states > 0);
}

#[test]
fn a_violation_comes_with_a_small_witness() {
    let mut records = vec![
        Record { client: 0, key: 3, op: Op::Set { data: 1 }, invoke_ns: 0, return_ns: 1, outcome: ok(Success, None) },
        Record {
            client: 1,
            key: 3,
            op: Op::TestAndSet { version: 1, data: 2 },
            invoke_ns: 2,
            return_ns: 3,
            outcome: ok(Success, val(1, 1)),
        },
    ];
    for i in 0..50 {
        records.push(Record {
            client: 2,
            key: 3,
            op: Op::Get,
            invoke_ns: 4 + 2 * i,
            return_ns: 5 + 2 * i,
            outcome: ok(Success, val(2, 2)),
        });
    }
    records.push(Record {
        client: 3,
        key: 3,
        op: Op::Get,
        invoke_ns: 200,
        return_ns: 201,
        outcome: ok(Success, val(1, 1)),
    });
    for i in 0..50 {
        records.push(Record {
            client: 2,
            key: 3,
            op: Op::Get,
            invoke_ns: 300 + 2 * i,
            return_ns: 301 + 2 * i,
            outcome: ok(Success, val(2, 2)),
        });
    }
    let v = &check(&records, Budget::per_key(Duration::from_secs(10)))[0];
    assert_eq!(v.verdict, Verdict::NotLinearizable);
    assert_eq!(v.culprit, Some(52));
    assert_eq!(v.witness, vec![0, 1, 52], "the two writes and the stale read");
}

/// Decides linearizability by trying every order (and every subset of the
/// indeterminate operations) that respects real time.
fn brute_force(ops: &[Operation]) -> bool {
    fn go(ops: &[Operation], done: &mut Vec<bool>, state: model::State) -> bool {
        if ops.iter().zip(done.iter()).all(|(o, d)| *d || o.ret.is_none()) {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            // Only an operation invoked before every pending one returned
            // can go next.
            let minimal = ops.iter().zip(done.iter()).all(|(o, d)| *d || o.ret.is_none_or(|r| r >= ops[i].call));
            if !minimal {
                continue;
            }
            if let Some(next) = model::step(state, ops[i].op, &ops[i].outcome) {
                done[i] = true;
                if go(ops, done, next) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], model::State::ABSENT)
}

/// A random history of a few clients on one key: executed on the model at
/// random points inside each operation's interval (so linearizable), a
/// share `lost` of the writes then made indeterminate, and with probability
/// one half one answer is replaced by a random one.
fn random_history(rng: &mut StdRng, lost_share: f64) -> Vec<Operation> {
    let n = rng.random_range(1..=8);
    let mut ops = Vec::new();
    let mut points = Vec::new();
    for i in 0..n {
        let call = rng.random_range(0..40u64);
        let ret = call + rng.random_range(1..20u64);
        let data = i as u64 + 1;
        let version = rng.random_range(1..=3);
        let o = match rng.random_range(0..7) {
            0 => Op::Get,
            1 => Op::Set { data },
            2 => Op::Del,
            3 => Op::DelVersion { version },
            4 => Op::Put { data },
            // Up to a version dropped, or never written.
            5 => Op::GetAt { version: rng.random_range(1..=7) },
            _ => Op::TestAndSet { version, data },
        };
        points.push((rng.random_range(call..ret), i));
        ops.push(op(o, lost(), call, Some(ret)));
    }
    points.sort_unstable();
    let mut state = model::State::ABSENT;
    for (_, i) in points {
        let (status, value, next) = model::apply(state, ops[i].op);
        ops[i].outcome = ok(status, value);
        state = next;
    }
    for o in ops.iter_mut() {
        if o.op.is_write() && rng.random_bool(lost_share) {
            o.ret = None;
            o.outcome = lost();
        }
    }
    if rng.random_bool(0.5) {
        let i = rng.random_range(0..ops.len());
        if ops[i].ret.is_some() {
            let status = [Success, Error, ErrorNe, ErrorWv][rng.random_range(0..4)];
            let value =
                rng.random_bool(0.7).then(|| Val { version: rng.random_range(1..=5), data: rng.random_range(1..=7) });
            ops[i].outcome = ok(status, value);
        }
    }
    ops
}

#[test]
fn agrees_with_brute_force_on_random_histories() {
    let mut rng = StdRng::seed_from_u64(6);
    let (mut yes, mut no) = (0, 0);
    for case in 0..20_000 {
        let h = random_history(&mut rng, 0.15);
        let expected = brute_force(&h);
        let found = verdict(&h);
        assert_eq!(found == Found::Linearizable, expected, "case {case}: {h:#?}");
        if expected {
            yes += 1
        } else {
            no += 1
        }
    }
    // Both kinds must be well represented for the comparison to mean much.
    assert!(yes > 3000 && no > 3000, "{yes} linearizable, {no} not");
}

#[test]
fn operations_leave_out_what_had_no_effect() {
    let records = vec![
        Record { client: 0, key: 1, op: Op::Get, invoke_ns: 0, return_ns: 1, outcome: lost() },
        Record {
            client: 0,
            key: 1,
            op: Op::Set { data: 1 },
            invoke_ns: 2,
            return_ns: 3,
            outcome: Outcome::Fail { why: "bad".into() },
        },
        Record { client: 0, key: 1, op: Op::Set { data: 2 }, invoke_ns: 4, return_ns: 5, outcome: lost() },
        Record { client: 0, key: 2, op: Op::Get, invoke_ns: 6, return_ns: 7, outcome: ok(Error, None) },
    ];
    let ops = operations(&records, 1);
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].record, ops[0].ret), (2, None));
}

/// One key as the workload makes it: `clients` closed-loop clients, each
/// operation taking effect at a random point of its interval (so the
/// history is linearizable), versions mostly the current one so that
/// writes succeed, and a share of writes indeterminate (taking effect or
/// not).
fn simulated_key(rng: &mut StdRng, n: usize, clients: usize, indeterminate: f64) -> Vec<Operation> {
    let mut free_at = vec![0u64; clients];
    let mut ops = Vec::with_capacity(n);
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        let c = (0..clients).min_by_key(|&c| free_at[c]).unwrap_or(0);
        let call = free_at[c] + rng.random_range(0..3u64);
        let ret = call + rng.random_range(1..40u64);
        free_at[c] = ret;
        let o = match rng.random_range(0..100) {
            0..30 => Op::Get,
            30..42 => Op::GetAt { version: 0 },
            42..52 => Op::Set { data: i as u64 + 1 },
            52..62 => Op::Put { data: i as u64 + 1 },
            62..84 => Op::TestAndSet { version: 0, data: i as u64 + 1 },
            84..88 => Op::Del,
            _ => Op::DelVersion { version: 0 },
        };
        points.push((rng.random_range(call..ret), i));
        ops.push(op(o, lost(), call, Some(ret)));
    }
    points.sort_unstable();
    let mut state = model::State::ABSENT;
    for (_, i) in points {
        // Versions as the clients choose them: mostly the current one, for
        // getAt mostly one still kept.
        let current = state.current().map_or(1, |v| v.version);
        let version = if rng.random_bool(0.8) { current } else { rng.random_range(1..=current + 2) };
        let past = (current - rng.random_range(-1..2 * model::MAX_VERSIONS as i64)).max(1);
        ops[i].op = match ops[i].op {
            Op::TestAndSet { data, .. } => Op::TestAndSet { version, data },
            Op::DelVersion { .. } => Op::DelVersion { version },
            Op::GetAt { .. } => Op::GetAt { version: past },
            other => other,
        };
        if ops[i].op.is_write() && rng.random_bool(indeterminate) {
            ops[i].ret = None;
            if rng.random_bool(0.5) {
                state = model::apply(state, ops[i].op).2;
            }
            continue;
        }
        let (status, value, next) = model::apply(state, ops[i].op);
        ops[i].outcome = ok(status, value);
        state = next;
    }
    ops
}

#[test]
fn a_key_of_the_workloads_size_is_decided_quickly() {
    let mut rng = StdRng::seed_from_u64(19);
    for round in 0..5 {
        let ops = simulated_key(&mut rng, 2000, 11, 0.02);
        let started = Instant::now();
        let searched = super::search::search(&ops, Instant::now() + Duration::from_secs(30));
        let took = started.elapsed();
        assert_eq!(searched.found, Found::Linearizable, "round {round}");
        assert_eq!(searched.deepest, searched.answered);
        // About one state per operation; trying indeterminate writes first
        // or every order of the reads took 100 to 1,000 times more.
        assert!(searched.states >= searched.answered as u64, "{searched:?}");
        assert!(searched.states < 20 * ops.len() as u64, "round {round}: {searched:?}");
        // Debug build, a shared machine: generous, but far from the budget.
        assert!(took < Duration::from_secs(5), "round {round}: {took:?}, {searched:?}");
    }
}

#[test]
fn agrees_with_brute_force_when_many_writes_are_indeterminate() {
    // Many unanswered writes, some with the same input: what the search's
    // reductions (unseen data, identical operations) are about.
    let mut rng = StdRng::seed_from_u64(8);
    let (mut yes, mut no, mut twins) = (0, 0, 0);
    for case in 0..20_000 {
        let h = random_history(&mut rng, 0.5);
        let lost: Vec<Op> = h.iter().filter(|o| o.ret.is_none()).map(|o| o.op).collect();
        twins += usize::from(lost.iter().enumerate().any(|(i, a)| lost[..i].contains(a)));
        let expected = brute_force(&h);
        assert_eq!(verdict(&h) == Found::Linearizable, expected, "case {case}: {h:#?}");
        if expected {
            yes += 1
        } else {
            no += 1
        }
    }
    assert!(yes > 3000 && no > 3000 && twins > 1000, "{yes} linearizable, {no} not, {twins} with identical inputs");
}

/// Records of `ops` on `key` (clients numbered in turn).
fn records_of(key: u32, ops: &[Operation]) -> Vec<Record> {
    ops.iter()
        .enumerate()
        .map(|(i, o)| Record {
            client: i as u32 % 11,
            key,
            op: o.op,
            invoke_ns: o.call,
            return_ns: o.ret.unwrap_or(o.call + 100),
            outcome: o.outcome.clone(),
        })
        .collect()
}

#[test]
fn keys_are_checked_apart_in_parallel_with_the_same_verdicts() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut records = Vec::new();
    for key in 0..24 {
        let n = rng.random_range(1..400);
        records.extend(records_of(key, &simulated_key(&mut rng, n, 6, 0.05)));
    }
    // Key 30: a stale read after an acknowledged overwrite.
    let stale = [
        op(Op::Set { data: 1 }, ok(Success, None), 0, Some(1)),
        op(Op::TestAndSet { version: 1, data: 2 }, ok(Success, val(1, 1)), 2, Some(3)),
        op(Op::Get, ok(Success, val(1, 1)), 4, Some(5)),
    ];
    let first = records.len();
    records.extend(records_of(30, &stale));
    let budget = |threads| Budget { per_key: Duration::from_secs(10), threads };
    let alone = check(&records, budget(1));
    let parallel = check(&records, budget(4));
    let keys: Vec<u32> = parallel.iter().map(|k| k.key).collect();
    assert_eq!(keys, (0..24).chain([30]).collect::<Vec<_>>(), "every key, in key order");
    for (a, p) in alone.iter().zip(&parallel) {
        assert_eq!((a.key, a.ops, a.verdict, a.states), (p.key, p.ops, p.verdict, p.states));
    }
    let failing: Vec<&super::KeyVerdict> = parallel.iter().filter(|k| k.verdict != Verdict::Linearizable).collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0].key, 30);
    assert_eq!(failing[0].witness, vec![first, first + 1, first + 2]);
    assert_eq!(failing[0].culprit, Some(first + 2));
}
