//! A failed fdatasync is fatal (docs/design.md §7.1): the kernel may have
//! dropped the pages it could not write, so the replica is not to retry; it
//! exits non-zero saying why, its group goes on without it, and a restart
//! recovers it from disk. No disk here can be made to fail an fsync on
//! demand, so the failure is injected: the broken build's `fsync-error`
//! (crates/server/src/broken.rs) fails the log's fdatasync while the data
//! dir holds a file named FAIL_FSYNC. Writers keep their ledger throughout:
//! nothing acknowledged may be lost.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::ledger::{check_ledger, spawn_writers, Ledger};
use common::{broken_binary, opts, start, wait_for, wait_serving, ONE_AT_A_TIME};
use ringkv_testkit::ClusterSpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_replica_and_the_group_goes_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let spec = ClusterSpec::new(broken_binary(), 1, 3)
        .env("RUST_LOG", "info,openraft=warn")
        .env("RINGKV_BROKEN", "fsync-error");
    let mut cluster = start(spec).await;
    let status = cluster.replica(0, 0).status(false, Duration::from_secs(5)).await.unwrap();
    assert!(status.version.contains("BROKEN BUILD (fsync-error"), "status does not say so: {}", status.version);

    let (ledger, acks, stop) = (Ledger::default(), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let writers = spawn_writers(|| cluster.client(opts(false)).unwrap(), 4, &ledger, &acks, &stop);
    let acked = |n: u64| {
        let acks = acks.clone();
        move || {
            let acks = acks.clone();
            async move { acks.load(Ordering::Relaxed) >= n }
        }
    };
    wait_for("the first writes", Duration::from_secs(10), acked(50)).await;

    // A follower's fsync fails, then the leader's.
    for round in ["follower", "leader"] {
        let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
        let victim = if round == "leader" { leader } else { (leader + 1) % 3 };
        let marker = cluster.replica(0, victim).data_dir.join("FAIL_FSYNC");
        std::fs::write(&marker, b"").unwrap();
        let mut exit = None;
        for _ in 0..200 {
            exit = cluster.replica_mut(0, victim).process.exited();
            if exit.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let replica = cluster.replica(0, victim);
        let log = replica.process.log();
        let exit = exit.unwrap_or_else(|| panic!("the {round} did not stop after its fsync failed:\n{log}"));
        assert!(!exit.success(), "the {round} exited with success: {exit:?}");
        assert!(log.contains("raft stopped") && log.contains("injected"), "the {round} did not say why:\n{log}");
        let why = log.lines().rfind(|l| l.contains("raft stopped")).unwrap_or_default();
        eprintln!("the {round} ({}) exited ({exit}): {why}", replica.process.name());

        // The group goes on with the other two.
        let before = acks.load(Ordering::Relaxed);
        wait_for(&format!("writes without the {round}"), Duration::from_secs(15), acked(before + 50)).await;

        std::fs::remove_file(&marker).unwrap();
        cluster.restart(0, victim).unwrap();
        wait_serving(&cluster, 0, victim).await;
    }

    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let converged = cluster.wait_identical(0, Duration::from_secs(30)).await.unwrap();
    let keys = check_ledger(&cluster.client(opts(false)).unwrap(), &ledger).await;
    eprintln!(
        "fsync failures: a follower and a leader stopped and recovered; {} acknowledged writes, {keys} keys, replicas identical at index {}",
        acks.load(Ordering::Relaxed),
        converged.index
    );
}
