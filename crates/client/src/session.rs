//! The client's half of exactly-once writes: a random client id, a
//! sequence number per write, and the lowest sequence still awaiting its
//! answer (so the server can forget the answers already received).

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ringkv_api::pb;

/// One client's numbering of its writes.
pub(crate) struct WriteSession {
    client_id: u64,
    next: AtomicU64,
    outstanding: Arc<Mutex<BTreeSet<u64>>>,
}

/// A write in flight; dropping it marks its answer as received (or given
/// up on), which lets the server forget it.
pub(crate) struct Ticket {
    client_id: u64,
    sequence: u64,
    first_unacked: u64,
    outstanding: Arc<Mutex<BTreeSet<u64>>>,
}

/// The session fields of a write request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    client_id: u64,
    sequence: u64,
    first_unacked: u64,
}

impl WriteSession {
    pub(crate) fn new() -> Self {
        // A random non-zero id (zero means "no session" on the wire).
        let id = RandomState::new().hash_one((std::process::id(), std::time::Instant::now())) | 1;
        Self { client_id: id, next: AtomicU64::new(1), outstanding: Arc::default() }
    }

    pub(crate) fn begin(&self) -> Ticket {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let mut out = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        out.insert(sequence);
        let first_unacked = out.first().copied().unwrap_or(sequence);
        Ticket { client_id: self.client_id, sequence, first_unacked, outstanding: self.outstanding.clone() }
    }
}

impl Ticket {
    pub(crate) fn tag(&self) -> Tag {
        Tag { client_id: self.client_id, sequence: self.sequence, first_unacked: self.first_unacked }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outstanding.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.sequence);
    }
}

/// A request that carries session fields.
pub(crate) trait Tagged {
    fn tag(&mut self, tag: Tag);
}

macro_rules! tagged {
    ($($req:ty),*) => {$(
        impl Tagged for $req {
            fn tag(&mut self, t: Tag) {
                self.client_id = t.client_id;
                self.sequence = t.sequence;
                self.first_unacked = t.first_unacked;
            }
        }
    )*};
}

tagged!(pb::SetRequest, pb::DelRequest, pb::DelVersionRequest, pb::TestAndSetRequest, pb::PutRequest, pb::TrimRequest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_unacked_follows_the_oldest_outstanding_write() {
        let s = WriteSession::new();
        let a = s.begin();
        let b = s.begin();
        assert_eq!((a.tag().sequence, b.tag().sequence), (1, 2));
        assert_eq!(b.tag().first_unacked, 1);
        drop(a);
        assert_eq!(s.begin().tag().first_unacked, 2);
        assert_ne!(s.client_id, 0);
    }
}
