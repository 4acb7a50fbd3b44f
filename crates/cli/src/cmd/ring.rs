//! The ring as an operator sees it: each position's id and range, its
//! replicas with their role and progress, and its leader. Shown by
//! `ringkv status` and by `ringkv up` once the cluster is up; built from
//! one node's `Ring` RPC and every replica's `Status`.

use std::time::Duration;

use ringkv_client::{Admin, ClientOptions, NodeStatus, RingMap};

use super::admin::fetch_status;

/// The ring map from the first of `seeds` that answers.
pub async fn fetch_ring(seeds: &[String]) -> anyhow::Result<RingMap> {
    let mut last = None;
    for addr in seeds {
        let opts =
            ClientOptions { timeout: Duration::from_secs(5), connect_timeout: Duration::from_secs(2), ring: false };
        match Admin::new(addr, &opts)?.ring().await {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("ring map from {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no server address given")))
}

/// The ring and the status of every replica in it (an error for each one
/// that did not answer).
pub struct RingView {
    pub ring: RingMap,
    /// `status[p][r]`: replica `r` of position `p`.
    pub status: Vec<Vec<anyhow::Result<NodeStatus>>>,
}

impl RingView {
    pub async fn fetch(seeds: &[String], digest: bool) -> anyhow::Result<RingView> {
        let ring = fetch_ring(seeds).await?;
        let mut status = Vec::new();
        for p in &ring.positions {
            let asks = p.replicas.iter().map(|m| fetch_status(&m.addr, digest));
            status.push(futures::future::join_all(asks).await);
        }
        Ok(RingView { ring, status })
    }

    /// Whether any replica answered.
    pub fn any_answered(&self) -> bool {
        self.status.iter().flatten().any(|s| s.is_ok())
    }

    /// The leader of position `p`, as its replicas report it.
    fn leader(&self, p: usize) -> Option<String> {
        let pos = &self.ring.positions[p];
        self.status[p]
            .iter()
            .zip(&pos.replicas)
            .find(|(s, _)| s.as_ref().is_ok_and(NodeStatus::is_leader))
            .map(|(_, m)| m.addr.clone())
    }

    pub fn print(&self) {
        let r = &self.ring;
        let replicas = r.positions.first().map_or(0, |p| p.replicas.len());
        println!(
            "ring: {} position(s) × {replicas} replica(s), m = {}, placement = {}",
            r.positions.len(),
            r.m,
            r.placement
        );
        for (p, pos) in r.positions.iter().enumerate() {
            let leader = self.leader(p).unwrap_or_else(|| "none".into());
            println!("position {p}  id {}  owns ({}, {}]  leader {leader}", pos.id, pos.range_start, pos.id);
            println!(
                "  {:<22} {:>3} {:<10} {:>5} {:>10} {:>10} {:>10}  digest",
                "replica", "id", "role", "term", "last log", "applied", "snapshot"
            );
            for (m, s) in pos.replicas.iter().zip(&self.status[p]) {
                match s {
                    Ok(s) => println!(
                        "  {:<22} {:>3} {:<10} {:>5} {:>10} {:>10} {:>10}  {}",
                        m.addr,
                        m.id,
                        s.role,
                        s.term,
                        s.last_log_index,
                        s.applied_index,
                        s.snapshot_index,
                        s.digest
                            .as_ref()
                            .map_or("-".into(), |d| format!("{} @{} ({} keys)", d.digest, d.index, d.keys)),
                    ),
                    Err(e) => println!("  {:<22} {:>3} unreachable: {e:#}", m.addr, m.id),
                }
                for alarm in s.as_ref().map(|s| s.alarms.as_slice()).unwrap_or_default() {
                    println!("  {:<22} ALARM: {alarm}", m.addr);
                }
            }
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let r = &self.ring;
        let positions: Vec<_> = r
            .positions
            .iter()
            .enumerate()
            .map(|(p, pos)| {
                let replicas: Vec<_> =
                    pos.replicas.iter().zip(&self.status[p]).map(|(m, s)| replica_json(&m.addr, m.id, s)).collect();
                serde_json::json!({
                    "position": p, "id": pos.id, "range_start": pos.range_start,
                    "leader": self.leader(p), "replicas": replicas,
                })
            })
            .collect();
        serde_json::json!({ "m": r.m, "placement": r.placement, "positions": positions })
    }
}

fn replica_json(addr: &str, id: u64, s: &anyhow::Result<NodeStatus>) -> serde_json::Value {
    match s {
        Ok(s) => serde_json::json!({
            "address": addr, "node_id": s.node_id, "role": s.role.as_str(), "term": s.term,
            "leader_id": s.leader_id, "last_log_index": s.last_log_index,
            "applied_index": s.applied_index, "snapshot_index": s.snapshot_index,
            "purged_index": s.purged_index, "alarms": s.alarms, "digest": s.digest.as_ref().map(|d| &d.digest),
            "digest_index": s.digest.as_ref().map_or(0, |d| d.index), "keys": s.digest.as_ref().map_or(0, |d| d.keys),
            "members": s.members.iter().map(|m| serde_json::json!({"id": m.id, "addr": m.addr, "raft_addr": m.raft_addr})).collect::<Vec<_>>(),
        }),
        Err(e) => serde_json::json!({"address": addr, "node_id": id, "error": format!("{e:#}")}),
    }
}
