//! The typed forms of what the server answers.

use std::fmt;

use bytes::Bytes;
use ringkv_api::pb;

use crate::ClientError;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub version: i64,
    pub timestamp: i64,
    pub data: Bytes,
}

/// The outcome of an operation (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Error,
    /// The key does not exist.
    ErrorNe,
    /// The key exists with another version.
    ErrorWv,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Success => "SUCCESS",
            Outcome::Error => "ERROR",
            Outcome::ErrorNe => "ERROR_NE",
            Outcome::ErrorWv => "ERROR_WV",
        })
    }
}

/// An answer: an outcome and, depending on the operation and outcome, a
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub outcome: Outcome,
    pub value: Option<Value>,
}

impl TryFrom<pb::Reply> for Reply {
    type Error = ClientError;

    fn try_from(r: pb::Reply) -> Result<Self, ClientError> {
        let outcome = match pb::Status::try_from(r.status) {
            Ok(pb::Status::Success) => Outcome::Success,
            Ok(pb::Status::Error) => Outcome::Error,
            Ok(pb::Status::ErrorNe) => Outcome::ErrorNe,
            Ok(pb::Status::ErrorWv) => Outcome::ErrorWv,
            Ok(pb::Status::Unspecified) | Err(_) => {
                return Err(ClientError::Protocol(format!("server sent status {}", r.status)))
            }
        };
        let value = r.value.map(|v| Value { version: v.version, timestamp: v.timestamp, data: v.data });
        Ok(Reply { outcome, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_convert() {
        let r = pb::Reply {
            status: pb::Status::ErrorWv as i32,
            value: Some(pb::Value { version: 3, timestamp: 4, data: Bytes::from_static(b"x") }),
        };
        let r = Reply::try_from(r).unwrap();
        assert_eq!(r.outcome, Outcome::ErrorWv);
        assert_eq!(r.value.unwrap().version, 3);
        assert!(Reply::try_from(pb::Reply { status: 0, value: None }).is_err());
        assert!(Reply::try_from(pb::Reply { status: 99, value: None }).is_err());
        assert_eq!(Outcome::ErrorNe.to_string(), "ERROR_NE");
    }
}
