//! Keys are arbitrary-precision integers. On the wire they are two's
//! complement, big-endian, minimal length: exactly Java's
//! `BigInteger.toByteArray()`. Minimality matters because the server stores
//! and hashes the raw bytes: two encodings of one number must never become
//! two keys.

use num_bigint::BigInt;

/// The longest key, in wire bytes (a 3,840-bit integer). LMDB refuses keys
/// over 511 bytes, and a key the store cannot hold must be refused at the
/// door: accepted into the log, it would fail at apply on every replica,
/// and again at every restart. The rest of LMDB's 511 is left for the
/// store's own prefixes and suffixes (a kind tag, a version).
pub const MAX_KEY_BYTES: usize = 480;

/// Why a key's wire form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty: a key is at least one byte (zero is 0x00)")]
    Empty,
    #[error(
        "key is not minimal: byte 0x{first:02x} followed by 0x{second:02x} encodes the same number \
         without its first byte (use two's-complement minimal bytes, as Java's BigInteger.toByteArray())"
    )]
    NotMinimal { first: u8, second: u8 },
    #[error("key is {len} bytes; the longest key is {limit} bytes (a {bits}-bit integer)", bits = limit * 8)]
    TooLong { len: usize, limit: usize },
}

/// Encodes a big integer as its minimal two's-complement big-endian bytes.
pub fn encode_key(key: &BigInt) -> Vec<u8> {
    // num-bigint's signed encoding is already minimal and gives [0] for zero.
    key.to_signed_bytes_be()
}

/// Checks that `bytes` is a valid key encoding: non-empty, minimal, and
/// at most `MAX_KEY_BYTES` long.
pub fn validate_key(bytes: &[u8]) -> Result<(), KeyError> {
    match bytes {
        [] => Err(KeyError::Empty),
        _ if bytes.len() > MAX_KEY_BYTES => Err(KeyError::TooLong { len: bytes.len(), limit: MAX_KEY_BYTES }),
        [first, second, ..] if redundant_sign_byte(*first, *second) => {
            Err(KeyError::NotMinimal { first: *first, second: *second })
        }
        _ => Ok(()),
    }
}

/// A leading 0x00 before a byte whose top bit is clear, or 0xff before one
/// whose top bit is set, only repeats the sign and could be dropped.
fn redundant_sign_byte(first: u8, second: u8) -> bool {
    (first == 0x00 && second & 0x80 == 0) || (first == 0xff && second & 0x80 != 0)
}

/// Decodes and validates a key's wire form.
pub fn decode_key(bytes: &[u8]) -> Result<BigInt, KeyError> {
    validate_key(bytes)?;
    Ok(BigInt::from_signed_bytes_be(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_examples() {
        // The examples from docs/design.md §1, which are Java's own.
        for (n, bytes) in [
            (0i64, vec![0x00]),
            (-128, vec![0x80]),
            (128, vec![0x00, 0x80]),
            (127, vec![0x7f]),
            (-1, vec![0xff]),
            (-129, vec![0xff, 0x7f]),
            (255, vec![0x00, 0xff]),
            (256, vec![0x01, 0x00]),
        ] {
            let big = BigInt::from(n);
            assert_eq!(encode_key(&big), bytes, "encode {n}");
            assert_eq!(decode_key(&bytes).unwrap(), big, "decode {n}");
        }
    }

    #[test]
    fn rejects_empty_and_non_minimal() {
        assert_eq!(decode_key(&[]), Err(KeyError::Empty));
        assert!(matches!(decode_key(&[0x00, 0x01]), Err(KeyError::NotMinimal { .. })));
        assert!(matches!(decode_key(&[0xff, 0x80]), Err(KeyError::NotMinimal { .. })));
        assert!(matches!(decode_key(&[0x00, 0x00]), Err(KeyError::NotMinimal { .. })));
        let long = [0x7f; MAX_KEY_BYTES + 1];
        assert_eq!(decode_key(&long), Err(KeyError::TooLong { len: MAX_KEY_BYTES + 1, limit: MAX_KEY_BYTES }));
        assert!(decode_key(&long[1..]).is_ok(), "the longest key is accepted");
        // Needed sign bytes are fine.
        assert!(decode_key(&[0x00, 0x80]).is_ok());
        assert!(decode_key(&[0xff, 0x7f]).is_ok());
    }

    #[test]
    fn round_trip_large() {
        let big: BigInt = "-123456789012345678901234567890123456789".parse().unwrap();
        assert_eq!(decode_key(&encode_key(&big)).unwrap(), big);
    }
}
