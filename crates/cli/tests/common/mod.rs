//! The integration tests' harness: real `ringkv server` processes on free
//! loopback ports, started, killed and restarted from their command line,
//! and waited on by condition with a deadline (never a bare sleep).

#![allow(dead_code)]

pub mod cluster;
pub mod proxy;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use num_bigint::BigInt;
use ringkv_client::{Client, ClientOptions};

/// How long a server may take to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server process under test.
pub struct Server {
    pub addr: String,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// A free loopback port (bound then released; the server binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// Starts a server in a new temporary data dir, with extra flags.
    pub async fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::Builder::new().prefix("ringkv-test-").tempdir().expect("tempdir");
        let mut s = Server::in_dir(tmp.path(), extra);
        s._tmp = Some(tmp);
        s.launch().await;
        s
    }

    /// A server over an existing data dir (not started yet).
    pub fn in_dir(dir: &Path, extra: &[&str]) -> Server {
        Server {
            addr: format!("127.0.0.1:{}", free_port()),
            data_dir: dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            _tmp: None,
        }
    }

    /// The exact command line of this server.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            env!("CARGO_BIN_EXE_ringkv").to_string(),
            "server".into(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--listen".into(),
            self.addr.clone(),
        ];
        argv.extend(self.extra.iter().cloned());
        argv
    }

    /// Starts the process and waits until it answers a read.
    pub async fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let argv = self.argv();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .expect("open server.log");
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ringkv server");
        self.child = Some(child);
        let client = self.client();
        let started = Instant::now();
        loop {
            if client.get(&BigInt::from(0)).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("server exited with {status} during start; log:\n{}", self.log());
            }
            assert!(started.elapsed() < START_TIMEOUT, "server did not start; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client with a short per-request timeout.
    pub fn client(&self) -> Client {
        let opts = ClientOptions { timeout: Duration::from_secs(5), ..ClientOptions::default() };
        Client::new(&self.addr, opts).expect("client")
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("wait");
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
            let status = child.wait().expect("wait");
            assert!(status.success(), "server exited with {status} on SIGTERM; log:\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// The snapshot files in the data dir.
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
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
        Command::TestAndSet { timestamp, data, version, .. } => client.test_and_set(key, timestamp, data, version).await,
    };
    r.expect("request failed")
}
