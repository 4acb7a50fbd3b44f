//! Server configuration: one struct with documented defaults, loaded from a
//! TOML file and overridden by command-line flags (the CLI does the
//! overriding).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a server process needs to know. Every field has a default so
/// that `ringkv server --data-dir DIR --listen ADDR` is a complete command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the Raft log (`log.X`), snapshots (`snap.X`) and the state
    /// machine's LMDB files live. Created when new, recovered otherwise.
    pub data_dir: PathBuf,
    /// The gRPC address clients connect to.
    pub listen: SocketAddr,
    /// This replica's id within its Raft group (unique in the group).
    pub node_id: u64,
    /// Where this replica listens for Raft traffic from its peers. Unset:
    /// the client address serves Raft too.
    pub raft_listen: Option<SocketAddr>,
    /// Every replica of the group, this one included. Empty: a standalone
    /// server, a group of one.
    pub replicas: Vec<Replica>,
    /// Largest `data` accepted in a value, in bytes (4 MiB, as gRPC's
    /// default message size). Larger is refused with INVALID_ARGUMENT.
    pub max_value_bytes: usize,
    /// Take a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Also take a snapshot this often (seconds) when anything was applied
    /// since the last one; 0 turns the timer off.
    pub snapshot_interval_secs: u64,
    /// How many snapshots to keep; the log before the oldest kept one is
    /// removed.
    pub snapshots_kept: usize,
    /// Size at which the log rolls over to a new `log.X` segment.
    pub log_segment_bytes: u64,
    /// Most recent log entries kept in memory for replication and apply.
    pub log_cache_bytes: usize,
    /// LMDB's map size: the largest the state machine may grow (virtual
    /// memory only; nothing is allocated up front).
    pub lmdb_map_bytes: usize,
    /// Raft heartbeat interval (milliseconds).
    pub heartbeat_ms: u64,
    /// Raft election timeout range (milliseconds); a random value in it is
    /// used so that replicas do not all stand at once.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Where this replica dials a peer's Raft instead of the `raft_addr`
    /// in the group's membership (which is the same on every replica):
    /// e.g. through a proxy or a NAT. Empty: dial the membership's address.
    /// The fault harness puts a proxy on each directed link this way.
    pub raft_dial: Vec<RaftDial>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ringkv-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            node_id: 0,
            raft_listen: None,
            replicas: Vec::new(),
            max_value_bytes: 4 * 1024 * 1024,
            snapshot_every: 10_000,
            snapshot_interval_secs: 300,
            snapshots_kept: 3,
            log_segment_bytes: 64 * 1024 * 1024,
            log_cache_bytes: 64 * 1024 * 1024,
            lmdb_map_bytes: 64 * 1024 * 1024 * 1024,
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            raft_dial: Vec::new(),
        }
    }
}

/// One member of a Raft group, as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    pub id: u64,
    /// Its client gRPC address.
    pub addr: String,
    /// Its Raft address (defaults to `addr`).
    #[serde(default)]
    pub raft_addr: Option<String>,
}

/// Dial peer `id`'s Raft at `addr` (see `Config::raft_dial`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftDial {
    pub id: u64,
    pub addr: String,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads a TOML file; absent fields take their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
    }

    /// Checks the values that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.max_value_bytes == 0 {
            return invalid("max_value_bytes must be at least 1");
        }
        if self.snapshot_every == 0 {
            return invalid("snapshot_every must be at least 1");
        }
        if self.snapshots_kept == 0 {
            return invalid("snapshots_kept must be at least 1");
        }
        if self.election_timeout_min_ms <= self.heartbeat_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return invalid("need heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms");
        }
        if !self.replicas.is_empty() {
            let mut ids: Vec<u64> = self.replicas.iter().map(|r| r.id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != self.replicas.len() {
                return invalid("replica ids must be unique");
            }
            if !ids.contains(&self.node_id) {
                return invalid("node_id must be one of the replicas' ids");
            }
            // Peers must reach Raft while this replica waits for a leader,
            // before it serves clients: Raft needs its own listener.
            if self.raft_listen.is_none_or(|r| r == self.listen) {
                return invalid("a replicated server needs raft_listen, on another port than listen");
            }
            if let Some(d) = self.raft_dial.iter().find(|d| !ids.contains(&d.id)) {
                return Err(ConfigError::Invalid(format!("raft_dial names replica {}, which is not in replicas", d.id)));
            }
        }
        Ok(())
    }

    /// The address this replica serves Raft on.
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_listen.unwrap_or(self.listen)
    }

    /// The snapshot timer, if on.
    pub fn snapshot_interval(&self) -> Option<Duration> {
        (self.snapshot_interval_secs > 0).then(|| Duration::from_secs(self.snapshot_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(extra: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"node_id = 0
raft_listen = "127.0.0.1:8070"
replicas = [
  {{ id = 0, addr = "127.0.0.1:7070", raft_addr = "127.0.0.1:8070" }},
  {{ id = 1, addr = "127.0.0.1:7071", raft_addr = "127.0.0.1:8071" }},
]
{extra}"#
        );
        let c: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn raft_dial_names_a_peer_in_the_group() {
        let c = group(r#"raft_dial = [{ id = 1, addr = "127.0.0.1:9071" }]"#).unwrap();
        assert_eq!(c.raft_dial, [RaftDial { id: 1, addr: "127.0.0.1:9071".into() }]);
        assert!(group("").unwrap().raft_dial.is_empty());
        let e = group(r#"raft_dial = [{ id = 5, addr = "127.0.0.1:9075" }]"#).unwrap_err();
        assert!(e.to_string().contains("raft_dial names replica 5"), "{e}");
    }
}
