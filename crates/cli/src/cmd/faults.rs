//! `ringkv faults`: the fault harness (crate `ringkv-faults`) as a
//! subcommand, so that it runs the very binary it is part of: the servers
//! it starts are `this-executable server …`, and nothing is built.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ringkv_faults::checker::{self, Budget, Verdict};
use ringkv_faults::nemesis::Scenario;
use ringkv_faults::run::{self, RunSpec};
use ringkv_faults::workload::KeyName;

/// Exit code of a run that found a violation (0: none; 1: the run could
/// not be carried out, or bad usage).
pub const VIOLATION: u8 = 3;

pub const ABOUT: &str = "Fault harness: a workload under kill, pause or partition, checked for linearizability.";

pub const LONG_ABOUT: &str = "\
Fault harness: a workload under kill, pause or partition, checked for linearizability.

Starts its own group of `ringkv server` processes (this executable, on free
loopback ports, data under OUT/data), with a userspace TCP proxy on every
directed Raft link between replicas, each keeping 4 versions per key
(--max-versions, fixed: the model keeps as many). CLIENTS concurrent clients
issue random get, getAt, set, put, testAndSet, del and delVersion on KEYS hot
keys at a time (getAt mostly at a version likely kept, sometimes at one
dropped or not yet written), each client talking to one replica, plus one reader per replica that never moves
(so a deposed leader keeps being asked). After OPS_PER_KEY operations a hot
key is retired and a fresh one takes its place (independent keys, as in
Jepsen), so each key's history stays short however long the run; LONG_KEYS
long-lived keys get LONG_OPS operations each, spread over the whole run
(never more than one operation in 20).
Every operation is recorded: its invocation and return time and its answer,
or `indeterminate` when it got none within --op-timeout (it may or may not
have taken effect). Meanwhile the nemesis injects faults on a schedule
drawn from --seed, one round at a time, never on more than --max-faulty
replicas at once (default: a minority):

  kill       kill -9 a replica (the leader more often than not), restart it
             from the same command line
  pause      SIGSTOP a replica, SIGCONT it a few seconds later
  partition  isolate a replica from its peers, cut its outgoing links only,
             or cut the link between two; heal (resuming or cutting the
             stalled connections)
  mixed      any of the above, round by round

Then everything is repaired and the run checks that:
  - each key's history is linearizable against a versioned register (get
    reads, getAt reads a kept version, set inserts if absent, put writes
    unconditionally, testAndSet and delVersion compare the version, del
    removes, a new version drops the oldest beyond 4), with Wing & Gong / Lowe's search, keys in
    parallel on every core; a key the checker cannot decide within
    --check-budget seconds counts as a failure, and the report says how far
    the search got; per key it gives operations, states explored and time;
  - a final read of every key, retired ones included, part of the checked
    history, sees every acknowledged write (or what replaced it);
  - all replicas hold identical state at the same applied index (digest);
  - every restarted replica recovered and serves.

It prints a report (the per-key table shortened) and writes OUT/report.txt
(every key), OUT/report.json,
OUT/history.jsonl (one operation per line; check it again with --check) and
OUT/timeline.html. Exit code: 0 when every check passed, 3 on a violation, 1
when the run itself could not be carried out.";

const EXAMPLES: &str = "\
Examples:
  ringkv faults --scenario partition --duration 60
  ringkv faults --scenario mixed --duration 300 --seed 42 --clients 12 --out /tmp/mixed
  ringkv faults --scenario pause --max-faulty 2        a majority paused: expect unavailability, never a wrong answer
  ringkv faults --check /tmp/mixed/history.jsonl       check a recorded history again";

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct FaultsArgs {
    /// kill, pause, partition or mixed.
    #[arg(long, required_unless_present = "check")]
    pub scenario: Option<Scenario>,
    /// How long the workload and the faults run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seed of the fault schedule and the clients' choices (default: from
    /// the clock; the report says which).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Hot keys the clients share at a time (few, so that operations
    /// collide).
    #[arg(long, default_value_t = 5)]
    pub keys: u32,
    /// Operations on one hot key (all clients together) before it is
    /// retired for a fresh one: what bounds a key's history, and so the
    /// checker's cost per key.
    #[arg(long, default_value_t = 2000)]
    pub ops_per_key: u64,
    /// Long-lived keys, used from the start of the run to its end.
    #[arg(long, default_value_t = 3)]
    pub long_keys: u32,
    /// Operations on each long-lived key over the whole run (a low rate:
    /// its history stays as short as a hot key's).
    #[arg(long, default_value_t = 1000)]
    pub long_ops: u64,
    /// Replicas in the group.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Most replicas faulty at once (default: a minority of the group).
    #[arg(long)]
    pub max_faulty: Option<usize>,
    /// Deadline of one operation in seconds, the client's retries included;
    /// no answer by then is an indeterminate operation.
    #[arg(long, default_value_t = 2.0)]
    pub op_timeout: f64,
    /// Seconds the linearizability checker may take on one key; an
    /// undecided key is a failure.
    #[arg(long, default_value_t = 30)]
    pub check_budget: u64,
    /// Keys checked at once (default: every core).
    #[arg(long)]
    pub check_threads: Option<usize>,
    /// Directory for the report, history, timeline and the servers' data
    /// (default: a new directory under the system's temp dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the servers' data directories after a passing run.
    #[arg(long)]
    pub keep_data: bool,
    /// Extra flag for every server (repeat), e.g. --server-arg=--snapshot-log-bytes=1048576.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Do not run: check a recorded history.jsonl and print the verdicts.
    #[arg(long, value_name = "HISTORY", conflicts_with = "scenario")]
    pub check: Option<PathBuf>,
}

pub async fn run(args: FaultsArgs) -> anyhow::Result<ExitCode> {
    let mut budget = Budget::per_key(Duration::from_secs(args.check_budget));
    budget.threads = args.check_threads.unwrap_or(budget.threads).max(1);
    if let Some(path) = &args.check {
        return check_file(path, budget);
    }
    let scenario = args.scenario.context("--scenario is required")?;
    anyhow::ensure!(
        args.replicas >= 1 && args.clients >= 1 && args.keys >= 1 && args.ops_per_key >= 1,
        "--replicas, --clients, --keys and --ops-per-key must be at least 1"
    );
    anyhow::ensure!(args.op_timeout > 0.0, "--op-timeout must be positive");
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
    });
    let name = format!("{scenario:?}").to_lowercase();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ringkv-faults-{name}-{seed}-{}", std::process::id())));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    // A snapshot every 20 KB of writes (a few hundred), so that a
    // restarted replica also catches up by snapshot install, not only by
    // log.
    let mut server_args: Vec<String> =
        ["--snapshot-log-bytes", "20000", "--snapshot-log-ratio", "0"].map(str::to_owned).into();
    server_args.extend(args.server_args.iter().cloned());
    let spec = RunSpec {
        scenario,
        duration: Duration::from_secs(args.duration),
        seed,
        clients: args.clients,
        keys: args.keys,
        ops_per_key: args.ops_per_key,
        long_keys: args.long_keys,
        long_ops: args.long_ops,
        replicas: args.replicas,
        max_faulty: args.max_faulty.unwrap_or((args.replicas.saturating_sub(1)) / 2).max(1),
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        check_budget: budget.per_key,
        check_threads: budget.threads,
        out: out.canonicalize().unwrap_or(out.clone()),
        exe: std::env::current_exe().context("cannot find the ringkv executable")?,
        keep_data: args.keep_data,
        server_args,
    };
    eprintln!("ringkv faults: scenario {name}, seed {seed}, {} s; artifacts in {}", args.duration, spec.out.display());
    let report = run::run(&spec).await?;
    print!("{}", report.text(false));
    println!("artifacts: {}", spec.out.display());
    Ok(if report.pass { ExitCode::SUCCESS } else { ExitCode::from(VIOLATION) })
}

/// `--check FILE`: the checker alone, on a recorded history.
fn check_file(path: &std::path::Path, budget: Budget) -> anyhow::Result<ExitCode> {
    let records = ringkv_faults::history::read_jsonl(path)?;
    let started = std::time::Instant::now();
    let verdicts = checker::check(&records, budget);
    let mut failed = 0;
    for k in &verdicts {
        let key = KeyName(k.key);
        print!("key {key:>10}: {:?} ({} operations, {} states, {} ms)", k.verdict, k.ops, k.states, k.millis);
        match k.progress {
            Some(p) => println!(": {p}"),
            None => println!(),
        }
        if k.verdict != Verdict::Linearizable {
            failed += 1;
            for &i in &k.witness {
                let r = &records[i];
                let mark = if Some(i) == k.culprit { "*" } else { " " };
                println!(
                    "  {mark} [{:.4} – {:.4}] client {}: {} → {}",
                    r.invoke_ns as f64 / 1e9,
                    r.return_ns as f64 / 1e9,
                    r.client,
                    r.op,
                    r.outcome
                );
            }
        }
    }
    println!(
        "{} operations on {} keys, checked on {} threads in {:.1} s: {}",
        records.len(),
        verdicts.len(),
        budget.threads,
        started.elapsed().as_secs_f64(),
        if failed == 0 { "linearizable".to_string() } else { format!("{failed} keys NOT linearizable or undecided") }
    );
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(VIOLATION) })
}
