//! The sequential specification the checker holds a history to: one key of
//! the store as a versioned register with a bounded history (docs/design.md
//! §1–§2): `get` reads the newest version; `getAt` reads one kept version;
//! `set` inserts if absent; `put` writes unconditionally; `testAndSet` is
//! compare-and-set on the version; `del` removes; `delVersion` is
//! compare-and-set to absent. A write that makes a new version (`put`,
//! `testAndSet`) keeps the newest [`MAX_VERSIONS`]; `del` and `delVersion`
//! drop them all, and `set` starts over at version 1.
//!
//! The kept versions of a key are contiguous (each new one is the current
//! plus one), so the state is the current value and the data of the older
//! kept versions, newest first: small and `Copy`, as the search's memo
//! wants.

use crate::history::{Op, Outcome, Status, Val};

/// Versions the harness's servers keep per key (`--max-versions`, which
/// the run passes to every server): the model's history is as long.
pub const MAX_VERSIONS: u32 = 4;

/// Older versions a state keeps beside the current one.
const OLDER: usize = MAX_VERSIONS as usize - 1;

/// A register's state: absent, or the current value and the older kept
/// versions. Canonical (what is not kept is zero), so that equal registers
/// are equal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct State {
    current: Option<Val>,
    /// The data of versions `current - 1`, `current - 2`, ...: the first
    /// `kept` are kept, the rest zero.
    older: [u64; OLDER],
    kept: u8,
}

impl State {
    /// The key does not exist.
    pub const ABSENT: State = State { current: None, older: [0; OLDER], kept: 0 };

    /// A key just inserted: version 1 alone.
    pub fn fresh(data: u64) -> State {
        State { current: Some(Val { version: 1, data }), ..State::ABSENT }
    }

    /// The newest value, if the key exists.
    pub fn current(&self) -> Option<Val> {
        self.current
    }

    /// Kept version `version`, if any.
    pub fn at(&self, version: i64) -> Option<Val> {
        let current = self.current?;
        let back = current.version.checked_sub(version)?;
        match back {
            0 => Some(current),
            1.. if back <= i64::from(self.kept) => Some(Val { version, data: self.older[back as usize - 1] }),
            _ => None,
        }
    }

    /// With a new version of `data` on top (version 1 if absent), the
    /// oldest dropped beyond `MAX_VERSIONS`.
    pub fn push(&self, data: u64) -> State {
        let Some(current) = self.current else { return State::fresh(data) };
        let mut older = [0; OLDER];
        let kept = (usize::from(self.kept) + 1).min(OLDER);
        if kept > 0 {
            older[0] = current.data;
            older[1..kept].copy_from_slice(&self.older[..kept - 1]);
        }
        State { current: Some(Val { version: current.version + 1, data }), older, kept: kept as u8 }
    }
}

/// What `op` does to `state` when applied alone: the answer it gives and
/// the state after. Deterministic: the whole model is this function.
pub fn apply(state: State, op: Op) -> (Status, Option<Val>, State) {
    use Status::*;
    match (op, state.current) {
        (Op::Get, Some(v)) => (Success, Some(v), state),
        (Op::Get, None) => (Error, None, state),
        (Op::Set { data }, None) => (Success, None, State::fresh(data)),
        (Op::Set { .. }, Some(v)) => (Error, Some(v), state),
        (Op::Del, Some(v)) => (Success, Some(v), State::ABSENT),
        (Op::Del, None) => (Error, None, state),
        (Op::DelVersion { .. } | Op::TestAndSet { .. } | Op::GetAt { .. }, None) => (ErrorNe, None, state),
        (Op::DelVersion { version }, Some(v)) if v.version == version => (Success, Some(v), State::ABSENT),
        (Op::TestAndSet { version, data }, Some(v)) if v.version == version => (Success, Some(v), state.push(data)),
        (Op::DelVersion { .. } | Op::TestAndSet { .. }, Some(v)) => (ErrorWv, Some(v), state),
        (Op::Put { data }, replaced) => (Success, replaced, state.push(data)),
        (Op::GetAt { version }, Some(v)) => match state.at(version) {
            Some(kept) => (Success, Some(kept), state),
            None => (ErrorWv, Some(v), state),
        },
    }
}

/// The state after `op` if it may take effect now with `outcome`, `None`
/// if that outcome is impossible from `state`. An indeterminate operation
/// accepts any answer: it is applied for its effect alone.
pub fn step(state: State, op: Op, outcome: &Outcome) -> Option<State> {
    let (status, value, next) = apply(state, op);
    match outcome {
        Outcome::Ok { status: s, value: v } => (*s == status && *v == value).then_some(next),
        Outcome::Indeterminate { .. } => Some(next),
        // Never applied; the checker leaves such operations out.
        Outcome::Fail { .. } => Some(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: Val = Val { version: 1, data: 7 };

    fn ok(status: Status, value: Option<Val>) -> Outcome {
        Outcome::Ok { status, value }
    }

    fn val(version: i64, data: u64) -> Option<Val> {
        Some(Val { version, data })
    }

    /// A key written `data[0]` (set) then each further datum (put), in
    /// order.
    fn written(data: &[u64]) -> State {
        data.iter().fold(State::ABSENT, |s, &d| s.push(d))
    }

    #[test]
    fn the_outcome_table_row_by_row() {
        use Status::*;
        let tas = |version, data| Op::TestAndSet { version, data };
        let one = State::fresh(7);
        let none = State::ABSENT;
        assert_eq!(apply(none, Op::Set { data: 7 }), (Success, None, one));
        assert_eq!(apply(one, Op::Set { data: 8 }), (Error, Some(V1), one));
        assert_eq!(apply(one, Op::Get), (Success, Some(V1), one));
        assert_eq!(apply(none, Op::Get), (Error, None, none));
        assert_eq!(apply(one, Op::Del), (Success, Some(V1), none));
        assert_eq!(apply(none, Op::Del), (Error, None, none));
        assert_eq!(apply(one, Op::DelVersion { version: 1 }), (Success, Some(V1), none));
        assert_eq!(apply(one, Op::DelVersion { version: 2 }), (ErrorWv, Some(V1), one));
        assert_eq!(apply(none, Op::DelVersion { version: 1 }), (ErrorNe, None, none));
        let two = apply(one, tas(1, 9));
        assert_eq!(two, (Success, Some(V1), written(&[7, 9])));
        assert_eq!(two.2.current(), val(2, 9));
        assert_eq!(apply(one, tas(3, 9)), (ErrorWv, Some(V1), one));
        assert_eq!(apply(none, tas(1, 9)), (ErrorNe, None, none));
        // put: inserts when absent (nothing replaced), else a new version.
        assert_eq!(apply(none, Op::Put { data: 7 }), (Success, None, one));
        let put = apply(one, Op::Put { data: 9 });
        assert_eq!(put, (Success, Some(V1), written(&[7, 9])));
        assert_eq!(put.2.current(), val(2, 9));
        // getAt: absent, the current version, an older kept one, one
        // dropped, one never written yet.
        assert_eq!(apply(none, Op::GetAt { version: 1 }), (ErrorNe, None, none));
        assert_eq!(apply(one, Op::GetAt { version: 1 }), (Success, Some(V1), one));
        let five = written(&[1, 2, 3, 4, 5]);
        assert_eq!(five.current(), val(5, 5));
        assert_eq!(apply(five, Op::GetAt { version: 5 }), (Success, val(5, 5), five));
        assert_eq!(apply(five, Op::GetAt { version: 3 }), (Success, val(3, 3), five));
        assert_eq!(apply(five, Op::GetAt { version: 2 }), (Success, val(2, 2), five), "the oldest kept");
        assert_eq!(apply(five, Op::GetAt { version: 1 }), (ErrorWv, val(5, 5), five), "dropped");
        assert_eq!(apply(five, Op::GetAt { version: 6 }), (ErrorWv, val(5, 5), five), "not yet");
        assert_eq!(apply(five, Op::GetAt { version: 0 }), (ErrorWv, val(5, 5), five));
        // Deleted and set again: the history starts over.
        let again = apply(apply(five, Op::Del).2, Op::Set { data: 8 }).2;
        assert_eq!(again, State::fresh(8));
        assert_eq!(apply(again, Op::GetAt { version: 2 }), (ErrorWv, val(1, 8), again));
        // testAndSet keeps the older versions as put does.
        let tas5 = apply(written(&[1, 2, 3, 4]), tas(4, 5)).2;
        assert_eq!(tas5, five);
    }

    #[test]
    fn a_state_keeps_the_newest_max_versions_and_is_canonical() {
        let mut s = State::ABSENT;
        for d in 1..=20u64 {
            s = s.push(d);
            let newest = d as i64;
            let oldest = (newest - i64::from(MAX_VERSIONS) + 1).max(1);
            for v in -1..=newest + 1 {
                let expected = (oldest..=newest).contains(&v).then_some(Val { version: v, data: v as u64 });
                assert_eq!(s.at(v), expected, "version {v} after {d} writes");
            }
        }
        // The same register reached two ways is the same state.
        let by_tas =
            (2..=20).fold(State::fresh(1), |s, d| apply(s, Op::TestAndSet { version: d - 1, data: d as u64 }).2);
        assert_eq!(by_tas, s);
        assert_ne!(written(&[1, 2]), written(&[9, 2]), "the older data count");
    }

    #[test]
    fn a_step_checks_the_answer_and_an_indeterminate_one_does_not() {
        let none = State::ABSENT;
        assert_eq!(step(none, Op::Get, &ok(Status::Error, None)), Some(none));
        assert_eq!(step(none, Op::Get, &ok(Status::Success, Some(V1))), None);
        let lost = Outcome::Indeterminate { why: "timeout".into() };
        assert_eq!(step(none, Op::Set { data: 7 }, &lost), Some(State::fresh(7)));
        assert_eq!(step(State::fresh(7), Op::Put { data: 8 }, &lost), Some(written(&[7, 8])));
        // A wrong getAt answer: data never at that version, or a version
        // beyond the kept window.
        let five = written(&[1, 2, 3, 4, 5]);
        assert_eq!(step(five, Op::GetAt { version: 3 }, &ok(Status::Success, val(3, 4))), None);
        assert_eq!(step(five, Op::GetAt { version: 1 }, &ok(Status::Success, val(1, 1))), None);
        assert_eq!(step(five, Op::GetAt { version: 3 }, &ok(Status::ErrorWv, val(5, 5))), None);
        assert_eq!(step(five, Op::GetAt { version: 1 }, &ok(Status::ErrorWv, val(5, 5))), Some(five));
    }
}
