//! Finger tables and the next hop (Chord, Stoica et al. 2001, §4).
//!
//! A position that does not own a key sends the request to its successor
//! when the key lies between them, and otherwise to the closest finger
//! that precedes the key: each hop at least halves the distance left, so a
//! lookup takes O(log n) hops.
//!
//! One refinement over the paper: every node here knows the whole ring
//! configuration, so it knows each finger's range too. When a finger owns
//! the key, the request goes straight to it instead of to the key's
//! predecessor first. Chord's lookup ends at the predecessor and *names*
//! the owner; a forwarded request must also *reach* the owner, which costs
//! plain Chord one more hop on most paths (mean ½·log2 n + 1 − 1/n hops with
//! evenly spaced ids). With the refinement the mean is ½·log2 n, the
//! paper's figure, and the longest path is ⌈log2 n⌉.

use num_bigint::BigUint;
use num_traits::One;

use crate::{in_half_open, in_open, Ring};

/// Where a request for a key goes from a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// This position owns the key: serve it here.
    Local,
    /// Send it to this position.
    Forward(usize),
}

/// `finger[i] = successor(id + 2^i)` for `i` in `0..m`.
pub(crate) fn finger_table(ring: &Ring, position: usize) -> Vec<usize> {
    let id = ring.id(position);
    (0..ring.m()).map(|i| ring.owner(&ring.add(id, &(BigUint::one() << i)))).collect()
}

impl Ring {
    /// The next hop from `from` towards the owner of `key_id`: local when
    /// `from` owns it; the finger that owns it, if one does (the successor
    /// is `finger[0]`, so a key in `(from, successor]` goes there); else
    /// the closest finger preceding the key.
    pub fn next_hop(&self, from: usize, key_id: &BigUint) -> Hop {
        let me = self.id(from);
        if self.owns(from, key_id) {
            return Hop::Local;
        }
        let fingers = self.fingers(from);
        if let Some(owner) = fingers.iter().find(|f| self.owns(**f, key_id)) {
            return Hop::Forward(*owner);
        }
        let closest = fingers.iter().rev().find(|f| **f != from && in_open(self.id(**f), me, key_id));
        Hop::Forward(closest.copied().unwrap_or_else(|| self.successor(from)))
    }

    /// Whether `position` owns `id`: `id ∈ (predecessor, position]`.
    pub fn owns(&self, position: usize, id: &BigUint) -> bool {
        let (pred, me) = self.range(position);
        in_half_open(id, &pred, &me)
    }

    /// The positions a request for `key_id` visits after `from`, ending at
    /// the owner (empty when `from` owns it). Bounded by the ring's size,
    /// so a routing bug shows as a wrong path, never a hang.
    pub fn path(&self, from: usize, key_id: &BigUint) -> Vec<usize> {
        let mut path = Vec::new();
        let mut at = from;
        while let Hop::Forward(next) = self.next_hop(at, key_id) {
            path.push(next);
            at = next;
            if path.len() > self.len() {
                break;
            }
        }
        path
    }
}
