//! The store's own key encoding: one ordered key space holding every kind
//! of key, so that a range over the store is a range over keys in their
//! natural order.
//!
//! - An integer key (a `KeyValue` key, its wire bytes minimal two's
//!   complement) is `0x10` (negative) or `0x11` (zero or positive), then its
//!   length as a big-endian u16 (inverted for negatives: a longer negative
//!   number is a smaller one), then its wire bytes. Two numbers of one sign
//!   and length compare as their bytes do, so byte order is numeric order.
//! - A text key (a `project.KeyValueStore` key, a UTF-8 string) is `0x20`
//!   then its UTF-8 bytes: byte order is the strings' code-point order.
//!   Text keys sort after every integer and never meet one.
//!
//! Commands, snapshots, digests and the store all hold keys in this
//! encoding; the service layer encodes a key when it builds a command.

/// The tag of a negative integer key.
const NEGATIVE: u8 = 0x10;
/// The tag of a zero or positive integer key.
const NON_NEGATIVE: u8 = 0x11;
/// Tag and length before the wire bytes of an integer key.
const INT_HEADER: usize = 3;
/// The tag of a text key.
const TEXT: u8 = 0x20;

/// The store key of an integer key, from its (validated, minimal) wire
/// bytes.
pub fn int(wire: &[u8]) -> Vec<u8> {
    let negative = wire.first().is_some_and(|b| b & 0x80 != 0);
    // Wire keys are at most MAX_KEY_BYTES (480): the length fits a u16.
    let len = wire.len() as u16;
    let (tag, len) = if negative { (NEGATIVE, u16::MAX - len) } else { (NON_NEGATIVE, len) };
    let mut key = Vec::with_capacity(INT_HEADER + wire.len());
    key.push(tag);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(wire);
    key
}

/// The wire bytes of an integer store key; `None` for any other key.
pub fn int_wire(key: &[u8]) -> Option<&[u8]> {
    match key.first() {
        Some(&NEGATIVE | &NON_NEGATIVE) => key.get(INT_HEADER..),
        _ => None,
    }
}

/// The store key of a text key. It is also what the ring places.
pub fn text(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(TEXT);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The string of a text store key; `None` for any other key.
pub fn text_str(key: &[u8]) -> Option<&str> {
    match key.split_first() {
        Some((&TEXT, rest)) => std::str::from_utf8(rest).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;

    #[test]
    fn store_order_is_numeric_order() {
        let numbers: Vec<BigInt> = [
            "-100000000000000000000",
            "-65536",
            "-129",
            "-128",
            "-2",
            "-1",
            "0",
            "1",
            "127",
            "128",
            "255",
            "256",
            "65536",
            "100000000000000000000",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let keys: Vec<Vec<u8>> = numbers.iter().map(|n| int(&ringkv_api::key::encode_key(n))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "byte order of store keys follows the numbers");
        for (n, k) in numbers.iter().zip(&keys) {
            assert_eq!(int_wire(k).unwrap(), ringkv_api::key::encode_key(n).as_slice());
        }
    }
}
