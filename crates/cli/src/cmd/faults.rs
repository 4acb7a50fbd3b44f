//! `ringkv faults`: the fault harness (crate `ringkv-faults`) as a
//! subcommand, so that it runs the very binary it is part of: the servers
//! it starts are `this-executable server …`, and nothing is built.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ringkv_faults::checker::{self, Verdict};
use ringkv_faults::nemesis::Scenario;
use ringkv_faults::run::{self, RunSpec};

/// Exit code of a run that found a violation (0: none; 1: the run could
/// not be carried out, or bad usage).
pub const VIOLATION: u8 = 3;

pub const ABOUT: &str = "Fault harness: a workload under kill, pause or partition, checked for linearizability.";

pub const LONG_ABOUT: &str = "\
Fault harness: a workload under kill, pause or partition, checked for linearizability.

Starts its own group of `ringkv server` processes (this executable, on free
loopback ports, data under OUT/data), with a userspace TCP proxy on every
directed Raft link between replicas. CLIENTS concurrent clients issue random
get, set, testAndSet, del and delVersion on KEYS keys, each talking to one
replica, plus one reader per replica that never moves (so a deposed leader
keeps being asked), and every operation is recorded: its invocation and return time and
its answer, or `indeterminate` when it got none within --op-timeout (it may or
may not have taken effect). Meanwhile the nemesis injects faults on a schedule
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
    reads, set inserts if absent, testAndSet and delVersion compare the
    version, del removes), with Wing & Gong / Lowe's search; a key the
    checker cannot decide within --check-budget counts as a failure;
  - a final read of every key, part of the checked history, sees every
    acknowledged write (or what replaced it);
  - all replicas hold identical state at the same applied index (digest);
  - every restarted replica recovered and serves.

It prints a report and writes OUT/report.txt, OUT/report.json,
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
    /// Keys the clients share (few, so that operations collide).
    #[arg(long, default_value_t = 5)]
    pub keys: u32,
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
    /// Seconds the linearizability checker may take, all keys together.
    #[arg(long, default_value_t = 300)]
    pub check_budget: u64,
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
    if let Some(path) = &args.check {
        return check_file(path, Duration::from_secs(args.check_budget));
    }
    let scenario = args.scenario.context("--scenario is required")?;
    anyhow::ensure!(
        args.replicas >= 1 && args.clients >= 1 && args.keys >= 1,
        "--replicas, --clients and --keys must be at least 1"
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
        replicas: args.replicas,
        max_faulty: args.max_faulty.unwrap_or((args.replicas.saturating_sub(1)) / 2).max(1),
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        check_budget: Duration::from_secs(args.check_budget),
        out: out.canonicalize().unwrap_or(out.clone()),
        exe: std::env::current_exe().context("cannot find the ringkv executable")?,
        keep_data: args.keep_data,
        server_args,
    };
    eprintln!("ringkv faults: scenario {name}, seed {seed}, {} s; artifacts in {}", args.duration, spec.out.display());
    let report = run::run(&spec).await?;
    print!("{}", report.text());
    println!("artifacts: {}", spec.out.display());
    Ok(if report.pass { ExitCode::SUCCESS } else { ExitCode::from(VIOLATION) })
}

/// `--check FILE`: the checker alone, on a recorded history.
fn check_file(path: &std::path::Path, budget: Duration) -> anyhow::Result<ExitCode> {
    let records = ringkv_faults::history::read_jsonl(path)?;
    let verdicts = checker::check(&records, budget);
    let mut pass = true;
    for k in &verdicts {
        println!("key {:>3}: {:?} ({} operations checked, {} ms)", k.key, k.verdict, k.ops, k.millis);
        if k.verdict != Verdict::Linearizable {
            pass = false;
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
    println!("{} operations: {}", records.len(), if pass { "linearizable" } else { "NOT linearizable (or undecided)" });
    Ok(if pass { ExitCode::SUCCESS } else { ExitCode::from(VIOLATION) })
}
