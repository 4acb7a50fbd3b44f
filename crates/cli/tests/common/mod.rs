//! The integration tests' harness: real `ringkv server` processes on free
//! loopback ports, started, killed and restarted from their command line,
//! and waited on by condition with a deadline (never a bare sleep).

#![allow(dead_code)]

pub mod cluster;
pub mod ledger;
pub mod proxy;
pub mod ring;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use num_bigint::BigInt;
use ringkv_client::{Client, ClientOptions};

/// How long a server may take to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The command line of replica `r` of position `p` of a ring whose
/// position `q` has its replicas on `ports[q]` (client, Raft).
pub fn ring_argv(p: usize, r: usize, ports: &[Vec<(u16, u16)>], dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut argv = server_argv(r, &ports[p], dir, &[]);
    argv.extend(["--position".into(), p.to_string()]);
    for group in ports {
        let list: Vec<String> = group.iter().map(|(c, r)| format!("127.0.0.1:{c}/127.0.0.1:{r}")).collect();
        argv.extend(["--ring-group".into(), list.join(",")]);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

/// The command line of replica `i` of a group on `ports` (client, Raft);
/// a group of one is a standalone server.
pub fn server_argv(i: usize, ports: &[(u16, u16)], dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut argv = vec![env!("CARGO_BIN_EXE_ringkv").to_string(), "server".into()];
    argv.extend(["--data-dir".into(), dir.display().to_string()]);
    argv.extend(["--listen".into(), format!("127.0.0.1:{}", ports[i].0)]);
    if ports.len() > 1 {
        argv.extend(["--node-id".into(), i.to_string()]);
        argv.extend(["--raft-listen".into(), format!("127.0.0.1:{}", ports[i].1)]);
        for (j, (c, r)) in ports.iter().enumerate() {
            argv.extend(["--replica".into(), format!("{j}=127.0.0.1:{c}/127.0.0.1:{r}")]);
        }
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

/// Starts a server process from `argv`, its stderr appended to
/// `dir/server.log`.
pub fn spawn(argv: &[String], dir: &std::path::Path) -> Child {
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("open server.log");
    Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "info,openraft=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn ringkv server")
}

/// One server process.
struct Proc {
    addr: String,
    dir: PathBuf,
    argv: Vec<String>,
    child: Option<Child>,
}

/// The server under test: one process, or a replicated group of
/// `test_replicas()` processes that it starts, kills and restarts together.
pub struct Server {
    /// The first replica's address (any replica serves any request).
    pub addr: String,
    /// The first replica's data directory.
    pub data_dir: PathBuf,
    procs: Vec<Proc>,
    _tmp: Option<tempfile::TempDir>,
}

/// A free loopback port (bound then released; the server binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// Starts a server (or group) in a new temporary directory, with extra
    /// flags. A port taken between choosing and binding it (other tests'
    /// connections use ephemeral ports too) means another try with new ports.
    pub async fn start(extra: &[&str]) -> Server {
        for attempt in 1.. {
            let mut s = Server::prepare(extra);
            match s.try_launch().await {
                Ok(()) => return s,
                Err(e) if e.contains("cannot listen") && attempt < 5 => s.kill9(),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn prepare(extra: &[&str]) -> Server {
        let tmp = tempfile::Builder::new().prefix("ringkv-test-").tempdir().expect("tempdir");
        let (positions, n) = (test_positions(), test_replicas());
        let ports: Vec<Vec<(u16, u16)>> =
            (0..positions).map(|_| (0..n).map(|_| (free_port(), free_port())).collect()).collect();
        let procs = (0..positions * n)
            .map(|i| {
                let (p, r) = (i / n, i % n);
                let dir = if n * positions == 1 { tmp.path().to_owned() } else { tmp.path().join(format!("p{p}r{r}")) };
                std::fs::create_dir_all(&dir).expect("replica dir");
                let argv = if positions == 1 {
                    server_argv(r, &ports[0], &dir, extra)
                } else {
                    ring_argv(p, r, &ports, &dir, extra)
                };
                Proc { addr: format!("127.0.0.1:{}", ports[p][r].0), dir, argv, child: None }
            })
            .collect::<Vec<_>>();
        Server { addr: procs[0].addr.clone(), data_dir: procs[0].dir.clone(), procs, _tmp: Some(tmp) }
    }

    /// Every replica's address, comma-separated (what a client is given).
    pub fn addrs(&self) -> String {
        self.procs.iter().map(|p| p.addr.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Starts the processes and waits until the server answers a read.
    pub async fn launch(&mut self) {
        if let Err(e) = self.try_launch().await {
            panic!("{e}");
        }
    }

    /// Ready means every process listens (a server binds its client port
    /// only once recovered) and a read is answered: a test's raw stub,
    /// spread over every address, must not meet a replica still starting.
    async fn try_launch(&mut self) -> Result<(), String> {
        for p in &mut self.procs {
            assert!(p.child.is_none(), "server already running");
            p.child = Some(spawn(&p.argv, &p.dir));
        }
        let client = self.client();
        let started = Instant::now();
        loop {
            let all_listen = self.procs.iter().all(|p| std::net::TcpStream::connect(&p.addr).is_ok());
            if all_listen && client.get(&BigInt::from(0)).await.is_ok() {
                return Ok(());
            }
            for p in &mut self.procs {
                if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    p.child = None;
                    let log = std::fs::read_to_string(p.dir.join("server.log")).unwrap_or_default();
                    return Err(format!("server exited with {status} during start; log:\n{log}"));
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!("server did not start; log:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client of every replica, with a short per-request timeout;
    /// ring-aware on a ring unless RINGKV_TEST_RING_AWARE=0.
    pub fn client(&self) -> Client {
        let ring = test_positions() > 1 && test_ring_aware();
        let opts = ClientOptions { timeout: Duration::from_secs(5), ring, ..ClientOptions::default() };
        Client::new(&self.addrs(), opts).expect("client")
    }

    /// SIGKILL to every process: none gets a chance to flush anything.
    pub fn kill9(&mut self) {
        for p in &mut self.procs {
            if let Some(mut child) = p.child.take() {
                child.kill().expect("kill -9");
                child.wait().expect("wait");
            }
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        for p in &self.procs {
            if let Some(child) = &p.child {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
            }
        }
        for i in 0..self.procs.len() {
            if let Some(mut child) = self.procs[i].child.take() {
                let status = child.wait().expect("wait");
                assert!(status.success(), "server exited with {status} on SIGTERM; log:\n{}", self.log());
            }
        }
    }

    /// Every process's log.
    pub fn log(&self) -> String {
        self.procs
            .iter()
            .map(|p| std::fs::read_to_string(p.dir.join("server.log")).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
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

impl Drop for Server {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Polls `cond` until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the `ringkv` binary with `args` and returns (exit code, stdout, stderr).
pub fn ringkv(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv")).args(args).output().expect("run ringkv");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The client's form of a table outcome.
pub fn outcome(s: ringkv_server::sm::command::Status) -> ringkv_client::Outcome {
    use ringkv_client::Outcome;
    use ringkv_server::sm::command::Status;
    match s {
        Status::Success => Outcome::Success,
        Status::Error => Outcome::Error,
        Status::ErrorNe => Outcome::ErrorNe,
        Status::ErrorWv => Outcome::ErrorWv,
    }
}

/// The client's form of a table value.
pub fn value(v: Option<ringkv_server::sm::command::Value>) -> Option<ringkv_client::Value> {
    v.map(|v| ringkv_client::Value { version: v.version, timestamp: v.timestamp, data: bytes::Bytes::from(v.data) })
}

/// Sends a table command through the typed client.
pub async fn apply(client: &Client, key: &BigInt, cmd: ringkv_server::sm::command::Command) -> ringkv_client::Reply {
    use ringkv_server::sm::command::Command;
    let r = match cmd {
        Command::Set { timestamp, data, .. } => client.set(key, timestamp, data).await,
        Command::Del { .. } => client.del(key).await,
        Command::DelVersion { version, .. } => client.del_version(key, version).await,
        Command::TestAndSet { timestamp, data, version, .. } => {
            client.test_and_set(key, timestamp, data, version).await
        }
    };
    r.expect("request failed")
}
