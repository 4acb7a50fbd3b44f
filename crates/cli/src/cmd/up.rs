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
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ringkv_client::{Client, ClientOptions};
use ringkv_ring::Placement;
use ringkv_server::cli::LocalRingArgs;
use ringkv_testkit::cluster::RAFT_PORT_OFFSET;
use ringkv_testkit::{Cluster, ClusterSpec};
use serde::Serialize;

use super::ring::RingView;
use crate::shell::Shell;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `ringkv up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where the replicas keep their data (one subdirectory each).
    #[arg(long, default_value = "ringkv-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub ring: LocalRingArgs,
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
    /// Extra flags passed to every server (e.g. --snapshot-log-bytes 1048576).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Do not serve /metrics and /healthz (each replica serves them by
    /// default, on its client port + 2000).
    #[arg(long)]
    pub no_metrics: bool,
}

/// One process of the cluster, as `cluster.json` lists it. `argv` is the
/// exact command line that starts it again (absolute executable first).
#[derive(Debug, Serialize)]
struct ProcessInfo<'a> {
    position: usize,
    replica: usize,
    address: &'a str,
    /// Only for a group of several replicas: a lone server has no peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    raft_address: Option<&'a str>,
    /// Its /metrics and /healthz (HTTP), unless `--no-metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_address: Option<&'a str>,
    data_dir: &'a Path,
    pid: Option<u32>,
    argv: &'a [String],
}

/// Starts the cluster, serves it until the shell ends, a signal arrives or
/// every replica has died, then stops what is left.
/// `ring`: the shell's client is ring-aware (else it lets the servers route).
pub async fn run(args: UpArgs, json: bool, ring: bool) -> anyhow::Result<()> {
    if args.ring.replicas == 0 || args.ring.positions == 0 {
        bail!("--positions and --replicas must be at least 1");
    }
    let processes = u32::from(args.ring.positions) * u32::from(args.ring.replicas);
    if processes > u32::from(RAFT_PORT_OFFSET) {
        bail!("{processes} processes need more than the {RAFT_PORT_OFFSET} client ports below the Raft ports");
    }
    // The editor first: it must exist before SIGINT is watched (see shell).
    let shell = if !args.no_shell && std::io::stdin().is_terminal() { Some(Shell::open()?) } else { None };
    let exe = std::env::current_exe().context("cannot find the ringkv executable")?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let spec = ClusterSpec::new(exe, usize::from(args.ring.positions), usize::from(args.ring.replicas))
        .dir(&data_dir)
        .base_port(args.ring.base_port)
        .args(&args.server_args)
        .own_process_groups()
        .start_timeout(START_TIMEOUT);
    let spec = if args.no_metrics { spec } else { spec.metrics() };
    let ring_file = write_ring(&data_dir, &args, &spec)?;
    let spec = spec.ring_config(ring_file);
    let mut cluster = tokio::select! {
        c = Cluster::start(spec) => c.context("the cluster did not start")?,
        _ = crate::signal::shutdown() => bail!("interrupted while the cluster was starting"),
    };
    let result = serve(shell, &data_dir, &mut cluster, &args, json, ring).await;
    cluster.stop(STOP_TIMEOUT);
    result
}

/// Prints the ring, then runs the shell (if given) or waits, watching for
/// signals and dead replicas.
async fn serve(
    shell: Option<Shell>,
    data_dir: &Path,
    cluster: &mut Cluster,
    args: &UpArgs,
    json: bool,
    ring: bool,
) -> anyhow::Result<()> {
    let all = cluster.addrs();
    let view = RingView::fetch(&all, false).await?;
    let infos: Vec<ProcessInfo> = cluster
        .replicas()
        .map(|r| ProcessInfo {
            position: r.position,
            replica: r.index,
            address: &r.addr,
            raft_address: (args.ring.replicas > 1).then_some(r.raft_addr.as_str()),
            metrics_address: r.metrics_addr.as_deref(),
            data_dir: &r.data_dir,
            pid: r.process.pid(),
            argv: r.process.argv(),
        })
        .collect();
    let listing = serde_json::json!({ "processes": infos });
    let path = data_dir.join("cluster.json");
    std::fs::write(&path, serde_json::to_string_pretty(&listing)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("ringkv: {} process(es) up, data in {}", all.len(), data_dir.display());
    view.print();
    print_metrics(cluster);
    println!("  ring configuration in {}", data_dir.join(RING_FILE).display());
    println!("  processes (pid, command line) listed in {}; logs in .../server.log", path.display());

    let mut watch = tokio::time::interval(Duration::from_millis(250));
    if let Some(shell) = shell {
        // Ring-aware: each request straight to its owner group; with
        // --no-ring, everything to the first server, which routes it.
        let (client, shown) = if ring {
            let opts = ClientOptions { ring: true, ..ClientOptions::default() };
            (Client::new(&all.join(","), opts)?, format!("the ring ({} positions, ring-aware)", args.ring.positions))
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
                _ = watch.tick() => report_deaths(cluster)?,
            }
        }
    }
    println!("  Ctrl-C or SIGTERM stops them.");
    let stop = crate::signal::shutdown();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = watch.tick() => report_deaths(cluster)?,
        }
    }
}

/// Each replica's metrics address, one line per position.
fn print_metrics(cluster: &Cluster) {
    for p in 0..cluster.positions() {
        let addrs: Vec<&str> = cluster.group(p).iter().filter_map(|r| r.metrics_addr.as_deref()).collect();
        if !addrs.is_empty() {
            println!("  metrics (/metrics, /healthz) of position {p}: http://{}", addrs.join(", http://"));
        }
    }
}

/// The generated ring configuration every server reads.
const RING_FILE: &str = "ring.toml";

/// Writes `DIR/ring.toml`: every position and its replicas at the
/// addresses the spec gives them.
fn write_ring(data_dir: &Path, args: &UpArgs, spec: &ClusterSpec) -> anyhow::Result<PathBuf> {
    let addrs = (0..spec.positions)
        .map(|p| {
            (0..spec.replicas)
                .map(|r| spec.fixed_addresses(p, r)?.context("up runs on fixed ports"))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let path = data_dir.join(RING_FILE);
    ringkv_server::cli::write_ring_file(&path, &addrs, args.ring_m, args.placement, "ringkv up")?;
    Ok(path)
}

/// Reports each replica that has exited since the last look; an error once
/// none is left running.
fn report_deaths(cluster: &mut Cluster) -> anyhow::Result<()> {
    let died = cluster.reap_exited();
    let alive = cluster.replicas().filter(|r| r.process.is_running()).count();
    let total = cluster.replicas().count();
    for (p, r, status) in &died {
        if alive == 0 {
            eprintln!("\nringkv up: position {p} replica {r} exited: {status}");
        } else {
            eprintln!("\nringkv up: position {p} replica {r} exited: {status}; {alive} of {total} still running");
        }
    }
    if alive == 0 && !died.is_empty() {
        bail!("no replica is running any more (see the server.log files)");
    }
    Ok(())
}
