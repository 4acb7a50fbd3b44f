//! Failover under a writer: `kill -9` of a group's leader, three times, while
//! the client library writes fresh keys back to back. Every acknowledged
//! write is there at the end, and writes resume within a loose bound after
//! each kill (3 s: this is a test on a shared machine, not the benchmark;
//! `bench/failover.py` measures the gap, some 250 ms).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{opts, spec, start, wait_for, wait_serving, ONE_AT_A_TIME};
use num_bigint::BigInt;
use ringkv_client::{Client, Outcome};

const KILLS: usize = 3;
const GAP_BOUND: Duration = Duration::from_secs(3);

/// The writes a writer had acknowledged: key, and when it was sent and
/// acknowledged.
#[derive(Default)]
struct Acks(Mutex<Vec<(u64, Instant, Instant)>>);

impl Acks {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// When the first write sent after `t` was acknowledged (one sent
    /// before a kill may still have been answered by the dying leader).
    fn first_after(&self, t: Instant) -> Option<Instant> {
        self.0.lock().unwrap().iter().find(|(_, sent, _)| *sent > t).map(|(_, _, acked)| *acked)
    }
}

fn data(k: u64) -> String {
    format!("value of {k}")
}

/// Writes keys 1, 2, … back to back until `stop`; a write that fails (the
/// client's deadline passed) is in doubt and not recorded.
async fn writer(client: Client, acks: Arc<Acks>, stop: Arc<AtomicBool>) {
    for k in 1u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let sent = Instant::now();
        if let Ok(r) = client.set(&BigInt::from(k), 0, data(k)).await {
            assert_eq!(r.outcome, Outcome::Success, "key {k} was fresh");
            acks.0.lock().unwrap().push((k, sent, Instant::now()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_soon_after_each_leader_kill_and_none_is_lost() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(spec(1, 3, &[])).await;
    let client = cluster.client(opts(true)).expect("client");
    let (acks, stop) = (Arc::new(Acks::default()), Arc::new(AtomicBool::new(false)));
    let task = tokio::spawn(writer(client.clone(), acks.clone(), stop.clone()));

    let mut gaps = Vec::new();
    for kill in 0..KILLS {
        let leader = cluster.wait_leader(0, Duration::from_secs(30)).await.expect("a leader");
        let before = acks.count() + 50;
        wait_for("writes before the kill", Duration::from_secs(30), || {
            let n = acks.count();
            async move { n >= before }
        })
        .await;
        cluster.kill9(0, leader);
        let killed = Instant::now();
        wait_for("a write acknowledged after the kill", Duration::from_secs(30), || {
            let done = acks.first_after(killed).is_some();
            async move { done }
        })
        .await;
        let gap = acks.first_after(killed).unwrap() - killed;
        eprintln!("kill {}: replica {leader}, next acknowledged write after {gap:?}", kill + 1);
        gaps.push(gap);
        cluster.restart(0, leader).expect("restart");
        wait_serving(&cluster, 0, leader).await;
    }
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();

    let acked: Vec<u64> = acks.0.lock().unwrap().iter().map(|(k, _, _)| *k).collect();
    for k in &acked {
        let got = client.get(&BigInt::from(*k)).await.expect("read back").value;
        assert_eq!(got.map(|v| v.data), Some(data(*k).into()), "acknowledged key {k}");
    }
    assert!(
        gaps.iter().all(|g| *g < GAP_BOUND),
        "writes resumed after {gaps:?} (bound {GAP_BOUND:?}); logs:\n{}",
        cluster.logs()
    );
    eprintln!("{} acknowledged writes, all read back", acked.len());
}
