//! A key's id on the ring.
//!
//! `hash` (the default) spreads keys evenly whatever their values: the
//! SHA-1 digest of the key's wire bytes (minimal two's complement, as
//! Java's `BigInteger.toByteArray()`), read as a big-endian integer and
//! reduced modulo `2^m` (its low `m` bits). SHA-1 is what Chord uses; it is
//! stable and in every language's standard library, so a client in any
//! language can place keys itself. It serves placement, not security.
//!
//! `direct` keeps neighbouring keys together (range locality): the key's
//! integer value modulo `2^m`, so a negative key wraps (−1 → `2^m − 1`).

use num_bigint::{BigInt, BigUint, Sign};
use sha1::{Digest, Sha1};

use crate::Ring;

/// How a key becomes an id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// SHA-1 of the key's wire bytes, modulo `2^m`.
    #[default]
    Hash,
    /// The key's integer value, modulo `2^m`.
    Direct,
}

impl Placement {
    /// The widest `m` this placement fills (SHA-1 has 160 bits).
    pub fn max_bits(self) -> Option<u32> {
        match self {
            Placement::Hash => Some(160),
            Placement::Direct => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Hash => "hash",
            Placement::Direct => "direct",
        }
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Placement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hash" => Ok(Placement::Hash),
            "direct" => Ok(Placement::Direct),
            _ => Err(format!("placement {s:?} is neither \"hash\" nor \"direct\"")),
        }
    }
}

impl Ring {
    /// A key's id, from its wire bytes (assumed valid: callers check keys
    /// before routing them).
    pub fn key_id(&self, key: &[u8]) -> BigUint {
        let wide = match self.placement {
            Placement::Hash => BigUint::from_bytes_be(&Sha1::digest(key)),
            Placement::Direct => {
                let value = BigInt::from_signed_bytes_be(key);
                let modulus = BigInt::from_biguint(Sign::Plus, self.modulus.clone());
                let wrapped = ((value % &modulus) + &modulus) % &modulus;
                wrapped.to_biguint().unwrap_or_default()
            }
        };
        wide % &self.modulus
    }
}
