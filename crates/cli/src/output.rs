//! How answers are shown: readable by default, JSON with `--json`.

use ringkv_client::{Reply, Value};
use serde_json::json;

/// Longest data shown in full in readable output.
const SHOW_BYTES: usize = 200;

/// Renders a reply for people.
pub fn readable(reply: &Reply) -> String {
    match &reply.value {
        None => reply.outcome.to_string(),
        Some(v) => format!("{}\n  {}", reply.outcome, value_line(v)),
    }
}

fn value_line(v: &Value) -> String {
    format!("version {}  timestamp {}  data {}", v.version, v.timestamp, show_data(&v.data))
}

/// Text in quotes when it is printable UTF-8, hex otherwise; long data is
/// cut in the display only, with its full length said.
pub fn show_data(data: &[u8]) -> String {
    let shown = &data[..data.len().min(SHOW_BYTES)];
    let body = match std::str::from_utf8(shown) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') => format!("{s:?}"),
        _ => format!("hex:{}", hex::encode(shown)),
    };
    if data.len() > SHOW_BYTES {
        format!("{body}… ({} bytes in all)", data.len())
    } else {
        body
    }
}

/// Renders a reply as one JSON object.
pub fn json(reply: &Reply) -> String {
    let value = reply.value.as_ref().map(|v| {
        json!({
            "version": v.version,
            "timestamp": v.timestamp,
            "data": String::from_utf8_lossy(&v.data),
            "data_hex": hex::encode(&v.data),
        })
    });
    json!({ "status": reply.outcome.to_string(), "value": value }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringkv_client::Outcome;

    fn reply(data: &'static [u8]) -> Reply {
        Reply {
            outcome: Outcome::ErrorWv,
            value: Some(Value { version: 2, timestamp: 9, data: Bytes::from_static(data) }),
        }
    }

    #[test]
    fn readable_forms() {
        assert_eq!(readable(&Reply { outcome: Outcome::Success, value: None }), "SUCCESS");
        assert_eq!(readable(&reply(b"hi")), "ERROR_WV\n  version 2  timestamp 9  data \"hi\"");
        assert!(readable(&reply(b"\x00\xff")).ends_with("data hex:00ff"));
        let long = show_data(&[b'a'; 500]);
        assert!(long.contains("500 bytes in all"), "{long}");
    }

    #[test]
    fn json_form() {
        let v: serde_json::Value = serde_json::from_str(&json(&reply(b"hi"))).unwrap();
        assert_eq!(v["status"], "ERROR_WV");
        assert_eq!(v["value"]["version"], 2);
        assert_eq!(v["value"]["data_hex"], "6869");
        let none: serde_json::Value =
            serde_json::from_str(&json(&Reply { outcome: Outcome::Error, value: None })).unwrap();
        assert!(none["value"].is_null());
    }
}
