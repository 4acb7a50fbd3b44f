//! What a run says: the seed and settings, the faults with their times,
//! operation counts by outcome, the checker's verdict per key and, for a
//! violation, a small failing sub-history in readable form; then whether
//! the replicas converged and every restarted process recovered.
//! Written as `report.txt` (also printed), `report.json`, `history.jsonl`
//! and `timeline.html`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::checker::{KeyVerdict, Verdict};
use crate::history::{self, Record};
use crate::nemesis::{FaultEvent, Scenario};
use crate::run::RunSpec;
use crate::FaultsError;

/// Where the group ended up.
#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    /// Every replica answered with the same digest at the same index.
    pub identical: bool,
    pub detail: String,
    pub replicas: Vec<ReplicaEnd>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaEnd {
    pub id: usize,
    pub restarts: u32,
    /// Running and answering at the end.
    pub recovered: bool,
    pub applied_index: Option<u64>,
    pub digest_index: Option<u64>,
    pub digest: Option<String>,
    pub keys: Option<u64>,
    pub exited: Option<String>,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub seed: u64,
    pub duration_secs: f64,
    pub clients: usize,
    pub keys: u32,
    pub replicas: usize,
    pub max_faulty: usize,
    pub binary: String,
    pub faults: Vec<FaultEvent>,
    /// op → outcome kind → count.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub totals: BTreeMap<String, usize>,
    pub checked: Vec<KeyVerdict>,
    pub convergence: Convergence,
    pub violations: Vec<String>,
    pub pass: bool,
    /// Readable witnesses, per failing key.
    pub witnesses: BTreeMap<u32, Vec<String>>,
}

impl Report {
    pub fn new(
        spec: &RunSpec,
        faults: Vec<FaultEvent>,
        records: &[Record],
        checked: Vec<KeyVerdict>,
        convergence: Convergence,
        violations: Vec<String>,
        workload_ns: u64,
    ) -> Report {
        let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut totals: BTreeMap<String, usize> = BTreeMap::new();
        for r in records {
            *counts.entry(r.op.name().into()).or_default().entry(r.outcome.kind().into()).or_default() += 1;
            *totals.entry(r.outcome.kind().into()).or_default() += 1;
        }
        let witnesses = checked
            .iter()
            .filter(|k| k.verdict == Verdict::NotLinearizable)
            .map(|k| (k.key, witness_lines(records, k)))
            .collect();
        Report {
            scenario: spec.scenario,
            seed: spec.seed,
            duration_secs: workload_ns as f64 / 1e9,
            clients: spec.clients,
            keys: spec.keys,
            replicas: spec.replicas,
            max_faulty: spec.max_faulty,
            binary: spec.exe.display().to_string(),
            faults,
            counts,
            totals,
            pass: violations.is_empty(),
            checked,
            convergence,
            violations,
            witnesses,
        }
    }

    /// Writes the artifacts into `dir`.
    pub fn write(&self, dir: &Path, records: &[Record]) -> Result<(), FaultsError> {
        let io = |what: &str| FaultsError::io(format!("cannot write {}", dir.join(what).display()));
        history::write_jsonl(&dir.join("history.jsonl"), records)?;
        let json = serde_json::to_string_pretty(self).map_err(|e| io("report.json")(e.into()))?;
        std::fs::write(dir.join("report.json"), json).map_err(io("report.json"))?;
        std::fs::write(dir.join("report.txt"), self.text()).map_err(io("report.txt"))?;
        std::fs::write(dir.join("timeline.html"), crate::timeline::html(self, records)).map_err(io("timeline.html"))?;
        Ok(())
    }

    /// The readable report.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let verdict = if self.pass { "PASS" } else { "FAIL" };
        let _ = writeln!(t, "ringkv faults: scenario {:?}, seed {}, {:.0} s, {} replicas, {} clients, {} keys, at most {} faulty at once",
            self.scenario, self.seed, self.duration_secs, self.replicas, self.clients, self.keys, self.max_faulty);
        let _ = writeln!(t, "servers: {}", self.binary);
        let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for f in &self.faults {
            let e = kinds.entry(format!("{:?}", f.kind)).or_default();
            e.0 += 1;
            e.1 += usize::from(f.on_leader);
        }
        let summary: Vec<String> = kinds.iter().map(|(k, (n, l))| format!("{k} {n} ({l} on the leader)")).collect();
        let _ = writeln!(t, "\nfaults ({}): {}", self.faults.len(), summary.join(", "));
        for f in &self.faults {
            let leader = if f.on_leader { " (leader)" } else { "" };
            let _ = writeln!(
                t,
                "  {:>8.3}s – {:>8.3}s  {:?} {:?}{leader}; {}",
                f.start_ns as f64 / 1e9,
                f.end_ns as f64 / 1e9,
                f.kind,
                f.nodes,
                f.repair
            );
        }
        let _ = writeln!(t, "\noperations: {} ({})", self.totals.values().sum::<usize>(), join_counts(&self.totals));
        for (op, c) in &self.counts {
            let _ = writeln!(t, "  {op:<11} {}", join_counts(c));
        }
        let _ = writeln!(t, "\nlinearizability, per key:");
        for k in &self.checked {
            let _ = writeln!(t, "  key {:>3}: {:?} ({} operations checked, {} ms)", k.key, k.verdict, k.ops, k.millis);
        }
        for (key, lines) in &self.witnesses {
            let _ = writeln!(
                t,
                "\nkey {key}: a failing sub-history (times in seconds; * marks the operation that cannot be placed):"
            );
            for l in lines {
                let _ = writeln!(t, "  {l}");
            }
        }
        let _ = writeln!(
            t,
            "\nreplicas at the end: {}",
            if self.convergence.identical { "identical" } else { "DIFFERENT" }
        );
        for r in &self.convergence.replicas {
            let _ = writeln!(
                t,
                "  r{}: restarted {} times, {}, applied {:?}, digest {} at {:?}, {} keys",
                r.id,
                r.restarts,
                if r.recovered { "recovered" } else { "NOT RECOVERED" },
                r.applied_index,
                r.digest.as_deref().unwrap_or("-"),
                r.digest_index,
                r.keys.unwrap_or(0)
            );
        }
        let _ = writeln!(t, "\nverdict: {verdict}");
        for v in &self.violations {
            let _ = writeln!(t, "  violation: {v}");
        }
        t
    }
}

fn join_counts(c: &BTreeMap<String, usize>) -> String {
    c.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Most lines shown per witness; the whole of it is in report.json.
const WITNESS_LINES: usize = 40;

fn witness_lines(records: &[Record], k: &KeyVerdict) -> Vec<String> {
    let mut lines: Vec<String> = k
        .witness
        .iter()
        .map(|&i| {
            let r = &records[i];
            let mark = if Some(i) == k.culprit { "*" } else { " " };
            format!(
                "{mark} [{:>9.4} – {:>9.4}] client {:>3}: {} → {}",
                r.invoke_ns as f64 / 1e9,
                r.return_ns as f64 / 1e9,
                r.client,
                r.op,
                r.outcome
            )
        })
        .collect();
    if lines.len() > WITNESS_LINES {
        let skipped = lines.len() - WITNESS_LINES;
        lines.drain(..skipped);
        lines.insert(0, format!("({skipped} earlier operations not shown; see report.json)"));
    }
    lines
}
