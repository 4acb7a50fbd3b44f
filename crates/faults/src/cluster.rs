//! One Raft group of real `ringkv server` processes on loopback, started
//! from a given executable (the harness's own: the release binary when run
//! as `ringkv faults`), with a `LinkProxy` on every directed peer link.
//!
//! Replica i is told (`--raft-dial j=PROXY`) to dial peer j through the
//! proxy for i→j, while the membership keeps everyone's real Raft
//! addresses, identical on every replica as Raft requires. Client traffic
//! (and follower-to-leader forwarding, which uses client ports) is not
//! proxied: the faults are between replicas, and clients reach every
//! replica, which is what lets a deposed leader be asked for stale reads.
//!
//! The process controls are the faults: kill -9 and restart from the same
//! command line, SIGSTOP and SIGCONT.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringkv_api::pb::{admin_client::AdminClient, StatusReply, StatusRequest};
use tonic::transport::{Channel, Endpoint};

use crate::proxy::LinkProxy;
use crate::FaultsError;

/// How to start the group.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `ringkv` executable.
    pub exe: PathBuf,
    /// One data directory per replica is made under it.
    pub dir: PathBuf,
    pub replicas: usize,
    /// Extra flags for every server.
    pub server_args: Vec<String>,
}

/// One replica process.
pub struct Replica {
    pub id: usize,
    pub addr: SocketAddr,
    pub raft_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The command line that starts it (again).
    pub argv: Vec<String>,
    child: Option<Child>,
    pub paused: bool,
    pub restarts: u32,
    admin: AdminClient<Channel>,
}

impl Replica {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }
}

/// The group and its links.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    /// (from, to) → the proxy replica `from` dials `to` through.
    pub links: BTreeMap<(usize, usize), LinkProxy>,
}

/// A free loopback port (bound, read, released: another process may take
/// it in between, in which case start-up fails and says so).
fn free_port() -> Result<SocketAddr, FaultsError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(FaultsError::io("cannot find a free port"))?;
    l.local_addr().map_err(FaultsError::io("cannot find a free port"))
}

impl Cluster {
    /// Starts every replica and its links; returns once each answers
    /// `Status` and a leader is known.
    pub async fn start(spec: &ClusterSpec) -> Result<Cluster, FaultsError> {
        let n = spec.replicas;
        let addrs: Vec<(SocketAddr, SocketAddr)> =
            (0..n).map(|_| Ok((free_port()?, free_port()?))).collect::<Result<_, FaultsError>>()?;
        let mut links = BTreeMap::new();
        for from in 0..n {
            for to in (0..n).filter(|&to| to != from) {
                links.insert((from, to), LinkProxy::start(addrs[to].1).await?);
            }
        }
        let mut replicas = Vec::new();
        for (id, &(addr, raft_addr)) in addrs.iter().enumerate() {
            let data_dir = spec.dir.join(format!("r{id}"));
            std::fs::create_dir_all(&data_dir)
                .map_err(FaultsError::io(format!("cannot create {}", data_dir.display())))?;
            let mut argv = vec![spec.exe.display().to_string(), "server".into()];
            argv.extend(["--data-dir".into(), data_dir.display().to_string(), "--listen".into(), addr.to_string()]);
            argv.extend(["--node-id".into(), id.to_string(), "--raft-listen".into(), raft_addr.to_string()]);
            for (j, (a, r)) in addrs.iter().enumerate() {
                argv.extend(["--replica".into(), format!("{j}={a}/{r}")]);
                if j != id {
                    argv.extend(["--raft-dial".into(), format!("{j}={}", links[&(id, j)].addr)]);
                }
            }
            argv.extend(spec.server_args.iter().cloned());
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| FaultsError::Cluster(e.to_string()))?
                .connect_timeout(Duration::from_millis(300))
                .connect_lazy();
            let admin = AdminClient::new(channel);
            replicas.push(Replica {
                id,
                addr,
                raft_addr,
                data_dir,
                argv,
                child: None,
                paused: false,
                restarts: 0,
                admin,
            });
        }
        let mut cluster = Cluster { replicas, links };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), FaultsError> {
        let r = &mut self.replicas[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(r.log_path())
            .map_err(FaultsError::io(format!("cannot open {}", r.log_path().display())))?;
        let err = log.try_clone().map_err(FaultsError::io("log file"))?;
        let child = Command::new(&r.argv[0])
            .args(&r.argv[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(FaultsError::io(format!("cannot start replica {i} ({})", r.argv[0])))?;
        r.child = Some(child);
        r.paused = false;
        Ok(())
    }

    /// Waits until every replica answers `Status` and one of them leads.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<(), FaultsError> {
        let deadline = Instant::now() + within;
        loop {
            let mut all = true;
            let mut leader = false;
            for i in 0..self.replicas.len() {
                if let Some(why) = self.exited(i) {
                    return Err(FaultsError::Cluster(why));
                }
                match self.status(i, false, Duration::from_millis(500)).await {
                    Some(s) => leader |= s.role == "leader",
                    None => all = false,
                }
            }
            if all && leader {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FaultsError::Cluster(format!(
                    "the group was not ready within {within:?}; see the server.log files"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Why replica `i` is not running, if it exited by itself (a process
    /// the nemesis killed is not asked).
    pub fn exited(&mut self, i: usize) -> Option<String> {
        let r = &mut self.replicas[i];
        let status = r.child.as_mut()?.try_wait().ok().flatten()?;
        let last = last_line(&r.log_path()).unwrap_or_default();
        Some(format!("replica {i} exited ({status}): {last} (log: {})", r.log_path().display()))
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.replicas[i].child.is_some()
    }

    /// `Status` from replica `i`, or `None` if it does not answer in time.
    pub async fn status(&self, i: usize, digest: bool, within: Duration) -> Option<StatusReply> {
        let mut admin = self.replicas[i].admin.clone();
        let mut req = tonic::Request::new(StatusRequest { with_digest: digest });
        req.set_timeout(within);
        match tokio::time::timeout(within, admin.status(req)).await {
            Ok(Ok(r)) => Some(r.into_inner()),
            _ => None,
        }
    }

    /// The replica that says it leads, with the highest term, if any
    /// answers in time.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in 0..self.replicas.len() {
            if self.replicas[i].paused || !self.is_running(i) {
                continue;
            }
            if let Some(s) = self.status(i, false, Duration::from_millis(300)).await {
                if s.role == "leader" && best.is_none_or(|(t, _)| s.term > t) {
                    best = Some((s.term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.replicas[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.replicas[i].paused = false;
    }

    /// Starts a killed replica again from its command line.
    pub fn restart(&mut self, i: usize) -> Result<(), FaultsError> {
        if self.replicas[i].child.is_some() {
            return Ok(());
        }
        self.replicas[i].restarts += 1;
        self.spawn(i)
    }

    pub fn pause(&mut self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
        self.replicas[i].paused = self.replicas[i].child.is_some();
    }

    pub fn resume(&mut self, i: usize) {
        self.signal(i, Signal::SIGCONT);
        self.replicas[i].paused = false;
    }

    fn signal(&self, i: usize, sig: Signal) {
        if let Some(pid) = self.replicas[i].pid() {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Blackholes the directed link `from`→`to`.
    pub fn cut(&self, from: usize, to: usize) {
        if let Some(l) = self.links.get(&(from, to)) {
            l.blackhole();
        }
    }

    /// Every link passes again; `cut` closes the stalled connections.
    pub fn heal_links(&self, cut: bool) {
        for l in self.links.values() {
            if l.mode() != crate::proxy::Mode::Pass {
                l.heal(cut);
            }
        }
    }

    /// Undoes every fault: resume, restart, heal.
    pub fn heal_all(&mut self) -> Result<(), FaultsError> {
        self.heal_links(false);
        for i in 0..self.replicas.len() {
            if self.replicas[i].paused {
                self.resume(i);
            }
            if !self.is_running(i) {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Stops every process: SIGCONT, SIGTERM, then SIGKILL after a grace.
    pub fn stop(&mut self) {
        for i in 0..self.replicas.len() {
            self.signal(i, Signal::SIGCONT);
            self.signal(i, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The client addresses, in replica order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.addr).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned())
}
