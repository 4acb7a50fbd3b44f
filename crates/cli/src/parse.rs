//! How users write keys, data, versions and timestamps on the command line.
//!
//! Shared by the one-shot commands and the shell. Every error names the
//! text it refused and shows an accepted form, because the user reads it.

use anyhow::{anyhow, bail, Context};
use num_bigint::BigInt;
use num_traits::Num;

/// A key: decimal (`42`, `-7`, any size) or hex (`0x1f`, `-0x1f`).
pub fn key(text: &str) -> anyhow::Result<BigInt> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        bail!("key {text:?} is not an integer (decimal like -42, or hex like 0x2a)");
    }
    let magnitude = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) if hex.starts_with(|c: char| c.is_ascii_hexdigit()) => BigInt::from_str_radix(hex, 16),
        Some(_) => bail!("key {text:?}: hex digits expected after 0x"),
        None => BigInt::from_str_radix(digits, 10),
    }
    .map_err(|_| anyhow!("key {text:?} is not an integer (decimal like -42, or hex like 0x2a)"))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Data: plain text, `@path` for a file's bytes, `hex:…` for hex bytes.
pub fn data(text: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = text.strip_prefix('@') {
        return std::fs::read(path).with_context(|| format!("cannot read data file {path}"));
    }
    if let Some(h) = text.strip_prefix("hex:") {
        return hex::decode(h).map_err(|e| anyhow!("data {text:?} is not valid hex: {e}"));
    }
    Ok(text.as_bytes().to_vec())
}

/// A version number (a signed 64-bit integer, as on the wire).
pub fn version(text: &str) -> anyhow::Result<i64> {
    text.parse().map_err(|_| anyhow!("version {text:?} is not an integer (e.g. 1)"))
}

/// A timestamp: any signed 64-bit integer; by convention milliseconds since
/// the Unix epoch, but the server stores it without looking.
pub fn timestamp(text: &str) -> anyhow::Result<i64> {
    text.parse().map_err(|_| {
        anyhow!("timestamp {text:?} is not an integer (milliseconds since the Unix epoch, e.g. 1700000000000)")
    })
}

/// Milliseconds since the Unix epoch: the default timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(key("42").unwrap(), BigInt::from(42));
        assert_eq!(key("-7").unwrap(), BigInt::from(-7));
        assert_eq!(key("0x1f").unwrap(), BigInt::from(31));
        assert_eq!(key("-0x1F").unwrap(), BigInt::from(-31));
        let big = "123456789012345678901234567890123456789";
        assert_eq!(key(big).unwrap().to_string(), big);
        for bad in ["", "-", "abc", "0x", "1.5", "0xzz", "--1", "-+1", "0x-1", "+-1"] {
            assert!(key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn big_keys_both_signs_and_bases() {
        let huge = format!("-{}", "9".repeat(100));
        assert_eq!(key(&huge).unwrap().to_string(), huge);
        let hex = key("0xffffffffffffffffffffffffffffffff").unwrap();
        assert_eq!(hex, (BigInt::from(1) << 128) - 1);
        assert_eq!(key("0").unwrap(), BigInt::from(0));
        assert_eq!(key("-0").unwrap(), BigInt::from(0));
        assert_eq!(key("0X1F").unwrap(), BigInt::from(31));
        let e = key("12abc").unwrap_err().to_string();
        assert!(e.contains("12abc") && e.contains("0x2a"), "{e}");
    }

    #[test]
    fn versions_and_timestamps() {
        assert_eq!(version("3").unwrap(), 3);
        assert_eq!(version("-1").unwrap(), -1);
        assert!(version("1.0").is_err());
        assert!(version("99999999999999999999").is_err(), "beyond i64");
        assert_eq!(timestamp("-5").unwrap(), -5);
        assert!(timestamp("now").is_err());
        assert!(now_ms() > 1_600_000_000_000);
    }

    #[test]
    fn data_forms() {
        assert_eq!(data("hello").unwrap(), b"hello");
        assert_eq!(data("hex:00ff").unwrap(), vec![0, 255]);
        assert!(data("hex:0").is_err());
        assert!(data("hex:zz").is_err());
        assert_eq!(data("hex:DEADBEEF").unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(data("hex:").unwrap(), Vec::<u8>::new());
        assert_eq!(data("").unwrap(), Vec::<u8>::new());
        assert_eq!(data("héllo").unwrap(), "héllo".as_bytes());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), [1u8, 2, 3]).unwrap();
        assert_eq!(data(&format!("@{}", f.path().display())).unwrap(), vec![1, 2, 3]);
        assert!(data("@/no/such/file").is_err());
    }
}
