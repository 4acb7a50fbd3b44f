//! A replicated group under test: `n` `ringkv server` processes on free
//! loopback ports, each killable and restartable from its command line.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use ringkv_api::pb::{admin_client::AdminClient, StatusReply, StatusRequest};
use ringkv_client::{Client, ClientOptions};

use super::free_port;

pub struct Replica {
    pub id: usize,
    pub addr: String,
    pub dir: PathBuf,
    argv: Vec<String>,
    child: Option<Child>,
}

/// Held by every test that runs a cluster: on a 2-core machine several
/// 3-process groups under load at once make elections time out; one group
/// at a time keeps the tests about replication, not about CPU starvation.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Cluster {
    pub replicas: Vec<Replica>,
    _tmp: tempfile::TempDir,
}

impl Replica {
    /// A replica (not yet running) started by `argv`, logging in `dir`.
    pub fn new(id: usize, addr: String, dir: PathBuf, argv: Vec<String>) -> Replica {
        Replica { id, addr, dir, argv, child: None }
    }

    /// Whether the process exited (it is then no longer running).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "replica {} already running", self.id);
        self.child = Some(super::spawn(&self.argv, &self.dir));
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub async fn status(&self, digest: bool) -> Option<StatusReply> {
        let mut c = AdminClient::connect(format!("http://{}", self.addr)).await.ok()?;
        Some(c.status(StatusRequest { with_digest: digest }).await.ok()?.into_inner())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Cluster {
    /// Starts `n` replicas and waits until the group answers.
    pub async fn start(n: usize, extra: &[&str]) -> Cluster {
        let tmp = tempfile::Builder::new().prefix("ringkv-cluster-").tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let replicas = (0..n)
            .map(|i| {
                let dir = tmp.path().join(format!("r{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                let addr = format!("127.0.0.1:{}", ports[i].0);
                let argv = super::server_argv(i, &ports, &dir, extra);
                Replica { id: i, addr, dir, argv, child: None }
            })
            .collect();
        let mut cluster = Cluster { replicas, _tmp: tmp };
        for r in &mut cluster.replicas {
            r.launch();
        }
        for r in &mut cluster.replicas {
            let started = Instant::now();
            while r.status(false).await.is_none() {
                let exited = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                assert!(
                    exited.is_none() && started.elapsed() < Duration::from_secs(60),
                    "replica {} did not start ({exited:?}); log:\n{}",
                    r.id,
                    r.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        cluster.wait_leader(Duration::from_secs(30)).await;
        cluster
    }

    /// A client that may call any replica.
    pub fn client(&self) -> Client {
        let all: Vec<&str> = self.replicas.iter().map(|r| r.addr.as_str()).collect();
        Client::new(&all.join(","), ClientOptions { timeout: Duration::from_secs(5), ..Default::default() }).unwrap()
    }

    /// A client bound to replica `i` only.
    pub fn client_of(&self, i: usize) -> Client {
        Client::new(&self.replicas[i].addr, ClientOptions::default()).unwrap()
    }

    /// The replica that leads, as running replicas agree.
    pub async fn leader(&self) -> Option<usize> {
        for r in self.replicas.iter().filter(|r| r.is_running()) {
            if let Some(s) = r.status(false).await {
                if s.role == "leader" {
                    return Some(r.id);
                }
            }
        }
        None
    }

    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(l) = self.leader().await {
                return l;
            }
            assert!(started.elapsed() < timeout, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running replica has applied the same index and
    /// holds the same state digest there; returns (index, digest).
    pub async fn wait_identical(&self, timeout: Duration) -> (u64, String) {
        let (index, digest, _) = wait_identical(&self.replicas, timeout).await;
        (index, digest)
    }
}

/// Waits until every running replica of a group has applied the same index
/// and holds the same state digest there; returns (index, digest, keys).
pub async fn wait_identical(replicas: &[Replica], timeout: Duration) -> (u64, String, u64) {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for r in replicas.iter().filter(|r| r.is_running()) {
            if let Some(s) = r.status(true).await {
                seen.push((s.digest_index, s.digest.unwrap_or_default(), s.keys));
            }
        }
        let running = replicas.iter().filter(|r| r.is_running()).count();
        if seen.len() == running && seen.windows(2).all(|w| w[0] == w[1]) && !seen.is_empty() {
            return seen.swap_remove(0);
        }
        assert!(started.elapsed() < timeout, "replicas did not converge: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
