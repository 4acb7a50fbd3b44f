//! One replica: its Raft instance, its state machine's store and its
//! configuration, started from a data directory. It answers in its own
//! terms (`NodeError`, in `node/error.rs`); the services above turn that
//! into what a client sees.

mod error;
mod space;
mod step_aside;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::mpsc;

use crate::broken::{self, Bug};
use crate::config::Config;
use crate::metrics;
use crate::raft::log_store::{LogOptions, LogStore, LogUsage};
use crate::raft::network::Network;
use crate::raft::state_machine::{SnapshotProgress, StateMachine};
use crate::raft::types::{self, NodeId, Raft};
use crate::read_batch::ReadBatcher;
use crate::sm::command::Reply;
use crate::sm::digest::Digest;
use crate::sm::session::Request;
use crate::sm::store::{KvStore, StoreError};
use crate::write_batch::WriteBatcher;
use space::Space;
use step_aside::StepAside;

pub use error::NodeError;

/// How long start-up waits for the group to elect a leader and catch up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a read waits for a restarted leader to commit the log it had
/// at restart (see `RestartFloor`).
const FLOOR_TIMEOUT: Duration = Duration::from_secs(5);

/// A running replica. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// Why a leadership confirmation failed (shared by a batch of reads).
type ReadError = openraft::error::RaftError<NodeId, openraft::error::CheckIsLeaderError<NodeId, types::Node>>;

struct Inner {
    raft: Raft,
    /// Linearizable reads share leadership confirmations (read_batch.rs).
    reads: ReadBatcher<Option<types::LogId>, ReadError>,
    /// Writes share log entries (write_batch.rs).
    writes: WriteBatcher,
    store: KvStore,
    config: Config,
    floor: RestartFloor,
    space: Arc<Space>,
    step_aside: Arc<StepAside>,
    /// Kept so that the log's writer thread, which stops (flushing what it
    /// has) when its last handle is dropped, lives as long as the node;
    /// also asked for its size (metrics).
    log: LogStore,
    /// Held for the process's lifetime: one server per data directory.
    _lock: File,
}

impl Node {
    /// Opens (or initialises) the data directory, recovers the state (newest
    /// valid snapshot, then the log), and returns once the group has a
    /// leader and this replica has applied everything it had committed.
    /// `on_raft` receives the Raft handle as soon as it exists, so that the
    /// caller can serve peers' Raft RPCs during election.
    pub async fn start(config: Config, on_raft: impl FnOnce(Raft)) -> anyhow::Result<Node> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let lock = lock_data_dir(&dir)?;
        let (purge_tx, purge_rx) = mpsc::unbounded_channel();

        let (sm, log) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || recover(&config, purge_tx)).await??
        };
        let store = sm.store();
        let progress = sm.progress();
        let space = Space::watch(&dir, store.clone(), config.quota_bytes, config.min_free_bytes);
        let floor = RestartFloor::new(log.state().0);
        let id = config.node_id;
        let dial = config.raft_dial.iter().map(|d| (d.id, d.addr.clone())).collect();
        let network = Network::new(id, dial, Duration::from_millis(config.heartbeat_ms));
        let raft = Raft::new(id, Arc::new(raft_config(&config)?), network, log.clone(), sm)
            .await
            .context("cannot start raft")?;
        on_raft(raft.clone());
        if !raft.is_initialized().await? {
            // Every fresh replica proposes the same membership, which
            // openraft allows; a restarted one rejoins from its own disk.
            let members = membership(&config);
            tracing::info!(dir = %dir.display(), replicas = members.len(), "initialising a new group");
            match raft.initialize(members).await {
                Ok(()) => {}
                // A peer initialised first and already reached us: the group
                // is forming, which is what initialising was for.
                Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(e))) => {
                    tracing::info!("group already forming, joining it: {e}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        spawn_log_purger(raft.clone(), purge_rx);
        spawn_leadership_logger(raft.clone());
        let asked = Arc::new(std::sync::Mutex::new(None));
        spawn_snapshot_counter(raft.clone(), progress.clone(), asked.clone());
        spawn_snapshot_trigger(raft.clone(), progress, space.clone(), asked, &config);
        let reads = {
            let raft = raft.clone();
            ReadBatcher::new(move || {
                let raft = raft.clone();
                async move { raft.ensure_linearizable().await }
            })
        };
        let writes = WriteBatcher::new(raft.clone());
        // Long enough for a follower's lease and election timeout to run
        // out, and its vote round, with room for a loaded machine.
        let give_up = Duration::from_millis((8 * config.election_timeout_max_ms).max(1000));
        let step_aside = StepAside::watch(raft.clone(), space.clone(), give_up);
        let inner = Inner { raft, reads, writes, store, config, floor, space, step_aside, log, _lock: lock };
        let node = Node { inner: Arc::new(inner) };
        node.wait_ready().await?;
        Ok(node)
    }

    /// Waits until a leader is known. A replica whose peers are down serves
    /// anyway after the timeout: it answers UNAVAILABLE until they return.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let raft = &self.inner.raft;
        let wait = raft.wait(Some(READY_TIMEOUT));
        if wait.metrics(|m| m.current_leader.is_some(), "a leader is elected").await.is_err() {
            tracing::warn!("no leader after {READY_TIMEOUT:?}; serving anyway (requests get UNAVAILABLE)");
        }
        let m = raft.metrics().borrow().clone();
        tracing::info!(applied = ?m.last_applied.map(|id| id.index), leader = ?m.current_leader, "ready");
        Ok(())
    }

    pub fn max_value_bytes(&self) -> usize {
        self.inner.config.max_value_bytes
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The log's files and committed id (for metrics).
    pub fn log_usage(&self) -> LogUsage {
        self.inner.log.usage()
    }

    /// `Ok` when this replica leads; else `NotLeader`, with the leader's
    /// client address when one is known. A write is forwarded or refused on
    /// this answer before it is proposed.
    pub fn leads(&self) -> Result<(), NodeError> {
        let m = self.inner.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(l) if l == m.id && m.state.is_leader() => Ok(()),
            Some(l) if l != m.id => Err(NodeError::NotLeader {
                leader: m.membership_config.membership().get_node(&l).map(|n| n.client_addr.clone()),
            }),
            _ => Err(NodeError::NotLeader { leader: None }),
        }
    }

    /// Commits a write and returns the state machine's answer. While disk
    /// space is short a leader proposes only deletes (`node/space.rs`); a
    /// follower passes writes on to its leader, whose disk decides.
    pub async fn write(&self, req: Request) -> Result<Reply, NodeError> {
        if self.inner.step_aside.handing_over() {
            return Err(NodeError::HandingOver);
        }
        if !req.cmd.shrinks() {
            // The alarm first: two atomic loads, where `leads` clones
            // openraft's metrics (only worth it when space is short).
            if let Some(alarm) = self.inner.space.alarm() {
                if self.leads().is_ok() {
                    return Err(NodeError::NoSpace(alarm));
                }
            }
            self.inner.space.spend(req.cmd.weight());
        }
        self.inner.writes.write(req).await
    }

    /// Why writes are refused now, if they are (status shows it).
    pub fn alarms(&self) -> Vec<String> {
        self.inner.space.alarm().into_iter().collect()
    }

    /// Resolves once Raft has stopped on its own (a storage error: a log
    /// write or fsync failed, LMDB failed; or a panic), with the reason.
    /// Such a replica can only answer UNAVAILABLE, so the server exits
    /// instead and a restart recovers it from disk. Never resolves on a
    /// requested shutdown.
    pub async fn fatal(&self) -> String {
        let mut rx = self.inner.raft.metrics();
        loop {
            if let Err(f) = &rx.borrow_and_update().running_state {
                if !matches!(f, openraft::error::Fatal::Stopped) {
                    return match self.inner.space.diagnose_failure() {
                        Some(cause) => format!("{f}; {cause}"),
                        None => f.to_string(),
                    };
                }
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Exactly-once sessions this replica's state holds (metrics).
    pub fn sessions_held(&self) -> Result<u64, StoreError> {
        self.inner.store.sessions_held()
    }

    /// Versions kept per key, for the writes this replica proposes.
    pub fn max_versions(&self) -> u32 {
        self.inner.config.max_versions
    }

    /// A linearizable read (read-index, confirmations shared by concurrent
    /// reads): `read` runs on the local store once it holds every write
    /// acknowledged before the read began.
    pub async fn read<T>(&self, read: impl FnOnce(&KvStore) -> Result<T, StoreError>) -> Result<T, NodeError> {
        if broken::active(Bug::StaleReads) && self.leads().is_ok() {
            // The deliberately broken build (see Cargo.toml): a replica that
            // believes it leads answers without confirming it with a quorum.
            return self.read_local(read);
        }
        if self.inner.step_aside.handing_over() {
            return Err(NodeError::HandingOver);
        }
        self.inner.reads.confirm().await.map_err(NodeError::from_read)?;
        self.inner.floor.reach(&self.inner.raft).await?;
        self.read_local(read)
    }

    /// A serializable read: this replica's applied state, possibly stale.
    pub fn read_local<T>(&self, read: impl FnOnce(&KvStore) -> Result<T, StoreError>) -> Result<T, NodeError> {
        Ok(read(&self.inner.store)?)
    }

    /// The applied index and the digest of the state at it (a full scan,
    /// off the async workers).
    pub async fn digest(&self) -> Result<(u64, Digest), NodeError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.digest())
            .await
            .map_err(|e| NodeError::Internal(format!("the digest task failed: {e}")))?
            .map_err(NodeError::from)
    }

    /// Stops Raft; the log writer flushes what it has.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft did not stop cleanly: {e}");
        }
        // A clean stop leaves nothing for the next start to replay.
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("last checkpoint failed: {e}"),
            Err(e) => tracing::warn!("last checkpoint failed: {e}"),
        }
    }
}

/// The end of the log as this replica found it at start-up, which a
/// linearizable read must see if this replica still leads the term that
/// wrote it.
///
/// openraft lets a leader that restarts keep its leadership (its vote is
/// on disk) without appending a new entry, and its read index is then
/// max(first entry of its term, commit index). The commit index it
/// recovered is the one the log store persisted, lazily (up to
/// `COMMITTED_DELAY` behind), so writes acknowledged just before a crash
/// of the whole group sit above it until the followers answer the first
/// replication round: a read in that window saw the state before them
/// (found by the crash test against a 3-replica group; openraft issue
/// #1511). Every entry in this log up to its end is of that leader's term
/// or older, so it commits as soon as a majority has it; a read waits for
/// that once, then never again.
struct RestartFloor {
    /// (term, index) of the last entry at start-up.
    last: Option<(u64, u64)>,
    reached: AtomicBool,
}

impl RestartFloor {
    fn new(last: Option<types::LogId>) -> RestartFloor {
        let last = last.map(|id| (id.leader_id.term, id.index));
        RestartFloor { reached: AtomicBool::new(last.is_none()), last }
    }

    /// Waits, if this replica leads the term of the log's last entry at
    /// start-up, until that entry is applied.
    async fn reach(&self, raft: &Raft) -> Result<(), NodeError> {
        let Some((term, index)) = self.last.filter(|_| !self.reached.load(Ordering::Acquire)) else {
            return Ok(());
        };
        let (current_term, applied) = {
            let m = raft.metrics().borrow().clone();
            (m.current_term, m.last_applied.map_or(0, |id| id.index))
        };
        // A later term began with its own first entry above this log's
        // end, and the read index covers that.
        if current_term != term || applied >= index {
            self.reached.store(true, Ordering::Release);
            return Ok(());
        }
        match raft.wait(Some(FLOOR_TIMEOUT)).applied_index_at_least(Some(index), "the log at restart is applied").await
        {
            Ok(_) => {
                self.reached.store(true, Ordering::Release);
                Ok(())
            }
            Err(openraft::metrics::WaitError::ShuttingDown) => {
                Err(NodeError::Stopping("the server is stopping".into()))
            }
            Err(openraft::metrics::WaitError::Timeout(..)) => Err(NodeError::NoQuorum(format!(
                "the log this leader had at restart (up to index {index}) is not committed after {FLOOR_TIMEOUT:?}"
            ))),
        }
    }
}

/// Opens the log and the state machine (rebuilt from a snapshot when its
/// store cannot go on from where the log starts): blocking.
fn recover(config: &Config, purge_tx: mpsc::UnboundedSender<u64>) -> anyhow::Result<(StateMachine, LogStore)> {
    let dir = &config.data_dir;
    let opts = LogOptions { segment_bytes: config.log_segment_bytes, cache_bytes: config.log_cache_bytes };
    let log = LogStore::open(dir, opts)?;
    let (last, purged) = log.state();
    let purged = purged.map_or(0, |id| id.index);
    broken::set_replay_end(last.map_or(0, |id| id.index));
    let checkpoints = config.checkpoints();
    let sm = StateMachine::recover(dir, config.lmdb_map_bytes, checkpoints, config.snapshots_kept, purge_tx, purged)?;
    let applied = sm.applied_index()?;
    if purged > applied {
        bail!(
            "{}: the log was purged up to index {purged} but neither the store nor a valid snapshot \
             reaches it (they reach {applied}); the data cannot be recovered from this directory",
            dir.display(),
        );
    }
    Ok((sm, log))
}

/// The group's members: the configured replicas, or this server alone.
fn membership(config: &Config) -> BTreeMap<NodeId, types::Node> {
    if config.replicas.is_empty() {
        let addr = config.listen.to_string();
        let raft_addr = config.raft_addr().to_string();
        return BTreeMap::from([(config.node_id, types::Node { client_addr: addr, raft_addr })]);
    }
    config
        .replicas
        .iter()
        .map(|r| {
            let raft_addr = r.raft_addr.clone().unwrap_or_else(|| r.addr.clone());
            (r.id, types::Node { client_addr: r.addr.clone(), raft_addr })
        })
        .collect()
}

fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("LOCK");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("data dir {} is in use by another ringkv process", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).context(format!("cannot lock {}", path.display())),
    }
}

fn raft_config(config: &Config) -> anyhow::Result<openraft::Config> {
    let rc = openraft::Config {
        cluster_name: "ringkv".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        // Snapshots are ours too: `spawn_snapshot_trigger` weighs bytes,
        // not entries.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        // Purging is ours: the log is kept back to the oldest kept snapshot
        // (see StateMachine::adopt), which openraft's count cannot express.
        max_in_snapshot_log_to_keep: u64::MAX,
        ..Default::default()
    };
    Ok(rc.validate()?)
}

/// Turns "snapshots older than X are gone" into a log purge up to X.
fn spawn_log_purger(raft: Raft, mut rx: mpsc::UnboundedReceiver<u64>) {
    tokio::spawn(async move {
        while let Some(upto) = rx.recv().await {
            if raft.trigger().purge_log(upto).await.is_err() {
                break;
            }
        }
    });
}

/// Logs every change of role or leader, with the term and the reason a
/// reader needs ("no heartbeat" is what starts an election).
fn spawn_leadership_logger(raft: Raft) {
    tokio::spawn(async move {
        let mut rx = raft.metrics();
        let mut last = (openraft::ServerState::Learner, None, 0);
        loop {
            let now = {
                let m = rx.borrow_and_update();
                (m.state, m.current_leader, m.current_term)
            };
            if now != last {
                let (state, leader, term) = now;
                match state {
                    openraft::ServerState::Leader => tracing::info!(term, "became leader (won the election)"),
                    openraft::ServerState::Candidate => {
                        metrics::get().election_started();
                        tracing::info!(term, previous_leader = ?last.1, "standing for election: no heartbeat from a leader within the election timeout")
                    }
                    openraft::ServerState::Follower if leader != last.1 => match leader {
                        Some(l) => tracing::info!(term, leader = l, "following a new leader"),
                        None => tracing::info!(term, "follower; no leader known"),
                    },
                    _ => {}
                }
                last = now;
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
}

/// Takes a snapshot when the bytes applied since the last one reach both
/// `snapshot_log_bytes` and `snapshot_log_ratio` times its size (so that
/// rewriting the whole state costs a bounded share of what is written, at
/// any size), or when `snapshot_interval_secs` passed with anything
/// applied since.
/// A snapshot that would not fit beside the free-space reserve waits
/// (`node/space.rs`): a failed snapshot write stops Raft.
/// When the last snapshot was asked for (by `spawn_snapshot_trigger`), so
/// that `spawn_snapshot_counter` can tell how long it took.
type SnapshotAsked = Arc<std::sync::Mutex<Option<Instant>>>;

fn spawn_snapshot_trigger(
    raft: Raft,
    progress: Arc<SnapshotProgress>,
    space: Arc<Space>,
    asked: SnapshotAsked,
    config: &Config,
) {
    let floor = config.snapshot_log_bytes;
    let ratio = config.snapshot_log_ratio;
    let interval = config.snapshot_interval();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last = Instant::now();
        let mut postponed = false;
        loop {
            tick.tick().await;
            let applied = progress.applied_bytes();
            let due_bytes = applied >= floor.max((ratio * progress.snapshot_bytes() as f64) as u64);
            let m = raft.metrics().borrow().clone();
            let behind = m.last_applied.is_some() && m.last_applied.map(|id| id.index) != m.snapshot.map(|id| id.index);
            let due_time = interval.is_some_and(|every| last.elapsed() >= every) && behind;
            if !(due_bytes || due_time) {
                continue;
            }
            // Room for the new snapshot while the old ones are still kept.
            let need = progress.snapshot_bytes().saturating_mul(2);
            if !space.room_for(need) {
                if !postponed {
                    tracing::warn!(need, "snapshot postponed: it would not leave min_free_bytes free");
                    postponed = true;
                }
                continue;
            }
            postponed = false;
            last = Instant::now();
            *asked.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
            if raft.trigger().snapshot().await.is_err() {
                break;
            }
        }
    });
}

/// Counts each new snapshot openraft reports (built here or installed from
/// the leader) for metrics, with its size and, for one this replica asked
/// for, how long it took.
fn spawn_snapshot_counter(raft: Raft, progress: Arc<SnapshotProgress>, asked: SnapshotAsked) {
    tokio::spawn(async move {
        let mut rx = raft.metrics();
        let mut last = rx.borrow_and_update().snapshot;
        while rx.changed().await.is_ok() {
            let now = rx.borrow_and_update().snapshot;
            if now == last {
                continue;
            }
            last = now;
            let took = asked.lock().unwrap_or_else(|p| p.into_inner()).take().map(|at| at.elapsed());
            metrics::get().snapshot(progress.snapshot_bytes(), took);
        }
    });
}
