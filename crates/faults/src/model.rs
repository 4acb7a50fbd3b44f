//! The sequential specification the checker holds a history to: one key of
//! the store as a versioned register (docs/design.md §2, TESTING.md):
//! `get` reads; `set` inserts if absent; `testAndSet` is compare-and-set
//! on the version; `del` removes; `delVersion` is compare-and-set to
//! absent. The state is the stored value or nothing.

use crate::history::{Op, Outcome, Status, Val};

/// A register's state: absent, or a value.
pub type State = Option<Val>;

/// What `op` does to `state` when applied alone: the answer it gives and
/// the state after. Deterministic: the whole model is this function.
pub fn apply(state: State, op: Op) -> (Status, Option<Val>, State) {
    use Status::*;
    match (op, state) {
        (Op::Get, Some(v)) => (Success, Some(v), state),
        (Op::Get, None) => (Error, None, None),
        (Op::Set { data }, None) => (Success, None, Some(Val { version: 1, data })),
        (Op::Set { .. }, Some(v)) => (Error, Some(v), state),
        (Op::Del, Some(v)) => (Success, Some(v), None),
        (Op::Del, None) => (Error, None, None),
        (Op::DelVersion { .. }, None) | (Op::TestAndSet { .. }, None) => (ErrorNe, None, None),
        (Op::DelVersion { version }, Some(v)) if v.version == version => (Success, Some(v), None),
        (Op::TestAndSet { version, data }, Some(v)) if v.version == version => {
            (Success, Some(v), Some(Val { version: version + 1, data }))
        }
        (Op::DelVersion { .. } | Op::TestAndSet { .. }, Some(v)) => (ErrorWv, Some(v), state),
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

    #[test]
    fn the_outcome_table_row_by_row() {
        use Status::*;
        let tas = |version, data| Op::TestAndSet { version, data };
        assert_eq!(apply(None, Op::Set { data: 7 }), (Success, None, Some(V1)));
        assert_eq!(apply(Some(V1), Op::Set { data: 8 }), (Error, Some(V1), Some(V1)));
        assert_eq!(apply(Some(V1), Op::Get), (Success, Some(V1), Some(V1)));
        assert_eq!(apply(None, Op::Get), (Error, None, None));
        assert_eq!(apply(Some(V1), Op::Del), (Success, Some(V1), None));
        assert_eq!(apply(None, Op::Del), (Error, None, None));
        assert_eq!(apply(Some(V1), Op::DelVersion { version: 1 }), (Success, Some(V1), None));
        assert_eq!(apply(Some(V1), Op::DelVersion { version: 2 }), (ErrorWv, Some(V1), Some(V1)));
        assert_eq!(apply(None, Op::DelVersion { version: 1 }), (ErrorNe, None, None));
        assert_eq!(apply(Some(V1), tas(1, 9)), (Success, Some(V1), Some(Val { version: 2, data: 9 })));
        assert_eq!(apply(Some(V1), tas(3, 9)), (ErrorWv, Some(V1), Some(V1)));
        assert_eq!(apply(None, tas(1, 9)), (ErrorNe, None, None));
    }

    #[test]
    fn a_step_checks_the_answer_and_an_indeterminate_one_does_not() {
        assert_eq!(step(None, Op::Get, &ok(Status::Error, None)), Some(None));
        assert_eq!(step(None, Op::Get, &ok(Status::Success, Some(V1))), None);
        let lost = Outcome::Indeterminate { why: "timeout".into() };
        assert_eq!(step(None, Op::Set { data: 7 }, &lost), Some(Some(V1)));
    }
}
