//! `/healthz`: can this replica serve a client now? Yes only once it has
//! recovered and started serving, and its group has a leader: itself
//! acknowledged by a quorum within an election timeout, or another
//! replica it follows. Otherwise the body says what is missing.

use ringkv_metrics::Health;

use super::Replica;

pub fn check(r: &Replica) -> Health {
    let Some(raft) = r.raft.get() else {
        return Health::NotReady("recovering: rebuilding the state from the snapshot and the log".into());
    };
    let m = raft.metrics().borrow().clone();
    if let Err(fatal) = &m.running_state {
        return Health::NotReady(format!("raft stopped: {fatal}"));
    }
    if r.node.get().is_none() {
        return Health::NotReady(format!(
            "starting: waiting for the group to elect a leader (term {})",
            m.current_term
        ));
    }
    let alone = m.membership_config.membership().voter_ids().count() == 1;
    match m.current_leader {
        // A group of one is its own quorum: openraft times no acks for it.
        Some(leader) if leader == m.id && alone => {
            Health::Ready(format!("ok: leader of a group of one, term {}", m.current_term))
        }
        None => {
            Health::NotReady(format!("no leader: the group has none this replica knows of (term {})", m.current_term))
        }
        Some(leader) if leader == m.id => match m.millis_since_quorum_ack {
            Some(ms) if ms <= r.election_timeout_ms => {
                Health::Ready(format!("ok: leader, term {}, quorum heard {ms} ms ago", m.current_term))
            }
            since => Health::NotReady(format!(
                "no quorum: this leader has not heard from a majority for {} (term {})",
                since.map_or("ever".to_string(), |ms| format!("{ms} ms")),
                m.current_term
            )),
        },
        Some(leader) => Health::Ready(format!("ok: follower of node {leader}, term {}", m.current_term)),
    }
}
