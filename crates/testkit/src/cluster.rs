//! Real `ringkv server` processes on loopback: a standalone server, a Raft
//! group, or a ring of `positions` groups of `replicas` each, every
//! process killable, restartable from its command line, pausable, and
//! asked about itself through the Admin API.
//!
//! Replica `r` of position `p` keeps its data (and its `server.log`) in
//! `DIR/p<p>/r<r>`. With `raft_proxies`, replica i of a group dials each
//! peer j's Raft through a `LinkProxy` of its own (`--raft-dial`), so a
//! test can cut, delay or blackhole one direction of one link; the
//! membership keeps everyone's real Raft address, identical on every
//! replica as Raft requires. Client traffic is not proxied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use num_bigint::BigInt;
use ringkv_client::{Admin, Client, ClientOptions, NodeStatus};

use crate::process::Process;
use crate::proxy::LinkProxy;
use crate::{port, TestkitError};

/// How far above the client port a replica's Raft port is, with fixed ports.
pub const RAFT_PORT_OFFSET: u16 = 1000;
/// How far above the client port its metrics port is, with fixed ports.
pub const METRICS_PORT_OFFSET: u16 = 2 * RAFT_PORT_OFFSET;
/// How many times a start is tried again with new free ports when a
/// server finds its port taken.
const PORT_RETRIES: usize = 5;
/// The deadline of one readiness probe: short, so that a replica that died
/// is noticed quickly.
const PROBE: Duration = Duration::from_millis(500);
/// How long a replica may take to stop on SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How replicas get their ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Free loopback ports, chosen anew at each start attempt.
    Free,
    /// Replica `i = p·replicas + r` serves clients on `base + i` and Raft on
    /// `base + RAFT_PORT_OFFSET + i` (what `ringkv up` prints).
    Base(u16),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `ringkv` executable.
    pub exe: PathBuf,
    pub positions: usize,
    pub replicas: usize,
    /// Where the data directories go; `None`: a temporary directory,
    /// removed when the cluster is dropped.
    pub dir: Option<PathBuf>,
    pub ports: Ports,
    /// A ring configuration file every server reads (`--config FILE`)
    /// instead of the ring and group given as flags.
    pub ring_config: Option<PathBuf>,
    /// A proxy on every directed Raft link inside each group.
    pub raft_proxies: bool,
    /// Extra flags for every server.
    pub server_args: Vec<String>,
    /// Environment variables for every server.
    pub env: Vec<(String, String)>,
    /// Each server in a process group of its own (see `Process`).
    pub own_process_groups: bool,
    /// How long start-up may take until every group leads and serves.
    pub start_timeout: Duration,
    /// Every server serves /metrics and /healthz (`--metrics-listen`).
    pub metrics: bool,
}

impl ClusterSpec {
    /// `positions` groups of `replicas` servers of `exe`, on free ports, in
    /// a temporary directory.
    pub fn new(exe: impl Into<PathBuf>, positions: usize, replicas: usize) -> ClusterSpec {
        ClusterSpec {
            exe: exe.into(),
            positions,
            replicas,
            dir: None,
            ports: Ports::Free,
            ring_config: None,
            raft_proxies: false,
            server_args: Vec::new(),
            env: Vec::new(),
            own_process_groups: false,
            start_timeout: Duration::from_secs(60),
            metrics: false,
        }
    }

    /// Extra flags for every server.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> ClusterSpec {
        self.server_args.extend(args.iter().map(|s| s.as_ref().to_owned()));
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> ClusterSpec {
        self.dir = Some(dir.into());
        self
    }

    pub fn base_port(mut self, base: u16) -> ClusterSpec {
        self.ports = Ports::Base(base);
        self
    }

    pub fn ring_config(mut self, file: impl Into<PathBuf>) -> ClusterSpec {
        self.ring_config = Some(file.into());
        self
    }

    pub fn raft_proxies(mut self) -> ClusterSpec {
        self.raft_proxies = true;
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ClusterSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn own_process_groups(mut self) -> ClusterSpec {
        self.own_process_groups = true;
        self
    }

    pub fn start_timeout(mut self, within: Duration) -> ClusterSpec {
        self.start_timeout = within;
        self
    }

    /// Gives every server a metrics address (`Replica::metrics_addr`).
    pub fn metrics(mut self) -> ClusterSpec {
        self.metrics = true;
        self
    }

    /// The metrics address of replica `r` of position `p` with fixed ports
    /// (`METRICS_PORT_OFFSET` above its client port); `None` with free
    /// ports or without metrics.
    pub fn fixed_metrics_address(&self, p: usize, r: usize) -> Result<Option<String>, TestkitError> {
        let (Ports::Base(base), true) = (self.ports, self.metrics) else { return Ok(None) };
        let port = u16::try_from(p * self.replicas + r)
            .ok()
            .and_then(|i| base.checked_add(METRICS_PORT_OFFSET)?.checked_add(i))
            .ok_or_else(|| TestkitError::Spec(format!("no metrics port above {base} for replica {p}/{r}")))?;
        Ok(Some(format!("127.0.0.1:{port}")))
    }

    /// Client and Raft address of replica `r` of position `p` with fixed
    /// ports (`None` with free ones, which are only known once chosen).
    pub fn fixed_addresses(&self, p: usize, r: usize) -> Result<Option<(String, String)>, TestkitError> {
        let Ports::Base(base) = self.ports else { return Ok(None) };
        let i = u16::try_from(p * self.replicas + r).ok();
        let port = |offset: u16| {
            base.checked_add(offset)
                .ok_or_else(|| TestkitError::Spec(format!("port {base} + {offset} is out of range")))
        };
        let i = i.filter(|i| *i < RAFT_PORT_OFFSET).ok_or_else(|| {
            TestkitError::Spec(format!("{} processes need more than {RAFT_PORT_OFFSET} ports", self.processes()))
        })?;
        Ok(Some((format!("127.0.0.1:{}", port(i)?), format!("127.0.0.1:{}", port(RAFT_PORT_OFFSET + i)?))))
    }

    /// Every process of the cluster.
    pub fn processes(&self) -> usize {
        self.positions * self.replicas
    }

    fn validate(&self) -> Result<(), TestkitError> {
        if self.positions == 0 || self.replicas == 0 {
            return Err(TestkitError::Spec("a cluster needs at least one position and one replica".into()));
        }
        if self.raft_proxies && self.ring_config.is_some() {
            return Err(TestkitError::Spec("raft proxies need the group given as flags, not a ring file".into()));
        }
        Ok(())
    }
}

/// One server process of the cluster.
pub struct Replica {
    pub position: usize,
    /// Its index in its group (its Raft node id).
    pub index: usize,
    /// Client address.
    pub addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub process: Process,
    /// Where it serves /metrics and /healthz (with `ClusterSpec::metrics`).
    pub metrics_addr: Option<String>,
    admin: Admin,
}

impl Replica {
    /// Its Admin API.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Its status, or `None` if it does not answer within `within`.
    pub async fn status(&self, digest: bool, within: Duration) -> Option<NodeStatus> {
        self.admin.clone().with_timeout(within).status(digest).await.ok()
    }

    /// A client of this replica alone (it routes or forwards what it does
    /// not serve itself).
    pub fn client(&self, opts: ClientOptions) -> Result<Client, TestkitError> {
        Client::new(&self.addr, opts).map_err(|e| TestkitError::Spec(e.to_string()))
    }
}

/// What every running replica of a group agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    pub index: u64,
    pub digest: String,
    pub keys: u64,
}

/// The running cluster. Dropping it kills every process (and removes a
/// temporary directory).
pub struct Cluster {
    /// `groups[p][r]`: replica `r` of position `p`.
    groups: Vec<Vec<Replica>>,
    /// (position, from, to) → the proxy `from` dials `to` through.
    links: BTreeMap<(usize, usize, usize), LinkProxy>,
    dir: PathBuf,
    start_timeout: Duration,
    _tmp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts every process and waits until each listens, every group has
    /// a leader and a read is served. A server that finds its free port
    /// taken means another try with new ports.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster, TestkitError> {
        spec.validate()?;
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::prepare(&spec).await?;
            match cluster.launch().await {
                Ok(()) => return Ok(cluster),
                Err(e) if e.is_port_taken() && spec.ports == Ports::Free && attempt < PORT_RETRIES => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Chooses ports, starts the proxies and builds every command line.
    async fn prepare(spec: &ClusterSpec) -> Result<Cluster, TestkitError> {
        let (dir, tmp) = match &spec.dir {
            Some(d) => (d.clone(), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("ringkv-test-")
                    .tempdir()
                    .map_err(TestkitError::io("cannot make a temporary directory"))?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        let mut addrs = Vec::new();
        for p in 0..spec.positions {
            let mut group = Vec::new();
            for r in 0..spec.replicas {
                group.push(match spec.fixed_addresses(p, r)? {
                    Some(a) => a,
                    None => (format!("127.0.0.1:{}", port::free_port()?), format!("127.0.0.1:{}", port::free_port()?)),
                });
            }
            addrs.push(group);
        }
        let metrics = metrics_addresses(spec)?;
        let mut links = BTreeMap::new();
        if spec.raft_proxies {
            for (p, group) in addrs.iter().enumerate() {
                for from in 0..group.len() {
                    for to in (0..group.len()).filter(|&to| to != from) {
                        let target: SocketAddr = group[to].1.parse().map_err(|e| TestkitError::Spec(format!("{e}")))?;
                        links.insert((p, from, to), LinkProxy::start(target).await?);
                    }
                }
            }
        }
        let opts = ClientOptions { timeout: PROBE, connect_timeout: PROBE, ..ClientOptions::default() };
        let mut groups = Vec::new();
        for p in 0..spec.positions {
            let mut group = Vec::new();
            for r in 0..spec.replicas {
                let data_dir = dir.join(format!("p{p}")).join(format!("r{r}"));
                std::fs::create_dir_all(&data_dir)
                    .map_err(TestkitError::io(format!("cannot create {}", data_dir.display())))?;
                let mut argv = server_argv(spec, &addrs, &links, p, r, &data_dir);
                let metrics_addr = metrics[p][r].clone();
                if let Some(m) = &metrics_addr {
                    argv.extend(["--metrics-listen".into(), m.clone()]);
                }
                let mut process = Process::new(format!("position {p} replica {r}"), argv, data_dir.join("server.log"));
                for (k, v) in &spec.env {
                    process = process.env(k, v);
                }
                if spec.own_process_groups {
                    process = process.own_process_group();
                }
                let (addr, raft_addr) = addrs[p][r].clone();
                let admin = Admin::new(&addr, &opts).map_err(|e| TestkitError::Spec(e.to_string()))?;
                group.push(Replica { position: p, index: r, addr, raft_addr, data_dir, process, metrics_addr, admin });
            }
            groups.push(group);
        }
        Ok(Cluster { groups, links, dir, start_timeout: spec.start_timeout, _tmp: tmp })
    }

    /// Starts every process that is not running and waits until ready.
    pub async fn launch(&mut self) -> Result<(), TestkitError> {
        for r in self.groups.iter_mut().flatten() {
            if !r.process.is_running() {
                r.process.start()?;
            }
        }
        self.wait_ready(self.start_timeout).await
    }

    /// Waits until every running process answers, every group has a
    /// leader, and a read through any server is served; fails at once when
    /// a process exits by itself.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + within;
        let reader = self.client(ClientOptions { timeout: Duration::from_secs(1), ..ClientOptions::default() })?;
        loop {
            self.fail_on_exit()?;
            let mut silent = Vec::new();
            let mut led = vec![false; self.groups.len()];
            for r in self.groups.iter().flatten().filter(|r| r.process.is_running() && !r.process.is_paused()) {
                match r.status(false, PROBE).await {
                    Some(s) => led[r.position] |= s.is_leader(),
                    None => silent.push(r.process.name().to_owned()),
                }
            }
            if silent.is_empty() && led.iter().all(|l| *l) && reader.get(&BigInt::from(0)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let leaderless: Vec<usize> = (0..led.len()).filter(|&p| !led[p]).collect();
                let what = format!(
                    "the cluster to serve (not answering: {silent:?}; positions without a leader: {leaderless:?}; \
                     logs under {})",
                    self.dir.display()
                );
                return Err(TestkitError::Timeout { what, secs: within.as_secs_f64() });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An error for the first process that exited by itself.
    fn fail_on_exit(&mut self) -> Result<(), TestkitError> {
        for r in self.groups.iter_mut().flatten() {
            if let Some(status) = r.process.exited() {
                return Err(r.process.failure(format!("exited ({status})")));
            }
        }
        Ok(())
    }

    /// Processes that exited by themselves since the last look:
    /// (position, replica, how).
    pub fn reap_exited(&mut self) -> Vec<(usize, usize, ExitStatus)> {
        let mut died = Vec::new();
        for r in self.groups.iter_mut().flatten() {
            if let Some(status) = r.process.exited() {
                died.push((r.position, r.index, status));
            }
        }
        died
    }

    /// The directory that holds every replica's data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn positions(&self) -> usize {
        self.groups.len()
    }

    /// Replicas per position.
    pub fn group_size(&self) -> usize {
        self.groups.first().map_or(0, Vec::len)
    }

    /// Position `p`'s replicas.
    pub fn group(&self, p: usize) -> &[Replica] {
        &self.groups[p]
    }

    pub fn replica(&self, p: usize, r: usize) -> &Replica {
        &self.groups[p][r]
    }

    pub fn replica_mut(&mut self, p: usize, r: usize) -> &mut Replica {
        &mut self.groups[p][r]
    }

    /// Every replica, position by position.
    pub fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.groups.iter().flatten()
    }

    pub fn replicas_mut(&mut self) -> impl Iterator<Item = &mut Replica> {
        self.groups.iter_mut().flatten()
    }

    /// Every client address, position by position.
    pub fn addrs(&self) -> Vec<String> {
        self.replicas().map(|r| r.addr.clone()).collect()
    }

    /// A client of every server (ring-aware if `opts.ring`).
    pub fn client(&self, opts: ClientOptions) -> Result<Client, TestkitError> {
        Client::new(&self.addrs().join(","), opts).map_err(|e| TestkitError::Spec(e.to_string()))
    }

    /// The replica of position `p` that says it leads with the highest
    /// term, among those running and not paused.
    pub async fn leader(&self, p: usize) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for r in self.groups[p].iter().filter(|r| r.process.is_running() && !r.process.is_paused()) {
            if let Some(s) = r.status(false, PROBE).await {
                if s.is_leader() && best.is_none_or(|(t, _)| s.term > t) {
                    best = Some((s.term, r.index));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Waits until position `p` has a leader.
    pub async fn wait_leader(&self, p: usize, within: Duration) -> Result<usize, TestkitError> {
        crate::wait::value(&format!("a leader of position {p}"), within, || self.leader(p)).await
    }

    /// Waits until every running replica of position `p` has applied the
    /// same index and holds the same state digest there.
    pub async fn wait_identical(&self, p: usize, within: Duration) -> Result<Converged, TestkitError> {
        let started = Instant::now();
        let mut seen = Vec::new();
        while started.elapsed() < within {
            seen.clear();
            let running: Vec<&Replica> = self.groups[p].iter().filter(|r| r.process.is_running()).collect();
            for r in &running {
                if let Some(d) = r.status(true, Duration::from_secs(10)).await.and_then(|s| s.digest) {
                    seen.push(Converged { index: d.index, digest: d.digest, keys: d.keys });
                }
            }
            if !seen.is_empty() && seen.len() == running.len() && seen.windows(2).all(|w| w[0] == w[1]) {
                return Ok(seen.swap_remove(0));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let what = format!("position {p}'s replicas to converge (last seen: {seen:?})");
        Err(TestkitError::Timeout { what, secs: within.as_secs_f64() })
    }

    /// kill -9 of one replica.
    pub fn kill9(&mut self, p: usize, r: usize) {
        self.groups[p][r].process.kill9();
    }

    /// kill -9 of every replica.
    pub fn kill9_all(&mut self) {
        self.replicas_mut().for_each(|r| r.process.kill9());
    }

    /// Starts a stopped or killed replica again from its command line.
    pub fn restart(&mut self, p: usize, r: usize) -> Result<(), TestkitError> {
        self.groups[p][r].process.restart()
    }

    pub fn pause(&mut self, p: usize, r: usize) {
        self.groups[p][r].process.pause();
    }

    pub fn resume(&mut self, p: usize, r: usize) {
        self.groups[p][r].process.resume();
    }

    /// The proxy replica `from` of position `p` dials replica `to` through.
    pub fn link(&self, p: usize, from: usize, to: usize) -> Option<&LinkProxy> {
        self.links.get(&(p, from, to))
    }

    /// Every link proxy, keyed by (position, from, to).
    pub fn links(&self) -> impl Iterator<Item = (&(usize, usize, usize), &LinkProxy)> {
        self.links.iter()
    }

    /// Undoes every fault: links pass again (stalled connections resume),
    /// paused replicas resume, stopped ones start again.
    pub fn heal_all(&mut self) -> Result<(), TestkitError> {
        for l in self.links.values() {
            l.heal(false);
        }
        for r in self.replicas_mut() {
            if r.process.is_paused() {
                r.process.resume();
            }
            if !r.process.is_running() {
                r.process.restart()?;
            }
        }
        Ok(())
    }

    /// A clean stop of every replica at once: SIGCONT and SIGTERM to all,
    /// then each gets until `grace` to exit before SIGKILL. Returns how each
    /// ended (`None`: not running, or killed after the grace).
    pub fn stop(&mut self, grace: Duration) -> Vec<(String, Option<ExitStatus>)> {
        for r in self.replicas_mut() {
            r.process.request_stop();
        }
        let deadline = Instant::now() + grace;
        self.replicas_mut().map(|r| (r.process.name().to_owned(), r.process.wait_stopped(deadline))).collect()
    }

    /// Every replica's log, each headed by its name.
    pub fn logs(&self) -> String {
        self.replicas().map(|r| format!("--- {} ---\n{}", r.process.name(), r.process.log())).collect()
    }
}

/// Every replica's metrics address (`None` each without metrics).
fn metrics_addresses(spec: &ClusterSpec) -> Result<Vec<Vec<Option<String>>>, TestkitError> {
    let mut all = Vec::new();
    for p in 0..spec.positions {
        let mut group = Vec::new();
        for r in 0..spec.replicas {
            group.push(match (spec.metrics, spec.fixed_metrics_address(p, r)?) {
                (false, _) => None,
                (true, Some(fixed)) => Some(fixed),
                (true, None) => Some(format!("127.0.0.1:{}", port::free_port()?)),
            });
        }
        all.push(group);
    }
    Ok(all)
}

/// The command line of replica `r` of position `p`.
fn server_argv(
    spec: &ClusterSpec,
    addrs: &[Vec<(String, String)>],
    links: &BTreeMap<(usize, usize, usize), LinkProxy>,
    p: usize,
    r: usize,
    data_dir: &Path,
) -> Vec<String> {
    let (addr, raft_addr) = &addrs[p][r];
    let mut argv = vec![spec.exe.display().to_string(), "server".into()];
    if let Some(file) = &spec.ring_config {
        argv.extend(["--config".into(), file.display().to_string()]);
    }
    argv.extend(["--data-dir".into(), data_dir.display().to_string(), "--listen".into(), addr.clone()]);
    if spec.replicas > 1 {
        argv.extend(["--node-id".into(), r.to_string(), "--raft-listen".into(), raft_addr.clone()]);
    }
    if spec.positions > 1 || spec.ring_config.is_some() {
        argv.extend(["--position".into(), p.to_string()]);
    }
    if spec.ring_config.is_none() {
        if spec.positions > 1 {
            for group in addrs {
                let list: Vec<String> = group.iter().map(|(c, r)| format!("{c}/{r}")).collect();
                argv.extend(["--ring-group".into(), list.join(",")]);
            }
        } else if spec.replicas > 1 {
            for (j, (c, r)) in addrs[p].iter().enumerate() {
                argv.extend(["--replica".into(), format!("{j}={c}/{r}")]);
            }
        }
    }
    for ((lp, from, to), link) in links {
        if *lp == p && *from == r {
            argv.extend(["--raft-dial".into(), format!("{to}={}", link.addr)]);
        }
    }
    argv.extend(spec.server_args.iter().cloned());
    argv
}
