//! Offline verification of a data directory (`ringkv verify`).
//!
//! Checks what recovery relies on, without starting a server: every
//! snapshot's checksum; every snapshot equals its predecessor with the log
//! between them replayed through the state machine's own `apply` (so each
//! snapshot is the state at its log index); and the state the directory
//! recovers to (the store, or the newest snapshot when the store cannot go
//! on from where the log starts, plus the log after it), with its digest
//! (`sm/digest.rs`: the same digest `ringkv status --digest` shows). The
//! store itself is proven too: it must equal the newest snapshot at or
//! before its index with the log up to that index replayed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openraft::EntryPayload;
use serde::Serialize;

use crate::raft::log_store::{read_dir_offline, LogError};
use crate::sm::command::MemStore;
use crate::sm::digest::{self, Digester};
use crate::sm::session;
use crate::sm::snapshot::{self, SnapshotError};
use crate::sm::store::{decode_history, encode_history, KvStore, StoreError};

/// What `verify_dir` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Snapshot indexes on disk, oldest first.
    pub snapshots: Vec<u64>,
    /// Consecutive snapshot pairs proven equal to replay.
    pub pairs_checked: usize,
    /// The store's applied index (absent: no store, or one of the old
    /// unsynced format), and whether it was proven equal to a snapshot
    /// with the log replayed (false when no snapshot and log reach it).
    pub store_index: Option<u64>,
    pub store_proven: bool,
    /// Log entries on disk.
    pub log_entries: usize,
    /// First and last log index on disk (0 when none).
    pub log_first: u64,
    pub log_last: u64,
    /// Index the directory recovers to, its number of keys and of client
    /// sessions, its digest (keys, values and sessions: what `ringkv
    /// status --digest` shows) and its data digest (keys and values alone:
    /// what clients can see). See `sm/digest.rs`.
    pub recovered_index: u64,
    pub keys: u64,
    pub sessions: u64,
    pub digest: String,
    pub data_digest: String,
}

/// Why a directory failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Mismatch(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A state as (record tag, key) → encoded value, comparable byte for byte:
/// keys and values, and client sessions.
type State = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

const DATA: u8 = 1;
const SESSION: u8 = 2;

/// Verifies the data directory `dir` (see the module doc).
pub fn verify_dir(dir: &Path) -> Result<Report, VerifyError> {
    let files = snapshot::list(dir).map_err(|source| VerifyError::Io { path: dir.to_owned(), source })?;
    let (_meta, entries) = read_dir_offline(dir)?;
    let mut snapshots = Vec::new();
    for f in &files {
        let mut state = State::new();
        let meta = snapshot::read(&f.path, |tag, k, v| {
            let tag = if snapshot::is_session(tag) { SESSION } else { DATA };
            state.insert((tag, k.to_vec()), v.to_vec());
            Ok(())
        })?;
        snapshots.push((snapshot::meta_index(&meta), state));
    }
    let mut pairs_checked = 0;
    for pair in snapshots.windows(2) {
        let (from, ref base) = pair[0];
        let (to, ref want) = pair[1];
        let got = replay(base.clone(), &entries, from, to)?;
        if &got != want {
            return Err(VerifyError::Mismatch(format!(
                "snapshot {to} differs from snapshot {from} with log ({from}, {to}] replayed: {}",
                first_difference(&got, want)
            )));
        }
        pairs_checked += 1;
    }
    let log_first = entries.first().map_or(0, |e| e.log_id.index);
    let log_last = entries.last().map_or(0, |e| e.log_id.index);
    // Recovery's choice (raft/state_machine.rs): the store when the log
    // goes on from it, else the newest snapshot.
    let store = read_store(&dir.join("sm"))?;
    let mut store_proven = false;
    if let Some((at, state)) = &store {
        if let Some((from, base)) = snapshots.iter().rev().find(|(i, _)| i <= at) {
            if log_covers(&entries, *from, *at) {
                let want = replay(base.clone(), &entries, *from, *at)?;
                if &want != state {
                    return Err(VerifyError::Mismatch(format!(
                        "the store at index {at} differs from snapshot {from} with log ({from}, {at}] replayed: {}",
                        first_difference(state, &want)
                    )));
                }
                store_proven = true;
            }
        }
    }
    let store_index = store.as_ref().map(|(i, _)| *i);
    let from_store = store.filter(|(at, _)| entries.is_empty() || *at + 1 >= log_first);
    let (base_index, base) = from_store.or_else(|| snapshots.last().cloned()).unwrap_or((0, State::new()));
    let recovered_index = base_index.max(log_last);
    let recovered = replay(base, &entries, base_index, recovered_index)?;
    let digest = digest_of(&recovered);
    Ok(Report {
        snapshots: snapshots.iter().map(|(i, _)| *i).collect(),
        pairs_checked,
        store_index,
        store_proven,
        log_entries: entries.len(),
        log_first,
        log_last,
        recovered_index,
        keys: digest.keys,
        sessions: digest.sessions,
        digest: digest::show(digest.state),
        data_digest: digest::show(digest.data),
    })
}

/// The store's applied index and state, if there is a store.
fn read_store(dir: &Path) -> Result<Option<(u64, State)>, VerifyError> {
    // The server's map size: address space only, nothing is allocated.
    let Some(store) = KvStore::open_existing(dir, crate::config::Config::default().lmdb_map_bytes)? else {
        return Ok(None);
    };
    let view = store.view()?;
    let index = view.applied_state()?.0.map_or(0, |id| id.index);
    let mut state = State::new();
    for kv in view.iter()? {
        let (k, v) = kv?;
        state.insert((DATA, k.to_vec()), v.to_vec());
    }
    for kv in view.iter_sessions()? {
        let (k, v) = kv?;
        state.insert((SESSION, k.to_vec()), v.to_vec());
    }
    Ok(Some((index, state)))
}

/// Whether the log holds every entry in `(from, to]`.
fn log_covers(entries: &[crate::raft::types::Entry], from: u64, to: u64) -> bool {
    to == from || entries.iter().any(|e| e.log_id.index == from + 1) && entries.iter().any(|e| e.log_id.index == to)
}

/// The digest of a state: its records are in the order the digest takes
/// them (data by key, then sessions by client id), since `DATA < SESSION`.
fn digest_of(state: &State) -> digest::Digest {
    let mut d = Digester::default();
    for ((tag, k), v) in state {
        match *tag {
            DATA => d.data(k, v),
            _ => d.session(k, v),
        }
    }
    d.finish()
}

/// Replays log entries in `(from, to]` onto `state`; the log must hold
/// every one of them.
fn replay(state: State, entries: &[crate::raft::types::Entry], from: u64, to: u64) -> Result<State, VerifyError> {
    let mut store = MemStore::default();
    let bad = |e: String| VerifyError::Mismatch(e);
    for ((tag, k), v) in state {
        if tag == SESSION {
            let id = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| bad("session key is not 8 bytes".into()))?);
            store.clients.insert(id, postcard::from_bytes(&v).map_err(|e| bad(e.to_string()))?);
        } else {
            store.data.insert(k, decode_history(&v).map_err(|e| bad(e.to_string()))?);
        }
    }
    let mut next = from + 1;
    for e in entries.iter().filter(|e| e.log_id.index > from && e.log_id.index <= to) {
        if e.log_id.index != next {
            return Err(VerifyError::Mismatch(format!("log is missing index {next} (needed up to {to})")));
        }
        if let EntryPayload::Normal(p) = &e.payload {
            // Infallible: the model store cannot fail.
            let _ = session::apply_all(&mut store, e.log_id.index, p.0.clone());
        }
        next += 1;
    }
    if next != to + 1 {
        return Err(VerifyError::Mismatch(format!("log ends at {} but index {to} is needed", next - 1)));
    }
    let data = store.data.into_iter().map(|(k, v)| ((DATA, k), encode_history(&v)));
    let sessions = store.clients.into_iter().map(|(id, r)| {
        let bytes = postcard::to_allocvec(&r).map_err(|e| bad(e.to_string()))?;
        Ok::<_, VerifyError>(((SESSION, id.to_be_bytes().to_vec()), bytes))
    });
    let mut out: State = data.collect();
    for s in sessions {
        let (k, v) = s?;
        out.insert(k, v);
    }
    Ok(out)
}

fn first_difference(got: &State, want: &State) -> String {
    for (k, v) in want {
        if got.get(k) != Some(v) {
            return format!(
                "record {} ({}) is {:?} in the snapshot, {:?} by replay",
                hex(&k.1),
                k.0,
                want.get(k).map(|v| v.len()),
                got.get(k).map(|v| v.len())
            );
        }
    }
    match got.keys().find(|k| !want.contains_key(*k)) {
        Some(k) => format!("record {} ({}) exists only by replay", hex(&k.1), k.0),
        None => "no key differs".into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
