//! Randomized test: appends, truncations, purges, votes and reopens against
//! a plain in-memory model of the log, with tiny segments and cache so
//! rotation, partial purges and disk reads all happen often.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::raft::types::{Proposal, Vote};
use crate::sm::command::Command;
use crate::sm::session::Request;

fn entry(term: u64, index: u64, size: usize) -> Entry {
    let log_id = LogId::new(CommittedLeaderId::new(term, 1), index);
    let cmd = Command::Set { key: index.to_be_bytes().to_vec(), timestamp: 0, data: vec![term as u8; size] };
    let payload = EntryPayload::Normal(Proposal::new(vec![Request::plain(cmd, 0)]));
    openraft::Entry { log_id, payload }
}

/// The model: live entries and the purge point.
#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
    purged: Option<LogId>,
}

impl Model {
    fn next_index(&self) -> u64 {
        match (self.entries.last(), self.purged) {
            (Some(e), _) => e.log_id.index + 1,
            (None, Some(p)) => p.index + 1,
            (None, None) => 0,
        }
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries.last().map(|e| e.log_id).or(self.purged)
    }
}

async fn check(store: &mut LogStore, model: &Model, step: usize) {
    let got = store.try_get_log_entries(..).await.unwrap();
    assert_eq!(got, model.entries, "step {step}");
    let st = store.get_log_state().await.unwrap();
    assert_eq!((st.last_log_id, st.last_purged_log_id), (model.last_log_id(), model.purged), "step {step}");
    if let (Some(first), Some(last)) = (model.entries.first(), model.entries.last()) {
        let (a, b) = (first.log_id.index, last.log_id.index);
        let mid = (a + b) / 2;
        let want: Vec<Entry> =
            model.entries.iter().filter(|e| e.log_id.index >= mid && e.log_id.index < b).cloned().collect();
        assert_eq!(store.try_get_log_entries(mid..b).await.unwrap(), want, "step {step}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_the_model() {
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let opts = || LogOptions { segment_bytes: 300, cache_bytes: 400 };
        let mut store = LogStore::open(dir.path(), opts()).unwrap();
        let mut model = Model::default();
        let mut term = 1;
        let mut vote = None;
        for step in 0..300 {
            match rng.random_range(0..100) {
                0..55 => {
                    let n = rng.random_range(1..6);
                    let start = model.next_index();
                    let batch: Vec<Entry> =
                        (start..start + n).map(|i| entry(term, i, rng.random_range(0..80))).collect();
                    model.entries.extend(batch.iter().cloned());
                    store.blocking_append(batch).await.unwrap();
                }
                55..70 if !model.entries.is_empty() => {
                    let k = rng.random_range(0..model.entries.len());
                    let at = model.entries[k].log_id;
                    model.entries.truncate(k);
                    store.truncate(at).await.unwrap();
                    term += 1;
                }
                70..82 if !model.entries.is_empty() => {
                    let k = rng.random_range(0..model.entries.len());
                    let at = model.entries[k].log_id;
                    model.entries.drain(..=k);
                    model.purged = Some(at);
                    store.purge(at).await.unwrap();
                }
                82..85 => {
                    // A snapshot ahead of the log.
                    let at = LogId::new(CommittedLeaderId::new(term, 1), model.next_index() + rng.random_range(0..5));
                    model.entries.clear();
                    model.purged = Some(at);
                    store.purge(at).await.unwrap();
                }
                85..90 => {
                    term += 1;
                    vote = Some(Vote::new(term, rng.random_range(1..4)));
                    store.save_vote(vote.as_ref().unwrap()).await.unwrap();
                }
                90..100 => {
                    drop(store);
                    store = LogStore::open(dir.path(), opts()).unwrap();
                    assert_eq!(store.read_vote().await.unwrap(), vote, "step {step}");
                    let (meta, offline) = read_dir_offline(dir.path()).unwrap();
                    assert_eq!(offline, model.entries, "offline, step {step}");
                    assert_eq!(meta.last_purged, model.purged, "step {step}");
                }
                _ => {}
            }
            check(&mut store, &model, step).await;
        }
    }
}
