//! The key space, identical on both systems.
//!
//! A key is `key_size` bytes: filler bytes, then 8 big-endian bytes whose
//! first is 0x40 and the other 7 the key's index. ringkv's keys are
//! integers in minimal signed big-endian form, and these bytes are already
//! that form (the first byte is neither 0x00 nor 0xff, the sign is +), so
//! ringkv and etcd store exactly the same key bytes. Indices below `keys`
//! are the preloaded keys; inserts use fresh indices above `FRESH`, unique
//! per run, task and operation, so every `set` is a real insert even when
//! runs follow each other on the same cluster.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;

use crate::args::{BenchArgs, Distribution};

/// Indices at and above this are fresh (inserted) keys.
pub const FRESH: u64 = 1 << 55;
const FILLER: u8 = b'k';

/// The bytes of key `index`.
pub fn key_bytes(index: u64, key_size: usize) -> Vec<u8> {
    let mut key = vec![FILLER; key_size];
    let tail = (0x40u64 << 56) | (index & ((1 << 56) - 1));
    key[key_size - 8..].copy_from_slice(&tail.to_be_bytes());
    key
}

/// One task's choice of keys.
pub struct KeyChooser {
    rng: SmallRng,
    keys: u64,
    zipf: Option<Zipf<f64>>,
    /// Bits 44..55 the run, 28..44 the task; the low 28 count its inserts.
    fresh_base: u64,
    inserted: u64,
}

impl KeyChooser {
    pub fn new(args: &BenchArgs, run: u64, task: u64) -> anyhow::Result<KeyChooser> {
        let zipf = match args.distribution {
            Distribution::Uniform => None,
            Distribution::Zipfian => Some(Zipf::new(args.keys as f64, args.zipf_s)?),
        };
        Ok(KeyChooser {
            rng: SmallRng::seed_from_u64(run ^ task.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            keys: args.keys,
            zipf,
            fresh_base: FRESH | ((run & 0x7ff) << 44) | ((task & 0xffff) << 28),
            inserted: 0,
        })
    }

    /// A preloaded key's index, by the configured distribution.
    pub fn existing(&mut self) -> u64 {
        match &self.zipf {
            // Zipf samples 1..=n; rank 1 is the hottest key.
            Some(z) => (self.rng.sample(z) as u64).clamp(1, self.keys) - 1,
            None => self.rng.random_range(0..self.keys),
        }
    }

    /// A key never used before.
    pub fn fresh(&mut self) -> u64 {
        self.inserted += 1;
        self.fresh_base | (self.inserted & ((1 << 28) - 1))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_minimal_positive_integers_of_the_asked_size() {
        for size in [8, 9, 16] {
            for index in [0, 1, 9_999, FRESH | 12345] {
                let k = key_bytes(index, size);
                assert_eq!(k.len(), size);
                assert!(k[0] != 0 && k[0] != 0xff && k[0] & 0x80 == 0, "{k:?}");
            }
        }
        assert_ne!(key_bytes(1, 8), key_bytes(2, 8));
    }

    #[test]
    fn fresh_keys_differ_across_tasks_and_runs_and_never_hit_preloaded_ones() {
        let args = BenchArgs::parse_for_test();
        let mut a = KeyChooser::new(&args, 1, 0).unwrap();
        let mut b = KeyChooser::new(&args, 1, 1).unwrap();
        let mut c = KeyChooser::new(&args, 2, 0).unwrap();
        let (x, y, z) = (a.fresh(), b.fresh(), c.fresh());
        assert!(x != y && x != z && y != z);
        assert!(x >= FRESH && a.fresh() != x);
        for _ in 0..1000 {
            assert!(a.existing() < args.keys);
        }
    }

    #[test]
    fn zipfian_prefers_the_first_keys() {
        let mut args = BenchArgs::parse_for_test();
        args.distribution = Distribution::Zipfian;
        let mut k = KeyChooser::new(&args, 7, 0).unwrap();
        let hot = (0..10_000).filter(|_| k.existing() < 10).count();
        assert!(hot > 2_000, "only {hot} of 10000 picks in the 10 hottest keys");
    }
}
