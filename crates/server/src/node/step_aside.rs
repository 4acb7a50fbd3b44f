//! A replica whose disk is nearly full does not lead a group that has
//! other voters: as leader it would refuse every write for the whole group
//! while its peers may have room. openraft 0.9 has no leadership transfer,
//! so the leader makes way the way a dead one does: it stops its
//! heartbeats and, for a short while, answers writes and linearizable reads
//! (whose read-index rounds would keep the followers' timers fresh) with
//! UNAVAILABLE; a follower with space then times out and is elected, and
//! the old leader steps down when it hears of the new term. A replica
//! short of space does not stand for election itself.
//!
//! If nobody takes over (every replica's disk is short) it leads on after
//! `GIVE_UP`, serving reads and refusing writes with RESOURCE_EXHAUSTED as
//! a lone replica does. Everything is undone once space is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::space::Space;
use crate::raft::types::Raft;

/// How often the disk's state and the replica's role are looked at.
const EVERY: Duration = Duration::from_millis(100);

/// Handing over, as seen by the write and read paths.
#[derive(Default)]
pub struct StepAside {
    handing_over: AtomicBool,
}

impl StepAside {
    /// Whether this replica is making way for another leader now.
    pub fn handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Relaxed)
    }

    /// Watches `space` for as long as `raft` runs. `give_up`: how long to
    /// wait for another replica to take over (a few election timeouts).
    pub fn watch(raft: Raft, space: Arc<Space>, give_up: Duration) -> Arc<StepAside> {
        let state = Arc::new(StepAside::default());
        let weak = Arc::downgrade(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            let mut low = false;
            let mut since: Option<Instant> = None;
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { break };
                let m = raft.metrics().borrow().clone();
                if m.running_state.is_err() {
                    break;
                }
                if m.membership_config.membership().voter_ids().count() < 2 {
                    continue;
                }
                let now_low = space.disk_low();
                if now_low != low {
                    low = now_low;
                    raft.runtime_config().elect(!low);
                    if low {
                        tracing::warn!(
                            "disk nearly full: this replica does not stand for election until space is back"
                        );
                    }
                }
                let leads = m.current_leader == Some(m.id) && m.state.is_leader();
                since = match (low && leads, since) {
                    (true, None) => {
                        tracing::warn!(
                            "disk nearly full: handing leadership over (heartbeats stop so that a replica with space is elected)"
                        );
                        raft.runtime_config().heartbeat(false);
                        Some(Instant::now())
                    }
                    (true, Some(t)) if t.elapsed() >= give_up && state.handing_over() => {
                        tracing::warn!(
                            "no replica took leadership over within {give_up:?} (their disks may be short too): leading on, writes refused"
                        );
                        raft.runtime_config().heartbeat(true);
                        Some(t)
                    }
                    (true, t) => t,
                    (false, Some(_)) => {
                        raft.runtime_config().heartbeat(true);
                        if leads {
                            tracing::info!("disk space is back: leading on");
                        } else {
                            tracing::info!("another replica leads now");
                        }
                        None
                    }
                    (false, None) => None,
                };
                let handing_over = since.is_some_and(|t| t.elapsed() < give_up);
                state.handing_over.store(handing_over, Ordering::Relaxed);
            }
        });
        state
    }
}
