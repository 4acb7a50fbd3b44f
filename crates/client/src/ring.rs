//! The client's ring-aware mode: send each request straight to a replica
//! of the group that owns its key, preferring that group's leader, instead
//! of letting the servers route it along the ring.
//!
//! The map comes from any server's `Ring` RPC on first use. Each answer
//! names the leader of the group that gave it (`ringkv-leader`), so the
//! client's aim follows leadership changes without asking. When the map
//! cannot be fetched, or every replica of the owner group failed within a
//! call, the request goes to the addresses the client was given and the
//! servers route it (server-side routing is always correct, only slower);
//! the map is fetched again a little later. A request is resent with the
//! same session numbers whichever replica it goes to, so exactly-once
//! holds across these switches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use num_bigint::BigUint;
use ringkv_api::pb::{self, key_value_client::KeyValueClient};
use ringkv_ring::{Placement, Ring};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::{Admin, ClientError, RingMap};

pub use ringkv_api::headers::{HOPS, LEADER};
/// How long after a failed or suspect map the next fetch may happen.
const REFETCH_AFTER: Duration = Duration::from_secs(1);

/// A request with a key (all of them).
pub(crate) trait Keyed {
    fn key(&self) -> &Bytes;
    /// Whether any replica of the owner group may answer (a serializable
    /// read) rather than its leader: such requests are spread over them.
    fn any_replica(&self) -> bool {
        false
    }
}

macro_rules! keyed {
    ($($req:ty),*) => {$(
        impl Keyed for $req {
            fn key(&self) -> &Bytes {
                &self.key
            }
        }
    )*};
}

keyed!(pb::SetRequest, pb::DelRequest, pb::DelVersionRequest, pb::TestAndSetRequest, pb::PutRequest, pb::TrimRequest);

macro_rules! keyed_read {
    ($($req:ty),*) => {$(
        impl Keyed for $req {
            fn key(&self) -> &Bytes {
                &self.key
            }

            fn any_replica(&self) -> bool {
                self.serializable
            }
        }
    )*};
}

keyed_read!(pb::GetRequest, pb::GetAtRequest, pb::HistoryRequest);

/// Forwarding hops seen in answers (both modes): how well routing works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Answers received.
    pub answers: u64,
    /// Their hops, summed.
    pub hops: u64,
    /// The most hops one answer took.
    pub max_hops: u64,
}

impl RouteStats {
    /// Mean hops per answer.
    pub fn mean(&self) -> f64 {
        if self.answers == 0 {
            0.0
        } else {
            self.hops as f64 / self.answers as f64
        }
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    answers: AtomicU64,
    hops: AtomicU64,
    max_hops: AtomicU64,
}

impl Stats {
    pub(crate) fn record(&self, md: &MetadataMap) {
        let hops = hops_in(md);
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.hops.fetch_add(hops, Ordering::Relaxed);
        self.max_hops.fetch_max(hops, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> RouteStats {
        RouteStats {
            answers: self.answers.load(Ordering::Relaxed),
            hops: self.hops.load(Ordering::Relaxed),
            max_hops: self.max_hops.load(Ordering::Relaxed),
        }
    }
}

fn hops_in(md: &MetadataMap) -> u64 {
    md.get(HOPS).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Where one attempt goes.
pub(crate) struct Target {
    pub(crate) stub: KeyValueClient<Channel>,
    /// The owner group and replica address, when sent straight there.
    direct: Option<(usize, String)>,
}

/// Makes a stub for a replica's address (with the client's options).
pub(crate) type MakeStub = Box<dyn Fn(&str) -> Result<KeyValueClient<Channel>, ClientError> + Send + Sync>;

/// One position: its replicas' stubs and whom to call first.
struct Group {
    replicas: Vec<(String, KeyValueClient<Channel>)>,
    aim: Mutex<Aim>,
}

#[derive(Default)]
struct Aim {
    leader: Option<String>,
    next: usize,
}

/// The ring map as fetched.
struct Map {
    ring: Ring,
    groups: Vec<Group>,
}

/// The shared state of a ring-aware client.
pub(crate) struct Routing {
    /// The addresses the client was given (server-side routing).
    seeds: KeyValueClient<Channel>,
    seed_channel: Channel,
    make_stub: MakeStub,
    map: RwLock<Option<Arc<Map>>>,
    /// No fetch before this instant (after a failure or a suspect answer).
    not_before: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    /// Turns of the replicas that serve requests any replica may answer.
    spread: AtomicU64,
}

impl Routing {
    pub(crate) fn new(seeds: KeyValueClient<Channel>, seed_channel: Channel, make_stub: MakeStub) -> Routing {
        Routing {
            seeds,
            seed_channel,
            make_stub,
            map: RwLock::default(),
            not_before: Mutex::default(),
            fetching: Default::default(),
            spread: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<Arc<Map>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether to fetch the map now: none yet, or suspected stale; and no
    /// fetch failed or was suspected within `REFETCH_AFTER`.
    fn fetch_due(&self) -> bool {
        let nb = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        match nb {
            Some(t) => Instant::now() >= t,
            None => self.current().is_none(),
        }
    }

    /// The target of attempt number `attempt` (0-based) of a call for
    /// `key`: the owner group's leader (or next replica) while attempts
    /// are fewer than its replicas, then the seeds.
    /// With `any_replica`, the group's replicas take turns instead.
    pub(crate) async fn pick(&self, key: &Bytes, any_replica: bool, attempt: usize, timeout: Duration) -> Target {
        if self.fetch_due() {
            self.fetch(timeout).await;
        }
        let direct = self.current().and_then(|m| {
            let p = m.ring.owner_of_key(key);
            let g = &m.groups[p];
            if attempt >= g.replicas.len() {
                return None;
            }
            let (addr, stub) = if any_replica {
                let turn = self.spread.fetch_add(1, Ordering::Relaxed) as usize;
                &g.replicas[turn % g.replicas.len()]
            } else {
                let aim = g.aim.lock().unwrap_or_else(|e| e.into_inner());
                aim.leader
                    .as_ref()
                    .and_then(|l| g.replicas.iter().find(|(a, _)| a == l))
                    .unwrap_or(&g.replicas[aim.next % g.replicas.len()])
            };
            Some(Target { stub: stub.clone(), direct: Some((p, addr.clone())) })
        });
        direct.unwrap_or_else(|| Target { stub: self.seeds.clone(), direct: None })
    }

    /// An answer came back from `t`: learn its group's leader; more than
    /// one hop from a direct send means the map is off.
    pub(crate) fn answered(&self, t: &Target, md: &MetadataMap) {
        let Some((p, _)) = &t.direct else { return };
        if let Some(map) = self.current() {
            if let Some(leader) = md.get(LEADER).and_then(|v| v.to_str().ok()) {
                let g = &map.groups[*p];
                if g.replicas.iter().any(|(a, _)| a == leader) {
                    g.aim.lock().unwrap_or_else(|e| e.into_inner()).leader = Some(leader.to_owned());
                }
            }
        }
        if hops_in(md) > 1 {
            self.suspect();
        }
    }

    /// `t` did not answer: aim at the group's next replica, and look at the
    /// map again soon.
    pub(crate) fn failed(&self, t: &Target) {
        let Some((p, addr)) = &t.direct else { return };
        if let Some(map) = self.current() {
            let g = &map.groups[*p];
            let mut aim = g.aim.lock().unwrap_or_else(|e| e.into_inner());
            if aim.leader.as_ref() == Some(addr) {
                aim.leader = None;
            }
            if let Some(i) = g.replicas.iter().position(|(a, _)| a == addr) {
                aim.next = i + 1;
            }
        }
        self.suspect();
    }

    /// The map may be stale: fetch it again, not before `REFETCH_AFTER`.
    fn suspect(&self) {
        let mut nb = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if nb.is_none() {
            *nb = Some(Instant::now() + REFETCH_AFTER);
        }
    }

    /// Fetches the map from the seeds (one caller at a time). On failure
    /// the old map (if any) stays and the seeds route meanwhile.
    async fn fetch(&self, timeout: Duration) {
        let _one = self.fetching.lock().await;
        if !self.fetch_due() {
            return;
        }
        let admin = Admin::on(self.seed_channel.clone(), timeout);
        let map = match admin.ring().await {
            Ok(r) => self.build(r).ok(),
            Err(_) => None,
        };
        let mut nb = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        match map {
            Some(m) => {
                *nb = None;
                *self.map.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(m));
            }
            None => *nb = Some(Instant::now() + REFETCH_AFTER),
        }
    }

    fn build(&self, r: RingMap) -> Result<Map, ClientError> {
        let bad = |m: String| ClientError::Protocol(format!("ring map: {m}"));
        let placement: Placement = r.placement.parse().map_err(bad)?;
        let ids = r
            .positions
            .iter()
            .map(|p| p.id.parse::<BigUint>().map_err(|_| bad(format!("id {:?} is not a number", p.id))))
            .collect::<Result<Vec<_>, _>>()?;
        let ring = Ring::with_ids(r.m, placement, ids).map_err(|e| bad(e.to_string()))?;
        let groups = r
            .positions
            .iter()
            .map(|p| {
                let replicas = p
                    .replicas
                    .iter()
                    .map(|m| Ok((m.addr.clone(), (self.make_stub)(&m.addr)?)))
                    .collect::<Result<Vec<_>, ClientError>>()?;
                if replicas.is_empty() {
                    return Err(bad(format!("position {} has no replicas", p.position)));
                }
                Ok(Group { replicas, aim: Mutex::new(Aim { leader: p.leader.clone(), next: 0 }) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Map { ring, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_api::pb::{Member, RingPosition, RingReply};

    fn stub(addr: &str) -> Result<KeyValueClient<Channel>, ClientError> {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(KeyValueClient::new(ep.connect_lazy()))
    }

    /// Two positions of 3 replicas (ports 1x and 2x), position 1's leader known.
    fn routing() -> Routing {
        let seeds = stub("127.0.0.1:9").unwrap();
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let r = Routing::new(seeds, channel, Box::new(stub));
        let ring = Ring::evenly(64, 2, Placement::Hash).unwrap();
        let positions = (0..2)
            .map(|p| RingPosition {
                position: p as u32,
                id: ring.id(p).to_string(),
                range_start: ring.range(p).0.to_string(),
                replicas: (0..3)
                    .map(|i| Member { id: i, addr: format!("127.0.0.1:{}{i}", p + 1), raft_addr: String::new() })
                    .collect(),
                leader: (p == 1).then(|| "127.0.0.1:22".to_owned()),
            })
            .collect();
        let reply = RingReply { m: 64, placement: "hash".into(), positions, position: 0, max_hops: 32 };
        *r.map.write().unwrap() = Some(Arc::new(r.build(RingMap::from(reply)).unwrap()));
        r
    }

    fn key_of(r: &Routing, p: usize) -> Bytes {
        let map = r.current().unwrap();
        (0..1000i64)
            .map(|k| Bytes::from(ringkv_api::encode_key(&k.into())))
            .find(|k| map.ring.owner_of_key(k) == p)
            .unwrap()
    }

    fn addr(t: &Target) -> Option<String> {
        t.direct.as_ref().map(|(_, a)| a.clone())
    }

    #[tokio::test]
    async fn aims_at_the_owner_leader_then_rotates_then_lets_the_servers_route() {
        let r = routing();
        let t = Duration::from_secs(1);
        let k1 = key_of(&r, 1);
        let first = r.pick(&k1, false, 0, t).await;
        assert_eq!(addr(&first).as_deref(), Some("127.0.0.1:22"), "the known leader");
        r.failed(&first);
        let second = r.pick(&k1, false, 1, t).await;
        assert_eq!(addr(&second).as_deref(), Some("127.0.0.1:20"), "the replica after the failed one");
        assert!(r.pick(&k1, false, 3, t).await.direct.is_none(), "every replica tried: the seeds route");

        let k0 = key_of(&r, 0);
        let t0 = r.pick(&k0, false, 0, t).await;
        assert_eq!(addr(&t0).as_deref(), Some("127.0.0.1:10"), "no leader known: the first replica");
        let mut md = MetadataMap::new();
        md.insert(LEADER, "127.0.0.1:11".parse().unwrap());
        md.insert(HOPS, "1".parse().unwrap());
        r.answered(&t0, &md);
        assert_eq!(addr(&r.pick(&k0, false, 0, t).await).as_deref(), Some("127.0.0.1:11"), "learned from the answer");
        md.insert(LEADER, "10.0.0.1:1".parse().unwrap());
        r.answered(&t0, &md);
        assert_eq!(
            addr(&r.pick(&k0, false, 0, t).await).as_deref(),
            Some("127.0.0.1:11"),
            "a stranger is not a leader"
        );
    }

    #[tokio::test]
    async fn serializable_reads_take_the_replicas_in_turn() {
        let r = routing();
        let t = Duration::from_secs(1);
        let k1 = key_of(&r, 1);
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..3 {
            seen.extend(addr(&r.pick(&k1, true, 0, t).await));
        }
        seen.sort();
        assert_eq!(seen, ["127.0.0.1:20", "127.0.0.1:21", "127.0.0.1:22"], "each replica once, not only the leader");
    }

    #[tokio::test]
    async fn a_long_route_marks_the_map_for_refetching() {
        let r = routing();
        let k0 = key_of(&r, 0);
        let t0 = r.pick(&k0, false, 0, Duration::from_secs(1)).await;
        let mut md = MetadataMap::new();
        md.insert(HOPS, "1".parse().unwrap());
        r.answered(&t0, &md);
        assert!(r.not_before.lock().unwrap().is_none(), "one hop is a leader forward");
        md.insert(HOPS, "2".parse().unwrap());
        r.answered(&t0, &md);
        assert!(r.not_before.lock().unwrap().is_some(), "two hops: sent to the wrong group");
    }

    #[test]
    fn a_bad_map_is_a_protocol_error() {
        let r = RingReply { m: 64, placement: "sorted".into(), ..Default::default() };
        let seeds = tonic::transport::Endpoint::from_static("http://127.0.0.1:9");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let ch = seeds.connect_lazy();
            let routing = Routing::new(KeyValueClient::new(ch.clone()), ch, Box::new(stub));
            assert!(matches!(routing.build(RingMap::from(r)), Err(ClientError::Protocol(m)) if m.contains("sorted")));
        });
    }
}
