//! `ringkv server`: one replica in the foreground.
//!
//! The configuration is built in one order, documented defaults, then the
//! TOML file (`--config`), then the flags, and checked once before anything
//! starts, so a mistake is one clear line rather than a half-started server.
//! The server stops gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use ringkv_server::config::{Config, RaftDial, Replica};

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// TOML configuration file (see the README for every key); flags
    /// override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory: created and initialised when new, recovered otherwise.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Client gRPC address, e.g. 127.0.0.1:7070.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// This replica's id in its group.
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Raft address for peers (required with --replica).
    #[arg(long)]
    pub raft_listen: Option<SocketAddr>,
    /// A member of the group: ID=CLIENT_ADDR/RAFT_ADDR (repeat per replica,
    /// this one included).
    #[arg(long = "replica", value_parser = parse_replica)]
    pub replicas: Vec<Replica>,
    /// Dial peer ID's Raft at HOST:PORT instead of the address in the
    /// membership, e.g. through a proxy or NAT (repeat per peer).
    #[arg(long = "raft-dial", value_parser = parse_dial)]
    pub raft_dial: Vec<RaftDial>,
    /// Snapshot after this many log entries.
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Also snapshot this often, in seconds (0: off).
    #[arg(long)]
    pub snapshot_interval: Option<u64>,
    /// Largest value accepted, in bytes.
    #[arg(long)]
    pub max_value_bytes: Option<usize>,
}

fn parse_replica(text: &str) -> Result<Replica, String> {
    let (id, addrs) = text.split_once('=').ok_or("want ID=CLIENT_ADDR/RAFT_ADDR")?;
    let id = id.parse().map_err(|_| format!("replica id {id:?} is not a number"))?;
    let (addr, raft) = match addrs.split_once('/') {
        Some((a, r)) => (a.to_owned(), Some(r.to_owned())),
        None => (addrs.to_owned(), None),
    };
    Ok(Replica { id, addr, raft_addr: raft })
}

fn parse_dial(text: &str) -> Result<RaftDial, String> {
    let (id, addr) = text.split_once('=').ok_or("want ID=HOST:PORT")?;
    let id = id.parse().map_err(|_| format!("replica id {id:?} is not a number"))?;
    Ok(RaftDial { id, addr: addr.to_owned() })
}

impl ServerArgs {
    /// The configuration: defaults, then the file, then the flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! over {
            ($($flag:ident => $field:ident),*) => {$(
                if let Some(v) = self.$flag.clone() { c.$field = v.into(); }
            )*};
        }
        over!(data_dir => data_dir, listen => listen, node_id => node_id, snapshot_every => snapshot_every,
              snapshot_interval => snapshot_interval_secs, max_value_bytes => max_value_bytes);
        if self.raft_listen.is_some() {
            c.raft_listen = self.raft_listen;
        }
        if !self.replicas.is_empty() {
            c.replicas = self.replicas.clone();
        }
        if !self.raft_dial.is_empty() {
            c.raft_dial = self.raft_dial.clone();
        }
        c.validate().map_err(|e| anyhow!(e))?;
        Ok(c)
    }
}

/// Runs a server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    ringkv_server::server::run(config, crate::signal::shutdown()).await.context("server failed")
}
