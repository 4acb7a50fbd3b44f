//! The ring, checked against `testdata/ring.table` (each case a line), and
//! routing properties over random rings and keys.

use num_bigint::{BigInt, BigUint};
use proptest::prelude::*;

use crate::{Hop, Placement, Ring};

fn wire(key: &str) -> Vec<u8> {
    key.parse::<BigInt>().expect("key").to_signed_bytes_be()
}

fn nums<T: std::str::FromStr>(text: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    text.split_whitespace().map(|t| t.parse().expect("number")).collect()
}

fn parse_ring(args: &[&str]) -> Ring {
    let mut m = 0;
    let mut n = None;
    let mut ids = None;
    let mut placement = Placement::Hash;
    for a in args {
        match a.split_once('=') {
            Some(("m", v)) => m = v.parse().unwrap(),
            Some(("n", v)) => n = Some(v.parse().unwrap()),
            Some(("ids", v)) => ids = Some(v.split(',').map(|i| i.parse::<BigUint>().unwrap()).collect()),
            _ => placement = a.parse().unwrap(),
        }
    }
    match (n, ids) {
        (Some(n), None) => Ring::evenly(m, n, placement).unwrap(),
        (None, Some(ids)) => Ring::with_ids(m, placement, ids).unwrap(),
        _ => panic!("ring needs n= or ids="),
    }
}

#[test]
fn the_table() {
    let text = include_str!("../testdata/ring.table");
    let mut ring = None;
    let mut checked = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("ring.table line {}: {line}", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "ring" {
            ring = Some(parse_ring(&words[1..]));
            continue;
        }
        let r = ring.as_ref().expect("a ring line first");
        let (case, want) = line.split_once("=>").expect("=>");
        let case: Vec<&str> = case.split_whitespace().collect();
        let want = want.trim();
        match case[..] {
            ["ids"] => {
                let got: Vec<String> = (0..r.len()).map(|p| r.id(p).to_string()).collect();
                assert_eq!(got.join(" "), want, "{at}");
            }
            ["range", p] => {
                let (a, b) = r.range(p.parse().unwrap());
                assert_eq!(format!("{a} {b}"), want, "{at}");
            }
            ["fingers", p] => assert_eq!(r.fingers(p.parse().unwrap()), &nums::<usize>(want)[..], "{at}"),
            ["key", k] => {
                let id = r.key_id(&wire(k));
                assert_eq!(format!("{id} {}", r.owner(&id)), want, "{at}");
            }
            ["route", p, k] => {
                let path = r.path(p.parse().unwrap(), &r.key_id(&wire(k)));
                let got = if path.is_empty() { "local".to_owned() } else { format!("{path:?}") };
                let want = if want == "local" { want.to_owned() } else { format!("{:?}", nums::<usize>(want)) };
                assert_eq!(got, want, "{at}");
            }
            _ => panic!("unknown case: {at}"),
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} cases read");
}

#[test]
fn bad_rings_are_refused_with_a_reason() {
    use crate::RingError;
    assert_eq!(Ring::evenly(8, 0, Placement::Direct), Err(RingError::Empty));
    assert_eq!(Ring::evenly(0, 1, Placement::Direct), Err(RingError::BadM(0)));
    assert_eq!(Ring::evenly(161, 2, Placement::Hash), Err(RingError::HashTooNarrow { m: 161, max: 160 }));
    assert!(Ring::evenly(161, 2, Placement::Direct).is_ok());
    assert_eq!(Ring::evenly(2, 5, Placement::Direct), Err(RingError::TooManyPositions { n: 5, m: 2 }));
    assert!(Ring::evenly(2, 4, Placement::Direct).is_ok());
    let dup = Ring::with_ids(8, Placement::Direct, vec![5u8.into(), 9u8.into(), 5u8.into()]);
    assert!(matches!(dup, Err(RingError::DuplicateId { a: 0, b: 2, .. })), "{dup:?}");
    let big = Ring::with_ids(8, Placement::Direct, vec![256u32.into()]);
    assert!(matches!(big, Err(RingError::IdOutOfRange { position: 0, .. })), "{big:?}");
    let e = Ring::evenly(200, 2, Placement::Hash).unwrap_err().to_string();
    assert!(e.contains("160") && e.contains("direct"), "{e}");
}

#[test]
fn mean_hops_on_evenly_spaced_rings_is_half_log2_n() {
    // Every entry position and, per owner, one key id in its range: the
    // exact mean of Chord's ½·log2 n on a power-of-two ring.
    for k in 0..=5u32 {
        let n = 1usize << k;
        let ring = Ring::evenly(16, n, Placement::Direct).unwrap();
        // Each range's last and first id.
        for pick in [|r: &Ring, p| r.id(p).clone(), |r: &Ring, p| (r.range(p).0 + 1u8) % (BigUint::from(1u8) << 16u32)]
        {
            let mut total = 0;
            let mut longest = 0;
            for from in 0..n {
                for owner in 0..n {
                    let hops = ring.path(from, &pick(&ring, owner)).len();
                    total += hops;
                    longest = longest.max(hops);
                }
            }
            let mean = total as f64 / (n * n) as f64;
            assert!((mean - k as f64 / 2.0).abs() < 1e-9, "n = {n}: mean {mean}");
            assert_eq!(longest, k as usize, "n = {n}");
        }
    }
}

fn arb_ring() -> impl Strategy<Value = Ring> {
    (3u32..=64, 1usize..=40, any::<bool>(), any::<u64>()).prop_map(|(m, n, even, seed)| {
        let cap = if m < 6 { 1 << m } else { usize::MAX };
        let n = n.min(cap);
        if even {
            return Ring::evenly(m, n, Placement::Direct).unwrap();
        }
        // Distinct pseudo-random ids below 2^m.
        let mut ids: Vec<BigUint> = Vec::new();
        let mut x = seed | 1;
        while ids.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = BigUint::from(x) % (BigUint::from(1u8) << m);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ring::with_ids(m, Placement::Direct, ids).unwrap()
    })
}

proptest! {
    /// From anywhere, routing reaches the owner, never visits a position
    /// twice, and takes at most ⌈log2 n⌉ + 1 hops on evenly spaced rings
    /// (and at most n − 1 on any ring).
    #[test]
    fn routing_reaches_the_owner(ring in arb_ring(), key in any::<i64>(), from in any::<prop::sample::Index>()) {
        let id = ring.key_id(&BigInt::from(key).to_signed_bytes_be());
        let from = from.index(ring.len());
        let path = ring.path(from, &id);
        let owner = ring.owner(&id);
        prop_assert_eq!(path.last().copied().unwrap_or(from), owner);
        prop_assert_eq!(path.is_empty(), from == owner);
        prop_assert_eq!(ring.next_hop(owner, &id), Hop::Local);
        let mut seen = path.clone();
        seen.push(from);
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), path.len() + 1, "a position visited twice: {:?}", path);
        prop_assert!(path.len() < ring.len().max(1));
        let evenly = Ring::evenly(ring.m(), ring.len(), Placement::Direct).unwrap();
        if evenly == ring {
            let bound = (ring.len() as f64).log2().ceil() as usize + 1;
            prop_assert!(path.len() <= bound, "{} hops on {} positions", path.len(), ring.len());
        }
    }

    /// Ownership partitions the circle: exactly one position's range holds
    /// each id, and it is the owner.
    #[test]
    fn ranges_partition_the_circle(ring in arb_ring(), key in any::<u64>()) {
        let id = ring.key_id(&BigInt::from(key).to_signed_bytes_be());
        let holders: Vec<usize> = (0..ring.len()).filter(|p| {
            let (a, b) = ring.range(*p);
            crate::in_half_open(&id, &a, &b)
        }).collect();
        prop_assert_eq!(holders, vec![ring.owner(&id)]);
    }
}

/// Every key of a range is owned by one of the positions named for it;
/// under direct placement a short range names only the arc it covers.
#[test]
fn positions_for_a_range_cover_every_key_in_it() {
    let direct = Ring::evenly(8, 4, Placement::Direct).unwrap();
    let hashed = Ring::evenly(8, 4, Placement::Hash).unwrap();
    let wire = |n: i64| wire(&n.to_string());
    for (lo, hi) in [(10i64, 20i64), (-5, 5), (60, 70), (0, 255), (-300, 300), (250, 260), (7, 7)] {
        for ring in [&direct, &hashed] {
            let named = ring.positions_for_range(&wire(lo), &wire(hi));
            for k in lo..=hi {
                assert!(named.contains(&ring.owner_of_key(&wire(k))), "key {k} of [{lo}, {hi}]: {named:?}");
            }
        }
    }
    assert_eq!(direct.positions_for_range(&wire(10), &wire(20)).len(), 1, "one position's arc");
    assert_eq!(direct.positions_for_range(&wire(0), &wire(1000)).len(), 4, "wider than the circle");
    assert_eq!(hashed.positions_for_range(&wire(10), &wire(20)).len(), 4, "hashed keys are everywhere");
    assert!(direct.positions_for_range(&wire(5), &wire(4)).is_empty(), "an empty range");
}
