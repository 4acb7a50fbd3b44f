//! Figures read at scrape time from what the replica already keeps:
//! openraft's metrics (term, role, leader, log, applied, snapshot, purge
//! point) and the log's files (segments, bytes, committed).

use std::sync::Arc;

use openraft::ServerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::Replica;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Role {
    role: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Identity {
    node_id: String,
    position: String,
    version: String,
}

const ROLES: [(ServerState, &str); 4] = [
    (ServerState::Leader, "leader"),
    (ServerState::Follower, "follower"),
    (ServerState::Candidate, "candidate"),
    (ServerState::Learner, "learner"),
];

pub struct RaftCollector {
    replica: Arc<Replica>,
}

impl std::fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftCollector")
    }
}

impl RaftCollector {
    pub fn new(replica: Arc<Replica>) -> RaftCollector {
        RaftCollector { replica }
    }
}

/// One unlabelled gauge; `None` leaves it out (nothing to say yet).
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: Option<u64>) -> Result<(), std::fmt::Error> {
    let Some(v) = v else { return Ok(()) };
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for RaftCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.replica;
        let identity = Identity {
            node_id: r.node_id.to_string(),
            position: r.position.to_string(),
            version: crate::build_version(),
        };
        let info = ConstGauge::new(1i64);
        let mut family =
            e.encode_descriptor("node_info", "This replica: node id, position, version.", None, info.metric_type())?;
        info.encode(family.encode_family(&identity)?)?;
        gauge(
            &mut e,
            "serving",
            "1 once the replica serves clients (recovered and started).",
            Some(u64::from(r.node.get().is_some())),
        )?;

        let Some(raft) = r.raft.get() else { return Ok(()) };
        let m = raft.metrics().borrow().clone();
        gauge(&mut e, "raft_term", "Current Raft term.", Some(m.current_term))?;
        gauge(&mut e, "raft_leader_id", "Node id of the group's leader, as this replica knows it.", m.current_leader)?;
        let role = ConstGauge::new(0i64);
        let mut family =
            e.encode_descriptor("raft_role", "1 for this replica's current Raft role.", None, role.metric_type())?;
        for (state, name) in ROLES {
            ConstGauge::new(i64::from(m.state == state)).encode(family.encode_family(&Role { role: name })?)?;
        }
        gauge(&mut e, "raft_last_log_index", "Index of the last entry in this replica's log.", m.last_log_index)?;
        gauge(&mut e, "raft_applied_index", "Index of the last applied entry.", m.last_applied.map(|id| id.index))?;
        gauge(&mut e, "raft_snapshot_index", "Index the newest snapshot covers.", m.snapshot.map(|id| id.index))?;
        gauge(&mut e, "raft_purged_index", "Last index removed from the log.", m.purged.map(|id| id.index))?;
        gauge(
            &mut e,
            "raft_millis_since_quorum_ack",
            "On a leader: time since a quorum last acknowledged it.",
            m.millis_since_quorum_ack,
        )?;

        let Some(node) = r.node.get() else { return Ok(()) };
        let log = node.log_usage();
        gauge(
            &mut e,
            "raft_committed_index",
            "Last committed index this replica's log was told of.",
            log.committed.map(|id| id.index),
        )?;
        gauge(&mut e, "log_segments", "Raft log segment files.", Some(log.segments))?;
        gauge(&mut e, "log_bytes", "Bytes in the Raft log segment files.", Some(log.bytes))?;
        gauge(&mut e, "sessions", "Exactly-once client sessions the state holds.", node.sessions_held().ok())?;
        Ok(())
    }
}
