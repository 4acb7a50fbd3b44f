//! What the integration tests share on top of the test kit
//! (`ringkv-testkit`, which starts, waits on, kills and restarts the real
//! server processes): the server under test as the environment asks for
//! it, ready-made clients, and the outcome table in client terms.

#![allow(dead_code)]

pub mod ledger;

use std::path::PathBuf;
use std::time::Duration;

use ringkv_client::{Client, ClientOptions};
use ringkv_testkit::{Cluster, ClusterSpec};

/// The server processes' log filter: ringkv's own lines, openraft's warnings.
const LOG_FILTER: &str = "info,openraft=warn";

/// How many replicas `Server::start` runs: RINGKV_TEST_REPLICAS (default 1).
/// The core suite runs once standalone and once against a 3-replica group,
/// called through any replica.
pub fn test_replicas() -> usize {
    std::env::var("RINGKV_TEST_REPLICAS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// How many ring positions `Server::start` runs, each of
/// `test_replicas()` replicas: RINGKV_TEST_POSITIONS (default 1). With more
/// than one, the core suite runs against a ring, calling a random node per
/// request.
pub fn test_positions() -> usize {
    std::env::var("RINGKV_TEST_POSITIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// Whether the test client is ring-aware (RINGKV_TEST_RING_AWARE=1, the
/// default) or lets the servers route (0).
pub fn test_ring_aware() -> bool {
    std::env::var("RINGKV_TEST_RING_AWARE").map_or(true, |v| v != "0")
}

/// The spec of `positions` groups of `replicas` servers of this package's
/// `ringkv` binary, with `extra` flags.
pub fn spec(positions: usize, replicas: usize, extra: &[&str]) -> ClusterSpec {
    ClusterSpec::new(env!("CARGO_BIN_EXE_ringkv"), positions, replicas).args(extra).env("RUST_LOG", LOG_FILTER)
}

/// The deliberately broken server (feature `broken` of ringkv-server,
/// crates/server/src/broken.rs): `RINGKV_BROKEN_BIN` (scripts/test builds
/// it cheaply in the main target dir), or else built here into
/// `target/broken` (a full compile the first time).
pub fn broken_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RINGKV_BROKEN_BIN") {
        return PathBuf::from(bin);
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = root.join("target/broken");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "-p", "ringkv", "--features", "ringkv-server/broken", "--target-dir"])
        .arg(&target)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "building the broken server failed:\n{stderr}");
    target.join("debug/ringkv")
}

/// Starts a cluster, panicking with the reason (and the log) if it cannot.
pub async fn start(spec: ClusterSpec) -> Cluster {
    match Cluster::start(spec).await {
        Ok(c) => c,
        Err(e) => panic!("cannot start the servers: {e}"),
    }
}

/// Held by every test that runs a group or a ring: on a 2-core machine
/// several 3-process groups under load at once make elections time out;
/// one at a time keeps the tests about replication, not CPU starvation.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Options of a test client: a short deadline per call.
pub fn opts(ring: bool) -> ClientOptions {
    ClientOptions { timeout: Duration::from_secs(5), ring, ..ClientOptions::default() }
}

/// The server under test: one process, a replicated group, or a ring, as
/// RINGKV_TEST_POSITIONS and RINGKV_TEST_REPLICAS say; started, killed
/// and restarted together.
pub struct Server {
    /// The first replica's address (any replica serves any request).
    pub addr: String,
    /// The first replica's data directory.
    pub data_dir: PathBuf,
    pub cluster: Cluster,
}

impl Server {
    /// Starts the server (or group, or ring) with extra flags.
    pub async fn start(extra: &[&str]) -> Server {
        let cluster = start(spec(test_positions(), test_replicas(), extra)).await;
        let first = cluster.replica(0, 0);
        Server { addr: first.addr.clone(), data_dir: first.data_dir.clone(), cluster }
    }

    /// Every replica's address, comma-separated (what a client is given).
    pub fn addrs(&self) -> String {
        self.cluster.addrs().join(",")
    }

    /// Starts the processes again and waits until they serve.
    pub async fn launch(&mut self) {
        if let Err(e) = self.cluster.launch().await {
            panic!("the servers did not start again: {e}");
        }
    }

    /// A client of every replica, with a short per-request timeout;
    /// ring-aware on a ring unless RINGKV_TEST_RING_AWARE=0.
    pub fn client(&self) -> Client {
        let ring = test_positions() > 1 && test_ring_aware();
        self.cluster.client(opts(ring)).expect("client")
    }

    /// SIGKILL to every process: none gets a chance to flush anything.
    pub fn kill9(&mut self) {
        self.cluster.kill9_all();
    }

    /// SIGTERM and wait: a clean stop, which must succeed.
    pub fn stop(&mut self) {
        for (name, status) in self.cluster.stop(ringkv_testkit::cluster::STOP_GRACE) {
            let ok = status.is_some_and(|s| s.success());
            assert!(ok, "{name} did not stop cleanly on SIGTERM ({status:?}); logs:\n{}", self.cluster.logs());
        }
    }

    /// Every process's log.
    pub fn log(&self) -> String {
        self.cluster.logs()
    }

    /// The snapshot files in the (first replica's) data dir.
    pub fn snapshot_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.data_dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snap.") && !n.ends_with(".tmp"))
        });
        v.sort();
        v
    }
}

/// Polls `cond` until it holds, panicking after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if let Err(e) = ringkv_testkit::wait::until(what, timeout, cond).await {
        panic!("{e}");
    }
}

/// Waits until replica `r` of position `p` answers its Admin API again.
pub async fn wait_serving(cluster: &Cluster, p: usize, r: usize) {
    let replica = cluster.replica(p, r);
    wait_for(&format!("{} to serve", replica.process.name()), Duration::from_secs(30), || async {
        replica.status(false, Duration::from_millis(500)).await.is_some()
    })
    .await;
}

/// Runs the `ringkv` binary with `args` and returns (exit code, stdout, stderr).
pub fn ringkv(args: &[&str]) -> (i32, String, String) {
    let out = ringkv_testkit::exe::run(env!("CARGO_BIN_EXE_ringkv").as_ref(), args).expect("run ringkv");
    (out.code, out.stdout, out.stderr)
}
