//! Snapshot consistency: writes go on while snapshots are taken, and each
//! snapshot equals the state at its log index. `ringkv verify` checks this
//! offline by replaying the log between consecutive snapshots through the
//! state machine; this test drives it and also checks the recovered state
//! against what the clients see (its data digest) and against what the
//! running replica said (its digest, the one `ringkv status --digest` shows).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ringkv, Server};
use futures::future::join_all;
use num_bigint::BigInt;
use ringkv_client::Value;
use ringkv_client::{Client, Outcome};
use ringkv_server::sm::digest::{data_digest, show};

const KEYS: u64 = 64;

/// Many overwrites on few keys, so snapshots differ from one another.
async fn churn(client: Client, writer: u64, ops: u64) {
    for i in 0..ops {
        let k = BigInt::from((i * 7 + writer * 13) % KEYS);
        let r = client.get(&k).await.unwrap();
        let data = format!("w{writer}-{i}");
        let _ = match (r.value, i % 5) {
            (None, _) => client.set(&k, i as i64, data).await.unwrap(),
            (Some(v), 0) => client.del_version(&k, v.version).await.unwrap(),
            (Some(v), _) => client.test_and_set(&k, i as i64, data, v.version).await.unwrap(),
        };
    }
}

/// Every key's wire bytes and value, as a client reads them.
async fn client_state(client: &Client) -> BTreeMap<Vec<u8>, Vec<Value>> {
    let mut state = BTreeMap::new();
    for k in 0..KEYS {
        let key = BigInt::from(k);
        let h = client.history(&key, 0).await.unwrap();
        if h.outcome == Outcome::Success {
            state.insert(ringkv_api::encode_key(&key), h.versions);
        }
    }
    state
}

/// A server that snapshots every 2,000 bytes applied (no timer), holding
/// keys 0..n (value: the key in decimal), and a client of it.
async fn snapshotting_server_with(n: u64) -> (Server, Client) {
    let server =
        Server::start(&["--snapshot-log-bytes", "2000", "--snapshot-log-ratio", "0", "--snapshot-interval", "0"]).await;
    let client = server.client();
    for i in 0..n {
        assert_eq!(client.set(&BigInt::from(i), 1, format!("{i}")).await.unwrap().outcome, Outcome::Success);
    }
    (server, client)
}

/// What `ringkv status --digest` says of the replica whose directory is
/// verified (the first) once it has applied its whole log: (index, digest).
async fn status_digest(server: &Server) -> (u64, String) {
    let started = Instant::now();
    loop {
        let (code, out, err) = ringkv(&["status", "--digest", "--addr", &server.addr, "--json"]);
        assert_eq!(code, 0, "status failed: {err}{out}");
        let view: serde_json::Value = serde_json::from_str(&out).expect("status --json output");
        let replicas = view["positions"].as_array().unwrap().iter().flat_map(|p| p["replicas"].as_array().unwrap());
        let me = replicas.into_iter().find(|r| r["address"] == server.addr.as_str()).expect("the first replica");
        if me["digest_index"] == me["last_log_index"] {
            return (me["digest_index"].as_u64().unwrap(), me["digest"].as_str().unwrap().to_owned());
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the replica does not apply its whole log: {me}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_is_the_state_at_its_index() {
    let mut server =
        Server::start(&["--snapshot-log-bytes", "4000", "--snapshot-log-ratio", "0", "--snapshot-interval", "1"]).await;
    let dir = server.data_dir.display().to_string();
    let mut pairs = 0;
    for round in 0..3 {
        let writers = (0..8).map(|w| churn(server.client(), w + round * 8, 150));
        join_all(writers).await;
        let seen = Arc::new(client_state(&server.client()).await);
        let (index, status) = status_digest(&server).await;
        server.stop();

        let (code, out, err) = ringkv(&["verify", "--data-dir", &dir, "--json"]);
        assert_eq!(code, 0, "verify failed: {err}{out}");
        let report: serde_json::Value = serde_json::from_str(&out).expect("verify --json output");
        let checked = report["pairs_checked"].as_u64().unwrap();
        assert!(checked >= 1, "round {round}: no snapshot pair to check: {report}");
        pairs += checked;
        let want = show(data_digest(
            seen.iter()
                .map(|(k, h)| (k.as_slice(), h.iter().map(|v| (v.version, v.timestamp, v.data.as_ref())).collect())),
        ));
        assert_eq!(report["data_digest"].as_str().unwrap(), want, "recovered state differs from what clients saw");
        assert_eq!(report["recovered_index"].as_u64().unwrap(), index, "{report}");
        assert_eq!(report["digest"].as_str().unwrap(), status, "verify and status disagree on the state at {index}");
        assert_eq!(report["keys"].as_u64().unwrap(), seen.len() as u64);
        assert!(report["snapshots"].as_array().unwrap().len() <= 3, "more than 3 snapshots kept: {report}");

        server.launch().await;
        assert_eq!(&client_state(&server.client()).await, seen.as_ref(), "state after restart");
    }
    assert!(pairs >= 3, "only {pairs} snapshot pairs checked");
}

/// A restart goes on from the store as it was: no snapshot is loaded.
/// Only when the store is lost does recovery fall back to the snapshots,
/// and then a corrupt newest one is skipped for the one before it (the log
/// is kept back to the oldest snapshot, so that path is complete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_is_rebuilt_from_snapshots_skipping_a_corrupt_one() {
    let (mut server, client) = snapshotting_server_with(300).await;
    let before = client_state(&client).await;
    server.stop();
    server.launch().await;
    assert!(server.log().contains("opened the store"), "the restart did not go on from the store");
    assert!(!server.log().contains("loaded snapshot"), "a restart with a sound store loaded a snapshot");
    assert_eq!(client_state(&server.client()).await, before);
    server.stop();

    let snaps = server.snapshot_files();
    assert!(snaps.len() >= 2, "want at least two snapshots, have {snaps:?}");
    let newest = snaps.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(newest, bytes).unwrap();
    std::fs::remove_dir_all(server.data_dir.join("sm")).unwrap();
    server.launch().await;
    assert!(server.log().contains("skipping snapshot"), "no warning about the corrupt snapshot");
    assert_eq!(client_state(&server.client()).await, before);
}

/// A store LMDB cannot open (both meta pages overwritten) is moved aside,
/// named in the log, and rebuilt from the newest snapshot and the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_set_aside_and_rebuilt() {
    let (mut server, client) = snapshotting_server_with(200).await;
    let before = client_state(&client).await;
    server.stop();
    let file = server.data_dir.join("sm").join("data.mdb");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[..8192].fill(0xff);
    std::fs::write(&file, bytes).unwrap();
    server.launch().await;
    assert!(server.log().contains("is unusable"), "no warning about the corrupt store:\n{}", server.log());
    let aside = std::fs::read_dir(&server.data_dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("sm.corrupt-"));
    assert!(aside, "the corrupt store was not kept for inspection");
    assert_eq!(client_state(&server.client()).await, before);
}

/// `ringkv verify` must not pass a tampered directory: one flipped byte in
/// the newest snapshot, or in the middle of the log, is reported and the
/// command fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_on_a_tampered_data_dir() {
    let (mut server, _) = snapshotting_server_with(300).await;
    server.stop();
    let dir = server.data_dir.display().to_string();
    let (code, out, err) = ringkv(&["verify", "--data-dir", &dir]);
    assert_eq!(code, 0, "the untouched dir fails: {err}{out}");

    let flip = |path: &std::path::Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(path, bytes).unwrap();
    };
    let snapshot = server.snapshot_files().pop().expect("a snapshot");
    let good = std::fs::read(&snapshot).unwrap();
    flip(&snapshot);
    let (code, out, err) = ringkv(&["verify", "--data-dir", &dir]);
    assert_ne!(code, 0, "a flipped byte in {} passed verify: {out}", snapshot.display());
    assert!(err.contains("corrupt"), "the report does not say what is wrong: {err}");
    std::fs::write(&snapshot, good).unwrap();

    let mut logs: Vec<_> = std::fs::read_dir(&server.data_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .collect();
    logs.sort();
    flip(logs.first().expect("a log segment"));
    let (code, out, err) = ringkv(&["verify", "--data-dir", &dir]);
    assert_ne!(code, 0, "a flipped byte in the log passed verify: {out}");
    assert!(!err.is_empty(), "no reason given");
}
