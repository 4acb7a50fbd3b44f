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
//! An indeterminate write has no return event: it may be linearized at any
//! point after its call, or never (left over at the end). It is only
//! tried where it would change the state: where it would not, leaving it
//! for later loses nothing.
//!
//! The set of linearized operations is kept as a 128-bit Zobrist hash (XOR
//! of a random word per operation) rather than a bitset, so memory grows
//! with the states visited and not with their product by the history's
//! length; two different sets collide with probability about n²/2¹²⁸.

use std::collections::HashSet;
use std::time::Instant;

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

/// Whether `ops` (one key, starting from an absent key) has a
/// linearization, deciding before `deadline`.
pub fn search(ops: &[Operation], deadline: Instant) -> Found {
    let mut list = List::new(ops);
    let mut remaining = ops.iter().filter(|o| o.ret.is_some()).count();
    let words: Vec<u128> = (0..ops.len()).map(zobrist).collect();
    let mut cache: HashSet<(u128, State)> = HashSet::new();
    let mut stack: Vec<(usize, State, u128)> = Vec::new();
    let (mut state, mut hash): (State, u128) = (None, 0);
    let mut entry = list.nodes[0].next;
    let mut steps: u64 = 0;
    while remaining > 0 {
        steps += 1;
        if steps.is_multiple_of(4096) && Instant::now() >= deadline {
            return Found::BudgetExceeded;
        }
        let node = if entry == NONE { None } else { Some(list.nodes[entry]) };
        match node {
            Some(n) if n.is_call => {
                let o = &ops[n.op];
                // An indeterminate write that would change nothing now is
                // better left for later (or never): taking it now only
                // removes options, and would double the states searched.
                let useless = |next: &State| n.ret.is_none() && *next == state;
                if let Some(next) = model::step(state, o.op, &o.outcome).filter(|n| !useless(n)) {
                    let h = hash ^ words[n.op];
                    if cache.insert((h, next)) {
                        stack.push((entry, state, hash));
                        (state, hash) = (next, h);
                        list.lift(entry);
                        if n.ret.is_some() {
                            remaining -= 1;
                        }
                        entry = list.nodes[0].next;
                        continue;
                    }
                }
                entry = n.next;
            }
            // A return (or, defensively, the end): its operation missed its
            // window; undo the last linearization and try the next one.
            _ => {
                let Some((e, s, h)) = stack.pop() else { return Found::NotLinearizable };
                (state, hash) = (s, h);
                list.unlift(e);
                if list.nodes[e].ret.is_some() {
                    remaining += 1;
                }
                entry = list.nodes[e].next;
            }
        }
    }
    Found::Linearizable
}
