//! Server configuration: one struct with documented defaults, loaded from a
//! TOML file and overridden by command-line flags (the CLI does the
//! overriding).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use num_bigint::BigUint;
use ringkv_ring::{Placement, Ring};
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
    /// server, a group of one. With a ring, taken from this node's position
    /// when empty (and must match it otherwise).
    pub replicas: Vec<Replica>,
    /// This replica's group's position on the ring (an index into
    /// `ring.positions`; 0 without a ring).
    pub position: usize,
    /// The ring this group is one position of. Absent: one group owns
    /// every key.
    pub ring: Option<RingConfig>,
    /// Largest `data` accepted in a value, in bytes (4 MiB, as gRPC's
    /// default message size). Larger is refused with INVALID_ARGUMENT.
    pub max_value_bytes: usize,
    /// Versions kept per key (16; 0 keeps them all). The leader that
    /// proposes a write decides (the value travels in the log entry), so
    /// replicas configured differently still agree.
    pub max_versions: u32,
    /// Take a snapshot once this many bytes of commands were applied since
    /// the last one and also `snapshot_log_ratio` times the last snapshot's
    /// size: so a snapshot, which rewrites the whole state, costs at most
    /// a fixed share of the bytes written, whatever the state's size.
    pub snapshot_log_bytes: u64,
    /// See `snapshot_log_bytes` (0: the byte floor alone decides).
    pub snapshot_log_ratio: f64,
    /// Also take a snapshot this often (seconds) when anything was applied
    /// since the last one; 0 turns the timer off.
    pub snapshot_interval_secs: u64,
    /// How many snapshots to keep; the log before the oldest kept one is
    /// removed.
    pub snapshots_kept: usize,
    /// Write what was applied to the store (one synced LMDB commit) at
    /// least this often (milliseconds) while anything changed: a restart
    /// replays about this much of the log.
    pub checkpoint_interval_ms: u64,
    /// ...or as soon as this many bytes wait in memory.
    pub checkpoint_bytes: usize,
    /// Refuse writes (RESOURCE_EXHAUSTED; reads and deletes go on) while
    /// the state (the store's pages: keys, values, sessions) takes this
    /// many bytes or more; 0: no quota.
    pub quota_bytes: u64,
    /// Refuse writes the same way while the data dir's file system has
    /// less than this free: the room a replica needs to keep working
    /// (followers' appends, LMDB growth) instead of failing on a full disk.
    pub min_free_bytes: u64,
    /// Size at which the log rolls over to a new `log.X` segment.
    pub log_segment_bytes: u64,
    /// Most recent log entries kept in memory for replication and apply
    /// (8 MiB: over a second of writes at full speed; a follower further
    /// behind is served from the log files).
    pub log_cache_bytes: usize,
    /// LMDB's map size: the largest the state machine may grow (virtual
    /// memory only; nothing is allocated up front).
    pub lmdb_map_bytes: usize,
    /// Raft heartbeat interval (milliseconds). openraft also gives each
    /// append (and each leadership confirmation of a linearizable read)
    /// this long to be answered before sending again.
    pub heartbeat_ms: u64,
    /// Raft election timeout range (milliseconds); each replica draws its
    /// timeout from it once, so that replicas do not all stand at once. A
    /// follower stands after `election_timeout_max_ms` (openraft's leader
    /// lease) plus its timeout without a heartbeat: 200–240 ms with the
    /// defaults, which are chosen in docs/design.md §4.2.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Where this replica dials a peer's Raft instead of the `raft_addr`
    /// in the group's membership (which is the same on every replica):
    /// e.g. through a proxy or a NAT. Empty: dial the membership's address.
    /// The fault harness puts a proxy on each directed link this way.
    pub raft_dial: Vec<RaftDial>,
    /// Where `/metrics` (Prometheus) and `/healthz` are served over HTTP.
    /// Unset (the default): not served. Off by default because a fixed
    /// default port would collide between the replicas sharing a host (as
    /// under `ringkv up` and in tests), and because it is one more open,
    /// unauthenticated port that an operator should choose to expose;
    /// `ringkv up` gives every replica one.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ringkv-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            node_id: 0,
            raft_listen: None,
            replicas: Vec::new(),
            position: 0,
            ring: None,
            max_value_bytes: 4 * 1024 * 1024,
            max_versions: crate::sm::command::DEFAULT_MAX_VERSIONS,
            snapshot_log_bytes: 64 * 1024 * 1024,
            snapshot_log_ratio: 1.0,
            snapshot_interval_secs: 300,
            snapshots_kept: 3,
            checkpoint_interval_ms: 1000,
            checkpoint_bytes: 16 * 1024 * 1024,
            quota_bytes: 0,
            min_free_bytes: 64 * 1024 * 1024,
            log_segment_bytes: 64 * 1024 * 1024,
            log_cache_bytes: 8 * 1024 * 1024,
            lmdb_map_bytes: 64 * 1024 * 1024 * 1024,
            heartbeat_ms: 40,
            election_timeout_min_ms: 80,
            election_timeout_max_ms: 120,
            raft_dial: Vec::new(),
            metrics_listen: None,
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

/// The ring (docs/design.md §4): every position, its id and its replicas. Every
/// node of the ring must be given the same ring; a node's own position is
/// `Config::position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RingConfig {
    /// Ids are `m` bits wide (64: evenly spaced ids never collide).
    pub m: u32,
    /// How a key becomes an id: `hash` (SHA-1 of its wire bytes) or
    /// `direct` (the key modulo 2^m, keeping neighbouring keys together).
    pub placement: Placement,
    /// A request forwarded this many times without reaching its owner is
    /// refused: the nodes' ring configurations must disagree.
    pub max_hops: u32,
    /// The positions, in order; position `i` is `positions[i]`.
    pub positions: Vec<PositionConfig>,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self { m: ringkv_ring::DEFAULT_M, placement: Placement::Hash, max_hops: 32, positions: Vec::new() }
    }
}

/// One ring position: a Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionConfig {
    /// Its ring id, in decimal. Absent on every position: evenly spaced
    /// ids, `2^m − 1` first and each next `2^m / n` lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its replicas (their ids are their node ids in the group).
    pub replicas: Vec<Replica>,
}

impl RingConfig {
    /// The ring these positions make.
    pub fn build(&self) -> Result<Ring, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(m);
        let given: Vec<Option<&String>> = self.positions.iter().map(|p| p.id.as_ref()).collect();
        let ring = if given.iter().all(Option::is_none) {
            Ring::evenly(self.m, self.positions.len(), self.placement)
        } else if given.iter().all(Option::is_some) {
            let ids = given
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let id = id.map_or("", |s| s.as_str());
                    id.parse::<BigUint>()
                        .map_err(|_| invalid(format!("ring position {i}: id {id:?} is not a decimal number")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ring::with_ids(self.m, self.placement, ids)
        } else {
            return Err(invalid("give every ring position an id, or none (evenly spaced)".into()));
        };
        ring.map_err(|e| invalid(format!("ring: {e}")))
    }
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
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
    }

    /// Checks the values that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.max_value_bytes == 0 {
            return invalid("max_value_bytes must be at least 1");
        }
        if self.snapshot_log_bytes == 0 {
            return invalid("snapshot_log_bytes must be at least 1");
        }
        if !(self.snapshot_log_ratio >= 0.0 && self.snapshot_log_ratio.is_finite()) {
            return invalid("snapshot_log_ratio must be a finite number, 0 or more");
        }
        if self.checkpoint_interval_ms == 0 || self.checkpoint_bytes == 0 {
            return invalid("checkpoint_interval_ms and checkpoint_bytes must be at least 1");
        }
        if self.snapshots_kept == 0 {
            return invalid("snapshots_kept must be at least 1");
        }
        if self.election_timeout_min_ms <= self.heartbeat_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return invalid("need heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms");
        }
        if let Some(ring) = &self.ring {
            self.validate_ring(ring)?;
        } else if self.position != 0 {
            return invalid("position is set but no ring is configured");
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
                return Err(ConfigError::Invalid(format!(
                    "raft_dial names replica {}, which is not in replicas",
                    d.id
                )));
            }
        }
        Ok(())
    }

    /// With a ring: takes this group's replicas from the ring when none are
    /// given. Call before `validate`.
    pub fn resolve(&mut self) {
        if let Some(p) = self.ring.as_ref().and_then(|r| r.positions.get(self.position)) {
            if self.replicas.is_empty() && p.replicas.len() > 1 {
                self.replicas = p.replicas.clone();
            }
        }
    }

    fn validate_ring(&self, ring: &RingConfig) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        ring.build()?;
        if ring.max_hops == 0 {
            return invalid("ring.max_hops must be at least 1".into());
        }
        let Some(mine) = ring.positions.get(self.position) else {
            return invalid(format!(
                "position {} is not on the ring (it has {} positions)",
                self.position,
                ring.positions.len()
            ));
        };
        if let Some(i) = ring.positions.iter().position(|p| p.replicas.is_empty()) {
            return invalid(format!("ring position {i} has no replicas"));
        }
        let listen = self.listen.to_string();
        if mine.replicas.len() > 1 && self.replicas != mine.replicas {
            return invalid(format!("replicas differ from ring position {}'s replicas", self.position));
        }
        if mine.replicas.len() == 1 && mine.replicas[0].addr != listen {
            return invalid(format!(
                "ring position {} is {}, but this server listens on {listen}",
                self.position, mine.replicas[0].addr
            ));
        }
        Ok(())
    }

    /// The ring and every position's replicas: a ring of one position
    /// (this group) when none is configured.
    pub(crate) fn topology(&self) -> Result<(Ring, Vec<Vec<Replica>>), ConfigError> {
        match &self.ring {
            Some(ring) => Ok((ring.build()?, ring.positions.iter().map(|p| p.replicas.clone()).collect())),
            None => {
                let ring = Ring::evenly(ringkv_ring::DEFAULT_M, 1, Placement::Hash)
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                let alone = Replica {
                    id: self.node_id,
                    addr: self.listen.to_string(),
                    raft_addr: self.raft_listen.map(|a| a.to_string()),
                };
                let mine = if self.replicas.is_empty() { vec![alone] } else { self.replicas.clone() };
                Ok((ring, vec![mine]))
            }
        }
    }

    /// The address this replica serves Raft on.
    pub(crate) fn raft_addr(&self) -> SocketAddr {
        self.raft_listen.unwrap_or(self.listen)
    }

    /// When the store checkpoints.
    pub(crate) fn checkpoints(&self) -> crate::sm::store::Checkpoints {
        crate::sm::store::Checkpoints {
            interval: Duration::from_millis(self.checkpoint_interval_ms),
            bytes: self.checkpoint_bytes,
        }
    }

    /// The snapshot timer, if on.
    pub(crate) fn snapshot_interval(&self) -> Option<Duration> {
        (self.snapshot_interval_secs > 0).then(|| Duration::from_secs(self.snapshot_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: &str = r#"
        position = 1
        node_id = 2
        listen = "127.0.0.1:7075"
        raft_listen = "127.0.0.1:8075"
        [ring]
        m = 16
        placement = "direct"
        [[ring.positions]]
        replicas = [{ id = 0, addr = "127.0.0.1:7070", raft_addr = "127.0.0.1:8070" }]
        [[ring.positions]]
        replicas = [
          { id = 0, addr = "127.0.0.1:7073", raft_addr = "127.0.0.1:8073" },
          { id = 1, addr = "127.0.0.1:7074", raft_addr = "127.0.0.1:8074" },
          { id = 2, addr = "127.0.0.1:7075", raft_addr = "127.0.0.1:8075" },
        ]
    "#;

    fn parse(text: &str) -> Config {
        let mut c: Config = toml::from_str(text).expect("parse");
        c.resolve();
        c
    }

    fn refused(c: &Config) -> String {
        c.validate().expect_err("accepted").to_string()
    }

    #[test]
    fn a_ring_gives_the_group_its_replicas_and_ids() {
        let c = parse(RING);
        c.validate().expect("valid");
        assert_eq!(c.replicas.len(), 3, "replicas come from the ring");
        let (ring, groups) = c.topology().unwrap();
        assert_eq!((ring.len(), ring.m(), ring.placement()), (2, 16, Placement::Direct));
        assert_eq!(ring.id(0).to_string(), "65535");
        assert_eq!(ring.id(1).to_string(), "32767");
        assert_eq!(groups[1][2].addr, "127.0.0.1:7075");
        assert_eq!(c.ring.as_ref().unwrap().max_hops, 32, "default");
    }

    #[test]
    fn no_ring_is_one_position_owning_everything() {
        let c = Config::default();
        let (ring, groups) = c.topology().unwrap();
        assert_eq!(ring.len(), 1);
        assert_eq!(groups, vec![vec![Replica { id: 0, addr: "127.0.0.1:7070".into(), raft_addr: None }]]);
    }

    #[test]
    fn explicit_ids_all_or_none() {
        let c = parse(&RING.replacen("[[ring.positions]]", "[[ring.positions]]\nid = \"100\"", 1));
        assert!(refused(&c).contains("every ring position an id, or none"), "{}", refused(&c));
        let both = RING.replacen("[[ring.positions]]", "[[ring.positions]]\nid = \"100\"", 1);
        let both = both.replacen(
            "[[ring.positions]]\n        replicas = [\n",
            "[[ring.positions]]\nid = \"200\"\n        replicas = [\n",
            1,
        );
        let c = parse(&both);
        c.validate().expect("valid");
        assert_eq!(c.topology().unwrap().0.id(1).to_string(), "200");
        let c = parse(&both.replace("\"200\"", "\"7O\""));
        assert!(refused(&c).contains("not a decimal number"), "{}", refused(&c));
    }

    #[test]
    fn mistakes_are_named() {
        let mut c = parse(RING);
        c.position = 5;
        assert!(refused(&c).contains("position 5 is not on the ring"), "{}", refused(&c));
        let c = parse(&RING.replace("m = 16", "m = 200").replace("\"direct\"", "\"hash\""));
        assert!(refused(&c).contains("160"), "{}", refused(&c));
        let mut c = parse(RING);
        c.replicas[0].addr = "127.0.0.1:9999".into();
        assert!(refused(&c).contains("replicas differ"), "{}", refused(&c));
        let mut c = parse(RING);
        c.position = 0;
        assert!(refused(&c).contains("listens on 127.0.0.1:7075"), "{}", refused(&c));
        let c = parse(&RING.replace("[ring]", "[ring]\nmax_hops = 0"));
        assert!(refused(&c).contains("max_hops"), "{}", refused(&c));
        let c = Config { position: 1, ..Config::default() };
        assert!(refused(&c).contains("no ring"), "{}", refused(&c));
    }

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
