//! Exactly-once writes under retries (Raft dissertation §6.3).
//!
//! A write may carry a `Session` tag: the client's id, the write's sequence
//! number and the lowest sequence the client still waits on. The state
//! machine remembers, per client, the answers it has not yet been told were
//! received; a retried write (same id and sequence) gets the remembered
//! answer instead of being applied again. Everything here depends only on
//! the log (the leader's clock travels in each entry), so every replica
//! keeps and expires the same sessions.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::command::{self, Command, Reply, Store};
use crate::broken::{self, Bug};

/// A client idle this long (leader time in the log) is forgotten.
pub const SESSION_TTL_MS: u64 = 60 * 60 * 1000;
/// Expired sessions are swept at log indexes that are multiples of this.
pub const SWEEP_EVERY: u64 = 1024;
/// Most answers remembered per client: a client with more writes than this
/// outstanding loses exactly-once for the oldest.
pub const MAX_REMEMBERED: usize = 4096;

/// The exactly-once tag of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub client_id: u64,
    pub sequence: u64,
    pub first_unacked: u64,
}

/// What goes through the Raft log: a write, its optional session tag, the
/// proposing leader's clock and its `max_versions` (`command::Context`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub cmd: Command,
    pub session: Option<Session>,
    pub time_ms: u64,
    pub max_versions: u32,
}

impl Request {
    /// A write without a session, with the default `max_versions` (tests).
    #[cfg(test)]
    pub fn plain(cmd: Command, time_ms: u64) -> Request {
        Request { cmd, session: None, time_ms, max_versions: command::DEFAULT_MAX_VERSIONS }
    }

    fn context(&self) -> command::Context {
        command::Context { time_ms: self.time_ms, max_versions: self.max_versions }
    }
}

/// What the state machine remembers of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// (sequence, answer), oldest first.
    pub replies: Vec<(u64, Reply)>,
    pub last_seen_ms: u64,
}

/// A store that also keeps client sessions.
pub trait SessionStore: Store {
    fn get_client(&mut self, id: u64) -> Result<Option<ClientRecord>, Self::Error>;
    fn put_client(&mut self, id: u64, record: &ClientRecord) -> Result<(), Self::Error>;
    /// Removes every client last seen before `cutoff_ms`.
    fn expire_clients(&mut self, cutoff_ms: u64) -> Result<(), Self::Error>;
}

/// Applies the request at log index `index`: once per (client, sequence).
/// The one-request form of `apply_all`, for tests.
#[cfg(test)]
pub fn apply<S: SessionStore>(store: &mut S, index: u64, req: Request) -> Result<Reply, S::Error> {
    sweep(store, index, req.time_ms)?;
    apply_one(store, req)
}

/// Applies the requests of the entry at log index `index`, in order.
///
/// The requests are taken from the entry when nothing else holds it, else
/// copied (the log's cache shares entries: `raft::types::Proposal`).
pub fn apply_all<S: SessionStore>(
    store: &mut S,
    index: u64,
    reqs: impl Into<Arc<Vec<Request>>>,
) -> Result<Vec<Reply>, S::Error> {
    let reqs = Arc::unwrap_or_clone(reqs.into());
    if let Some(first) = reqs.first() {
        sweep(store, index, first.time_ms)?;
    }
    reqs.into_iter().map(|req| apply_one(store, req)).collect()
}

/// Forgets idle clients every `SWEEP_EVERY` entries.
fn sweep<S: SessionStore>(store: &mut S, index: u64, time_ms: u64) -> Result<(), S::Error> {
    if index.is_multiple_of(SWEEP_EVERY) {
        store.expire_clients(time_ms.saturating_sub(SESSION_TTL_MS))?;
    }
    Ok(())
}

fn apply_one<S: SessionStore>(store: &mut S, req: Request) -> Result<Reply, S::Error> {
    let ctx = req.context();
    let Some(s) = req.session else {
        return command::apply(store, req.cmd, &ctx);
    };
    let mut record = store.get_client(s.client_id)?.unwrap_or_default();
    record.replies.retain(|(seq, _)| *seq >= s.first_unacked);
    record.last_seen_ms = record.last_seen_ms.max(req.time_ms);
    let remembered = record.replies.iter().find(|(seq, _)| *seq == s.sequence).map(|(_, r)| r.clone());
    let remembered = remembered.filter(|_| !broken::active(Bug::DoubleApply));
    let reply = match remembered {
        Some(reply) => reply,
        None => {
            let reply = command::apply(store, req.cmd, &ctx)?;
            record.replies.push((s.sequence, reply.clone()));
            if record.replies.len() > MAX_REMEMBERED {
                record.replies.remove(0);
            }
            reply
        }
    };
    store.put_client(s.client_id, &record)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::command::{MemStore, Status};

    fn tas(version: i64, session: Option<Session>, time_ms: u64) -> Request {
        let cmd = Command::TestAndSet { key: vec![1], timestamp: 0, data: vec![9], version };
        Request { session, ..Request::plain(cmd, time_ms) }
    }

    fn tag(sequence: u64, first_unacked: u64) -> Option<Session> {
        Some(Session { client_id: 77, sequence, first_unacked })
    }

    #[test]
    fn a_retried_write_is_applied_once() {
        let mut s = MemStore::default();
        let set = Request::plain(Command::Set { key: vec![1], timestamp: 0, data: vec![] }, 1);
        apply(&mut s, 1, set).unwrap();
        let first = apply(&mut s, 2, tas(1, tag(1, 1), 5)).unwrap();
        assert_eq!(first.status, Status::Success);
        // The same write again: the same answer, and version 2, not an ERROR_WV.
        assert_eq!(apply(&mut s, 3, tas(1, tag(1, 1), 6)).unwrap(), first);
        assert_eq!(command::read(&mut s, &[1]).unwrap().value.unwrap().version, 2);
        // Without a session the same write is a new write.
        assert_eq!(apply(&mut s, 4, tas(1, None, 7)).unwrap().status, Status::ErrorWv);
    }

    #[test]
    fn acknowledged_answers_are_forgotten_and_idle_clients_expire() {
        let mut s = MemStore::default();
        apply(&mut s, 1, tas(1, tag(1, 1), 10)).unwrap();
        apply(&mut s, 2, tas(1, tag(2, 1), 10)).unwrap();
        assert_eq!(s.clients[&77].replies.len(), 2);
        apply(&mut s, 3, tas(1, tag(3, 3), 10)).unwrap();
        assert_eq!(s.clients[&77].replies.iter().map(|(q, _)| *q).collect::<Vec<_>>(), vec![3]);
        apply(&mut s, SWEEP_EVERY, tas(1, None, 10 + SESSION_TTL_MS + 1)).unwrap();
        assert!(s.clients.is_empty());
    }
}
