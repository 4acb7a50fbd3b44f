//! Ring routing: the step before everything else a `KeyValue` request
//! meets. A request whose key this node's group does not own is forwarded,
//! unchanged, to the next hop the ring names (`ringkv_ring::Ring::next_hop`:
//! the owner when a finger owns the key, else the closest preceding
//! finger), at any replica of that group, preferring the leader this node
//! last heard of, so that the owner group rarely has to forward it once
//! more to its leader. The node the client called relays the answer.
//!
//! Leaders are learned from replies: every reply carries the leader of the
//! group that answered it as the `ringkv-leader` header, which each node
//! sets for its own group on the way back. A forward that fails moves this
//! node's preference to the group's next replica; the request itself is
//! not resent here (a write might then apply twice): its client retries.
//!
//! A request forwarded `max_hops` times without reaching its owner is
//! refused with FAILED_PRECONDITION: with consistent ring configurations a
//! path is at most ⌈log2 n⌉ hops, so it can only be looping.

use std::sync::Mutex;

use ringkv_api::pb::{Member, RingPosition, RingReply};
use ringkv_ring::{Hop, Ring};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::forward::{self, Forwardable, Forwarder, Leg, Routed, Via};
use super::status;
use crate::config::Replica;
use crate::node::Node;

pub use ringkv_api::headers::LEADER;

type Answer<R> = Result<Response<R>, Status>;

/// One ring position as this node sees it: its replicas and whom to call.
struct Group {
    replicas: Vec<Replica>,
    aim: Mutex<Aim>,
}

/// Which replica of a group to call next.
#[derive(Default)]
struct Aim {
    /// Its leader, as last learned from a reply.
    leader: Option<String>,
    /// Otherwise this replica (rotates on failure).
    next: usize,
}

impl Group {
    fn aim(&self) -> std::sync::MutexGuard<'_, Aim> {
        self.aim.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn target(&self) -> String {
        let aim = self.aim();
        aim.leader.clone().unwrap_or_else(|| self.replicas[aim.next % self.replicas.len()].addr.clone())
    }

    fn learn(&self, leader: &str) {
        if self.replicas.iter().any(|r| r.addr == leader) {
            self.aim().leader = Some(leader.to_owned());
        }
    }

    /// `addr` did not serve: try the replica after it next time.
    fn failed(&self, addr: &str) {
        let mut aim = self.aim();
        if aim.leader.as_deref() == Some(addr) {
            aim.leader = None;
        }
        if let Some(i) = self.replicas.iter().position(|r| r.addr == addr) {
            aim.next = i + 1;
        }
    }
}

/// This node's place on the ring and its view of the other positions.
pub struct Router {
    ring: Ring,
    me: usize,
    groups: Vec<Group>,
    max_hops: u32,
    node: Node,
}

impl Router {
    /// `groups[p]` holds position `p`'s replicas; `me` is this node's.
    pub fn new(ring: Ring, me: usize, groups: Vec<Vec<Replica>>, max_hops: u32, node: Node) -> Router {
        let groups = groups.into_iter().map(|replicas| Group { replicas, aim: Mutex::default() }).collect();
        Router { ring, me, groups, max_hops, node }
    }

    /// Where `req` goes: `None` to serve it here, or the next position.
    /// Bad keys are refused here, before they travel.
    pub fn next_hop<T: Routed>(&self, req: &Request<T>) -> Result<Option<usize>, Status> {
        let key = req.get_ref().route_key()?;
        let id = self.ring.key_id(&key);
        match self.ring.next_hop(self.me, &id) {
            Hop::Local => Ok(None),
            Hop::Forward(_) if Via::of(req).hops >= self.max_hops => {
                crate::metrics::get().hop_limit_refused();
                Err(status::hop_limit(self.max_hops, &ringkv_ring::show(&id), self.me))
            }
            Hop::Forward(next) => Ok(Some(next)),
        }
    }

    /// Forwards `req` to position `next` and relays the answer, learning
    /// that group's leader from it.
    pub async fn forward<T: Forwardable>(
        &self,
        forwarder: &Forwarder,
        next: usize,
        req: Request<T>,
    ) -> Answer<T::Reply> {
        let group = &self.groups[next];
        let addr = group.target();
        let via = Via::of(&req);
        let answer =
            forwarder.forward(&addr, &format!("ring position {next}"), req.into_inner(), via, Leg::ToPosition).await;
        let md = match &answer {
            Ok(r) => r.metadata(),
            Err(s) => s.metadata(),
        };
        match leader_in(md) {
            Some(leader) => group.learn(&leader),
            None if answer.is_err() => group.failed(&addr),
            None => {}
        }
        answer
    }

    /// Marks an answer leaving this node: hops taken from here on (0 when
    /// served here) and this group's leader.
    pub fn stamp<R>(&self, mut answer: Answer<R>) -> Answer<R> {
        let leader = self.own_leader();
        let md = match &mut answer {
            Ok(r) => r.metadata_mut(),
            Err(s) => s.metadata_mut(),
        };
        if !md.contains_key(forward::HOPS) {
            forward::set_hops(md, 0);
        }
        md.remove(LEADER);
        if let Some(v) = leader.and_then(|l| l.parse().ok()) {
            md.insert(LEADER, v);
        }
        answer
    }

    /// The client address of this group's leader, if one is known.
    fn own_leader(&self) -> Option<String> {
        let m = self.node.raft().metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config.membership().get_node(&leader).map(|n| n.client_addr.clone())
    }

    /// The ring map (the `Ring` RPC).
    pub fn map(&self) -> RingReply {
        let positions = (0..self.ring.len())
            .map(|p| {
                let (start, id) = self.ring.range(p);
                let group = &self.groups[p];
                let leader = if p == self.me { self.own_leader() } else { group.aim().leader.clone() };
                let replicas = group
                    .replicas
                    .iter()
                    .map(|r| Member {
                        id: r.id,
                        addr: r.addr.clone(),
                        raft_addr: r.raft_addr.clone().unwrap_or_default(),
                    })
                    .collect();
                RingPosition {
                    position: p as u32,
                    id: ringkv_ring::show(&id),
                    range_start: ringkv_ring::show(&start),
                    replicas,
                    leader,
                }
            })
            .collect();
        RingReply {
            m: self.ring.m(),
            placement: self.ring.placement().to_string(),
            positions,
            position: self.me as u32,
            max_hops: self.max_hops,
        }
    }

    pub fn position(&self) -> usize {
        self.me
    }

    /// How many positions the ring has.
    pub fn positions(&self) -> usize {
        self.ring.len()
    }

    /// The positions that may own integer keys in `[from, to]`.
    pub fn positions_for_range(&self, from: &[u8], to: &[u8]) -> Vec<usize> {
        self.ring.positions_for_range(from, to)
    }
}

fn leader_in(md: &MetadataMap) -> Option<String> {
    md.get(LEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
