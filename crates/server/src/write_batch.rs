//! Write batching: many client writes share one Raft log entry.
//!
//! openraft 0.9's core appends each `client_write` on its own and waits for
//! that append to be on disk (`append_to_log` awaits the flush) before it
//! takes the next one. So the leader did one fsync per write, one write at
//! a time, and its followers saw the log grow a few entries per round
//! trip: with 256 clients, throughput was capped near 1/fsync. Here writes
//! queue instead; a driver takes everything queued as one `Proposal`, and
//! at most `MAX_IN_FLIGHT` proposals are in Raft at once, so while one is
//! being committed the next batch grows. Each request keeps its own answer:
//! the state machine applies the requests of an entry in order, each with
//! its own session check, and returns one reply per request. Every write
//! is still acknowledged only after its entry is committed (on disk on a
//! majority) and applied.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::node::NodeError;
use crate::raft::types::{Proposal, Raft};
use crate::sm::command::Reply;
use crate::sm::session::Request;

/// Proposals in Raft at the same time.
const MAX_IN_FLIGHT: usize = 2;
/// Most requests in one proposal.
const MAX_REQUESTS: usize = 1024;
/// A proposal stops growing past this many bytes of keys and values.
const MAX_BYTES: usize = 1 << 20;

type Waiter = oneshot::Sender<Result<Reply, NodeError>>;

/// The queue in front of `client_write`. Cheap to clone.
#[derive(Clone)]
pub struct WriteBatcher {
    tx: mpsc::UnboundedSender<(Request, Waiter)>,
}

impl WriteBatcher {
    /// Starts the driver task (it ends when every handle is dropped).
    pub fn new(raft: Raft) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(raft, rx));
        Self { tx }
    }

    /// Commits `req` (in some proposal) and returns its answer.
    pub async fn write(&self, req: Request) -> Result<Reply, NodeError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send((req, tx)).is_err() {
            return Err(NodeError::Stopping("the server is shutting down".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(NodeError::Stopping("the write was dropped: the server is shutting down".into())))
    }
}

async fn drive(raft: Raft, mut rx: mpsc::UnboundedReceiver<(Request, Waiter)>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot is what lets the next batch grow.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let mut bytes = first.0.cmd.size_hint();
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
            match rx.try_recv() {
                Ok(item) => {
                    bytes += item.0.cmd.size_hint();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes one batch and answers each of its waiters.
async fn propose(raft: &Raft, batch: Vec<(Request, Waiter)>) {
    let (reqs, waiters): (Vec<Request>, Vec<Waiter>) = batch.into_iter().unzip();
    let n = reqs.len();
    crate::metrics::get().proposed(n);
    match raft.client_write(Proposal::new(reqs)).await {
        Ok(resp) if resp.data.len() == n => {
            for (waiter, reply) in waiters.into_iter().zip(resp.data) {
                let _ = waiter.send(Ok(reply));
            }
        }
        Ok(resp) => {
            tracing::error!(requests = n, replies = resp.data.len(), "a proposal's replies do not match its requests");
            for waiter in waiters {
                let mismatch = format!("reply count mismatch: {n} requests, {} replies", resp.data.len());
                let _ = waiter.send(Err(NodeError::Internal(mismatch)));
            }
        }
        Err(e) => {
            for waiter in waiters {
                let _ = waiter.send(Err(NodeError::from_write(e.clone())));
            }
        }
    }
}
