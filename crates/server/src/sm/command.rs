//! The operations of docs/design.md §2 and their outcome table, defined once.
//!
//! `Command` is what goes through the Raft log; `apply` is the only place
//! that decides an outcome. It touches nothing but the `Store` it is given,
//! so the same commands in the same order give the same state and the same
//! answers on every replica (and in tests against a `BTreeMap`).

use serde::{Deserialize, Serialize};

/// A stored value: `(version, timestamp, data)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    pub version: i64,
    pub timestamp: i64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// The outcome of an operation (docs/design.md §2). Outcomes are answers, not
/// errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Success,
    Error,
    /// The key does not exist.
    ErrorNe,
    /// The key exists with another version.
    ErrorWv,
}

/// An answer: an outcome and, depending on the row of the table, a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub status: Status,
    pub value: Option<Value>,
}

impl Reply {
    fn new(status: Status, value: Option<Value>) -> Self {
        Self { status, value }
    }
}

/// A write, as it is replicated in the log. Keys are the validated wire
/// bytes (minimal two's complement), so equal numbers are equal keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Set {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        timestamp: i64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Del {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    DelVersion {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        version: i64,
    },
    TestAndSet {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        timestamp: i64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        version: i64,
    },
}

/// The key-value store a command is applied to.
pub trait Store {
    type Error;
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, Self::Error>;
    fn put(&mut self, key: &[u8], value: &Value) -> Result<(), Self::Error>;
    fn delete(&mut self, key: &[u8]) -> Result<(), Self::Error>;
}

/// Reads a key: `SUCCESS` with the value, or `ERROR` when absent.
pub fn read<S: Store>(store: &mut S, key: &[u8]) -> Result<Reply, S::Error> {
    Ok(match store.get(key)? {
        Some(v) => Reply::new(Status::Success, Some(v)),
        None => Reply::new(Status::Error, None),
    })
}

/// Applies one write and answers it: the outcome table of docs/design.md §2.
pub fn apply<S: Store>(store: &mut S, command: Command) -> Result<Reply, S::Error> {
    match command {
        Command::Set { key, timestamp, data } => match store.get(&key)? {
            Some(existing) => Ok(Reply::new(Status::Error, Some(existing))),
            None => {
                store.put(&key, &Value { version: 1, timestamp, data })?;
                Ok(Reply::new(Status::Success, None))
            }
        },
        Command::Del { key } => match store.get(&key)? {
            Some(removed) => {
                store.delete(&key)?;
                Ok(Reply::new(Status::Success, Some(removed)))
            }
            None => Ok(Reply::new(Status::Error, None)),
        },
        Command::DelVersion { key, version } => match store.get(&key)? {
            None => Ok(Reply::new(Status::ErrorNe, None)),
            Some(current) if current.version != version => Ok(Reply::new(Status::ErrorWv, Some(current))),
            Some(removed) => {
                store.delete(&key)?;
                Ok(Reply::new(Status::Success, Some(removed)))
            }
        },
        Command::TestAndSet { key, timestamp, data, version } => match store.get(&key)? {
            None => Ok(Reply::new(Status::ErrorNe, None)),
            Some(current) if current.version != version => Ok(Reply::new(Status::ErrorWv, Some(current))),
            Some(replaced) => {
                // Saturating: a version of i64::MAX stays put rather than wrap
                // to a negative number a client could confuse with another.
                let next = Value { version: version.saturating_add(1), timestamp, data };
                store.put(&key, &next)?;
                Ok(Reply::new(Status::Success, Some(replaced)))
            }
        },
    }
}

impl Command {
    /// Deletes shrink the state: they go on when disk space is short.
    pub fn is_delete(&self) -> bool {
        matches!(self, Command::Del { .. } | Command::DelVersion { .. })
    }

    /// About the bytes it takes in the log: its key and data plus the
    /// fixed fields. What the snapshot trigger weighs writes by.
    pub fn weight(&self) -> u64 {
        self.size_hint() as u64 + 24
    }

    /// Bytes of key and data the command carries.
    pub fn size_hint(&self) -> usize {
        match self {
            Command::Set { key, data, .. } | Command::TestAndSet { key, data, .. } => key.len() + data.len(),
            Command::Del { key } | Command::DelVersion { key, .. } => key.len(),
        }
    }
}

/// A `Store` over `BTreeMap`s: the model the LMDB store is tested against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    pub data: std::collections::BTreeMap<Vec<u8>, Value>,
    pub clients: std::collections::BTreeMap<u64, super::session::ClientRecord>,
}

impl Store for MemStore {
    type Error = std::convert::Infallible;
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, Self::Error> {
        Ok(self.data.get(key).cloned())
    }
    fn put(&mut self, key: &[u8], value: &Value) -> Result<(), Self::Error> {
        self.data.insert(key.to_vec(), value.clone());
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<(), Self::Error> {
        self.data.remove(key);
        Ok(())
    }
}

impl super::session::SessionStore for MemStore {
    fn get_client(&mut self, id: u64) -> Result<Option<super::session::ClientRecord>, Self::Error> {
        Ok(self.clients.get(&id).cloned())
    }
    fn put_client(&mut self, id: u64, record: &super::session::ClientRecord) -> Result<(), Self::Error> {
        self.clients.insert(id, record.clone());
        Ok(())
    }
    fn expire_clients(&mut self, cutoff_ms: u64) -> Result<(), Self::Error> {
        self.clients.retain(|_, r| r.last_seen_ms >= cutoff_ms);
        Ok(())
    }
}
