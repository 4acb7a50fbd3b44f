//! The operations of docs/design.md §2 and their outcome table, defined once.
//!
//! `Command` is what goes through the Raft log; `apply` is the only place
//! that decides an outcome. It touches nothing but the `Store` it is given
//! and the `Context` its log entry carries, so the same commands in the
//! same order give the same state and the same answers on every replica
//! (and in tests against a `BTreeMap`).
//!
//! A key holds its history: its kept versions, newest first (§1). Writes
//! that make a new version push it in front and drop the oldest beyond the
//! entry's `max_versions`; reads answer from the newest unless asked for a
//! version.

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

/// A key's kept versions, newest first. A key in the store has at least
/// one; a key with none is absent.
pub type History = Vec<Value>;

/// What a command is applied with besides the store: fields of its log
/// entry, chosen by the proposing leader, so that every replica applies
/// the same rule (a replica's own configuration could differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The proposing leader's clock (milliseconds since the epoch).
    pub time_ms: u64,
    /// Versions kept per key; 0 keeps them all.
    pub max_versions: u32,
}

impl Default for Context {
    /// What the tests apply with: the server's default `max_versions`.
    fn default() -> Self {
        Self { time_ms: 0, max_versions: DEFAULT_MAX_VERSIONS }
    }
}

/// Versions kept per key unless configured (`max_versions`).
pub const DEFAULT_MAX_VERSIONS: u32 = 16;

/// An answer: an outcome and, depending on the row of the table, a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub status: Status,
    pub value: Option<Value>,
    /// The version a clock put made (the compatibility API answers it).
    pub made: Option<i64>,
}

impl Reply {
    fn new(status: Status, value: Option<Value>) -> Self {
        Self { status, value, made: None }
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
    /// Insert or replace unconditionally: version 1, or the current + 1.
    Put {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        timestamp: i64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The compatibility API's put (`project.KeyValueStore`): insert or
    /// replace, the version being the leader's clock in milliseconds, made
    /// strictly increasing per key; the timestamp is the same.
    ClockPut {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Drop all but the newest `keep` versions (at least 1 is kept).
    Trim {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        keep: u32,
    },
}

/// The key-value store a command is applied to. Keys are the store's own
/// encoding (`sm/key.rs`).
pub trait Store {
    type Error;
    /// The key's kept versions, newest first; `None` when absent.
    fn history(&mut self, key: &[u8]) -> Result<Option<History>, Self::Error>;
    /// Replaces the key's history (never empty).
    fn put_history(&mut self, key: &[u8], history: &[Value]) -> Result<(), Self::Error>;
    fn delete(&mut self, key: &[u8]) -> Result<(), Self::Error>;

    /// The newest version. A store that can read it without decoding the
    /// rest of the history should.
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, Self::Error> {
        Ok(self.history(key)?.and_then(|h| h.into_iter().next()))
    }
}

/// Reads a key: `SUCCESS` with the value, or `ERROR` when absent.
pub fn read<S: Store>(store: &mut S, key: &[u8]) -> Result<Reply, S::Error> {
    Ok(match store.get(key)? {
        Some(v) => Reply::new(Status::Success, Some(v)),
        None => Reply::new(Status::Error, None),
    })
}

/// Reads one version: `SUCCESS` with it, `ERROR_NE` when the key is absent,
/// `ERROR_WV` with the newest value when that version is not (or no
/// longer) kept.
pub fn read_at<S: Store>(store: &mut S, key: &[u8], version: i64) -> Result<Reply, S::Error> {
    let Some(history) = store.history(key)? else {
        return Ok(Reply::new(Status::ErrorNe, None));
    };
    Ok(match history.iter().find(|v| v.version == version) {
        Some(v) => Reply::new(Status::Success, Some(v.clone())),
        None => Reply::new(Status::ErrorWv, history.into_iter().next()),
    })
}

/// The newest version at or below `version` (any when `version` ≤ 0): what
/// the compatibility API's `Get` reads.
pub fn read_at_or_before<S: Store>(store: &mut S, key: &[u8], version: i64) -> Result<Option<Value>, S::Error> {
    if version <= 0 {
        return store.get(key);
    }
    Ok(store.history(key)?.and_then(|h| h.into_iter().find(|v| v.version <= version)))
}

/// Reads the kept versions, newest first, at most `limit` (0: all):
/// `SUCCESS` with them, or `ERROR` and none when the key is absent.
pub fn read_history<S: Store>(store: &mut S, key: &[u8], limit: u32) -> Result<(Status, History), S::Error> {
    Ok(match store.history(key)? {
        None => (Status::Error, Vec::new()),
        Some(mut h) => {
            if limit > 0 {
                h.truncate(limit as usize);
            }
            (Status::Success, h)
        }
    })
}

/// Pushes `next` in front of the key's history (`None`: a new key) and
/// keeps at most `max_versions` (0: all).
fn push_version<S: Store>(
    store: &mut S,
    key: &[u8],
    history: Option<History>,
    next: Value,
    max_versions: u32,
) -> Result<(), S::Error> {
    let mut history = history.unwrap_or_default();
    history.insert(0, next);
    if max_versions > 0 {
        history.truncate(max_versions as usize);
    }
    store.put_history(key, &history)
}

/// Applies one write and answers it: the outcome table of docs/design.md §2.
pub fn apply<S: Store>(store: &mut S, command: Command, ctx: &Context) -> Result<Reply, S::Error> {
    match command {
        Command::Set { key, timestamp, data } => match store.get(&key)? {
            Some(existing) => Ok(Reply::new(Status::Error, Some(existing))),
            None => {
                store.put_history(&key, &[Value { version: 1, timestamp, data }])?;
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
        Command::TestAndSet { key, timestamp, data, version } => {
            let history = store.history(&key)?;
            match history.as_ref().and_then(|h| h.first()) {
                None => Ok(Reply::new(Status::ErrorNe, None)),
                Some(current) if current.version != version => Ok(Reply::new(Status::ErrorWv, Some(current.clone()))),
                Some(replaced) => {
                    let replaced = replaced.clone();
                    let next = Value { version: next_version(version), timestamp, data };
                    push_version(store, &key, history, next, ctx.max_versions)?;
                    Ok(Reply::new(Status::Success, Some(replaced)))
                }
            }
        }
        Command::Put { key, timestamp, data } => {
            let history = store.history(&key)?;
            let replaced = history.as_ref().and_then(|h| h.first()).cloned();
            let version = replaced.as_ref().map_or(1, |r| next_version(r.version));
            push_version(store, &key, history, Value { version, timestamp, data }, ctx.max_versions)?;
            Ok(Reply::new(Status::Success, replaced))
        }
        Command::ClockPut { key, data } => {
            let history = store.history(&key)?;
            let replaced = history.as_ref().and_then(|h| h.first()).cloned();
            let clock = i64::try_from(ctx.time_ms).unwrap_or(i64::MAX);
            let version = replaced.as_ref().map_or(clock, |r| clock.max(next_version(r.version)));
            push_version(store, &key, history, Value { version, timestamp: version, data }, ctx.max_versions)?;
            Ok(Reply { made: Some(version), ..Reply::new(Status::Success, replaced) })
        }
        Command::Trim { key, keep } => match store.history(&key)? {
            None => Ok(Reply::new(Status::Error, None)),
            Some(mut history) => {
                history.truncate(keep.max(1) as usize);
                store.put_history(&key, &history)?;
                Ok(Reply::new(Status::Success, history.into_iter().next()))
            }
        },
    }
}

/// Saturating: a version of i64::MAX stays put rather than wrap to a
/// negative number a client could confuse with another.
fn next_version(version: i64) -> i64 {
    version.saturating_add(1)
}

impl Command {
    /// Deletes and trims shrink the state: they go on when disk space is
    /// short.
    pub fn shrinks(&self) -> bool {
        matches!(self, Command::Del { .. } | Command::DelVersion { .. } | Command::Trim { .. })
    }

    /// About the bytes it takes in the log: its key and data plus the
    /// fixed fields. What the snapshot trigger weighs writes by.
    pub fn weight(&self) -> u64 {
        self.size_hint() as u64 + 24
    }

    /// Bytes of key and data the command carries.
    pub fn size_hint(&self) -> usize {
        match self {
            Command::Set { key, data, .. }
            | Command::TestAndSet { key, data, .. }
            | Command::Put { key, data, .. }
            | Command::ClockPut { key, data } => key.len() + data.len(),
            Command::Del { key } | Command::DelVersion { key, .. } | Command::Trim { key, .. } => key.len(),
        }
    }
}

/// A `Store` over `BTreeMap`s: the model the LMDB store is tested against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    pub data: std::collections::BTreeMap<Vec<u8>, History>,
    pub clients: std::collections::BTreeMap<u64, super::session::ClientRecord>,
}

impl Store for MemStore {
    type Error = std::convert::Infallible;
    fn history(&mut self, key: &[u8]) -> Result<Option<History>, Self::Error> {
        Ok(self.data.get(key).cloned())
    }
    fn put_history(&mut self, key: &[u8], history: &[Value]) -> Result<(), Self::Error> {
        self.data.insert(key.to_vec(), history.to_vec());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(store: &mut MemStore, key: &[u8]) -> Vec<i64> {
        read_history(store, key, 0).unwrap().1.iter().map(|v| v.version).collect()
    }

    /// The entry's `max_versions` bounds the history at every write that
    /// makes a version; 0 keeps all; a trim keeps the newest.
    #[test]
    fn history_keeps_the_newest_max_versions() {
        let mut s = MemStore::default();
        let put = |d: u8| Command::Put { key: vec![1], timestamp: i64::from(d), data: vec![d] };
        let three = Context { time_ms: 0, max_versions: 3 };
        for d in 1..=5 {
            apply(&mut s, put(d), &three).unwrap();
        }
        assert_eq!(versions(&mut s, &[1]), vec![5, 4, 3]);
        assert_eq!(read_at(&mut s, &[1], 2).unwrap().status, Status::ErrorWv, "dropped");
        assert_eq!(read_at(&mut s, &[1], 3).unwrap().value.unwrap().data, vec![3]);
        let tas = Command::TestAndSet { key: vec![1], timestamp: 0, data: vec![6], version: 5 };
        apply(&mut s, tas, &three).unwrap();
        assert_eq!(versions(&mut s, &[1]), vec![6, 5, 4]);
        let all = Context { time_ms: 0, max_versions: 0 };
        for d in 7..=30 {
            apply(&mut s, put(d), &all).unwrap();
        }
        assert_eq!(versions(&mut s, &[1]).len(), 27, "0 keeps every version");
        assert_eq!(read_history(&mut s, &[1], 2).unwrap().1.len(), 2, "a limit");
        let trimmed = apply(&mut s, Command::Trim { key: vec![1], keep: 2 }, &all).unwrap();
        assert_eq!((trimmed.status, trimmed.value.unwrap().version), (Status::Success, 30));
        assert_eq!(versions(&mut s, &[1]), vec![30, 29]);
        apply(&mut s, Command::Del { key: vec![1] }, &all).unwrap();
        assert_eq!(read_history(&mut s, &[1], 0).unwrap(), (Status::Error, vec![]), "del removes every version");
        assert_eq!(apply(&mut s, put(1), &all).unwrap().value, None);
        assert_eq!(versions(&mut s, &[1]), vec![1], "a key set again starts over");
    }

    /// A clock put's version is the entry's clock, strictly increasing per
    /// key even when the clock stands still or goes back.
    #[test]
    fn clock_put_versions_increase_per_key() {
        let mut s = MemStore::default();
        let put = |d: u8| Command::ClockPut { key: vec![2], data: vec![d] };
        let at = |t: u64| Context { time_ms: t, max_versions: 0 };
        assert_eq!(apply(&mut s, put(1), &at(1000)).unwrap().made, Some(1000));
        assert_eq!(apply(&mut s, put(2), &at(1000)).unwrap().made, Some(1001), "same millisecond");
        let third = apply(&mut s, put(3), &at(900)).unwrap();
        assert_eq!((third.made, third.value.unwrap().version), (Some(1002), 1001), "clock went back");
        assert_eq!(apply(&mut s, put(4), &at(5000)).unwrap().made, Some(5000));
        assert_eq!(read_at_or_before(&mut s, &[2], 1001).unwrap().unwrap().data, vec![2]);
        assert_eq!(read_at_or_before(&mut s, &[2], 999).unwrap(), None);
        assert_eq!(read_at_or_before(&mut s, &[2], 0).unwrap().unwrap().version, 5000);
    }
}
