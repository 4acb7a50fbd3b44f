//! The outcome table of docs/design.md §2 (`testdata/outcomes.table`, parsed
//! by the test kit) run against the state machine's own `apply`: the same
//! rows the end-to-end tests send through real servers.

use ringkv_client::Outcome;
use ringkv_testkit::outcomes::{rows, setup, Op};

use super::command::{apply, read, read_at, Command, Context, MemStore, Status, Value};

/// The row's operation as a command on `key` (`None`: a read).
fn command(key: &[u8], op: &Op) -> Option<Command> {
    let key = key.to_vec();
    Some(match op.clone() {
        Op::Get | Op::At { .. } => return None,
        Op::Put { timestamp, data } => Command::Put { key, timestamp, data: data.to_vec() },
        Op::Trim { keep } => Command::Trim { key, keep },
        Op::Set { timestamp, data } => Command::Set { key, timestamp, data: data.to_vec() },
        Op::Del => Command::Del { key },
        Op::DelVersion { version } => Command::DelVersion { key, version },
        Op::TestAndSet { timestamp, data, version } => {
            Command::TestAndSet { key, timestamp, data: data.to_vec(), version }
        }
    })
}

fn value(v: &Option<ringkv_client::Value>) -> Option<Value> {
    v.as_ref().map(|v| Value { version: v.version, timestamp: v.timestamp, data: v.data.to_vec() })
}

fn status(o: Outcome) -> Status {
    match o {
        Outcome::Success => Status::Success,
        Outcome::Error => Status::Error,
        Outcome::ErrorNe => Status::ErrorNe,
        Outcome::ErrorWv => Status::ErrorWv,
    }
}

#[test]
fn every_row_of_the_outcome_table() {
    let key = b"\x2a";
    for row in rows() {
        let mut store = MemStore::default();
        for cmd in row.before.iter().flat_map(setup).filter_map(|op| command(key, &op)) {
            apply(&mut store, cmd, &Context::default()).unwrap();
        }
        assert_eq!(read(&mut store, key).unwrap().value, value(&row.before), "setup, line {}", row.line);
        let reply = match command(key, &row.op) {
            None => match row.op {
                Op::At { version } => read_at(&mut store, key, version).unwrap(),
                _ => read(&mut store, key).unwrap(),
            },
            Some(cmd) => apply(&mut store, cmd, &Context::default()).unwrap(),
        };
        assert_eq!(reply.status, status(row.outcome), "outcome, line {}: {}", row.line, row.text);
        assert_eq!(reply.value, value(&row.returned), "returned, line {}: {}", row.line, row.text);
        assert_eq!(read(&mut store, key).unwrap().value, value(&row.after), "after, line {}: {}", row.line, row.text);
    }
}
