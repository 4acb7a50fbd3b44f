//! `ringkv`: the server, a local cluster, an interactive shell, one-shot
//! operations and operator tools, in one binary.
//!
//! This file holds only the command line's shape and the exit-code policy;
//! each subcommand lives in `cmd/`, and the parsing and printing of keys and
//! values in `parse.rs` and `output.rs`, shared with the shell.

mod cmd;
mod output;
mod parse;
mod shell;
mod signal;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cmd::{admin, bench, faults, ops, probe, server, top, up};
use ringkv_client::{Client, ClientOptions};

const ABOUT: &str = "ringkv: a distributed, versioned key-value store.";

const LONG_ABOUT: &str = "\
ringkv: a distributed, versioned key-value store.

Keys are integers of any size, negative too; every value carries a version (1
on insert, +1 on every test-and-set), a client timestamp and bytes. Every
operation answers an outcome: SUCCESS, ERROR, ERROR_NE (no such key) or
ERROR_WV (wrong version), with the value the table in docs/design.md §2 says.

KEY is decimal (42, -7, 123456789012345678901234567890) or hex (0x1f, -0x1f).
DATA is text, @FILE (the file's bytes) or hex:BYTES (hex:deadbeef).
TIMESTAMP defaults to now, in milliseconds since the Unix epoch.";

const EXAMPLES: &str = "\
Examples:
  ringkv up                               start a local ring (2 positions × 3 replicas) and open the shell
  ringkv server --data-dir d --listen 127.0.0.1:7070
  ringkv set 42 hello                     insert key 42
  ringkv tas 42 'hello again' --version 1 replace it if it is at version 1
  ringkv get 42 --json                    read it, as JSON
  ringkv del 42 --version 2               delete it if it is at version 2
  ringkv set 0x10 @photo.jpg              data from a file (hex:0a0b for raw bytes)
  ringkv status --addr 127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072

Exit codes: 0 for every outcome (outcomes are answers), 1 for bad input or
usage, 2 when the server cannot be reached or did not answer in time.";

const SERVER_EXAMPLES: &str = "\
Examples:
  ringkv server --data-dir /var/lib/ringkv --listen 0.0.0.0:7070
  ringkv server --config ringkv.toml --snapshot-log-bytes 1048576
Stops gracefully on Ctrl-C or SIGTERM. Logs go to stderr; RUST_LOG=debug for more.";

const UP_EXAMPLES: &str = "\
Examples:
  ringkv up                               2 positions × 3 replicas on 7070-7075, data in ./ringkv-data
  ringkv up --positions 4 --replicas 1 --base-port 9000 --no-shell
  ringkv up --positions 1                 one 3-replica group
Each server logs to DATA_DIR/p<p>/r<r>/server.log; DATA_DIR/ring.toml is the
generated ring; DATA_DIR/cluster.json lists the processes (position, replica,
pid and the command line that starts each one again).";

const TOP_EXAMPLES: &str = "\
Examples:
  ringkv top                              the cluster `ringkv up` started in ./ringkv-data
  ringkv top --once                       one table, rates over one second, then exit
  ringkv top --metrics 10.0.0.5:9070,10.0.0.6:9070";

#[derive(Debug, Parser)]
#[command(name = "ringkv", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Server(s) to talk to: HOST:PORT, or several comma-separated (requests
    /// are spread over those that answer).
    #[arg(long, global = true, env = "RINGKV_ADDR", default_value = "127.0.0.1:7070", value_delimiter = ',')]
    addr: Vec<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Send every request to --addr and let the servers route it along the
    /// ring, instead of fetching the ring map and sending each request
    /// straight to the group that owns its key.
    #[arg(long, global = true)]
    no_ring: bool,
    /// Seconds to wait for an answer (retries of a read included).
    #[arg(long, global = true, default_value = "5", value_parser = parse_timeout)]
    timeout: Duration,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a server (a replica) in the foreground.
    #[command(after_help = SERVER_EXAMPLES)]
    Server(Box<server::ServerArgs>),
    /// Start a local ring of server processes and open the shell.
    #[command(after_help = UP_EXAMPLES)]
    Up(up::UpArgs),
    /// Interactive shell against a server (type help inside).
    Shell,
    /// Show the ring and each replica's role, term, log, applied and snapshot index.
    Status(admin::StatusArgs),
    /// Check a stopped server's data directory offline.
    Verify(admin::VerifyArgs),
    /// Closed-loop load generator: throughput and latency percentiles.
    Bench(bench::BenchArgs),
    #[command(about = faults::ABOUT, long_about = faults::LONG_ABOUT)]
    Faults(faults::FaultsArgs),
    /// Live view of a ring: each replica's role, term, applied index and
    /// rate, requests/s and p99, from its /metrics, every second.
    #[command(after_help = TOP_EXAMPLES)]
    Top(top::TopArgs),
    /// Write fresh keys back to back and print when each was acknowledged
    /// (Unix microseconds): outages as a client sees them.
    Probe(probe::ProbeArgs),
    #[command(flatten)]
    Op(ops::Op),
}

/// `--timeout`: positive seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 => Duration::try_from_secs_f64(s).map_err(|e| e.to_string()),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Logs to stderr; RUST_LOG overrides the default (ours at info, openraft's
/// chatty internals at warn).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn client(cli: &Cli) -> anyhow::Result<Client> {
    let opts = ClientOptions { timeout: cli.timeout, ring: !cli.no_ring, ..ClientOptions::default() };
    Ok(Client::new(&cli.addr.join(","), opts)?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.cmd {
        Cmd::Server(args) => {
            init_logging();
            server::run((**args).clone()).await?;
        }
        Cmd::Up(args) => up::run(args.clone(), cli.json, !cli.no_ring).await?,
        Cmd::Shell => {
            let shell = shell::Shell::open()?;
            let (client, shown) = (client(&cli)?, cli.addr.join(", "));
            tokio::select! {
                r = shell.run(&client, &shown, &cli.addr, cli.json) => r?,
                _ = signal::terminate() => {}
            }
        }
        Cmd::Status(args) => admin::status(args.clone(), &cli.addr, cli.json).await?,
        Cmd::Verify(args) => admin::verify(args.clone(), cli.json)?,
        Cmd::Bench(args) => bench::run(args.clone(), &cli.addr, cli.json).await?,
        Cmd::Faults(args) => return faults::run(args.clone()).await,
        Cmd::Top(args) => top::run(args.clone()).await?,
        Cmd::Probe(args) => probe::run(args, &client(&cli)?).await?,
        Cmd::Op(op) => match op.run(&client(&cli)?).await {
            Ok(answer) if cli.json => println!("{}", answer.json()),
            Ok(answer) => println!("{}", answer.readable()),
            Err(e @ ops::OpError::Client(_)) => {
                eprintln!("ringkv: {}: {e}", cli.addr.join(","));
                return Ok(ExitCode::from(e.exit_code()));
            }
            Err(e) => {
                eprintln!("ringkv: {e}");
                return Ok(ExitCode::from(e.exit_code()));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and are no error; a usage
            // mistake is bad input (exit code 1), not clap's default 2,
            // which here means "the server did not answer".
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringkv: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes, joined with ": ", each said once: some errors
/// already repeat their cause in their own message.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for part in e.chain().map(|c| c.to_string()) {
        if line.contains(part.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&part);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn causes_are_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(io).context("cannot read x.toml: no such file").context("server failed");
        assert_eq!(error_chain(&e), "server failed: cannot read x.toml: no such file");
        let e = anyhow::anyhow!("disk").context("server failed");
        assert_eq!(error_chain(&e), "server failed: disk");
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "soon", "NaN", "inf"] {
            assert!(parse_timeout(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn global_options_and_defaults() {
        let cli = Cli::try_parse_from(["ringkv", "get", "-7", "--json", "--timeout", "2"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.timeout, Duration::from_secs(2));
        assert!(matches!(&cli.cmd, Cmd::Op(ops::Op::Get { key }) if key == "-7"));
        let cli = Cli::try_parse_from(["ringkv", "--addr", "a:1,b:2", "shell"]).unwrap();
        assert_eq!(cli.addr, ["a:1", "b:2"]);
        let cli = Cli::try_parse_from(["ringkv", "server", "--data-dir", "d", "--listen", "127.0.0.1:1"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::Server(_)));
    }
}
