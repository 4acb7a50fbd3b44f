//! A ring under test: `positions` groups of `replicas` `ringkv server`
//! processes on free loopback ports, every process killable and
//! restartable from its command line, and the ring itself (the pure
//! `ringkv_ring::Ring` the servers build from the same configuration) so
//! that tests can say which group owns a key.

use std::time::{Duration, Instant};

use num_bigint::BigInt;
use ringkv_client::{Client, ClientOptions};
use ringkv_ring::Placement;

use super::cluster::{wait_identical, Replica};
use super::free_port;

pub struct TestRing {
    /// `groups[p][r]`: replica `r` of position `p`.
    pub groups: Vec<Vec<Replica>>,
    /// The ring the servers run (default m and placement).
    pub ring: ringkv_ring::Ring,
    _tmp: tempfile::TempDir,
}

impl TestRing {
    /// Starts the ring, waits until every replica answers and every group
    /// has a leader. A port taken between choosing and binding it means
    /// another try with new ports.
    pub async fn start(positions: usize, replicas: usize, extra: &[&str]) -> TestRing {
        for attempt in 1.. {
            let mut ring = TestRing::prepare(positions, replicas, extra);
            match ring.try_launch().await {
                Ok(()) => return ring,
                Err(e) if e.contains("cannot listen") && attempt < 5 => {}
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn prepare(positions: usize, replicas: usize, extra: &[&str]) -> TestRing {
        let tmp = tempfile::Builder::new().prefix("ringkv-ring-").tempdir().expect("tempdir");
        let ports: Vec<Vec<(u16, u16)>> =
            (0..positions).map(|_| (0..replicas).map(|_| (free_port(), free_port())).collect()).collect();
        let groups = (0..positions)
            .map(|p| {
                (0..replicas)
                    .map(|r| {
                        let dir = tmp.path().join(format!("p{p}r{r}"));
                        std::fs::create_dir_all(&dir).expect("replica dir");
                        let argv = super::ring_argv(p, r, &ports, &dir, extra);
                        Replica::new(r, format!("127.0.0.1:{}", ports[p][r].0), dir, argv)
                    })
                    .collect()
            })
            .collect();
        let ring = ringkv_ring::Ring::evenly(ringkv_ring::DEFAULT_M, positions, Placement::Hash).expect("ring");
        TestRing { groups, ring, _tmp: tmp }
    }

    async fn try_launch(&mut self) -> Result<(), String> {
        for r in self.groups.iter_mut().flatten() {
            r.launch();
        }
        let started = Instant::now();
        for p in 0..self.groups.len() {
            for i in 0..self.groups[p].len() {
                while self.groups[p][i].status(false).await.is_none() {
                    if let Some(status) = self.groups[p][i].exited() {
                        return Err(format!(
                            "position {p} replica {i} exited with {status}; log:\n{}",
                            self.groups[p][i].log()
                        ));
                    }
                    if started.elapsed() > Duration::from_secs(90) {
                        return Err(format!(
                            "position {p} replica {i} did not start; log:\n{}",
                            self.groups[p][i].log()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        for p in 0..self.groups.len() {
            self.wait_leader(p, Duration::from_secs(30)).await;
        }
        Ok(())
    }

    /// Every process's client address.
    pub fn addrs(&self) -> Vec<String> {
        self.groups.iter().flatten().map(|r| r.addr.clone()).collect()
    }

    /// A client of every node: ring-aware, or spreading requests over all
    /// nodes and letting them route.
    pub fn client(&self, ring_aware: bool) -> Client {
        let opts = ClientOptions { timeout: Duration::from_secs(10), ring: ring_aware, ..ClientOptions::default() };
        Client::new(&self.addrs().join(","), opts).expect("client")
    }

    /// A client of one node only, letting it route.
    pub fn client_of(&self, p: usize, r: usize) -> Client {
        Client::new(&self.groups[p][r].addr, ClientOptions::default()).expect("client")
    }

    /// The position that owns `key`.
    pub fn owner(&self, key: &BigInt) -> usize {
        self.ring.owner_of_key(&ringkv_api::encode_key(key))
    }

    /// The replica of position `p` that leads, as its running replicas say.
    pub async fn leader(&self, p: usize) -> Option<usize> {
        for r in self.groups[p].iter().filter(|r| r.is_running()) {
            if r.status(false).await.is_some_and(|s| s.role == "leader") {
                return Some(r.id);
            }
        }
        None
    }

    pub async fn wait_leader(&self, p: usize, timeout: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(l) = self.leader(p).await {
                return l;
            }
            assert!(started.elapsed() < timeout, "position {p}: no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until position `p`'s replicas hold identical state; returns
    /// (applied index, digest, keys).
    pub async fn wait_identical(&self, p: usize, timeout: Duration) -> (u64, String, u64) {
        wait_identical(&self.groups[p], timeout).await
    }
}
