//! One run, start to verdict: start the group, drive the workload while
//! the nemesis works, repair everything, wait for the group, read every
//! key, compare the replicas, check the history, write the artifacts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringkv_client::{Client, ClientOptions};
use ringkv_testkit::{Cluster, ClusterSpec};

use crate::checker;
use crate::floors;
use crate::history::{self, Op, Record};
use crate::model;
use crate::nemesis::{self, NemesisSpec, Scenario};
use crate::report::{Convergence, ReplicaEnd, Report, Timing};
use crate::workload::{self, KeyName, WorkloadSpec};
use crate::FaultsError;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub scenario: Scenario,
    pub duration: Duration,
    pub seed: u64,
    pub clients: usize,
    /// Hot keys in use at once.
    pub keys: u32,
    /// Operations on a hot key before the workload moves to a fresh one.
    pub ops_per_key: u64,
    /// Long-lived keys, and the operations on each over the whole run.
    pub long_keys: u32,
    pub long_ops: u64,
    pub replicas: usize,
    pub max_faulty: usize,
    pub op_timeout: Duration,
    /// Time the checker may take on one key.
    pub check_budget: Duration,
    /// Keys checked at once.
    pub check_threads: usize,
    /// Where the artifacts (and, under `data/`, the servers' directories)
    /// go.
    pub out: PathBuf,
    /// The `ringkv` executable the servers run.
    pub exe: PathBuf,
    /// Keep the servers' data directories after a passing run.
    pub keep_data: bool,
    pub server_args: Vec<String>,
}

/// How long the group gets to settle after the last fault.
const SETTLE: Duration = Duration::from_secs(30);

/// Runs `spec` and returns its report (also written to `spec.out`). An
/// error means the run could not be carried out, not a violation.
pub async fn run(spec: &RunSpec) -> Result<Report, FaultsError> {
    let data = spec.out.join("data");
    // The checker assumes every key starts absent: old data would fail it.
    if std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()) {
        return Err(FaultsError::Cluster(format!(
            "{} already holds a run's data; choose another --out or remove it",
            data.display()
        )));
    }
    std::fs::create_dir_all(&data).map_err(FaultsError::io(format!("cannot create {}", data.display())))?;
    let cluster_spec =
        ClusterSpec::new(&spec.exe, 1, spec.replicas).dir(&data).raft_proxies().args(&server_args(&spec.server_args)?);
    let mut cluster = Cluster::start(cluster_spec).await?;
    let addrs = cluster
        .addrs()
        .iter()
        .map(|a| a.parse().map_err(|e| FaultsError::Cluster(format!("replica address {a}: {e}"))))
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workload_spec = WorkloadSpec {
        clients: spec.clients,
        keys: spec.keys,
        ops_per_key: spec.ops_per_key,
        long_keys: spec.long_keys,
        long_ops: spec.long_ops,
        duration: spec.duration,
        op_timeout: spec.op_timeout,
        seed: spec.seed,
    };
    let clients = {
        let (stop, addrs) = (stop.clone(), addrs.clone());
        tokio::spawn(async move { workload::run(&workload_spec, &addrs, start, stop).await })
    };
    let nemesis_spec =
        NemesisSpec { scenario: spec.scenario, duration: spec.duration, seed: spec.seed, max_faulty: spec.max_faulty };
    let faults = nemesis::run(&mut cluster, &nemesis_spec, start).await;
    if faults.is_err() {
        let _ = cluster.heal_all();
    }
    tokio::time::sleep((start + spec.duration).saturating_duration_since(Instant::now())).await;
    stop.store(true, Ordering::Relaxed);
    let mut records = match clients.await {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => return Err(FaultsError::Cluster(why)),
        Err(e) => return Err(FaultsError::Cluster(format!("the workload failed: {e}"))),
    };
    let faults = faults?;
    let workload_ns = start.elapsed().as_nanos() as u64;
    let workload_end = Instant::now();

    let mut violations = Vec::new();
    if let Err(e) = cluster.wait_ready(SETTLE).await {
        violations.push(format!("the group did not recover after the faults were repaired: {e}"));
    }
    let final_reads = final_reads(&addrs, spec, &records, start).await;
    for r in &final_reads {
        if !matches!(r.outcome, history::Outcome::Ok { .. }) {
            violations.push(format!("final read of key {} got no answer: {}", KeyName(r.key), r.outcome));
        }
    }
    let floors = floors::check(&faults, &records, &final_reads);
    violations.extend(floors.violations);
    records.extend(final_reads);
    records.sort_by_key(|r| (r.invoke_ns, r.client));
    let convergence = converge(&mut cluster).await;
    if !convergence.identical {
        violations.push(format!("replicas differ after the run: {}", convergence.detail));
    }
    for r in &convergence.replicas {
        if !r.recovered {
            violations.push(format!("replica {} (restarted {} times) did not recover", r.id, r.restarts));
        }
    }
    cluster.stop(ringkv_testkit::cluster::STOP_GRACE);

    let budget = checker::Budget { per_key: spec.check_budget, threads: spec.check_threads };
    let check_started = Instant::now();
    let (checked, records) = tokio::task::spawn_blocking(move || (checker::check(&records, budget), records))
        .await
        .map_err(|e| FaultsError::Cluster(format!("the checker failed: {e}")))?;
    let timing = Timing {
        workload_ns,
        check_millis: check_started.elapsed().as_millis() as u64,
        after_workload_millis: workload_end.elapsed().as_millis() as u64,
    };
    violations.extend(checked.iter().filter_map(|k| key_violation(k, &budget)));
    let mut report = Report::new(spec, faults, &records, checked, convergence, violations, timing);
    report.warnings = floors.warnings;
    report.write(&spec.out, &records)?;
    if report.pass && !spec.keep_data {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(report)
}

/// Every server's flags: `extra`, and the versions kept per key that the
/// model assumes, which `extra` may not change.
fn server_args(extra: &[String]) -> Result<Vec<String>, FaultsError> {
    if let Some(a) = extra.iter().find(|a| a.starts_with("--max-versions")) {
        return Err(FaultsError::Cluster(format!(
            "the harness's model fixes --max-versions at {}: {a} cannot be given",
            model::MAX_VERSIONS
        )));
    }
    Ok(extra.iter().cloned().chain(["--max-versions".into(), model::MAX_VERSIONS.to_string()]).collect())
}

/// What a key's verdict adds to the run's violations.
fn key_violation(k: &checker::KeyVerdict, budget: &checker::Budget) -> Option<String> {
    let key = KeyName(k.key);
    match k.verdict {
        checker::Verdict::Linearizable => None,
        checker::Verdict::NotLinearizable => Some(format!("key {key}: not linearizable ({} operations)", k.ops)),
        checker::Verdict::Unknown => Some(format!(
            "key {key}: undecided within the checker's budget of {:?} per key ({} operations, {} states explored; {})",
            budget.per_key,
            k.ops,
            k.states,
            k.progress.map_or_else(|| "no progress recorded".into(), |p| p.to_string())
        )),
    }
}

/// After the faults: every key the workload used, retired hot keys and
/// long-lived ones, read once (linearizable, with a long deadline) by a
/// client of its own; these reads join the history, so an acknowledged
/// write that went missing makes it non-linearizable.
async fn final_reads(addrs: &[SocketAddr], spec: &RunSpec, records: &[Record], start: Instant) -> Vec<Record> {
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let opts = ClientOptions { timeout: Duration::from_secs(10), connect_timeout: Duration::from_secs(1), ring: false };
    let Ok(client) = Client::new(&list.join(","), opts) else { return Vec::new() };
    let keys: std::collections::BTreeSet<u32> = records.iter().map(|r| r.key).collect();
    let who = (spec.clients + spec.replicas) as u32;
    let mut out = Vec::new();
    for key in keys {
        out.push(workload::perform(&client, who, key, Op::Get, start).await);
    }
    out
}

/// Waits until every replica answers with the same applied index and the
/// same state digest, or the settle time passes.
async fn converge(cluster: &mut Cluster) -> Convergence {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut ends = Vec::new();
        for r in cluster.replicas_mut() {
            let exited = r.process.exited().map(|how| r.process.failure(format!("exited ({how})")).to_string());
            let status = r.status(true, Duration::from_secs(5)).await;
            let digest = status.as_ref().and_then(|s| s.digest.clone());
            ends.push(ReplicaEnd {
                id: r.index,
                restarts: r.process.restarts(),
                recovered: exited.is_none() && status.is_some(),
                applied_index: status.as_ref().map(|s| s.applied_index),
                digest_index: digest.as_ref().map(|d| d.index),
                keys: digest.as_ref().map(|d| d.keys),
                digest: digest.map(|d| d.digest),
                exited,
            });
        }
        let first = (ends[0].digest_index, ends[0].digest.clone());
        let identical =
            ends.iter().all(|e| e.recovered && e.digest.is_some() && (e.digest_index, e.digest.clone()) == first);
        if identical || Instant::now() > deadline {
            let detail = ends
                .iter()
                .map(|e| format!("r{}: index {:?} digest {:?}", e.id, e.digest_index, e.digest))
                .collect::<Vec<_>>()
                .join("; ");
            return Convergence { identical, detail, replicas: ends };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{KeyVerdict, Progress, Verdict};

    #[test]
    fn the_servers_keep_the_models_versions_and_nothing_else() {
        let extra = vec!["--snapshot-log-bytes".to_string(), "20000".to_string()];
        let args = server_args(&extra).unwrap();
        assert_eq!(args[..2], extra[..]);
        assert_eq!(args[2..], ["--max-versions".to_string(), model::MAX_VERSIONS.to_string()]);
        for bad in [["--max-versions", "16"].as_slice(), &["--max-versions=0"]] {
            let bad: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let e = server_args(&bad).unwrap_err().to_string();
            assert!(e.contains(&format!("fixes --max-versions at {}", model::MAX_VERSIONS)), "{e}");
        }
    }

    #[test]
    fn an_undecided_key_is_a_violation_that_names_it_and_how_far_the_search_got() {
        let budget = checker::Budget { per_key: Duration::from_secs(30), threads: 2 };
        let progress = Progress { linearized: 1234, answered: 2001, frontier_ns: Some(12_345_000_000) };
        let k = KeyVerdict {
            key: workload::LONG_LIVED + 2,
            ops: 2001,
            verdict: Verdict::Unknown,
            states: 5_400_000,
            progress: Some(progress),
            witness: Vec::new(),
            culprit: None,
            millis: 30_000,
        };
        let v = key_violation(&k, &budget).expect("a violation");
        assert!(v.starts_with("key L2: undecided"), "{v}");
        assert!(v.contains("5400000 states explored"), "{v}");
        assert!(v.contains("at most 1234 of 2001 answered operations linearized"), "{v}");
        assert!(v.contains("explained up to 12.345 s"), "{v}");
        let fine = KeyVerdict { verdict: Verdict::Linearizable, progress: None, ..k };
        assert_eq!(key_violation(&fine, &budget), None);
    }
}
