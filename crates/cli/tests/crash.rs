//! `kill -9` during writes: after a restart every acknowledged write is
//! there with its version, across snapshot boundaries.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_for, Server};
use num_bigint::BigInt;
use ringkv_client::{Client, Outcome};

const WRITERS: u64 = 8;

/// What a writer knows of one key: the last acknowledged value, and the
/// write it had in flight when the server died (which may have happened).
#[derive(Clone, Debug, Default)]
struct Known {
    acked: Option<(i64, String)>,
    in_flight: Option<(i64, String)>,
}

type Ledger = Arc<Mutex<HashMap<u64, Known>>>;

fn key(writer: u64, i: u64) -> u64 {
    writer * 1_000_000 + i
}

/// Writes until the server dies: each key is set, then bumped twice with
/// testAndSet. Records what was acknowledged.
async fn writer(client: Client, w: u64, round: u64, ledger: Ledger, acks: Arc<AtomicU64>) {
    for i in 0.. {
        let k = key(w, round * 100_000 + i);
        let big = BigInt::from(k);
        for version in 1..=3i64 {
            let data = format!("{k}-v{version}");
            ledger.lock().unwrap().entry(k).or_default().in_flight = Some((version, data.clone()));
            let result = if version == 1 {
                client.set(&big, version, data.clone()).await
            } else {
                client.test_and_set(&big, version, data.clone(), version - 1).await
            };
            match result {
                Ok(r) => {
                    assert_eq!(r.outcome, Outcome::Success, "key {k} version {version}");
                    let mut l = ledger.lock().unwrap();
                    let known = l.entry(k).or_default();
                    known.acked = Some((version, data));
                    known.in_flight = None;
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => return, // the server is gone: the write is in doubt
            }
        }
    }
}

/// Each replica's view (role, term, log end, applied index), for a failure
/// message: a stale read and a lost write look alike from the client.
async fn replica_states(server: &Server) -> String {
    let mut out = String::new();
    for r in server.cluster.replicas() {
        let s = r.status(false, Duration::from_secs(1)).await;
        let line = match s {
            Some(s) => format!(
                "{}: {:?} term {} last log {} applied {}\n",
                r.process.name(),
                s.role,
                s.term,
                s.last_log_index,
                s.applied_index
            ),
            None => format!("{}: no answer\n", r.process.name()),
        };
        out.push_str(&line);
    }
    out
}

async fn check(server: &Server, client: &Client, ledger: &Ledger) -> usize {
    let known: Vec<(u64, Known)> = ledger.lock().unwrap().iter().map(|(k, v)| (*k, v.clone())).collect();
    let mut checked = 0;
    for (k, known) in known {
        let got = client.get(&BigInt::from(k)).await.expect("get after restart").value;
        let got = got.map(|v| (v.version, String::from_utf8(v.data.to_vec()).unwrap()));
        let ok = got == known.acked || (known.in_flight.is_some() && got == known.in_flight);
        if !ok {
            // Read again after the replicas' state: stale for a moment, or lost?
            let states = replica_states(server).await;
            let again = client.get(&BigInt::from(k)).await.ok().and_then(|r| r.value).map(|v| v.version);
            panic!(
                "key {k}: found {got:?}, acknowledged {:?}, in flight {:?}; read again: version {again:?}\n{states}",
                known.acked, known.in_flight
            );
        }
        if known.acked.is_some() {
            checked += 1;
        }
        // Settle the in-doubt write so that the next round starts clean.
        let mut l = ledger.lock().unwrap();
        let e = l.get_mut(&k).unwrap();
        e.acked = got;
        e.in_flight = None;
    }
    checked
}

async fn crash_rounds(extra: &[&str], rounds: u64, want_snapshots: bool) {
    let mut server = Server::start(extra).await;
    let ledger: Ledger = Arc::default();
    for round in 0..rounds {
        let acks = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(server.client(), w, round, ledger.clone(), acks.clone())))
            .collect();
        let target = 300 + round * 100;
        wait_for("writes to be acknowledged", Duration::from_secs(60), || {
            let n = acks.load(Ordering::Relaxed);
            async move { n >= target }
        })
        .await;
        server.kill9();
        for t in tasks {
            t.await.unwrap();
        }
        server.launch().await;
        let checked = check(&server, &server.client(), &ledger).await;
        assert!(checked as u64 >= target / 3, "round {round}: only {checked} keys checked");
    }
    if want_snapshots {
        assert!(!server.snapshot_files().is_empty(), "no snapshot was taken: the test crossed no boundary");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_writes_loses_nothing_acknowledged() {
    crash_rounds(
        &["--snapshot-log-bytes", "1099511627776", "--snapshot-log-ratio", "0", "--snapshot-interval", "0"],
        3,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_across_snapshot_boundaries() {
    // A snapshot every 64 entries: every round crosses several, and the
    // kill lands between, during or right after them.
    crash_rounds(&["--snapshot-log-bytes", "2560", "--snapshot-log-ratio", "0"], 4, true).await;
}
