//! The Chord ring of ringkv (docs/design.md §4), as pure functions of its
//! configuration: no sockets, no clocks, so that every node and every
//! ring-aware client computes the same owner and the same next hop, and the
//! tests can check routing exhaustively.
//!
//! - Ids live in an `m`-bit space, `[0, 2^m)`, and are `BigUint`s so that
//!   any `m` works.
//! - With `n` positions, the first id is `2^m − 1` and each next one is
//!   `⌊2^m / n⌋` lower ([`Ring::evenly`]); positions may instead be given
//!   explicit ids ([`Ring::with_ids`]).
//! - Position `Y` with predecessor `X` owns the ids in `(X, Y]` (a single
//!   position owns everything).
//! - A key's id comes from its wire bytes by [`Placement`] (`id.rs`).
//! - Routing (`route.rs`): each position's finger table,
//!   `finger[i] = successor(self + 2^i)`, and the next hop towards a key.

mod id;
mod route;

use num_bigint::BigUint;
use num_traits::{One, Zero};

pub use id::Placement;
pub use route::Hop;

/// The default id width: wide enough that evenly spaced ids never collide
/// and hashed keys spread evenly, small enough to print.
pub const DEFAULT_M: u32 = 64;

/// Why a ring configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("a ring needs at least one position")]
    Empty,
    #[error("m = {0}: the id width must be between 1 and 4096 bits")]
    BadM(u32),
    #[error(
        "placement = \"hash\" gives {max} bits (SHA-1); m = {m} is wider: use m <= {max} or placement = \"direct\""
    )]
    HashTooNarrow { m: u32, max: u32 },
    #[error("{n} positions do not fit in an m = {m} bit ring (at most 2^m)")]
    TooManyPositions { n: usize, m: u32 },
    #[error("position {position}: id {id} is not below 2^m = 2^{m}")]
    IdOutOfRange { position: usize, id: BigUint, m: u32 },
    #[error("positions {a} and {b} have the same id {id}")]
    DuplicateId { a: usize, b: usize, id: BigUint },
}

/// A ring: its id width, its placement rule, and each position's id.
/// Positions are numbered `0..n` in configuration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    m: u32,
    placement: Placement,
    /// `2^m`.
    modulus: BigUint,
    /// Position number → id.
    ids: Vec<BigUint>,
    /// Position numbers sorted by id: the ring read clockwise.
    clockwise: Vec<usize>,
    /// Position number → its finger table (position numbers).
    fingers: Vec<Vec<usize>>,
}

impl Ring {
    /// `n` evenly spaced positions: `2^m − 1`, then `⌊2^m / n⌋` lower each.
    pub fn evenly(m: u32, n: usize, placement: Placement) -> Result<Ring, RingError> {
        check_m(m, placement)?;
        if n == 0 {
            return Err(RingError::Empty);
        }
        let modulus = BigUint::one() << m;
        if BigUint::from(n) > modulus {
            return Err(RingError::TooManyPositions { n, m });
        }
        let step = &modulus / BigUint::from(n);
        let top = &modulus - BigUint::one();
        let ids = (0..n).map(|i| &top - &step * BigUint::from(i)).collect();
        Ring::with_ids(m, placement, ids)
    }

    /// Positions with explicit ids (each below `2^m`, all distinct).
    pub fn with_ids(m: u32, placement: Placement, ids: Vec<BigUint>) -> Result<Ring, RingError> {
        check_m(m, placement)?;
        if ids.is_empty() {
            return Err(RingError::Empty);
        }
        let modulus = BigUint::one() << m;
        if let Some((position, id)) = ids.iter().enumerate().find(|(_, id)| **id >= modulus) {
            return Err(RingError::IdOutOfRange { position, id: id.clone(), m });
        }
        let mut clockwise: Vec<usize> = (0..ids.len()).collect();
        clockwise.sort_by(|a, b| ids[*a].cmp(&ids[*b]));
        if let Some(w) = clockwise.windows(2).find(|w| ids[w[0]] == ids[w[1]]) {
            let (a, b) = (w[0].min(w[1]), w[0].max(w[1]));
            return Err(RingError::DuplicateId { a, b, id: ids[a].clone() });
        }
        let mut ring = Ring { m, placement, modulus, ids, clockwise, fingers: Vec::new() };
        ring.fingers = (0..ring.len()).map(|p| route::finger_table(&ring, p)).collect();
        Ok(ring)
    }

    /// The id width.
    pub fn m(&self) -> u32 {
        self.m
    }

    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// How many positions.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Never true: a ring has at least one position.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A position's id.
    pub fn id(&self, position: usize) -> &BigUint {
        &self.ids[position]
    }

    /// The position owning `id`: the first position clockwise at or after
    /// it (Chord's `successor(id)`).
    pub fn owner(&self, id: &BigUint) -> usize {
        let i = self.clockwise.partition_point(|p| self.ids[*p] < *id);
        self.clockwise[i % self.clockwise.len()]
    }

    /// The position owning a key, given the key's wire bytes.
    pub fn owner_of_key(&self, key: &[u8]) -> usize {
        self.owner(&self.key_id(key))
    }

    /// The next position clockwise (itself on a ring of one).
    pub fn successor(&self, position: usize) -> usize {
        self.step(position, 1)
    }

    /// The previous position clockwise (itself on a ring of one).
    pub fn predecessor(&self, position: usize) -> usize {
        self.step(position, self.len() - 1)
    }

    fn step(&self, position: usize, by: usize) -> usize {
        let i = self.clockwise.iter().position(|p| *p == position).unwrap_or(0);
        self.clockwise[(i + by) % self.len()]
    }

    /// The ids a position owns, `(start, end]`: start is its predecessor's
    /// id (its own id on a ring of one, meaning the whole circle).
    pub fn range(&self, position: usize) -> (BigUint, BigUint) {
        (self.ids[self.predecessor(position)].clone(), self.ids[position].clone())
    }

    /// A position's finger table: `finger[i] = successor(id + 2^i)`, for
    /// `i` in `0..m`.
    pub fn fingers(&self, position: usize) -> &[usize] {
        &self.fingers[position]
    }

    /// The positions that may own integer keys in `[from, to]` (wire
    /// bytes, valid keys), in clockwise order from the owner of `from`.
    /// Under `hash` placement keys of any range are spread everywhere: all
    /// positions. Under `direct` a range shorter than the circle covers the
    /// arc from `from`'s id to `to`'s.
    pub fn positions_for_range(&self, from: &[u8], to: &[u8]) -> Vec<usize> {
        let all = || self.clockwise.clone();
        if self.placement == Placement::Hash {
            return all();
        }
        let (lo, hi) = (num_bigint::BigInt::from_signed_bytes_be(from), num_bigint::BigInt::from_signed_bytes_be(to));
        if hi < lo {
            return Vec::new();
        }
        let span = num_bigint::BigInt::from_biguint(num_bigint::Sign::Plus, self.modulus.clone());
        let (start, end) = (self.key_id(from), self.key_id(to));
        // Wider than the circle, or the arc wraps past `from`'s owner.
        if hi - lo >= span || (self.owner(&start) == self.owner(&end) && end < start) {
            return all();
        }
        let (first, last) = (self.owner(&start), self.owner(&end));
        let mut out = vec![first];
        let mut p = first;
        while p != last {
            p = self.successor(p);
            out.push(p);
        }
        out
    }

    /// `(a + b) mod 2^m`.
    fn add(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a + b) % &self.modulus
    }
}

fn check_m(m: u32, placement: Placement) -> Result<(), RingError> {
    if m == 0 || m > 4096 {
        return Err(RingError::BadM(m));
    }
    if let Some(max) = placement.max_bits() {
        if m > max {
            return Err(RingError::HashTooNarrow { m, max });
        }
    }
    Ok(())
}

/// Whether `x` lies in the circular interval `(a, b]`; `(a, a]` is the
/// whole circle.
pub fn in_half_open(x: &BigUint, a: &BigUint, b: &BigUint) -> bool {
    match a.cmp(b) {
        std::cmp::Ordering::Less => a < x && x <= b,
        _ => x > a || x <= b,
    }
}

/// Whether `x` lies in the circular open interval `(a, b)`; `(a, a)` is
/// the whole circle but `a`.
pub fn in_open(x: &BigUint, a: &BigUint, b: &BigUint) -> bool {
    match a.cmp(b) {
        std::cmp::Ordering::Less => a < x && x < b,
        _ => (x > a || x < b) && x != a,
    }
}

/// Formats an id as decimal (ids are shown and configured in decimal).
pub fn show(id: &BigUint) -> String {
    if id.is_zero() {
        "0".into()
    } else {
        id.to_str_radix(10)
    }
}

#[cfg(test)]
mod tests;
