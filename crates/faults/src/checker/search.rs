//! The linearizability search for one key: Wing & Gong's algorithm with
//! Lowe's memoisation, as Porcupine implements it.
//!
//! The history becomes a doubly linked list of call and return events in
//! time order. The search walks it from the front: at a call it tries to
//! linearize that operation now (the model must accept its answer, and the
//! pair (set of linearized operations, state) must be new: a pair seen
//! before leads nowhere new); linearizing removes the call and its return
//! from the list and restarts at the front. Reaching a return means its
//! operation was not linearized in time: undo the last choice and try the
//! next candidate. The history is linearizable when every completed
//! operation has been linearized.
//!
//! An answered operation that changes nothing (a read, a refused write)
//! and fits the state now is linearized at once, and never undone alone:
//! nothing else needs trying in its place (see `List::observation`).
//! Without this, a wrong choice found late made the search try every order
//! of the reads in between.
//!
//! An indeterminate write has no return event: it may be linearized at any
//! point after its call, or never (left over at the end). It is only
//! tried where it would change the state: where it would not, leaving it
//! for later loses nothing. And it is tried last: the walk first tries
//! the answered calls before the first return, and only if none can be
//! placed, the indeterminate ones. The candidates are the same either way
//! (so is the verdict), but a linearizable history is found without
//! trying, at every step, each write that may have happened long ago; with
//! a few such writes open, trying them first explored a thousand times more
//! states.
//!
//! Two reductions keep indeterminate writes that always change the state
//! (a `put`, unlike a compare-and-set, takes effect whatever the version)
//! from multiplying the states, each exact:
//!
//! - A datum that no answer shows can never be told apart from another
//!   such datum: the model looks at data only to compare them with
//!   answers. So every unseen datum becomes one placeholder, and the
//!   orders in which unseen writes happened lead to the same state.
//! - Of two identical indeterminate operations (the same input, no
//!   answer), the one invoked earlier is placed first: any linearization
//!   that places the later one while the earlier is still open is as good
//!   with the two swapped. So the placed ones among identical operations
//!   are always the earliest, not any subset.
//!
//! The set of linearized operations is kept as a 128-bit Zobrist hash (XOR
//! of a random word per operation) rather than a bitset, so memory grows
//! with the states visited and not with their product by the history's
//! length; two different sets collide with probability about n²/2¹²⁸.

use std::collections::HashSet;
use std::time::Instant;

use crate::history::{Op, Outcome};
use crate::model::{self, State};

use super::Operation;

const NONE: usize = usize::MAX;

/// The search's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Linearizable,
    NotLinearizable,
    /// The deadline passed first: no verdict (a failure of the run).
    BudgetExceeded,
}

/// The answer and what it cost: how many configurations (set of
/// linearized operations, state) were explored, and how far the search
/// got, which is what an undecided key can say of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Searched {
    pub found: Found,
    /// Distinct configurations explored (the memo's size).
    pub states: u64,
    /// The most answered operations linearized at once.
    pub deepest: usize,
    /// The answered operations, all of which a linearization must place.
    pub answered: usize,
    /// At the deepest point, the invocation time of the earliest answered
    /// operation still to place: the history was explained up to there.
    pub frontier_ns: Option<u64>,
}

#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    op: usize,
    /// For a call: its return node, if the operation completed.
    ret: Option<usize>,
    is_call: bool,
}

/// The event list; node 0 is the head sentinel.
struct List {
    nodes: Vec<Node>,
}

impl List {
    fn new(ops: &[Operation]) -> List {
        // (time, is_return, op): calls sort before returns at the same time.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            events.push((o.call, false, i));
            if let Some(r) = o.ret {
                events.push((r, true, i));
            }
        }
        events.sort_unstable();
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node { prev: NONE, next: NONE, op: NONE, ret: None, is_call: false });
        let mut ret_of = vec![None; ops.len()];
        for (k, &(_, is_ret, op)) in events.iter().enumerate() {
            let n = k + 1;
            if is_ret {
                ret_of[op] = Some(n);
            }
            let next = if n < events.len() { n + 1 } else { NONE };
            nodes.push(Node { prev: n - 1, next, op, ret: None, is_call: !is_ret });
        }
        nodes[0].next = if events.is_empty() { NONE } else { 1 };
        for n in nodes.iter_mut().skip(1).filter(|n| n.is_call) {
            n.ret = ret_of[n.op];
        }
        List { nodes }
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        if next != NONE {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        if next != NONE {
            self.nodes[next].prev = n;
        }
    }

    /// Removes a call and its return (linearizes its operation).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if let Some(r) = self.nodes[call].ret {
            self.unlink(r);
        }
    }

    /// An answered operation that may be linearized now and changes
    /// nothing (a read, a write refused): linearizing it now is never
    /// wrong. Every operation still to place returns after it was invoked
    /// (it is before the first return), so it can go first in any
    /// linearization from here, and since it leaves the state as it is,
    /// the rest stays valid.
    fn observation(&self, ops: &[Operation], state: State) -> Option<usize> {
        let mut n = self.nodes[0].next;
        while n != NONE && self.nodes[n].is_call {
            let node = self.nodes[n];
            let o = &ops[node.op];
            if node.ret.is_some() && model::step(state, o.op, &o.outcome) == Some(state) {
                return Some(n);
            }
            n = node.next;
        }
        None
    }

    /// The invocation time of the first answered operation still in the
    /// list (an indeterminate one need never be placed).
    fn first_answered_call(&self, ops: &[Operation]) -> Option<u64> {
        let mut n = self.nodes[0].next;
        while n != NONE {
            let node = self.nodes[n];
            if node.is_call && node.ret.is_some() {
                return Some(ops[node.op].call);
            }
            n = node.next;
        }
        None
    }

    /// Undoes `lift`, in the reverse order.
    fn unlift(&mut self, call: usize) {
        if let Some(r) = self.nodes[call].ret {
            self.relink(r);
        }
        self.relink(call);
    }
}

/// A random word per operation (SplitMix64: deterministic, no state).
fn zobrist(i: usize) -> u128 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix((i as u64).wrapping_mul(2).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = mix((i as u64).wrapping_mul(2).wrapping_add(2).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (u128::from(a) << 64) | u128::from(b)
}

/// A frame of the search: the call linearized, and what to go back to.
struct Frame {
    call: usize,
    /// Whether the walk was trying indeterminate calls.
    late: bool,
    /// An observation taken because it fitted: nothing else is tried in
    /// its place.
    forced: bool,
    state: State,
    hash: u128,
}

/// `ops` with every datum written that no answer shows replaced by one
/// placeholder, itself shown by no answer (see the module's comment).
fn unseen_as_one(ops: &[Operation]) -> Vec<Operation> {
    let seen: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Ok { value: Some(v), .. } => Some(v.data),
            _ => None,
        })
        .collect();
    let placeholder = (0..).find(|d| !seen.contains(d)).unwrap_or(0);
    let hide = |data: u64| if seen.contains(&data) { data } else { placeholder };
    ops.iter()
        .map(|o| {
            let op = match o.op {
                Op::Set { data } => Op::Set { data: hide(data) },
                Op::Put { data } => Op::Put { data: hide(data) },
                Op::TestAndSet { version, data } => Op::TestAndSet { version, data: hide(data) },
                op @ (Op::Get | Op::GetAt { .. } | Op::Del | Op::DelVersion { .. }) => op,
            };
            Operation { op, ..o.clone() }
        })
        .collect()
}

/// For each indeterminate operation, the latest one invoked before it with
/// the same input, also indeterminate: it must be placed first.
fn twins(ops: &[Operation]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].call, i));
    let mut last: std::collections::HashMap<Op, usize> = std::collections::HashMap::new();
    let mut twin = vec![None; ops.len()];
    for i in order.into_iter().filter(|&i| ops[i].ret.is_none()) {
        twin[i] = last.insert(ops[i].op, i);
    }
    twin
}

/// Whether `ops` (one key, starting from an absent key) has a
/// linearization, deciding before `deadline`.
pub fn search(ops: &[Operation], deadline: Instant) -> Searched {
    let ops = &unseen_as_one(ops)[..];
    let twin = twins(ops);
    let mut placed = vec![false; ops.len()];
    let mut list = List::new(ops);
    let answered = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut remaining = answered;
    let mut deepest = (0, None);
    let words: Vec<u128> = (0..ops.len()).map(zobrist).collect();
    let mut cache: HashSet<(u128, State)> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let (mut state, mut hash): (State, u128) = (State::ABSENT, 0);
    let mut entry = list.nodes[0].next;
    // Which calls the walk tries: answered ones first; only when the walk
    // reaches a return without placing one, the indeterminate ones.
    let mut late = false;
    // A configuration just reached: look for an observation to force.
    let mut fresh = true;
    let mut steps: u64 = 0;
    let done = |found, cache: &HashSet<_>, (deepest, frontier_ns)| Searched {
        found,
        states: cache.len() as u64,
        deepest,
        answered,
        frontier_ns,
    };
    while remaining > 0 {
        steps += 1;
        if steps.is_multiple_of(4096) && Instant::now() >= deadline {
            return done(Found::BudgetExceeded, &cache, deepest);
        }
        // The move to make: a call to linearize, whether it is forced; or
        // none, and the search backs up.
        let mut take = None;
        let mut back = false;
        if std::mem::take(&mut fresh) {
            if let Some(call) = list.observation(ops, state) {
                take = Some((call, state, true));
                // Seen before: this configuration leads nowhere.
                back = cache.contains(&(hash ^ words[list.nodes[call].op], state));
            }
        }
        if take.is_none() {
            let node = if entry == NONE { None } else { Some(list.nodes[entry]) };
            match node {
                Some(n) if n.is_call && n.ret.is_none() != late => entry = n.next,
                // An identical indeterminate operation invoked before goes
                // first.
                Some(n) if n.is_call && twin[n.op].is_some_and(|t| !placed[t]) => entry = n.next,
                Some(n) if n.is_call => {
                    let o = &ops[n.op];
                    // An indeterminate write that would change nothing now
                    // is better left for later (or never): taking it now
                    // only removes options.
                    let useless = |next: &State| n.ret.is_none() && *next == state;
                    match model::step(state, o.op, &o.outcome).filter(|n| !useless(n)) {
                        Some(next) if !cache.contains(&(hash ^ words[n.op], next)) => take = Some((entry, next, false)),
                        _ => entry = n.next,
                    }
                }
                // A return (or, defensively, the end) with only answered
                // calls tried: now the indeterminate ones before it.
                _ if !late => (entry, late) = (list.nodes[0].next, true),
                // Nothing could be placed before this return: its operation
                // missed its window.
                _ => back = true,
            }
        }
        if back {
            // Undo the last linearization and try the next candidate in
            // its place; a forced one has no alternative worth trying, so
            // undo the one before it too.
            loop {
                let Some(f) = stack.pop() else { return done(Found::NotLinearizable, &cache, deepest) };
                (state, hash) = (f.state, f.hash);
                list.unlift(f.call);
                placed[list.nodes[f.call].op] = false;
                if list.nodes[f.call].ret.is_some() {
                    remaining += 1;
                }
                if !f.forced {
                    (entry, late) = (list.nodes[f.call].next, f.late);
                    break;
                }
            }
        } else if let Some((call, next, forced)) = take {
            let n = list.nodes[call];
            let h = hash ^ words[n.op];
            cache.insert((h, next));
            stack.push(Frame { call, late, forced, state, hash });
            (state, hash) = (next, h);
            list.lift(call);
            placed[n.op] = true;
            if n.ret.is_some() {
                remaining -= 1;
                if answered - remaining > deepest.0 {
                    deepest = (answered - remaining, list.first_answered_call(ops));
                }
            }
            (entry, late, fresh) = (list.nodes[0].next, false, true);
        }
    }
    done(Found::Linearizable, &cache, (answered, None))
}
