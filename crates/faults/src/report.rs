//! What a run says: the seed and settings, the faults with their times,
//! operation counts by outcome, the checker's verdict and cost per key
//! (operations, states explored, time) and, for a violation, a small
//! failing sub-history in readable form; then whether the replicas
//! converged and every restarted process recovered. Written as
//! `report.txt` (every key), `report.json`, `history.jsonl` and
//! `timeline.html`; printed without the per-key table's ordinary rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::checker::{KeyVerdict, Verdict};
use crate::history::{self, Record};
use crate::nemesis::{FaultEvent, Scenario};
use crate::run::RunSpec;
use crate::workload::{KeyName, LONG_LIVED};
use crate::FaultsError;

/// How long the parts of a run took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    /// The workload and the faults.
    pub workload_ns: u64,
    /// The linearizability check, all keys (wall time).
    pub check_millis: u64,
    /// From the workload's end to the verdict: settling, final reads,
    /// convergence and the check.
    pub after_workload_millis: u64,
}

/// What the check cost, all keys together.
#[derive(Debug, Clone, Serialize)]
pub struct CheckCost {
    pub keys: usize,
    pub threads: usize,
    pub budget_per_key_secs: f64,
    pub millis: u64,
    pub after_workload_millis: u64,
    pub states: u64,
    /// The most operations, states and milliseconds of any one key.
    pub max_ops: usize,
    pub max_states: u64,
    pub max_millis: u64,
}

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
    /// Hot keys at a time, operations on each before fresh ones.
    pub hot_keys: u32,
    pub ops_per_key: u64,
    /// Long-lived keys, operations on each over the run.
    pub long_keys: u32,
    pub long_ops: u64,
    pub replicas: usize,
    pub max_faulty: usize,
    pub binary: String,
    pub faults: Vec<FaultEvent>,
    /// op → outcome kind → count.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// op → status of the answered ones (`SUCCESS`, `ERROR_WV`, ...) → count.
    pub answers: BTreeMap<String, BTreeMap<String, usize>>,
    pub totals: BTreeMap<String, usize>,
    pub check: CheckCost,
    pub checked: Vec<KeyVerdict>,
    pub convergence: Convergence,
    pub violations: Vec<String>,
    /// What the floors noticed without failing the run (`floors.rs`).
    pub warnings: Vec<String>,
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
        timing: Timing,
    ) -> Report {
        let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut answers: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut totals: BTreeMap<String, usize> = BTreeMap::new();
        for r in records {
            *counts.entry(r.op.name().into()).or_default().entry(r.outcome.kind().into()).or_default() += 1;
            *totals.entry(r.outcome.kind().into()).or_default() += 1;
            if let history::Outcome::Ok { status, .. } = r.outcome {
                *answers.entry(r.op.name().into()).or_default().entry(status.name().into()).or_default() += 1;
            }
        }
        let witnesses = checked
            .iter()
            .filter(|k| k.verdict == Verdict::NotLinearizable)
            .map(|k| (k.key, witness_lines(records, k)))
            .collect();
        let check = CheckCost {
            keys: checked.len(),
            threads: spec.check_threads,
            budget_per_key_secs: spec.check_budget.as_secs_f64(),
            millis: timing.check_millis,
            after_workload_millis: timing.after_workload_millis,
            states: checked.iter().map(|k| k.states).sum(),
            max_ops: checked.iter().map(|k| k.ops).max().unwrap_or(0),
            max_states: checked.iter().map(|k| k.states).max().unwrap_or(0),
            max_millis: checked.iter().map(|k| k.millis).max().unwrap_or(0),
        };
        Report {
            scenario: spec.scenario,
            seed: spec.seed,
            duration_secs: timing.workload_ns as f64 / 1e9,
            clients: spec.clients,
            hot_keys: spec.keys,
            ops_per_key: spec.ops_per_key,
            long_keys: spec.long_keys,
            long_ops: spec.long_ops,
            replicas: spec.replicas,
            max_faulty: spec.max_faulty,
            binary: spec.exe.display().to_string(),
            faults,
            counts,
            answers,
            totals,
            pass: violations.is_empty(),
            check,
            checked,
            convergence,
            violations,
            warnings: Vec::new(),
            witnesses,
        }
    }

    /// Writes the artifacts into `dir`.
    pub fn write(&self, dir: &Path, records: &[Record]) -> Result<(), FaultsError> {
        let io = |what: &str| FaultsError::io(format!("cannot write {}", dir.join(what).display()));
        history::write_jsonl(&dir.join("history.jsonl"), records)?;
        let json = serde_json::to_string_pretty(self).map_err(|e| io("report.json")(e.into()))?;
        std::fs::write(dir.join("report.json"), json).map_err(io("report.json"))?;
        std::fs::write(dir.join("report.txt"), self.text(true)).map_err(io("report.txt"))?;
        std::fs::write(dir.join("timeline.html"), crate::timeline::html(self, records)).map_err(io("timeline.html"))?;
        Ok(())
    }

    /// The readable report; `every_key`: one row per key in the check's
    /// table, else only the long-lived keys, those that failed and the
    /// costliest few.
    pub fn text(&self, every_key: bool) -> String {
        let mut t = String::new();
        let verdict = if self.pass { "PASS" } else { "FAIL" };
        let _ = writeln!(
            t,
            "ringkv faults: scenario {:?}, seed {}, {:.0} s, {} replicas, {} clients, at most {} faulty at once",
            self.scenario, self.seed, self.duration_secs, self.replicas, self.clients, self.max_faulty
        );
        let _ = writeln!(
            t,
            "keys: {} hot at a time, each for {} operations, then fresh ones; {} long-lived (L*), {} operations each over the run",
            self.hot_keys, self.ops_per_key, self.long_keys, self.long_ops
        );
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
            let answers = self.answers.get(op).map(|a| format!("; answers: {}", join_counts(a))).unwrap_or_default();
            let _ = writeln!(t, "  {op:<11} {}{answers}", join_counts(c));
        }
        self.check_text(&mut t, every_key);
        for (shown, (&key, lines)) in self.witnesses.iter().enumerate() {
            if shown == WITNESSES_SHOWN {
                let more = self.witnesses.len() - shown;
                let _ = writeln!(t, "\n({more} more failing keys' sub-histories in report.json)");
                break;
            }
            let _ = writeln!(
                t,
                "\nkey {}: a failing sub-history (times in seconds; * marks the operation that cannot be placed):",
                KeyName(key)
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
        for w in &self.warnings {
            let _ = writeln!(t, "  warning: {w}");
        }
        t
    }
}

impl Report {
    /// The check's summary and its table of keys.
    fn check_text(&self, t: &mut String, every_key: bool) {
        let c = &self.check;
        let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
        for k in &self.checked {
            *verdicts.entry(verdict_name(k.verdict)).or_default() += 1;
        }
        let verdicts: Vec<String> = verdicts.iter().map(|(v, n)| format!("{n} {v}")).collect();
        let _ = writeln!(
            t,
            "\nlinearizability: {} keys checked on {} threads in {:.1} s (budget {:.0} s per key), {:.1} s after the workload ended: {}",
            c.keys,
            c.threads,
            c.millis as f64 / 1e3,
            c.budget_per_key_secs,
            c.after_workload_millis as f64 / 1e3,
            verdicts.join(", ")
        );
        let _ = writeln!(
            t,
            "  per key at most: {} operations, {} states explored, {} ms; {} states in all",
            c.max_ops, c.max_states, c.max_millis, c.states
        );
        let shown: Vec<&KeyVerdict> = if every_key {
            self.checked.iter().collect()
        } else {
            let mut costly: Vec<&KeyVerdict> = self.checked.iter().collect();
            costly.sort_by_key(|k| std::cmp::Reverse((k.millis, k.states)));
            let costly: Vec<u32> = costly.iter().take(COSTLIEST_SHOWN).map(|k| k.key).collect();
            self.checked
                .iter()
                .filter(|k| k.key >= LONG_LIVED || k.verdict != Verdict::Linearizable || costly.contains(&k.key))
                .collect()
        };
        let _ = writeln!(t, "  {:>10} {:>6} {:>10} {:>7}  verdict", "key", "ops", "states", "ms");
        for k in &shown {
            let _ = write!(
                t,
                "  {:>10} {:>6} {:>10} {:>7}  {}",
                KeyName(k.key).to_string(),
                k.ops,
                k.states,
                k.millis,
                verdict_name(k.verdict)
            );
            if let Some(p) = k.progress {
                let _ = write!(t, " ({p})");
            }
            let _ = writeln!(t);
        }
        if shown.len() < self.checked.len() {
            let _ = writeln!(
                t,
                "  (long-lived, failing and the {COSTLIEST_SHOWN} costliest keys shown; every key in report.txt)"
            );
        }
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Linearizable => "linearizable",
        Verdict::NotLinearizable => "NOT LINEARIZABLE",
        Verdict::Unknown => "UNDECIDED",
    }
}

/// Keys shown for their cost in the printed report.
const COSTLIEST_SHOWN: usize = 5;

/// Failing keys whose sub-history the text shows (report.json has all).
const WITNESSES_SHOWN: usize = 3;

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
