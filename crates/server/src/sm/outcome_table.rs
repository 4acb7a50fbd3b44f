//! The outcome table of docs/design.md §2 as data (`testdata/outcomes.table`),
//! parsed here so that the state machine's unit tests and the end-to-end
//! tests run the very same rows.

use super::command::{Command, Status, Value};

/// The table file, embedded.
pub const TABLE: &str = include_str!("../../testdata/outcomes.table");

/// The operation of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Get,
    Write(Command),
}

/// One case: from `before`, `op` answers `outcome` with `returned` and
/// leaves `after`.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub text: String,
    pub op: Op,
    pub before: Option<Value>,
    pub outcome: Status,
    pub returned: Option<Value>,
    pub after: Option<Value>,
}

/// Parses the table for `key` (every row uses the one key).
pub fn rows(key: &[u8]) -> Vec<Row> {
    TABLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| parse_row(i + 1, l, key).unwrap_or_else(|e| panic!("outcomes.table:{}: {e}", i + 1)))
        .collect()
}

/// The commands that bring an absent key to `value`: a set, then
/// test-and-sets up to its version (the data and timestamp of the last
/// one are the value's).
pub fn setup(key: &[u8], value: &Value) -> Vec<Command> {
    let mut cmds = vec![Command::Set { key: key.to_vec(), timestamp: value.timestamp, data: value.data.clone() }];
    for version in 1..value.version {
        cmds.push(Command::TestAndSet {
            key: key.to_vec(),
            timestamp: value.timestamp,
            data: value.data.clone(),
            version,
        });
    }
    cmds
}

fn parse_row(line: usize, text: &str, key: &[u8]) -> Result<Row, String> {
    let cols: Vec<&str> = text.split('|').map(str::trim).collect();
    let [op, before, outcome, returned, after] = cols[..] else {
        return Err(format!("want 5 columns separated by |, got {}", cols.len()));
    };
    Ok(Row {
        line,
        text: text.to_owned(),
        op: parse_op(op, key)?,
        before: parse_value(before)?,
        outcome: parse_status(outcome)?,
        returned: parse_value(returned)?,
        after: parse_value(after)?,
    })
}

fn parse_op(text: &str, key: &[u8]) -> Result<Op, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let num = |s: &str| s.parse::<i64>().map_err(|e| format!("{s}: {e}"));
    let key = key.to_vec();
    Ok(match words[..] {
        ["get"] => Op::Get,
        ["del"] => Op::Write(Command::Del { key }),
        ["delv", v] => Op::Write(Command::DelVersion { key, version: num(v)? }),
        ["set", ts, data] => Op::Write(Command::Set { key, timestamp: num(ts)?, data: data.into() }),
        ["tas", ts, data, v] => {
            Op::Write(Command::TestAndSet { key, timestamp: num(ts)?, data: data.into(), version: num(v)? })
        }
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
    let num = |s: &str| s.parse::<i64>().map_err(|e| format!("{s}: {e}"));
    Ok(Some(Value { version: num(version)?, timestamp: num(timestamp)?, data: data.into() }))
}

fn parse_status(text: &str) -> Result<Status, String> {
    Ok(match text {
        "SUCCESS" => Status::Success,
        "ERROR" => Status::Error,
        "ERROR_NE" => Status::ErrorNe,
        "ERROR_WV" => Status::ErrorWv,
        _ => return Err(format!("unknown outcome {text:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::command::{apply, read, MemStore};

    /// Every row of the table, against the state machine's own `apply`.
    #[test]
    fn every_row_of_the_outcome_table() {
        let key = b"\x2a";
        let rows = rows(key);
        assert!(rows.len() >= 20, "table has {} rows", rows.len());
        for row in rows {
            let mut store = MemStore::default();
            for cmd in row.before.iter().flat_map(|v| setup(key, v)) {
                apply(&mut store, cmd).unwrap();
            }
            assert_eq!(read(&mut store, key).unwrap().value, row.before, "setup, line {}", row.line);
            let reply = match row.op.clone() {
                Op::Get => read(&mut store, key).unwrap(),
                Op::Write(cmd) => apply(&mut store, cmd).unwrap(),
            };
            assert_eq!(reply.status, row.outcome, "outcome, line {}: {}", row.line, row.text);
            assert_eq!(reply.value, row.returned, "returned, line {}: {}", row.line, row.text);
            assert_eq!(read(&mut store, key).unwrap().value, row.after, "after, line {}: {}", row.line, row.text);
        }
    }
}
