//! The ring, with real processes: each key's data lives on its owner
//! group only; routing lengths (server-side and ring-aware) read from the
//! `ringkv-hops` reply header; a clear error when inconsistent ring
//! configurations make a request loop; and the restart scenario on every
//! group at once. (The core suites run against a ring too: scripts/test
//! sets RINGKV_TEST_POSITIONS.)

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ledger::{check_ledger, spawn_writers, Ledger};
use common::ONE_AT_A_TIME;
use num_bigint::BigInt;
use rand::Rng;
use ringkv_api::pb::{self, key_value_client::KeyValueClient};
use ringkv_client::{Client, ClientOptions, Outcome};
use ringkv_ring::Placement;
use ringkv_testkit::{Cluster, Process};
use tonic::transport::Channel;

/// A ring under test, and the ring itself (the pure `ringkv_ring::Ring`
/// the servers build from the same configuration) so that a test can say
/// which group owns a key.
struct TestRing {
    cluster: Cluster,
    ring: ringkv_ring::Ring,
}

impl TestRing {
    async fn start(positions: usize, replicas: usize, extra: &[&str]) -> TestRing {
        let cluster = common::start(common::spec(positions, replicas, extra)).await;
        let ring = ringkv_ring::Ring::evenly(ringkv_ring::DEFAULT_M, positions, Placement::Hash).expect("ring");
        TestRing { cluster, ring }
    }

    /// A client of every node: ring-aware, or spreading requests over all
    /// nodes and letting them route.
    fn client(&self, ring_aware: bool) -> Client {
        let opts = ClientOptions { timeout: Duration::from_secs(10), ring: ring_aware, ..ClientOptions::default() };
        self.cluster.client(opts).expect("client")
    }

    /// A client of one node only, letting it route.
    fn client_of(&self, p: usize, r: usize) -> Client {
        self.cluster.replica(p, r).client(ClientOptions::default()).expect("client")
    }

    fn addr(&self, p: usize, r: usize) -> &str {
        &self.cluster.replica(p, r).addr
    }

    /// The position that owns `key`.
    fn owner(&self, key: &BigInt) -> usize {
        self.ring.owner_of_key(&ringkv_api::encode_key(key))
    }

    async fn wait_leader(&self, p: usize, within: Duration) -> usize {
        self.cluster.wait_leader(p, within).await.expect("a leader")
    }

    /// (applied index, digest, keys) once position `p`'s replicas agree.
    async fn wait_identical(&self, p: usize, within: Duration) -> (u64, String, u64) {
        let c = self.cluster.wait_identical(p, within).await.expect("replicas converge");
        (c.index, c.digest, c.keys)
    }
}

/// Seconds the ring's restart scenario runs (RINGKV_RESTART_SECS).
fn restart_secs() -> u64 {
    std::env::var("RINGKV_RESTART_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15)
}

/// A `get` sent to one node: the hops its answer says it took.
async fn hops_of_get(raw: &mut KeyValueClient<Channel>, key: &BigInt) -> u32 {
    let started = Instant::now();
    loop {
        let req = pb::GetRequest { key: ringkv_api::encode_key(key).into(), serializable: false };
        match raw.get(req).await {
            Ok(r) => {
                let h = r.metadata().get("ringkv-hops").expect("every reply carries ringkv-hops");
                return h.to_str().unwrap().parse().expect("ringkv-hops is a number");
            }
            Err(s) if s.code() == tonic::Code::Unavailable && started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("get failed: {s:?}"),
        }
    }
}

/// Mean and most hops of `samples` gets of uniformly random keys, each
/// through a uniformly random node, routed by the servers.
async fn server_side_hops(ring: &TestRing, samples: usize) -> (f64, u32) {
    let mut raws: Vec<_> = ring.cluster.addrs().iter().map(|a| ring_raw(a)).collect();
    let mut rng = rand::rng();
    let (mut total, mut most) = (0u64, 0u32);
    for _ in 0..samples {
        let key = BigInt::from(rng.random::<i64>());
        let entry = rng.random_range(0..raws.len());
        let h = hops_of_get(&mut raws[entry], &key).await;
        total += u64::from(h);
        most = most.max(h);
    }
    (total as f64 / samples as f64, most)
}

fn ring_raw(addr: &str) -> KeyValueClient<Channel> {
    Client::new(addr, Default::default()).expect("client").raw()
}

/// Mean and most hops of a ring-aware client over `samples` random keys,
/// after a warm-up that fetches the map and learns the leaders.
async fn ring_aware_hops(ring: &TestRing, samples: usize) -> (f64, u64) {
    let client = ring.client(true);
    let mut rng = rand::rng();
    for _ in 0..20 {
        client.get(&BigInt::from(rng.random::<i64>())).await.expect("get");
    }
    let before = client.route_stats();
    for _ in 0..samples {
        client.get(&BigInt::from(rng.random::<i64>())).await.expect("get");
    }
    let after = client.route_stats();
    let answers = after.answers - before.answers;
    assert_eq!(answers, samples as u64);
    ((after.hops - before.hops) as f64 / answers as f64, after.max_hops)
}

/// Chord's mean path is ½·log2 n hops (measured here within 0.06 of it);
/// routing by successors alone would take (n − 1)/2, which the bound's
/// margin of ¼ hop catches from n = 4 on (1.5 > 1.25), as does the
/// longest path (a mutation run, fingers ignored, fails at n = 4).
fn check_hops(n: usize, server: (f64, u32), aware: (f64, u64)) {
    let bound = 0.5 * (n as f64).log2() + 0.25;
    eprintln!(
        "n = {n}: server-side routing mean {:.3} hops, max {} (bound {bound:.2}); ring-aware mean {:.3}, max {}",
        server.0, server.1, aware.0, aware.1
    );
    assert!(server.0 <= bound, "n = {n}: mean {} hops > ½·log2(n) + ¼ = {bound}", server.0);
    assert!(aware.0 < 0.05, "n = {n}: ring-aware mean {} hops", aware.0);
}

/// Four positions × 3 replicas: keys written through random nodes land on
/// their owner group only (every replica of it, and no other group), are
/// read back through a ring-aware client, and routing is short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_positions_keep_each_key_on_its_owner_and_route_in_few_hops() {
    let _one = ONE_AT_A_TIME.lock().await;
    let ring = TestRing::start(4, 3, &[]).await;
    // 10·(p+1) keys for position p: distinct counts, so a key stored on the
    // wrong group cannot go unnoticed.
    let mut want = [0u64; 4];
    let mut keys = Vec::new();
    for k in 0i64.. {
        let key = BigInt::from(k * 7919 - 500_000);
        let p = ring.owner(&key);
        if want[p] < 10 * (p as u64 + 1) {
            want[p] += 1;
            keys.push(key);
        }
        if want.iter().enumerate().all(|(p, n)| *n == 10 * (p as u64 + 1)) {
            break;
        }
    }
    let anywhere = ring.client(false);
    for k in &keys {
        assert_eq!(anywhere.set(k, 1, format!("v{k}")).await.unwrap().outcome, Outcome::Success, "set {k}");
    }
    for (p, n) in want.iter().enumerate() {
        let (index, digest, count) = ring.wait_identical(p, Duration::from_secs(30)).await;
        assert_eq!(count, *n, "position {p} holds {count} keys, owns {n} (identical at {index}, {digest})");
    }
    let aware = ring.client(true);
    for k in &keys {
        let got = aware.get(k).await.unwrap().value.expect("written key");
        assert_eq!(got.data.as_ref(), format!("v{k}").as_bytes());
    }
    let server = server_side_hops(&ring, 300).await;
    let aware = ring_aware_hops(&ring, 300).await;
    check_hops(4, server, aware);
}

/// Makes position `p`'s replica 0 (whom routing tries first) a follower
/// under a leader that stays put: the same leader in the same term a
/// second later, well past the longest election timeout. A restarted
/// replica 0 whose timer fires before the leader's heartbeats reach it
/// can still campaign and win (its log is as long as theirs), so a
/// leader seen once right after the restart is not enough. Returns that
/// (leader, term).
async fn follower_first(ring: &mut TestRing, p: usize) -> (usize, Option<u64>) {
    loop {
        let leader = ring.wait_leader(p, Duration::from_secs(30)).await;
        if leader == 0 {
            ring.cluster.kill9(p, 0);
            assert_ne!(ring.wait_leader(p, Duration::from_secs(30)).await, 0);
            ring.cluster.restart(p, 0).unwrap();
            common::wait_serving(&ring.cluster, p, 0).await;
            continue;
        }
        let seen = leader_term(ring, p).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if seen.0 == leader && leader_term(ring, p).await == seen {
            return seen;
        }
    }
}

/// Position `p`'s leader and the term it leads in.
async fn leader_term(ring: &TestRing, p: usize) -> (usize, Option<u64>) {
    let leader = ring.wait_leader(p, Duration::from_secs(30)).await;
    (leader, ring.cluster.replica(p, leader).status(false, Duration::from_secs(5)).await.map(|s| s.term))
}

/// A request routed to another group that lands on one of its followers
/// is passed on to that group's leader (a ring forward is no leader
/// forward), and the forwarding node learns the leader from the answer:
/// the next request takes one hop less.
///
/// The entry must not know group 1's leader yet: the test kit's
/// readiness read (key 0, through any replica) may have taught one of
/// group 0's replicas, so the entry is one whose ring view (Admin.Ring)
/// names no leader for position 1. An election in group 1 during the
/// exchange (a loaded machine can delay heartbeats past a follower's
/// timeout) changes whom the first hop reaches; such a round proves
/// nothing, so it is done again from another untaught entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_request_reaches_the_owner_leader_and_teaches_the_way() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut ring = TestRing::start(2, 3, &[]).await;
    let keys: Vec<BigInt> = (0..1000).map(BigInt::from).filter(|k| ring.owner(k) == 1).take(6).collect();
    let set = |k: &BigInt| pb::SetRequest {
        key: ringkv_api::encode_key(k).into(),
        timestamp: 1,
        data: "x".into(),
        ..Default::default()
    };
    let hops = |r: &tonic::Response<pb::Reply>| r.metadata().get("ringkv-hops").unwrap().to_str().unwrap().to_owned();
    let mut written = 0;
    let mut untaught = Vec::new();
    for r in 0..3 {
        let view = ring.cluster.replica(0, r).admin().ring().await.expect("ring view");
        if view.positions[1].leader.is_none() {
            untaught.push(r);
        }
    }
    assert!(!untaught.is_empty(), "every replica of position 0 already knows position 1's leader");
    let rounds = untaught.len();
    for (round, (entry_replica, pair)) in untaught.into_iter().zip(keys.chunks(2)).enumerate() {
        let before = follower_first(&mut ring, 1).await;
        let mut entry = ring_raw(ring.addr(0, entry_replica));
        let first = entry.set(set(&pair[0])).await.expect("routed set");
        let second = entry.set(set(&pair[1])).await.expect("routed set");
        assert_eq!(first.get_ref().status, pb::Status::Success as i32);
        assert_eq!(second.get_ref().status, pb::Status::Success as i32);
        written += 2;
        let stable = leader_term(&ring, 1).await == before;
        if !stable && round + 1 < rounds {
            eprintln!("group 1 held an election during round {round}: again from another entry");
            continue;
        }
        assert_eq!(hops(&first), "2", "ring hop to a follower, then its leader");
        assert_eq!(hops(&second), "1", "straight to the learned leader");
        let told = second.metadata().get("ringkv-leader").unwrap().to_str().unwrap().to_owned();
        assert_eq!(told, ring.addr(0, ring.wait_leader(0, Duration::from_secs(5)).await), "the entry group's leader");
        assert_eq!(ring.client_of(1, before.0).get(&pair[1]).await.unwrap().outcome, Outcome::Success);
        break;
    }
    let (_, _, count) = ring.wait_identical(1, Duration::from_secs(30)).await;
    assert_eq!(count, written);
    assert_eq!(ring.wait_identical(0, Duration::from_secs(30)).await.2, 0, "nothing stored off its owner");
}

/// Routing lengths on rings of 2, 4 and 8 positions (one replica each: hops
/// do not depend on replicas, and 8 groups of 3 would starve 2 cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_takes_about_half_log2_n_hops() {
    let _one = ONE_AT_A_TIME.lock().await;
    for n in [2, 4, 8] {
        let ring = TestRing::start(n, 1, &[]).await;
        let server = server_side_hops(&ring, 400).await;
        assert!(server.1 as f64 <= (n as f64).log2().ceil(), "n = {n}: a path of {} hops", server.1);
        let aware = ring_aware_hops(&ring, 400).await;
        check_hops(n, server, aware);
    }
}

/// Two servers whose ring configurations disagree (each thinks it is
/// position 0) pass some requests back and forth: the hop limit stops
/// them with an error that names it and the likely cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconsistent_rings_hit_the_hop_limit_with_a_clear_error() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let port = || ringkv_testkit::free_port().unwrap();
    let ports = [(port(), port()), (port(), port())];
    let group = |i: usize| format!("127.0.0.1:{}/127.0.0.1:{}", ports[i].0, ports[i].1);
    let addrs: Vec<String> = ports.iter().map(|(c, _)| format!("127.0.0.1:{c}")).collect();
    let mut servers: Vec<Process> = (0..2)
        .map(|i| {
            let dir = tmp.path().join(format!("n{i}"));
            let argv: Vec<String> = [
                env!("CARGO_BIN_EXE_ringkv"),
                "server",
                "--data-dir",
                &dir.display().to_string(),
                "--listen",
                &addrs[i],
                "--position",
                "0",
                "--ring-group",
                &group(i),
                "--ring-group",
                &group(1 - i),
                "--max-hops",
                "5",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Process::new(format!("server {i}"), argv, dir.join("server.log"))
        })
        .collect();
    for s in &mut servers {
        s.start().unwrap();
    }
    let client = Client::new(&addrs[0], Default::default()).unwrap();
    let view = ringkv_ring::Ring::evenly(ringkv_ring::DEFAULT_M, 2, ringkv_ring::Placement::Hash).unwrap();
    let (mine, theirs) = {
        let keys: Vec<BigInt> = (0..100).map(BigInt::from).collect();
        let owned = |p| keys.iter().find(|k| view.owner_of_key(&ringkv_api::encode_key(k)) == p).unwrap().clone();
        (owned(0), owned(1))
    };
    common::wait_for("the first server", Duration::from_secs(30), || {
        let (c, k) = (client.clone(), mine.clone());
        async move { c.get(&k).await.is_ok() }
    })
    .await;
    let err = client.get(&theirs).await.expect_err("a looping request was answered");
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("max_hops = 5") && msg.contains("ring configurations"), "{msg}");
    // The loop was broken, not the servers: the local key still works.
    assert_eq!(client.set(&mine, 1, "here").await.unwrap().outcome, Outcome::Success);
}

/// The restart scenario on every group at once: replicas are killed and
/// restarted, at most one per group down at a time, while ring-aware and
/// server-routed writers go on; every acknowledged write is there at the
/// end and each group's replicas are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_in_every_group_lose_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let positions = std::env::var("RINGKV_RING_RESTART_POSITIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let mut ring = TestRing::start(positions, 3, &["--snapshot-log-bytes", "12000", "--snapshot-log-ratio", "0"]).await;
    let (ledger, acks, stop) = (Ledger::default(), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let flip = AtomicBool::new(false);
    let writers = spawn_writers(|| ring.client(flip.fetch_xor(true, Ordering::Relaxed)), 6, &ledger, &acks, &stop);
    let deadline = Instant::now() + Duration::from_secs(restart_secs());
    let mut rounds = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // One replica per group, a different one each round.
        for p in 0..positions {
            ring.cluster.kill9(p, (rounds + p) % 3);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for p in 0..positions {
            ring.cluster.restart(p, (rounds + p) % 3).unwrap();
        }
        for p in 0..positions {
            common::wait_serving(&ring.cluster, p, (rounds + p) % 3).await;
        }
        rounds += 1;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let keys = check_ledger(&ring.client(true), &ledger).await;
    // Each group holds exactly the keys it owns that exist (written, or
    // in doubt and taken effect): none lost, none stored off its owner.
    let mut owned = vec![0u64; positions];
    let client = ring.client(true);
    let written: Vec<u64> = ledger.lock().unwrap().keys().copied().collect();
    for k in written {
        let key = BigInt::from(k);
        if client.get(&key).await.unwrap().value.is_some() {
            owned[ring.owner(&key)] += 1;
        }
    }
    for (p, want) in owned.iter().enumerate() {
        let (index, digest, held) = ring.wait_identical(p, Duration::from_secs(60)).await;
        eprintln!("position {p}: replicas identical at index {index} ({digest}), {held} keys");
        assert!(held > 0, "position {p} got no keys");
        assert_eq!(held, *want, "position {p} holds {held} keys and owns {want} that exist");
    }
    eprintln!(
        "ring restart scenario: {rounds} rounds ({} restarts), {} acknowledged writes, {keys} keys",
        rounds * positions,
        acks.load(Ordering::Relaxed)
    );
    assert!(rounds >= 3 && acks.load(Ordering::Relaxed) > 100);
}
