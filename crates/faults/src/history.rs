//! The history of a run: one record per operation, written as JSON lines
//! so that a run can be checked again offline (`ringkv faults --check FILE`).
//!
//! Every written datum is unique in a run (a number), so a read tells
//! exactly which write it saw.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::FaultsError;

/// An operation's input, on one key (docs/design.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    Get,
    Set {
        data: u64,
    },
    Del,
    DelVersion {
        version: i64,
    },
    TestAndSet {
        version: i64,
        data: u64,
    },
    /// An unconditional write: always succeeds, making a new version.
    Put {
        data: u64,
    },
    /// A read of one kept version.
    GetAt {
        version: i64,
    },
}

impl Op {
    /// Whether the operation can change the register.
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get | Op::GetAt { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set { .. } => "set",
            Op::Del => "del",
            Op::DelVersion { .. } => "delVersion",
            Op::TestAndSet { .. } => "testAndSet",
            Op::Put { .. } => "put",
            Op::GetAt { .. } => "getAt",
        }
    }
}

/// A stored value as the harness sees it: its version and which write put
/// it there (the datum). A datum that is not one of ours reads as
/// `u64::MAX`, which no write produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Val {
    pub version: i64,
    pub data: u64,
}

/// The store's answer (its `Outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Success,
    Error,
    ErrorNe,
    ErrorWv,
}

impl Status {
    /// As the outcome table and the history file write it.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Error => "ERROR",
            Status::ErrorNe => "ERROR_NE",
            Status::ErrorWv => "ERROR_WV",
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// An answer: it took effect exactly as the answer says.
    Ok { status: Status, value: Option<Val> },
    /// Refused without effect (bad input): certainly did not happen.
    Fail { why: String },
    /// No answer (deadline, connection lost, "may or may not have taken
    /// effect"): it may take effect at any time after its invocation, or
    /// never.
    Indeterminate { why: String },
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Indeterminate { .. } => "indeterminate",
        }
    }
}

/// One operation: who, what, when (nanoseconds since the run started, one
/// monotonic clock for every client) and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub client: u32,
    pub key: u32,
    pub op: Op,
    pub invoke_ns: u64,
    /// When the answer (or the give-up) came.
    pub return_ns: u64,
    pub outcome: Outcome,
}

/// Writes `records` as JSON lines.
pub fn write_jsonl(path: &Path, records: &[Record]) -> Result<(), FaultsError> {
    let ctx = || format!("cannot write {}", path.display());
    let file = std::fs::File::create(path).map_err(FaultsError::io(ctx()))?;
    let mut out = std::io::BufWriter::new(file);
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| FaultsError::io(ctx())(e.into()))?;
        writeln!(out, "{line}").map_err(FaultsError::io(ctx()))?;
    }
    out.flush().map_err(FaultsError::io(ctx()))
}

/// Reads a history written by `write_jsonl`.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, FaultsError> {
    let file = std::fs::File::open(path).map_err(FaultsError::io(format!("cannot read {}", path.display())))?;
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(FaultsError::io(format!("cannot read {}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let r = serde_json::from_str(&line).map_err(|e| FaultsError::History {
            path: path.display().to_string(),
            line: i + 1,
            why: e.to_string(),
        })?;
        records.push(r);
    }
    Ok(records)
}

/// A datum as `c<client>.<n>`: the workload numbers each client's writes
/// from `(client + 1) << 40`.
pub struct Datum(pub u64);

impl std::fmt::Display for Datum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            u64::MAX => write!(f, "<foreign data>"),
            d if d >> 40 == 0 => write!(f, "{d}"),
            d => write!(f, "c{}.{}", (d >> 40) - 1, d & ((1 << 40) - 1)),
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}:{}", self.version, Datum(self.data))
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Get => write!(f, "get"),
            Op::Set { data } => write!(f, "set {}", Datum(*data)),
            Op::Del => write!(f, "del"),
            Op::DelVersion { version } => write!(f, "delVersion v{version}"),
            Op::TestAndSet { version, data } => write!(f, "testAndSet v{version} -> {}", Datum(*data)),
            Op::Put { data } => write!(f, "put {}", Datum(*data)),
            Op::GetAt { version } => write!(f, "getAt v{version}"),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok { status, value: Some(v) } => write!(f, "{status:?} {v}"),
            Outcome::Ok { status, value: None } => write!(f, "{status:?}"),
            Outcome::Fail { why } => write!(f, "FAILED ({why})"),
            Outcome::Indeterminate { why } => write!(f, "INDETERMINATE ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_get_at_in_a_history_file() {
        let put = Op::Put { data: (3 << 40) + 5 };
        let at = Op::GetAt { version: 4 };
        assert_eq!(serde_json::to_string(&put).unwrap(), format!(r#"{{"f":"put","data":{}}}"#, (3u64 << 40) + 5));
        assert_eq!(serde_json::to_string(&at).unwrap(), r#"{"f":"get_at","version":4}"#);
        for op in [put, at] {
            assert_eq!(serde_json::from_str::<Op>(&serde_json::to_string(&op).unwrap()).unwrap(), op);
        }
        assert!(put.is_write() && !at.is_write(), "a read at a version changes nothing");
        assert_eq!((put.name(), at.name()), ("put", "getAt"));
        assert_eq!((put.to_string(), at.to_string()), ("put c2.5".to_string(), "getAt v4".to_string()));
        assert_eq!(Status::ErrorWv.name(), serde_json::to_value(Status::ErrorWv).unwrap());
    }
}
