//! The server side of the replication transport (`raft.proto`): decodes
//! openraft's requests, hands them to the local Raft, encodes its answer.
//!
//! One addition to openraft's own handling, on votes: a replica that
//! refuses a candidate because the candidate's log is shorter than its own,
//! while it has heard no leader for a whole leader lease, stands for
//! election at once (`stand_after`). openraft 0.9 refuses such a candidate
//! without telling it anything but "no", and the refusing replica would
//! otherwise wait out its own timer (lease plus election timeout, and
//! twice the lease again when it had once lost to a longer log): with a
//! leader just killed, that wait is the whole failover.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::raft::{VoteRequest, VoteResponse};
use ringkv_api::pb::{raft_server, RaftPayload};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::raft::types::{NodeId, Raft};

/// Serves `Raft` RPCs for one replica.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    /// When a leader's append (or heartbeat) last reached this replica.
    heard: Arc<Mutex<Instant>>,
}

impl RaftService {
    pub fn new(raft: Raft) -> Self {
        Self { raft, heard: Arc::new(Mutex::new(Instant::now())) }
    }

    /// Starts the elections `stand_after` asks for after this replica
    /// answered `resp` to `req`.
    async fn after_vote(&self, req: &VoteRequest<NodeId>, resp: &VoteResponse<NodeId>) {
        let heard = *self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.raft.config();
        let lease = Duration::from_millis(config.election_timeout_max);
        let me = self.raft.metrics().borrow().id;
        let elections = stand_after(me, req, resp, heard.elapsed(), lease);
        if elections > 0 {
            tracing::info!(
                candidate = req.vote.leader_id().voted_for(),
                term = req.vote.leader_id().term,
                "refused a candidate with a shorter log, no leader heard within the lease: standing at once"
            );
        }
        for _ in 0..elections {
            if self.raft.trigger().elect().await.is_err() {
                break;
            }
        }
    }
}

/// How many elections to start, one after the other, after answering
/// `resp` (this replica `me`'s answer) to the vote request `req`, with a
/// leader last heard `heard_ago` and openraft's leader lease `lease`.
///
/// Only when the vote was refused and the candidate's log is shorter: then
/// this replica's log is the better one to lead with. Only when no leader
/// was heard for a whole lease (openraft also refuses within the lease,
/// and a replica that hears its leader must not disrupt it), and only when
/// this replica's vote is not an uncommitted one for someone else (it just
/// voted for another candidate, who may be winning). Not for a candidate
/// of an older term (a late request).
///
/// As many elections as it takes to pass the candidate's term: the
/// candidate voted for itself in its term, so a campaign in that same term
/// would be refused; each election raises this replica's term by one.
/// Usually the candidate is one term ahead, so two. Standing early is safe
/// in Raft (any replica may stand in a new term at any time; a vote is
/// still granted once per term and only to a log at least as long); it
/// only advances what this replica's own timer would do.
pub fn stand_after(
    me: NodeId,
    req: &VoteRequest<NodeId>,
    resp: &VoteResponse<NodeId>,
    heard_ago: Duration,
    lease: Duration,
) -> u64 {
    let mine = &resp.vote;
    let (my_term, their_term) = (mine.leader_id().term, req.vote.leader_id().term);
    let refused_by_log = !resp.vote_granted && resp.last_log_id > req.last_log_id;
    let free = mine.is_committed() || mine.leader_id().voted_for() == Some(me);
    let leading = mine.is_committed() && mine.leader_id().voted_for() == Some(me);
    if !refused_by_log || !free || leading || heard_ago <= lease || their_term < my_term {
        return 0;
    }
    their_term - my_term + 1
}

fn decode<T: DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    postcard::from_bytes(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(answer: &T) -> Result<Response<RaftPayload>, Status> {
    let data = postcard::to_allocvec(answer).map_err(|e| Status::internal(format!("cannot encode: {e}")))?;
    Ok(Response::new(RaftPayload { data: data.into() }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        encode(&self.raft.append_entries(decode(req)?).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: VoteRequest<NodeId> = decode(req)?;
        let answer = self.raft.vote(req.clone()).await;
        if let Ok(resp) = &answer {
            self.after_vote(&req, resp).await;
        }
        encode(&answer)
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        encode(&self.raft.install_snapshot(decode(req)?).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    const LEASE: Duration = Duration::from_millis(120);
    const SILENT: Duration = Duration::from_millis(200);

    fn log(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 0), index))
    }

    fn committed(term: u64, node: NodeId) -> Vote<NodeId> {
        let mut v = Vote::new(term, node);
        v.commit();
        v
    }

    /// Candidate 1 in term 6 with a log to 10; this replica (2) answers.
    fn ask(answer: Vote<NodeId>, granted: bool, my_log: u64) -> (VoteRequest<NodeId>, VoteResponse<NodeId>) {
        (VoteRequest::new(Vote::new(6, 1), log(5, 10)), VoteResponse::new(answer, log(5, my_log), granted))
    }

    #[test]
    fn a_longer_log_stands_past_the_candidates_term_once_the_lease_is_over() {
        // Followed leader 0 in term 5: two elections take it to term 7.
        let (req, resp) = ask(committed(5, 0), false, 12);
        assert_eq!(stand_after(2, &req, &resp, SILENT, LEASE), 2);
        // A candidate itself in term 6 (its own vote): one, to term 7.
        let (req, resp) = ask(Vote::new(6, 2), false, 12);
        assert_eq!(stand_after(2, &req, &resp, SILENT, LEASE), 1);
    }

    #[test]
    fn otherwise_it_leaves_the_election_to_the_timers() {
        let cases = [
            ("granted", ask(Vote::new(6, 1), true, 12), SILENT),
            ("refused for another reason: the candidate's log is as long", ask(committed(5, 0), false, 10), SILENT),
            ("a leader was heard within the lease", ask(committed(5, 0), false, 12), LEASE),
            ("it just voted for someone else", ask(Vote::new(6, 3), false, 12), SILENT),
            ("it leads", ask(committed(5, 2), false, 12), SILENT),
            ("the candidate's term is behind", ask(committed(8, 0), false, 12), SILENT),
        ];
        for (why, (req, resp), heard_ago) in cases {
            assert_eq!(stand_after(2, &req, &resp, heard_ago, LEASE), 0, "{why}");
        }
    }
}
