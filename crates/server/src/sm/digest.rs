//! The digest of a state machine's state: one number that equal states
//! share, to compare replicas, and a replica with its data directory,
//! without moving the state.
//!
//! A state is two tables:
//! - **data**: each key, in the store's encoding (`sm/key.rs`) → its
//!   history as the store encodes it (`store::encode_history`: every kept
//!   version's version, timestamp and data, newest first);
//! - **sessions**: each client id (8 bytes, big-endian) → its
//!   `ClientRecord` (postcard), the exactly-once memory (`session.rs`),
//!   which replicas must agree on as much as on the data.
//!
//! Two digests are defined over them, both 64-bit FNV-1a:
//! - the **digest** (`Digest::state`) is over every data record in key
//!   order, then every session record in client-id order. A record is fed
//!   as its table's tag byte (1 data, 2 session), then its key and its
//!   value, each preceded by its length (u64, little-endian), so that two
//!   different states never feed the same bytes.
//! - the **data digest** (`Digest::data`) is the same over the data records
//!   alone: what clients can read back (every key's `History`), so a test
//!   can compute it from their view (`data_digest`).
//!
//! `ringkv status --digest` shows a running replica's digest
//! (`KvStore::digest`, one read transaction, with the applied index it
//! belongs to); `ringkv verify` shows the digest and the data digest of the
//! state a data directory recovers to (`verify.rs`). It is the same
//! function over the same records: a replica stopped with everything in its
//! log applied verifies to the digest its status showed.

use super::command::Value;
use super::key;
use super::store::encode_history;

/// The digests of one state, and the sizes of its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// Data and sessions: what replicas compare.
    pub state: u64,
    /// Data alone: what clients can see.
    pub data: u64,
    /// Data records (keys).
    pub keys: u64,
    /// Session records (clients remembered).
    pub sessions: u64,
}

/// How a digest is written: 16 hex digits.
pub fn show(digest: u64) -> String {
    format!("{digest:016x}")
}

/// One version as a client reads it: `(version, timestamp, data)`.
pub type VersionView<'a> = (i64, i64, &'a [u8]);

/// The data digest of integer keys (wire bytes) and their histories
/// (newest first), given in any order: what a state whose data this is has
/// as `Digest::data`. Tests compute it from what clients read back.
pub fn data_digest<'a>(data: impl IntoIterator<Item = (&'a [u8], Vec<VersionView<'a>>)>) -> u64 {
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = data
        .into_iter()
        .map(|(wire, versions)| {
            let history: Vec<Value> = versions
                .into_iter()
                .map(|(version, timestamp, data)| Value { version, timestamp, data: data.to_vec() })
                .collect();
            (key::int(wire), encode_history(&history))
        })
        .collect();
    records.sort();
    let mut d = Digester::default();
    for (key, history) in &records {
        d.data(key, history);
    }
    d.finish().data
}

const DATA: u8 = 1;
const SESSION: u8 = 2;

/// Computes a `Digest` from a state's records fed one at a time: the data
/// records in key order, then the session records in client-id order.
#[derive(Default)]
pub(crate) struct Digester {
    state: Fnv,
    data: Fnv,
    keys: u64,
    sessions: u64,
}

impl Digester {
    /// One data record: a key and its encoded value.
    pub(crate) fn data(&mut self, key: &[u8], value: &[u8]) {
        debug_assert_eq!(self.sessions, 0, "data records come before session records");
        self.state.record(DATA, key, value);
        self.data.record(DATA, key, value);
        self.keys += 1;
    }

    /// One session record: a client id (big-endian) and its encoded record.
    pub(crate) fn session(&mut self, client: &[u8], record: &[u8]) {
        self.state.record(SESSION, client, record);
        self.sessions += 1;
    }

    pub(crate) fn finish(self) -> Digest {
        Digest { state: self.state.0, data: self.data.0, keys: self.keys, sessions: self.sessions }
    }
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn record(&mut self, tag: u8, key: &[u8], value: &[u8]) {
        self.eat(&[tag]);
        self.eat_framed(key);
        self.eat_framed(value);
    }

    /// Length first, so that ("ab", "c") and ("a", "bc") differ.
    fn eat_framed(&mut self, bytes: &[u8]) {
        self.eat(&(bytes.len() as u64).to_le_bytes());
        self.eat(bytes);
    }

    fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(data: &[(&[u8], &[u8])], sessions: &[(&[u8], &[u8])]) -> Digest {
        let mut d = Digester::default();
        for (k, v) in data {
            d.data(k, v);
        }
        for (k, v) in sessions {
            d.session(k, v);
        }
        d.finish()
    }

    #[test]
    fn framing_and_tables_keep_different_states_apart() {
        let a = digest(&[(b"ab", b"c")], &[]);
        assert_ne!(a, digest(&[(b"a", b"bc")], &[]), "where a key ends");
        assert_ne!(a.state, digest(&[], &[(b"ab", b"c")]).state, "which table a record is in");
        assert_ne!(a.state, digest(&[(b"ab", b"c")], &[(b"\0\0\0\0\0\0\0\x01", b"")]).state, "a session");
    }

    #[test]
    fn the_data_digest_ignores_sessions_and_is_what_clients_can_compute() {
        let v = [Value { version: 3, timestamp: 7, data: b"x".to_vec() }];
        let k = key::int(b"k");
        let with = digest(&[(&k, &encode_history(&v))], &[(b"\0\0\0\0\0\0\0\x01", b"r")]);
        let without = digest(&[(&k, &encode_history(&v))], &[]);
        assert_ne!(with.state, without.state);
        assert_eq!(with.data, without.data);
        assert_eq!(data_digest([(&b"k"[..], vec![(3, 7, &b"x"[..])])]), with.data);
        assert_eq!((with.keys, with.sessions), (1, 1));
    }
}
