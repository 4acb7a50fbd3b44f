//! The command line of one replica (`ringkv server`, and `shop server`,
//! which runs the very same replica so that `shop up` needs one
//! executable), and the ring file that `ringkv up` and `shop up` write.
//!
//! The configuration is built in one order, documented defaults, then the
//! TOML file (`--config`), then the flags, and checked once before anything
//! starts, so a mistake is one clear line rather than a half-started server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use ringkv_ring::Placement;
use serde::Serialize;

use crate::config::{Config, PositionConfig, RaftDial, Replica, RingConfig};

/// The flags of one replica.
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
    /// Snapshot once this many bytes of commands were applied since the
    /// last snapshot (and --snapshot-log-ratio times its size).
    #[arg(long)]
    pub snapshot_log_bytes: Option<u64>,
    /// Snapshot only once the bytes applied since the last snapshot reach
    /// this multiple of its size too (0: the byte floor alone).
    #[arg(long)]
    pub snapshot_log_ratio: Option<f64>,
    /// Also snapshot this often, in seconds (0: off).
    #[arg(long)]
    pub snapshot_interval: Option<u64>,
    /// Checkpoint what was applied into the store at least this often (ms).
    #[arg(long)]
    pub checkpoint_interval_ms: Option<u64>,
    /// Refuse writes while the state takes this many bytes (0: none).
    #[arg(long)]
    pub quota_bytes: Option<u64>,
    /// Refuse writes while the data dir's file system has less free.
    #[arg(long)]
    pub min_free_bytes: Option<u64>,
    /// Largest value accepted, in bytes.
    #[arg(long)]
    pub max_value_bytes: Option<usize>,
    /// Versions kept per key (0: all).
    #[arg(long)]
    pub max_versions: Option<u32>,
    /// Raft heartbeat interval (ms; default 40); also how long an append
    /// may take to be answered.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Shortest Raft election timeout (ms; default 80). A follower stands
    /// after its timeout plus openraft's leader lease
    /// (election_timeout_max_ms) without a heartbeat: most of a failover.
    #[arg(long)]
    pub election_timeout_min_ms: Option<u64>,
    /// Longest Raft election timeout (ms; default 120); also openraft's
    /// leader lease.
    #[arg(long)]
    pub election_timeout_max_ms: Option<u64>,
    /// This replica's group's position on the ring (an index into the
    /// --ring-group list).
    #[arg(long)]
    pub position: Option<usize>,
    /// A ring position, in order: [ID@]CLIENT_ADDR/RAFT_ADDR,... (its
    /// replicas, ids 0, 1, ...; ID: an explicit decimal ring id). Repeat per
    /// position; replaces the config file's ring positions.
    #[arg(long = "ring-group", value_parser = parse_group)]
    pub ring_groups: Vec<PositionConfig>,
    /// Ring id width in bits (default 64).
    #[arg(long)]
    pub ring_m: Option<u32>,
    /// Key placement on the ring: hash (SHA-1, default) or direct.
    #[arg(long)]
    pub placement: Option<Placement>,
    /// Refuse a request forwarded this many times (a ring misconfiguration).
    #[arg(long)]
    pub max_hops: Option<u32>,
    /// Serve /metrics and /healthz over HTTP here, e.g. 127.0.0.1:9070
    /// (default: not served).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

/// `[ID@]ADDR/RAFT,ADDR/RAFT,...`: a position and its replicas.
fn parse_group(text: &str) -> Result<PositionConfig, String> {
    let (id, list) = match text.split_once('@') {
        Some((id, rest)) => (Some(id.to_owned()), rest),
        None => (None, text),
    };
    let replicas =
        list.split(',').enumerate().map(|(i, r)| parse_replica(&format!("{i}={r}"))).collect::<Result<Vec<_>, _>>()?;
    Ok(PositionConfig { id, replicas })
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
        over!(data_dir => data_dir, listen => listen, node_id => node_id, snapshot_log_bytes => snapshot_log_bytes,
              snapshot_log_ratio => snapshot_log_ratio,
              quota_bytes => quota_bytes, min_free_bytes => min_free_bytes,
              checkpoint_interval_ms => checkpoint_interval_ms,
              snapshot_interval => snapshot_interval_secs, max_value_bytes => max_value_bytes,
              max_versions => max_versions, heartbeat_ms => heartbeat_ms,
              election_timeout_min_ms => election_timeout_min_ms,
              election_timeout_max_ms => election_timeout_max_ms);
        if self.raft_listen.is_some() {
            c.raft_listen = self.raft_listen;
        }
        if self.metrics_listen.is_some() {
            c.metrics_listen = self.metrics_listen;
        }
        if !self.replicas.is_empty() {
            c.replicas = self.replicas.clone();
        }
        if !self.raft_dial.is_empty() {
            c.raft_dial = self.raft_dial.clone();
        }
        self.ring_overrides(&mut c);
        c.resolve();
        c.validate().map_err(|e| anyhow!(e))?;
        Ok(c)
    }
}

impl ServerArgs {
    pub fn ring_overrides(&self, c: &mut Config) {
        let wanted = !self.ring_groups.is_empty()
            || self.ring_m.is_some()
            || self.placement.is_some()
            || self.max_hops.is_some();
        if wanted && c.ring.is_none() {
            c.ring = Some(RingConfig::default());
        }
        if let Some(ring) = c.ring.as_mut() {
            if !self.ring_groups.is_empty() {
                ring.positions = self.ring_groups.clone();
            }
            ring.m = self.ring_m.unwrap_or(ring.m);
            ring.placement = self.placement.unwrap_or(ring.placement);
            ring.max_hops = self.max_hops.unwrap_or(ring.max_hops);
        }
        c.position = self.position.unwrap_or(c.position);
    }
}

/// The ring file of a local cluster (`ringkv up`, `shop up`): position
/// p's replicas at `addrs[p]` (client, Raft), ring ids even, checked by
/// building the ring. `by` names the generator in the file's heading
/// comment.
/// The shape of a local ring on loopback, as `ringkv up` and `shop up`
/// start it.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalRingArgs {
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
}

pub fn ring_file_text(
    addrs: &[Vec<(String, String)>],
    m: u32,
    placement: Placement,
    by: &str,
) -> anyhow::Result<String> {
    let positions = addrs
        .iter()
        .map(|group| PositionConfig {
            id: None,
            replicas: group
                .iter()
                .enumerate()
                .map(|(r, (addr, raft))| Replica { id: r as u64, addr: addr.clone(), raft_addr: Some(raft.clone()) })
                .collect(),
        })
        .collect();
    let ring = RingConfig { m, placement, positions, ..RingConfig::default() };
    ring.build()?;
    #[derive(Serialize)]
    struct File<'a> {
        ring: &'a RingConfig,
    }
    Ok(format!(
        "# Generated by `{by}`: the ring every server of this cluster reads\n\
         # (each adds its own --position, --node-id, --listen, --raft-listen).\n{}",
        toml::to_string(&File { ring: &ring })?
    ))
}

/// Writes [`ring_file_text`] to `path`.
pub fn write_ring_file(
    path: &Path,
    addrs: &[Vec<(String, String)>],
    m: u32,
    placement: Placement,
    by: &str,
) -> anyhow::Result<()> {
    let text = ring_file_text(addrs, m, placement, by)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_timing_flags_override_the_defaults_and_are_checked() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            server: ServerArgs,
        }
        let args =
            ["ringkv", "--heartbeat-ms", "20", "--election-timeout-min-ms", "60", "--election-timeout-max-ms", "120"];
        let c = Cli::parse_from(args).server.config().unwrap();
        assert_eq!((c.heartbeat_ms, c.election_timeout_min_ms, c.election_timeout_max_ms), (20, 60, 120));
        let bad =
            Cli::parse_from(["ringkv", "--election-timeout-min-ms", "40", "--heartbeat-ms", "50"]).server.config();
        assert!(bad.unwrap_err().to_string().contains("heartbeat_ms < election_timeout_min_ms"));
    }

    #[test]
    fn ring_groups_from_flags() {
        let g = parse_group("127.0.0.1:1/127.0.0.1:2,127.0.0.1:3/127.0.0.1:4").unwrap();
        assert_eq!(g.id, None);
        assert_eq!(g.replicas[1], Replica { id: 1, addr: "127.0.0.1:3".into(), raft_addr: Some("127.0.0.1:4".into()) });
        let g = parse_group("12345@127.0.0.1:1").unwrap();
        assert_eq!((g.id.as_deref(), g.replicas.len()), (Some("12345"), 1));
    }
}
