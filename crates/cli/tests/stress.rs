//! Load through a real server: 1,000 keys through their whole life, and 8
//! clients in parallel on disjoint and on shared keys.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::Server;
use futures::future::join_all;
use num_bigint::BigInt;
use ringkv_client::{Client, Outcome};

const KEYS: u64 = 1_000;
const CLIENTS: u64 = 8;

fn key(i: u64) -> BigInt {
    // Spread over sizes and signs: small, large, negative.
    let k = BigInt::from(i) * BigInt::from(0x1_0000_0001u64).pow((i % 4) as u32);
    if i.is_multiple_of(2) {
        k
    } else {
        -k - 1
    }
}

/// Set, update with testAndSet, read back, delete at version: every step
/// checked, for `keys`.
async fn life_cycle(client: &Client, keys: impl Iterator<Item = u64> + Clone) {
    for i in keys.clone() {
        let r = client.set(&key(i), i as i64, format!("v1-{i}")).await.unwrap();
        assert_eq!(r.outcome, Outcome::Success, "set {i}");
    }
    for i in keys.clone() {
        let r = client.test_and_set(&key(i), i as i64 + 1, format!("v2-{i}"), 1).await.unwrap();
        assert_eq!(r.outcome, Outcome::Success, "tas {i}");
        assert_eq!(r.value.unwrap().data.as_ref(), format!("v1-{i}").as_bytes());
    }
    for i in keys.clone() {
        let v = client.get(&key(i)).await.unwrap().value.expect("value present");
        assert_eq!((v.version, v.timestamp), (2, i as i64 + 1), "read back {i}");
        assert_eq!(v.data.as_ref(), format!("v2-{i}").as_bytes());
    }
    for i in keys.clone() {
        let r = client.del_version(&key(i), 2).await.unwrap();
        assert_eq!(r.outcome, Outcome::Success, "delete {i} at version 2");
    }
    for i in keys {
        assert_eq!(client.get(&key(i)).await.unwrap().outcome, Outcome::Error, "{i} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_keys_life_cycle() {
    let server = Server::start(&["--snapshot-log-bytes", "20000", "--snapshot-log-ratio", "0"]).await;
    life_cycle(&server.client(), 0..KEYS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_on_disjoint_keys() {
    let server = Server::start(&[]).await;
    let runs = (0..CLIENTS).map(|c| {
        let client = server.client();
        async move { life_cycle(&client, (c * 200)..(c * 200 + 200)).await }
    });
    join_all(runs).await;
}

/// Every client races testAndSet on the same keys; each race has exactly
/// one winner (no two wins from the same (key, version) seen), and the
/// final version is the number of wins + 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_race_on_shared_keys() {
    const SHARED: u64 = 20;
    const ROUNDS: usize = 25;
    let server = Server::start(&[]).await;
    let setup = server.client();
    for k in 0..SHARED {
        assert_eq!(setup.set(&key(k), 0, "start").await.unwrap().outcome, Outcome::Success);
    }
    let wins: Arc<Vec<AtomicU64>> = Arc::new((0..SHARED).map(|_| AtomicU64::new(0)).collect());
    let won_from = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let runs = (0..CLIENTS).map(|c| {
        let client = server.client();
        let wins = wins.clone();
        let won_from = won_from.clone();
        async move {
            for round in 0..ROUNDS {
                for k in 0..SHARED {
                    // Read the current version, then race to bump it.
                    let seen = client.get(&key(k)).await.unwrap().value.unwrap().version;
                    let r = client.test_and_set(&key(k), round as i64, format!("{c}"), seen).await.unwrap();
                    match r.outcome {
                        Outcome::Success => {
                            wins[k as usize].fetch_add(1, Ordering::SeqCst);
                            let first = won_from.lock().unwrap().insert((k, seen));
                            assert!(first, "two testAndSet winners from version {seen} of key {k}");
                        }
                        Outcome::ErrorWv => assert!(r.value.unwrap().version > seen, "lost race saw no newer"),
                        other => panic!("unexpected outcome {other}"),
                    }
                }
            }
        }
    });
    join_all(runs).await;
    let mut total = 0;
    for k in 0..SHARED {
        let v = setup.get(&key(k)).await.unwrap().value.unwrap();
        let w = wins[k as usize].load(Ordering::SeqCst);
        assert_eq!(v.version as u64, w + 1, "key {k}: version must be wins + 1");
        total += w;
    }
    assert!(total > 0, "no client ever won");
    assert_eq!(won_from.lock().unwrap().len() as u64, total);
}
