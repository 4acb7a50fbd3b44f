//! `ringkv up`: a local cluster in one command.
//!
//! Starts each replica as its own `ringkv server` process on loopback,
//! waits until the group answers, writes `DIR/cluster.json` (how to find,
//! kill and restart each process), then opens the shell (or waits). Ctrl-C,
//! SIGTERM or leaving the shell stops every process it started. A replica
//! that dies is reported and not restarted: fault tests do that.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringkv_client::{Client, ClientOptions};
use serde::Serialize;

use crate::{server_cmd, shell};

/// How far above the client ports the Raft ports start.
const RAFT_PORT_OFFSET: u16 = 1000;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where the replicas keep their data (one subdirectory each).
    #[arg(long, default_value = "ringkv-data")]
    pub data_dir: PathBuf,
    /// First client port; replica i listens on BASE+i, its Raft on BASE+1000+i.
    #[arg(long, default_value_t = 7070)]
    pub base_port: u16,
    /// Replicas in the group (separate processes).
    #[arg(long, default_value_t = 3)]
    pub replicas: u16,
    /// Do not open the shell; run until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub no_shell: bool,
    /// Extra flags passed to every server (e.g. --snapshot-every 1000).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

/// One process of the cluster, as `cluster.json` lists it.
#[derive(Debug, Serialize)]
struct ProcessInfo {
    position: u32,
    replica: u16,
    address: String,
    raft_address: String,
    data_dir: PathBuf,
    pid: u32,
    argv: Vec<String>,
}

struct Replica {
    info: ProcessInfo,
    child: Option<Child>,
}

pub async fn run(args: UpArgs, json: bool) -> anyhow::Result<()> {
    if args.replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find the ringkv executable")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let mut replicas = Vec::new();
    for i in 0..args.replicas {
        match start(&exe, &data_dir, &args, i) {
            Ok(r) => replicas.push(r),
            Err(e) => {
                stop_all(&mut replicas);
                return Err(e);
            }
        }
    }
    let result = serve(&args, &data_dir, &mut replicas, json).await;
    stop_all(&mut replicas);
    result
}

async fn serve(args: &UpArgs, data_dir: &Path, replicas: &mut [Replica], json: bool) -> anyhow::Result<()> {
    let all: Vec<String> = replicas.iter().map(|r| r.info.address.clone()).collect();
    let opts = ClientOptions { timeout: Duration::from_secs(5), ..ClientOptions::default() };
    let client = Client::new(&all.join(","), opts)?;
    wait_ready(&client, replicas).await?;
    let infos: Vec<&ProcessInfo> = replicas.iter().map(|r| &r.info).collect();
    let cluster = serde_json::json!({ "processes": infos });
    let path = data_dir.join("cluster.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cluster)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("ringkv: {} replica(s) up, data in {}", replicas.len(), data_dir.display());
    for r in replicas.iter() {
        println!("  replica {}  {}  (raft {}, pid {})", r.info.replica, r.info.address, r.info.raft_address, r.info.pid);
    }
    println!("  processes listed in {}", path.display());

    let interactive = !args.no_shell && std::io::stdin().is_terminal();
    let addrs: Vec<String> = replicas.iter().map(|r| r.info.address.clone()).collect();
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    if interactive {
        let shown = addrs.join(", ");
        let shell = shell::run(&client, &shown, json);
        tokio::pin!(shell);
        loop {
            tokio::select! {
                r = &mut shell => return r,
                _ = server_cmd::shutdown_signal() => return Ok(()),
                _ = watch.tick() => report_deaths(replicas),
            }
        }
    }
    println!("  Ctrl-C or SIGTERM stops them.");
    let stop = server_cmd::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = watch.tick() => report_deaths(replicas),
        }
    }
}

fn start(exe: &Path, data_dir: &Path, args: &UpArgs, i: u16) -> anyhow::Result<Replica> {
    let port = |offset: u16| {
        args.base_port
            .checked_add(offset)
            .with_context(|| format!("port {} + {offset} is out of range", args.base_port))
    };
    let address = format!("127.0.0.1:{}", port(i)?);
    let raft_address = format!("127.0.0.1:{}", port(RAFT_PORT_OFFSET + i)?);
    let dir = data_dir.join(format!("r{i}"));
    std::fs::create_dir_all(&dir)?;
    let mut argv = vec![exe.display().to_string(), "server".into()];
    argv.extend(["--data-dir".into(), dir.display().to_string(), "--listen".into(), address.clone()]);
    if args.replicas > 1 {
        argv.extend(["--node-id".into(), i.to_string(), "--raft-listen".into(), raft_address.clone()]);
        for j in 0..args.replicas {
            argv.push("--replica".into());
            argv.push(format!("{j}=127.0.0.1:{}/127.0.0.1:{}", port(j)?, port(RAFT_PORT_OFFSET + j)?));
        }
    }
    argv.extend(args.server_args.iter().cloned());
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"))?;
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start replica {i}"))?;
    let info = ProcessInfo { position: 0, replica: i, address, raft_address, data_dir: dir, pid: child.id(), argv };
    Ok(Replica { info, child: Some(child) })
}

async fn wait_ready(client: &Client, replicas: &mut [Replica]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if client.get(&num_bigint::BigInt::from(0)).await.is_ok() {
            return Ok(());
        }
        for r in replicas.iter_mut() {
            if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "replica {} exited during start-up ({status}); see {}",
                    r.info.replica,
                    r.info.data_dir.join("server.log").display()
                );
            }
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("the cluster did not answer within {START_TIMEOUT:?}; see the server.log files");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report_deaths(replicas: &mut [Replica]) {
    for r in replicas.iter_mut() {
        if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            eprintln!(
                "\nringkv up: replica {} (pid {}) exited: {status}; the others keep running",
                r.info.replica, r.info.pid
            );
            r.child = None;
        }
    }
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
