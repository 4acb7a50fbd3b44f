//! Tests of the log store: round trips, reopen, truncate, purge, rotation,
//! crash damage, and group commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, Membership, RaftLogReader};

use super::record::{segment_name, SEGMENT_HEADER_LEN};
use super::*;
use crate::raft::types::{Node, Proposal, Vote};
use crate::sm::command::Command;
use crate::sm::session::Request;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry {
    let payload = match index % 3 {
        0 => EntryPayload::Blank,
        1 => EntryPayload::Normal(Proposal::new(vec![Request::plain(
            Command::Set { key: vec![index as u8], timestamp: index as i64, data: vec![7; 40] },
            0,
        )])),
        _ => {
            let node = Node { client_addr: "a:1".into(), raft_addr: "a:2".into() };
            EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, node)])))
        }
    };
    openraft::Entry { log_id: log_id(term, index), payload }
}

fn entries(term: u64, range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|i| entry(term, i)).collect()
}

fn opts(segment_bytes: u64, cache_bytes: usize) -> LogOptions {
    LogOptions { segment_bytes, cache_bytes }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    segment::list_segments(dir).unwrap().into_iter().map(|(_, p)| p).collect()
}

async fn read_all(store: &mut LogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.unwrap()
}

#[tokio::test]
async fn append_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(store.state(), (None, None));
    store.blocking_append(entries(1, 0..10)).await.unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 0..10));
    assert_eq!(store.try_get_log_entries(3..=5).await.unwrap(), entries(1, 3..6));
    assert_eq!(store.try_get_log_entries(8..100).await.unwrap(), entries(1, 8..10));
    assert!(store.try_get_log_entries(10..20).await.unwrap().is_empty());
    let st = store.get_log_state().await.unwrap();
    assert_eq!((st.last_log_id, st.last_purged_log_id), (Some(log_id(1, 9)), None));
    // A hole is refused.
    assert!(store.blocking_append(entries(1, 11..12)).await.is_err());
    assert_eq!(store.state().0, Some(log_id(1, 9)));
}

#[tokio::test]
async fn reopen_restores_entries_vote_committed_purged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        store.blocking_append(entries(2, 0..10)).await.unwrap();
        store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        store.save_committed(Some(log_id(2, 7))).await.unwrap();
        store.purge(log_id(2, 3)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&mut store).await, entries(2, 4..10));
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 7)));
    assert_eq!(store.state(), (Some(log_id(2, 9)), Some(log_id(2, 3))));
    let (meta, offline) = read_dir_offline(dir.path()).unwrap();
    assert_eq!(offline, entries(2, 4..10));
    assert_eq!(meta.last_purged, Some(log_id(2, 3)));
    assert_eq!(meta.committed, Some(log_id(2, 7)));
}

#[tokio::test]
async fn truncate_then_append() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Small segments so truncation both cuts one file and deletes others.
        let mut store = LogStore::open(dir.path(), opts(300, 1 << 20)).unwrap();
        store.blocking_append(entries(1, 0..20)).await.unwrap();
        let before = segments(dir.path()).len();
        store.truncate(log_id(1, 7)).await.unwrap();
        assert!(segments(dir.path()).len() < before);
        assert_eq!(store.state().0, Some(log_id(1, 6)));
        assert!(store.try_get_log_entries(7..).await.unwrap().is_empty());
        store.blocking_append(entries(3, 7..12)).await.unwrap();
        let mut want = entries(1, 0..7);
        want.extend(entries(3, 7..12));
        assert_eq!(read_all(&mut store).await, want);
        // Truncating everything, then starting again.
        store.truncate(log_id(1, 0)).await.unwrap();
        assert_eq!(store.state(), (None, None));
        assert!(segments(dir.path()).is_empty());
        store.blocking_append(entries(4, 0..5)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path(), opts(300, 0)).unwrap();
    assert_eq!(read_all(&mut store).await, entries(4, 0..5));
}

#[tokio::test]
async fn purge_removes_whole_segments_and_reopen_skips_purged() {
    let dir = tempfile::tempdir().unwrap();
    let seg_bytes = 200;
    {
        let mut store = LogStore::open(dir.path(), opts(seg_bytes, 0)).unwrap();
        store.blocking_append(entries(1, 0..30)).await.unwrap();
        let firsts: Vec<u64> = segment::list_segments(dir.path()).unwrap().into_iter().map(|(f, _)| f).collect();
        assert!(firsts.len() > 3, "{firsts:?}");
        // Purge into the middle of the third segment.
        let p = firsts[2] + 1;
        store.purge(log_id(1, p)).await.unwrap();
        let left: Vec<u64> = segment::list_segments(dir.path()).unwrap().into_iter().map(|(f, _)| f).collect();
        assert_eq!(left, firsts[2..].to_vec());
        assert_eq!(read_all(&mut store).await, entries(1, p + 1..30));
        assert_eq!(store.state(), (Some(log_id(1, 29)), Some(log_id(1, p))));
    }
    let mut store = LogStore::open(dir.path(), opts(seg_bytes, 0)).unwrap();
    let first = store.state().1.unwrap().index + 1;
    assert_eq!(read_all(&mut store).await, entries(1, first..30));
    // Purging past the end (a snapshot ahead of the log) empties it.
    store.purge(log_id(1, 40)).await.unwrap();
    assert!(segments(dir.path()).is_empty());
    assert_eq!(store.state(), (Some(log_id(1, 40)), Some(log_id(1, 40))));
    store.blocking_append(entries(1, 41..45)).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path(), opts(seg_bytes, 0)).unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 41..45));
}

#[tokio::test]
async fn rotation_with_tiny_segments_and_disk_reads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), opts(1, 0)).unwrap();
        for i in 0..12 {
            store.blocking_append([entry(1, i)]).await.unwrap();
        }
        store.blocking_append(entries(1, 12..20)).await.unwrap();
        let names: Vec<String> =
            segments(dir.path()).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, (0..20).map(segment_name).collect::<Vec<_>>());
        // Nothing is cached: every read is a positional read of a file.
        assert_eq!(lock(&store.inner.shared).cache_len(), 0);
        assert_eq!(read_all(&mut store).await, entries(1, 0..20));
        assert_eq!(store.try_get_log_entries(5..9).await.unwrap(), entries(1, 5..9));
    }
    let mut store = LogStore::open(dir.path(), opts(1, 0)).unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 0..20));
}

#[tokio::test]
async fn small_cache_serves_misses_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), opts(4096, 500)).unwrap();
    store.blocking_append(entries(1, 0..200)).await.unwrap();
    assert!(lock(&store.inner.shared).cache_len() < 200);
    assert_eq!(read_all(&mut store).await, entries(1, 0..200));
    assert_eq!(store.try_get_log_entries(150..160).await.unwrap(), entries(1, 150..160));
}

fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().unwrap()
}

#[tokio::test]
async fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), opts(400, 1 << 20)).unwrap();
        store.blocking_append(entries(1, 0..10)).await.unwrap();
    }
    let seg = last_segment(dir.path());
    let good_len = fs::metadata(&seg).unwrap().len();

    // Garbage after the last record (a length running past the end).
    OpenOptions::new().append(true).open(&seg).unwrap().write_all(&[0xff, 0xff, 0x00, 0x01, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(read_dir_offline(dir.path()).unwrap().1, entries(1, 0..10));
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len + 9, "offline reading must not modify");
    {
        let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(read_all(&mut store).await, entries(1, 0..10));
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    }

    // A short header, then zeros a crash may leave behind.
    for tail in [&[1u8, 0, 0][..], &[0u8; 64][..]] {
        OpenOptions::new().append(true).open(&seg).unwrap().write_all(tail).unwrap();
        let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(read_all(&mut store).await, entries(1, 0..10));
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    }

    // The last record cut short: it is lost, the ones before stay, and the
    // log continues from there.
    OpenOptions::new().write(true).open(&seg).unwrap().set_len(good_len - 3).unwrap();
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 0..9));
    store.blocking_append(entries(2, 9..12)).await.unwrap();
    drop(store);
    let mut want = entries(1, 0..9);
    want.extend(entries(2, 9..12));
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&mut store).await, want);
}

#[tokio::test]
async fn checksum_mismatch_on_final_record_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        store.blocking_append(entries(1, 0..5)).await.unwrap();
    }
    let seg = last_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    fs::write(&seg, &bytes).unwrap();
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 0..4));
}

/// Byte offsets of the records in a segment file.
fn record_offsets(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap();
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut out = Vec::new();
    while pos + 8 <= bytes.len() {
        out.push(pos as u64);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
    }
    out
}

#[tokio::test]
async fn corruption_in_the_middle_stops_open() {
    for in_last_segment in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path(), opts(400, 1 << 20)).unwrap();
            store.blocking_append(entries(1, 0..20)).await.unwrap();
        }
        let all = segments(dir.path());
        assert!(all.len() >= 2);
        let seg = if in_last_segment { all[all.len() - 1].clone() } else { all[0].clone() };
        let offsets = record_offsets(&seg);
        assert!(offsets.len() >= 3, "{offsets:?}");
        let at = offsets[1];
        let mut bytes = fs::read(&seg).unwrap();
        bytes[at as usize + 10] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();

        let err = LogStore::open(dir.path(), LogOptions::default()).err().expect("open must fail").to_string();
        let name = seg.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.contains(&name) && err.contains(&format!("at offset {at}")), "{err}");
        assert!(err.contains("checksum mismatch"), "{err}");
        let offline = read_dir_offline(dir.path()).unwrap_err().to_string();
        assert!(offline.contains(&name), "{offline}");
    }
}

#[tokio::test]
async fn a_log_of_an_older_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), opts(1, 1 << 20)).unwrap();
        store.blocking_append(entries(1, 0..3)).await.unwrap();
    }
    let first = &segments(dir.path())[0];
    let mut bytes = fs::read(first).unwrap();
    bytes[..8].copy_from_slice(b"RKVLOG01");
    fs::write(first, bytes).unwrap();
    let err = LogStore::open(dir.path(), LogOptions::default()).err().expect("old format").to_string();
    assert!(err.contains("RKVLOG01") && err.contains("older ringkv"), "{err}");
}

#[tokio::test]
async fn bad_magic_and_index_gap_stop_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), opts(1, 1 << 20)).unwrap();
        store.blocking_append(entries(1, 0..6)).await.unwrap();
    }
    let all = segments(dir.path());
    // A missing segment in the middle is a gap.
    fs::remove_file(&all[2]).unwrap();
    let err = LogStore::open(dir.path(), LogOptions::default()).err().expect("gap").to_string();
    assert!(err.contains(&segment_name(3)) && err.contains("at offset 0"), "{err}");
    // A non-log file with a log name.
    fs::write(&all[2], b"not a log segment at all").unwrap();
    let err = LogStore::open(dir.path(), LogOptions::default()).err().expect("magic").to_string();
    assert!(err.contains(&segment_name(2)) && err.contains("bad magic"), "{err}");
    // Files that are not ours are left alone.
    fs::remove_file(&all[2]).unwrap();
    fs::remove_file(&all[3]).unwrap();
    fs::remove_file(&all[4]).unwrap();
    fs::remove_file(&all[5]).unwrap();
    fs::write(dir.path().join("snap.00000000000000000001"), b"x").unwrap();
    fs::create_dir(dir.path().join("sm")).unwrap();
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 0..2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_acknowledges_after_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    // Hold the writer so everything below queues up behind it.
    let (go, gate) = std::sync::mpsc::channel();
    {
        let s = lock(&store.inner.shared);
        store.send(&s, writer::Op::Pause(gate)).unwrap();
    }
    let before = store.fsyncs();
    const N: u64 = 100;
    let mut pending = Vec::new();
    for i in 0..N {
        let mut s = store.clone();
        let mut fut = Box::pin(async move { s.blocking_append([entry(1, i)]).await });
        // One poll runs `append` (in index order) up to waiting for the callback.
        assert!(futures::poll!(&mut fut).is_pending());
        pending.push(fut);
    }
    // Appended entries are readable at once, but not acknowledged.
    let mut reader = store.clone();
    assert_eq!(reader.try_get_log_entries(..).await.unwrap().len(), N as usize);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for fut in &mut pending {
        assert!(futures::poll!(fut).is_pending(), "acknowledged before being written");
    }
    assert!(segments(dir.path()).is_empty(), "nothing is written while the writer is held");

    go.send(()).unwrap();
    for result in futures::future::join_all(pending).await {
        result.unwrap();
    }
    let fsyncs = store.fsyncs() - before;
    // One segment fsync plus one directory fsync for the new segment.
    assert!(fsyncs <= 2, "{fsyncs} fsyncs for {N} appends");
    drop((store, reader));
    assert_eq!(read_dir_offline(dir.path()).unwrap().1, entries(1, 0..N));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_tasks_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), opts(16 << 10, 1 << 20)).unwrap();
    let next = std::sync::Arc::new(tokio::sync::Mutex::new(0u64));
    let before = store.fsyncs();
    const N: u64 = 400;
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (mut s, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            // Appends must be issued in index order; their flushes overlap.
            let mut fut = {
                let mut n = next.lock().await;
                let i = *n;
                *n += 1;
                let mut fut = Box::pin(async move { s.blocking_append([entry(1, i)]).await });
                if let std::task::Poll::Ready(done) = futures::poll!(&mut fut) {
                    return done;
                }
                fut
            };
            (&mut fut).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let fsyncs = store.fsyncs() - before;
    assert!(fsyncs < N, "{fsyncs} fsyncs for {N} appends");
    drop(store);
    let mut store = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&mut store).await, entries(1, 0..N));
}
