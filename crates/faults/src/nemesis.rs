//! The nemesis: faults on a seeded schedule, one round at a time: a quiet
//! spell, a fault held for a while, its repair. The same seed gives the
//! same choices (which faults, for how long, leader or not); when they
//! land depends on the machine.
//!
//! By default a round touches at most a minority of the group (one of
//! three replicas), so the group must stay available and correct; a run
//! may ask for more (`max_faulty`), and then clients must see
//! unavailability, never a wrong answer.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::FaultsError;
use ringkv_testkit::{Cluster, Mode};

/// A named fault schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// kill -9 and restart from the same command line.
    Kill,
    /// SIGSTOP, then SIGCONT: a stalled process that comes back believing
    /// what it believed before (a paused leader is the classic source of
    /// stale reads).
    Pause,
    /// Network partitions between replicas: isolate one (both ways), make
    /// one unable to send (one way), or cut the link between two.
    Partition,
    /// Any of the above, round by round.
    Mixed,
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kill" => Ok(Scenario::Kill),
            "pause" => Ok(Scenario::Pause),
            "partition" => Ok(Scenario::Partition),
            "mixed" => Ok(Scenario::Mixed),
            _ => Err(format!("unknown scenario {s:?}: use kill, pause, partition or mixed")),
        }
    }
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Kill,
    Pause,
    /// No traffic to or from the node's Raft.
    Isolate,
    /// The node's own Raft connections carry nothing (it cannot send
    /// requests); its peers still reach it.
    OneWay,
    /// The links between two nodes, both ways.
    CutLink,
}

/// A fault as it happened, for the report (times since the run started).
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    pub kind: FaultKind,
    pub nodes: Vec<usize>,
    /// Whether the first node led when the fault began.
    pub on_leader: bool,
    pub start_ns: u64,
    pub end_ns: u64,
    /// How it was repaired.
    pub repair: String,
}

/// The schedule's parameters.
#[derive(Debug, Clone)]
pub struct NemesisSpec {
    pub scenario: Scenario,
    pub duration: Duration,
    pub seed: u64,
    /// Most nodes one round may touch.
    pub max_faulty: usize,
}

/// Runs rounds until `spec.duration` has passed since `start`, leaving
/// every fault repaired; returns what was done.
pub async fn run(cluster: &mut Cluster, spec: &NemesisSpec, start: Instant) -> Result<Vec<FaultEvent>, FaultsError> {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x006e_656d_6573_6973);
    let n = cluster.group_size();
    let mut events = Vec::new();
    let end = start + spec.duration;
    loop {
        let quiet = Duration::from_millis(rng.random_range(1000..3000));
        let hold = Duration::from_millis(rng.random_range(1500..5000));
        if Instant::now() + quiet + hold > end {
            break;
        }
        tokio::time::sleep(quiet).await;
        let kind = pick_kind(spec.scenario, &mut rng);
        let leader = cluster.leader(GROUP).await;
        let count = rng.random_range(1..=spec.max_faulty.clamp(1, n));
        let nodes = pick_nodes(&mut rng, n, count, leader, kind);
        let on_leader = leader == Some(nodes[0]);
        let start_ns = start.elapsed().as_nanos() as u64;
        inject(cluster, kind, &nodes);
        tokio::time::sleep(hold).await;
        let repair = repair(cluster, kind, &nodes, &mut rng)?;
        let end_ns = start.elapsed().as_nanos() as u64;
        events.push(FaultEvent { kind, nodes, on_leader, start_ns, end_ns, repair });
    }
    cluster.heal_all()?;
    Ok(events)
}

fn pick_kind(scenario: Scenario, rng: &mut StdRng) -> FaultKind {
    use FaultKind::*;
    let partitions = [Isolate, Isolate, OneWay, CutLink];
    match scenario {
        Scenario::Kill => Kill,
        Scenario::Pause => Pause,
        Scenario::Partition => partitions[rng.random_range(0..partitions.len())],
        Scenario::Mixed => [Kill, Pause, Isolate, OneWay, CutLink][rng.random_range(0..5)],
    }
}

/// `count` distinct nodes, the leader first with probability 0.6 (faults
/// on the leader are the interesting ones). A cut link needs two ends.
fn pick_nodes(rng: &mut StdRng, n: usize, count: usize, leader: Option<usize>, kind: FaultKind) -> Vec<usize> {
    let count = if kind == FaultKind::CutLink { 2.min(n) } else { count };
    let mut pool: Vec<usize> = (0..n).collect();
    let mut nodes = Vec::new();
    if let Some(l) = leader.filter(|_| rng.random_bool(0.6)) {
        nodes.push(l);
        pool.retain(|&x| x != l);
    }
    while nodes.len() < count && !pool.is_empty() {
        nodes.push(pool.swap_remove(rng.random_range(0..pool.len())));
    }
    nodes
}

/// The nemesis works on one group: position 0 of the cluster.
const GROUP: usize = 0;

/// Blackholes the directed Raft link `from` → `to`.
fn cut(cluster: &Cluster, from: usize, to: usize) {
    if let Some(link) = cluster.link(GROUP, from, to) {
        link.blackhole();
    }
}

fn inject(cluster: &mut Cluster, kind: FaultKind, nodes: &[usize]) {
    let n = cluster.group_size();
    for &x in nodes {
        match kind {
            FaultKind::Kill => cluster.kill9(GROUP, x),
            FaultKind::Pause => cluster.pause(GROUP, x),
            FaultKind::Isolate => {
                for y in (0..n).filter(|&y| y != x) {
                    cut(cluster, x, y);
                    cut(cluster, y, x);
                }
            }
            FaultKind::OneWay => {
                for y in (0..n).filter(|&y| y != x) {
                    cut(cluster, x, y);
                }
            }
            FaultKind::CutLink => {}
        }
    }
    if kind == FaultKind::CutLink && nodes.len() == 2 {
        cut(cluster, nodes[0], nodes[1]);
        cut(cluster, nodes[1], nodes[0]);
    }
}

fn repair(cluster: &mut Cluster, kind: FaultKind, nodes: &[usize], rng: &mut StdRng) -> Result<String, FaultsError> {
    Ok(match kind {
        FaultKind::Kill => {
            for &x in nodes {
                cluster.restart(GROUP, x)?;
            }
            "restarted".into()
        }
        FaultKind::Pause => {
            for &x in nodes {
                cluster.resume(GROUP, x);
            }
            "resumed".into()
        }
        FaultKind::Isolate | FaultKind::OneWay | FaultKind::CutLink => {
            let cut = rng.random_bool(0.5);
            for (_, link) in cluster.links().filter(|(_, l)| l.mode() != Mode::Pass) {
                link.heal(cut);
            }
            if cut { "healed, stalled connections cut" } else { "healed, stalled traffic delivered" }.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_touches_at_most_max_faulty_nodes_and_prefers_the_leader() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut on_leader = 0;
        for _ in 0..1000 {
            let kind = pick_kind(Scenario::Mixed, &mut rng);
            let count = rng.random_range(1..=1usize);
            let nodes = pick_nodes(&mut rng, 3, count, Some(2), kind);
            let expected = if kind == FaultKind::CutLink { 2 } else { 1 };
            assert_eq!(nodes.len(), expected, "{kind:?}");
            let mut distinct = nodes.clone();
            distinct.dedup();
            assert_eq!(distinct, nodes);
            on_leader += usize::from(nodes[0] == 2);
        }
        assert!((550..800).contains(&on_leader), "{on_leader}");
    }

    #[test]
    fn the_schedule_depends_on_the_seed_alone() {
        let kinds = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20).map(|_| pick_kind(Scenario::Mixed, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(kinds(5), kinds(5));
        assert_ne!(kinds(5), kinds(6));
        assert!("broken".parse::<Scenario>().is_err());
        assert_eq!("partition".parse::<Scenario>(), Ok(Scenario::Partition));
    }
}
