//! `ringkv up`: a local cluster in one command.
//!
//! Starts a ring of `--positions` groups of `--replicas` replicas, each
//! replica its own `ringkv server` process on loopback, all reading one
//! generated ring configuration (`DIR/ring.toml`); waits until every group
//! has a leader, prints the ring, writes `DIR/cluster.json` (how to find,
//! kill and restart each process), then opens the shell (or waits).
//! Leaving the shell, SIGTERM, SIGHUP, or (without the shell) Ctrl-C stops
//! every process it started; in the shell Ctrl-C only cancels the running
//! command. The servers run in their own process group so that a Ctrl-C
//! typed in the terminal reaches `up` alone, and `up` decides. A replica
//! that dies is reported and not restarted (fault tests do that, from
//! `cluster.json`); when none is left, `up` says so and exits non-zero.
//! The servers log to `DIR/p<p>/r<r>/server.log`, not the terminal, so
//! that they do not garble the shell.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringkv_client::{Client, ClientOptions};
use ringkv_ring::Placement;
use ringkv_server::config::{PositionConfig, Replica as ReplicaConfig, RingConfig};
use serde::Serialize;

use super::ring::RingView;
use crate::shell::Shell;

/// How far above the client ports the Raft ports start.
const RAFT_PORT_OFFSET: u16 = 1000;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of one readiness probe: short, so that a replica that died is
/// noticed quickly.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Flags of `ringkv up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where the replicas keep their data (one subdirectory each).
    #[arg(long, default_value = "ringkv-data")]
    pub data_dir: PathBuf,
    /// First client port; replica r of position p listens on
    /// BASE + p·REPLICAS + r, its Raft on 1000 above.
    #[arg(long, default_value_t = 7070)]
    pub base_port: u16,
    /// Ring positions (groups).
    #[arg(long, default_value_t = 2)]
    pub positions: u16,
    /// Replicas per position (separate processes).
    #[arg(long, default_value_t = 3)]
    pub replicas: u16,
    /// Ring id width in bits.
    #[arg(long, default_value_t = ringkv_ring::DEFAULT_M)]
    pub ring_m: u32,
    /// Key placement: hash (SHA-1 of the key's bytes) or direct (the key
    /// modulo 2^m: neighbouring keys stay together).
    #[arg(long, default_value_t = Placement::Hash)]
    pub placement: Placement,
    /// Do not open the shell; run until Ctrl-C or SIGTERM. (Also the case
    /// when stdin is not a terminal.)
    #[arg(long)]
    pub no_shell: bool,
    /// Extra flags passed to every server (e.g. --snapshot-every 1000).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

/// One process of the cluster, as `cluster.json` lists it. `argv` is the
/// exact command line that starts it again (absolute executable first).
#[derive(Debug, Serialize)]
struct ProcessInfo {
    position: u16,
    replica: u16,
    address: String,
    /// Only for a group of several replicas: a lone server has no peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    raft_address: Option<String>,
    data_dir: PathBuf,
    pid: u32,
    argv: Vec<String>,
}

struct Replica {
    info: ProcessInfo,
    child: Option<Child>,
}

/// Starts the cluster, serves it until the shell ends, a signal arrives or
/// every replica has died, then stops what is left.
/// `ring`: the shell's client is ring-aware (else it lets the servers route).
pub async fn run(args: UpArgs, json: bool, ring: bool) -> anyhow::Result<()> {
    if args.replicas == 0 || args.positions == 0 {
        bail!("--positions and --replicas must be at least 1");
    }
    let processes = u32::from(args.positions) * u32::from(args.replicas);
    if processes > u32::from(RAFT_PORT_OFFSET) {
        bail!("{processes} processes need more than the {RAFT_PORT_OFFSET} client ports below the Raft ports");
    }
    // The editor first: it must exist before SIGINT is watched (see shell).
    let shell = if !args.no_shell && std::io::stdin().is_terminal() { Some(Shell::open()?) } else { None };
    let exe = std::env::current_exe().context("cannot find the ringkv executable")?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let ring_file = write_ring(&data_dir, &args)?;
    let mut replicas = Vec::new();
    let all = (0..args.positions).flat_map(|p| (0..args.replicas).map(move |r| (p, r)));
    for (p, r) in all {
        match start(&exe, &data_dir, &ring_file, &args, p, r) {
            Ok(r) => replicas.push(r),
            Err(e) => {
                stop_all(&mut replicas);
                return Err(e);
            }
        }
    }
    let result = serve(shell, &data_dir, &mut replicas, &args, json, ring).await;
    stop_all(&mut replicas);
    result
}

/// Waits until every group has a leader, prints the ring, then runs the
/// shell (if given) or waits, watching for signals and dead replicas.
async fn serve(
    shell: Option<Shell>,
    data_dir: &Path,
    replicas: &mut [Replica],
    args: &UpArgs,
    json: bool,
    ring: bool,
) -> anyhow::Result<()> {
    let all: Vec<String> = replicas.iter().map(|r| r.info.address.clone()).collect();
    let view = tokio::select! {
        r = wait_ready(&all, replicas) => r?,
        _ = crate::signal::shutdown() => bail!("interrupted while the cluster was starting"),
    };
    let infos: Vec<&ProcessInfo> = replicas.iter().map(|r| &r.info).collect();
    let cluster = serde_json::json!({ "processes": infos });
    let path = data_dir.join("cluster.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cluster)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("ringkv: {} process(es) up, data in {}", replicas.len(), data_dir.display());
    view.print();
    println!("  ring configuration in {}", data_dir.join(RING_FILE).display());
    println!("  processes (pid, command line) listed in {}; logs in .../server.log", path.display());

    let mut watch = tokio::time::interval(Duration::from_millis(250));
    if let Some(shell) = shell {
        // Ring-aware: each request straight to its owner group; with
        // --no-ring, everything to the first server, which routes it.
        let (client, shown) = if ring {
            let opts = ClientOptions { ring: true, ..ClientOptions::default() };
            (Client::new(&all.join(","), opts)?, format!("the ring ({} positions, ring-aware)", args.positions))
        } else {
            (Client::new(&all[0], ClientOptions::default())?, all[0].clone())
        };
        let shell = shell.run(&client, &shown, &all, json);
        // Ctrl-C is the shell's (it cancels a command); leaving the shell or
        // SIGTERM stops the cluster.
        let term = crate::signal::terminate();
        tokio::pin!(shell, term);
        loop {
            tokio::select! {
                r = &mut shell => return r,
                _ = &mut term => return Ok(()),
                _ = watch.tick() => report_deaths(replicas)?,
            }
        }
    }
    println!("  Ctrl-C or SIGTERM stops them.");
    let stop = crate::signal::shutdown();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = watch.tick() => report_deaths(replicas)?,
        }
    }
}

/// The generated ring configuration every server reads.
const RING_FILE: &str = "ring.toml";

/// Client and Raft address of replica `r` of position `p`.
fn addresses(args: &UpArgs, p: u16, r: u16) -> anyhow::Result<(String, String)> {
    let i = p * args.replicas + r;
    let port = |offset: u16| {
        args.base_port
            .checked_add(offset)
            .with_context(|| format!("port {} + {offset} is out of range", args.base_port))
    };
    Ok((format!("127.0.0.1:{}", port(i)?), format!("127.0.0.1:{}", port(RAFT_PORT_OFFSET + i)?)))
}

/// Writes `DIR/ring.toml`: every position and its replicas.
fn write_ring(data_dir: &Path, args: &UpArgs) -> anyhow::Result<PathBuf> {
    let positions = (0..args.positions)
        .map(|p| {
            let replicas = (0..args.replicas)
                .map(|r| {
                    let (addr, raft) = addresses(args, p, r)?;
                    Ok(ReplicaConfig { id: u64::from(r), addr, raft_addr: Some(raft) })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(PositionConfig { id: None, replicas })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ring = RingConfig { m: args.ring_m, placement: args.placement, positions, ..RingConfig::default() };
    ring.build()?;
    #[derive(Serialize)]
    struct File<'a> {
        ring: &'a RingConfig,
    }
    let text = format!(
        "# Generated by `ringkv up`: the ring every server of this cluster reads\n\
         # (each adds its own --position, --node-id, --listen, --raft-listen).\n{}",
        toml::to_string(&File { ring: &ring })?
    );
    let path = data_dir.join(RING_FILE);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn start(exe: &Path, data_dir: &Path, ring_file: &Path, args: &UpArgs, p: u16, r: u16) -> anyhow::Result<Replica> {
    let (address, raft_address) = addresses(args, p, r)?;
    let dir = data_dir.join(format!("p{p}")).join(format!("r{r}"));
    std::fs::create_dir_all(&dir)?;
    let mut argv = vec![exe.display().to_string(), "server".into(), "--config".into(), ring_file.display().to_string()];
    argv.extend(["--position".into(), p.to_string()]);
    argv.extend(["--data-dir".into(), dir.display().to_string(), "--listen".into(), address.clone()]);
    if args.replicas > 1 {
        argv.extend(["--node-id".into(), r.to_string(), "--raft-listen".into(), raft_address.clone()]);
    }
    argv.extend(args.server_args.iter().cloned());
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"))?;
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start position {p} replica {r}"))?;
    let raft_address = (args.replicas > 1).then_some(raft_address);
    let info = ProcessInfo { position: p, replica: r, address, raft_address, data_dir: dir, pid: child.id(), argv };
    Ok(Replica { info, child: Some(child) })
}

/// Polls the ring until every replica answers, every group has a leader
/// and a read succeeds; fails
/// as soon as a replica exits, quoting the last line of its log (usually
/// the reason).
async fn wait_ready(addrs: &[String], replicas: &mut [Replica]) -> anyhow::Result<RingView> {
    let opts = ClientOptions { timeout: PROBE_TIMEOUT, connect_timeout: PROBE_TIMEOUT, ring: false };
    let client = Client::new(&addrs.join(","), opts)?;
    let started = Instant::now();
    loop {
        if let Ok(view) = RingView::fetch(addrs, false).await {
            if view.all_led() && view.all_answered() && client.get(&num_bigint::BigInt::from(0)).await.is_ok() {
                return Ok(view);
            }
        }
        for r in replicas.iter_mut() {
            if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = r.info.data_dir.join("server.log");
                let why = last_line(&log).map_or(String::new(), |l| format!(": {l}"));
                bail!(
                    "position {} replica {} exited during start-up ({status}){why}\n(full log: {})",
                    r.info.position,
                    r.info.replica,
                    log.display()
                );
            }
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the cluster did not elect a leader in every group within {START_TIMEOUT:?}; see the server.log files"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last non-empty line of a (log) file, if it can be read.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned())
}

/// Reports each replica that has exited since the last look; an error once
/// none is left running.
fn report_deaths(replicas: &mut [Replica]) -> anyhow::Result<()> {
    let mut died = Vec::new();
    for r in replicas.iter_mut() {
        if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            died.push(format!(
                "position {} replica {} (pid {}) exited: {status}",
                r.info.position, r.info.replica, r.info.pid
            ));
            r.child = None;
        }
    }
    let alive = replicas.iter().filter(|r| r.child.is_some()).count();
    for d in &died {
        if alive == 0 {
            eprintln!("\nringkv up: {d}");
        } else {
            eprintln!("\nringkv up: {d}; {alive} of {} still running", replicas.len());
        }
    }
    if alive == 0 && !died.is_empty() {
        bail!("no replica is running any more (see the server.log files)");
    }
    Ok(())
}

/// SIGTERM to every child, then SIGKILL to those still running.
fn stop_all(replicas: &mut [Replica]) {
    for r in replicas.iter() {
        if let Some(c) = &r.child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for r in replicas.iter_mut() {
        if let Some(mut c) = r.child.take() {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}
