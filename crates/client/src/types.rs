//! The typed forms of what the server answers: the wire's `Reply` checked
//! once on arrival (an unknown or unspecified status is a protocol error,
//! never guessed at), so callers match on a closed `Outcome`.

use std::fmt;

use bytes::Bytes;
use ringkv_api::pb;

use crate::ClientError;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// 1 on insert, +1 on every successful test-and-set.
    pub version: i64,
    /// Chosen by the client that wrote the value; the server only keeps it.
    pub timestamp: i64,
    /// The opaque bytes.
    pub data: Bytes,
}

/// The outcome of an operation (docs/design.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The operation took effect (or, for `get`, the key was found).
    Success,
    /// `set`: the key already exists; `get` and `del`: it does not.
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
    /// What happened.
    pub outcome: Outcome,
    /// The value the outcome table (docs/design.md §2) says comes with it.
    pub value: Option<Value>,
}

impl TryFrom<pb::Reply> for Reply {
    type Error = ClientError;

    fn try_from(r: pb::Reply) -> Result<Self, ClientError> {
        Ok(Reply { outcome: outcome_of(r.status)?, value: r.value.map(Value::from) })
    }
}

/// A key's kept versions, as `Client::history` answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// `Success`, or `Error` when the key is absent.
    pub outcome: Outcome,
    /// Newest first.
    pub versions: Vec<Value>,
}

impl TryFrom<pb::HistoryReply> for History {
    type Error = ClientError;

    fn try_from(r: pb::HistoryReply) -> Result<Self, ClientError> {
        Ok(History { outcome: outcome_of(r.status)?, versions: r.values.into_iter().map(Value::from).collect() })
    }
}

impl From<pb::Value> for Value {
    fn from(v: pb::Value) -> Self {
        Value { version: v.version, timestamp: v.timestamp, data: v.data }
    }
}

fn outcome_of(status: i32) -> Result<Outcome, ClientError> {
    match pb::Status::try_from(status) {
        Ok(pb::Status::Success) => Ok(Outcome::Success),
        Ok(pb::Status::Error) => Ok(Outcome::Error),
        Ok(pb::Status::ErrorNe) => Ok(Outcome::ErrorNe),
        Ok(pb::Status::ErrorWv) => Ok(Outcome::ErrorWv),
        Ok(pb::Status::Unspecified) | Err(_) => Err(ClientError::Protocol(format!("server sent status {status}"))),
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

    #[test]
    fn every_status_and_its_name() {
        for (status, outcome, name) in [
            (pb::Status::Success, Outcome::Success, "SUCCESS"),
            (pb::Status::Error, Outcome::Error, "ERROR"),
            (pb::Status::ErrorNe, Outcome::ErrorNe, "ERROR_NE"),
            (pb::Status::ErrorWv, Outcome::ErrorWv, "ERROR_WV"),
        ] {
            let r = Reply::try_from(pb::Reply { status: status as i32, value: None }).unwrap();
            assert_eq!(r, Reply { outcome, value: None });
            assert_eq!(outcome.to_string(), name);
        }
        let e = Reply::try_from(pb::Reply { status: 0, value: None }).unwrap_err();
        assert!(matches!(&e, ClientError::Protocol(m) if m.contains('0')), "{e:?}");
    }

    #[test]
    fn values_keep_every_field() {
        let data = Bytes::from(vec![0u8, 255, 7]);
        let r = Reply::try_from(pb::Reply {
            status: pb::Status::Success as i32,
            value: Some(pb::Value { version: i64::MAX, timestamp: -1, data: data.clone() }),
        })
        .unwrap();
        assert_eq!(r.value, Some(Value { version: i64::MAX, timestamp: -1, data }));
    }
}
