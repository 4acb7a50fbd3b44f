//! How answers are shown: readable by default, one JSON object with
//! `--json`.
//!
//! The readable form is for people, so long data is cut (in the display
//! only, with the full length said) and bytes that are not printable text
//! are shown as hex. The JSON form is for programs, so it is never cut:
//! `data_hex` always holds the exact bytes, and `data` the same bytes as
//! text when they are valid UTF-8 (null otherwise, rather than a lossy
//! guess).

use ringkv_client::{History, Reply, Value};
use serde_json::json;

/// Longest data, in bytes, shown in full in readable output.
const SHOW_BYTES: usize = 200;

/// Renders a reply for people: the outcome, then the value on an indented
/// line if there is one.
pub fn readable(reply: &Reply) -> String {
    match &reply.value {
        None => reply.outcome.to_string(),
        Some(v) => format!("{}\n  {}", reply.outcome, value_line(v)),
    }
}

fn value_line(v: &Value) -> String {
    format!("version {}  timestamp {}  data {}", v.version, v.timestamp, show_data(&v.data))
}

/// Data in quotes when all of it is printable UTF-8, as `hex:…` otherwise;
/// data longer than `SHOW_BYTES` is cut in the display, with its full length
/// said.
pub fn show_data(data: &[u8]) -> String {
    let body = match std::str::from_utf8(data) {
        Ok(s) if s.chars().all(printable) => format!("{:?}", cut_text(s, SHOW_BYTES)),
        _ => format!("hex:{}", hex::encode(&data[..data.len().min(SHOW_BYTES)])),
    };
    if data.len() > SHOW_BYTES {
        format!("{body}… ({} bytes in all)", data.len())
    } else {
        body
    }
}

/// Text worth showing as text: anything but control characters, except the
/// usual whitespace (shown escaped).
fn printable(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\t' | '\r')
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn cut_text(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Renders a reply as one JSON object:
/// `{"status":"SUCCESS","value":{"version":…,"timestamp":…,"data":…,"data_hex":…}}`,
/// with `value` null when the reply has none.
pub fn json(reply: &Reply) -> String {
    json!({ "status": reply.outcome.to_string(), "value": reply.value.as_ref().map(value_json) }).to_string()
}

fn value_json(v: &Value) -> serde_json::Value {
    json!({
        "version": v.version,
        "timestamp": v.timestamp,
        "data": std::str::from_utf8(&v.data).ok(),
        "data_hex": hex::encode(&v.data),
    })
}

/// Renders a history for people: the outcome, then one line per version,
/// newest first.
pub fn history_readable(history: &History) -> String {
    let mut out = history.outcome.to_string();
    for v in &history.versions {
        out.push_str("\n  ");
        out.push_str(&value_line(v));
    }
    out
}

/// Renders a range's pairs for people: how many, then one line per key.
pub fn pairs_readable(pairs: &[(num_bigint::BigInt, Value)]) -> String {
    let mut out = format!("{} key{}", pairs.len(), if pairs.len() == 1 { "" } else { "s" });
    for (k, v) in pairs {
        out.push_str(&format!("\n  {k}  {}", value_line(v)));
    }
    out
}

/// Renders a range's pairs as one JSON object: `{"pairs":[{"key":"…","value":…}]}`
/// (keys as decimal strings: they may be any size).
pub fn pairs_json(pairs: &[(num_bigint::BigInt, Value)]) -> String {
    let pairs: Vec<_> = pairs.iter().map(|(k, v)| json!({ "key": k.to_string(), "value": value_json(v) })).collect();
    json!({ "pairs": pairs }).to_string()
}

/// Renders a history as one JSON object: `{"status":…,"versions":[…]}`,
/// each version as in `json`, newest first.
pub fn history_json(history: &History) -> String {
    let versions: Vec<_> = history.versions.iter().map(value_json).collect();
    json!({ "status": history.outcome.to_string(), "versions": versions }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringkv_client::Outcome;

    fn reply(data: impl Into<Bytes>) -> Reply {
        Reply { outcome: Outcome::ErrorWv, value: Some(Value { version: 2, timestamp: 9, data: data.into() }) }
    }

    #[test]
    fn readable_forms() {
        assert_eq!(readable(&Reply { outcome: Outcome::Success, value: None }), "SUCCESS");
        assert_eq!(readable(&Reply { outcome: Outcome::ErrorNe, value: None }), "ERROR_NE");
        assert_eq!(readable(&reply("hi")), "ERROR_WV\n  version 2  timestamp 9  data \"hi\"");
        assert!(readable(&reply(&b"\x00\xff"[..])).ends_with("data hex:00ff"));
        assert!(readable(&reply(&b"bell\x07"[..])).ends_with("data hex:62656c6c07"), "control chars are not text");
        assert_eq!(show_data(b"a \"quoted\"\nline"), r#""a \"quoted\"\nline""#);
        assert_eq!(show_data(b""), r#""""#);
    }

    #[test]
    fn long_data_is_cut_in_the_display_only() {
        let long = show_data(&[b'a'; 500]);
        assert_eq!(long, format!("{:?}… (500 bytes in all)", "a".repeat(SHOW_BYTES)));
        let binary = show_data(&[0u8; 300]);
        assert_eq!(binary, format!("hex:{}… (300 bytes in all)", "00".repeat(SHOW_BYTES)));
        // A cut inside a multi-byte character still shows text, not hex.
        let text = format!("a{}", "é".repeat(150));
        let shown = show_data(text.as_bytes());
        assert!(shown.starts_with("\"aéé") && shown.ends_with("(301 bytes in all)"), "{shown}");
        // The JSON is never cut.
        let v: serde_json::Value = serde_json::from_str(&json(&reply(vec![b'a'; 500]))).unwrap();
        assert_eq!(v["value"]["data"].as_str().map(str::len), Some(500));
    }

    #[test]
    fn json_form() {
        let v: serde_json::Value = serde_json::from_str(&json(&reply("hello"))).unwrap();
        assert_eq!(
            v,
            json!({"status": "ERROR_WV", "value": {"version": 2, "timestamp": 9, "data": "hello", "data_hex": "68656c6c6f"}})
        );
        let none: serde_json::Value =
            serde_json::from_str(&json(&Reply { outcome: Outcome::Error, value: None })).unwrap();
        assert_eq!(none, json!({"status": "ERROR", "value": null}));
        let binary: serde_json::Value = serde_json::from_str(&json(&reply(&b"\xff\x00"[..]))).unwrap();
        assert!(binary["value"]["data"].is_null());
        assert_eq!(binary["value"]["data_hex"], "ff00");
        assert!(!json(&reply("x")).contains('\n'), "one line");
    }
}
