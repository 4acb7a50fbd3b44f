//! The outcome table of docs/design.md §2 as data
//! (`crates/server/testdata/outcomes.table`), in the client's terms, so
//! that every test of the table — the state machine's unit test and the
//! end-to-end tests through real servers — runs the very same rows.

use bytes::Bytes;
use num_bigint::BigInt;
use ringkv_client::{Client, ClientError, Outcome, Reply, Value};

/// The table file, embedded.
pub const TABLE: &str = include_str!("../../server/testdata/outcomes.table");

/// The operation of a row (its key is the row's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Get,
    Set { timestamp: i64, data: Bytes },
    Del,
    DelVersion { version: i64 },
    TestAndSet { timestamp: i64, data: Bytes, version: i64 },
    Put { timestamp: i64, data: Bytes },
    At { version: i64 },
    Trim { keep: u32 },
}

/// One case: from `before`, `op` answers `outcome` with `returned` and
/// leaves `after`.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its line in the file, and the line itself, for messages.
    pub line: usize,
    pub text: String,
    pub op: Op,
    pub before: Option<Value>,
    pub outcome: Outcome,
    pub returned: Option<Value>,
    pub after: Option<Value>,
}

/// Every row of the table. A malformed row is a bug in the table: it
/// panics, naming the line.
pub fn rows() -> Vec<Row> {
    TABLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| parse_row(i + 1, l).unwrap_or_else(|e| panic!("outcomes.table:{}: {e}", i + 1)))
        .collect()
}

/// The operations that bring an absent key to `value`: a set, then
/// test-and-sets up to its version (the data and timestamp of the last
/// one are the value's).
pub fn setup(value: &Value) -> Vec<Op> {
    let (timestamp, data) = (value.timestamp, value.data.clone());
    let mut ops = vec![Op::Set { timestamp, data: data.clone() }];
    ops.extend((1..value.version).map(|version| Op::TestAndSet { timestamp, data: data.clone(), version }));
    ops
}

/// Sends `op` on `key` through `client`.
pub async fn apply(client: &Client, key: &BigInt, op: &Op) -> Result<Reply, ClientError> {
    match op.clone() {
        Op::Get => client.get(key).await,
        Op::Set { timestamp, data } => client.set(key, timestamp, data).await,
        Op::Del => client.del(key).await,
        Op::DelVersion { version } => client.del_version(key, version).await,
        Op::TestAndSet { timestamp, data, version } => client.test_and_set(key, timestamp, data, version).await,
        Op::Put { timestamp, data } => client.put(key, timestamp, data).await,
        Op::At { version } => client.get_at(key, version).await,
        Op::Trim { keep } => client.trim(key, keep).await,
    }
}

/// Runs `row` on `key` (which must be absent): `before` is set up through
/// `writer`, the operation sent through `writer`, the state after read
/// through `reader`. Panics, naming the row, on any difference.
pub async fn check_row(row: &Row, key: &BigInt, writer: &Client, reader: &Client) {
    for op in row.before.iter().flat_map(setup) {
        apply(writer, key, &op).await.unwrap_or_else(|e| panic!("setup of line {}: {e}", row.line));
    }
    let reply = apply(writer, key, &row.op).await.unwrap_or_else(|e| panic!("line {}: {e}", row.line));
    let want = Reply { outcome: row.outcome, value: row.returned.clone() };
    assert_eq!(reply, want, "line {}: {}", row.line, row.text);
    let after = reader.get(key).await.unwrap_or_else(|e| panic!("read after line {}: {e}", row.line)).value;
    assert_eq!(after, row.after, "state after line {}: {}", row.line, row.text);
}

fn parse_row(line: usize, text: &str) -> Result<Row, String> {
    let cols: Vec<&str> = text.split('|').map(str::trim).collect();
    let [op, before, outcome, returned, after] = cols[..] else {
        return Err(format!("want 5 columns separated by |, got {}", cols.len()));
    };
    Ok(Row {
        line,
        text: text.to_owned(),
        op: parse_op(op)?,
        before: parse_value(before)?,
        outcome: parse_outcome(outcome)?,
        returned: parse_value(returned)?,
        after: parse_value(after)?,
    })
}

fn num(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|e| format!("{s}: {e}"))
}

fn parse_op(text: &str) -> Result<Op, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let bytes = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    Ok(match words[..] {
        ["get"] => Op::Get,
        ["del"] => Op::Del,
        ["delv", v] => Op::DelVersion { version: num(v)? },
        ["set", ts, data] => Op::Set { timestamp: num(ts)?, data: bytes(data) },
        ["tas", ts, data, v] => Op::TestAndSet { timestamp: num(ts)?, data: bytes(data), version: num(v)? },
        ["put", ts, data] => Op::Put { timestamp: num(ts)?, data: bytes(data) },
        ["at", v] => Op::At { version: num(v)? },
        ["trim", k] => Op::Trim { keep: k.parse().map_err(|e| format!("{k}: {e}"))? },
        _ => return Err(format!("unknown operation {text:?}")),
    })
}

fn parse_value(text: &str) -> Result<Option<Value>, String> {
    if text == "absent" || text == "none" {
        return Ok(None);
    }
    let parts: Vec<&str> = text.splitn(3, '/').collect();
    let [version, timestamp, data] = parts[..] else {
        return Err(format!("value {text:?} is not VERSION/TIMESTAMP/DATA"));
    };
    Ok(Some(Value {
        version: num(version)?,
        timestamp: num(timestamp)?,
        data: Bytes::copy_from_slice(data.as_bytes()),
    }))
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    Ok(match text {
        "SUCCESS" => Outcome::Success,
        "ERROR" => Outcome::Error,
        "ERROR_NE" => Outcome::ErrorNe,
        "ERROR_WV" => Outcome::ErrorWv,
        _ => return Err(format!("unknown outcome {text:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_covers_every_outcome() {
        let rows = rows();
        assert!(rows.len() >= 20, "table has {} rows", rows.len());
        for outcome in [Outcome::Success, Outcome::Error, Outcome::ErrorNe, Outcome::ErrorWv] {
            assert!(rows.iter().any(|r| r.outcome == outcome), "no row answers {outcome}");
        }
        let v = Value { version: 3, timestamp: 7, data: Bytes::from_static(b"x") };
        assert_eq!(setup(&v).len(), 3, "a set and two test-and-sets reach version 3");
    }
}
