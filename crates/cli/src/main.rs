//! `ringkv`: the server, a local cluster, an interactive shell, one-shot
//! operations and operator tools, in one binary.

mod admin;
mod bench;
mod ops;
mod output;
mod parse;
mod server_cmd;
mod shell;
mod up;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ringkv_client::{Client, ClientOptions};

const ABOUT: &str = "ringkv: a distributed, versioned key-value store.";

const LONG_ABOUT: &str = "\
ringkv: a distributed, versioned key-value store.

Keys are integers of any size; every value carries a version (1 on insert,
+1 on every test-and-set), a client timestamp and bytes. Every operation
answers an outcome: SUCCESS, ERROR, ERROR_NE (no such key) or ERROR_WV
(wrong version).";

const EXAMPLES: &str = "\
Examples:
  ringkv up                               start a local cluster and open the shell
  ringkv server --data-dir d --listen 127.0.0.1:7070
  ringkv set 42 hello                     insert key 42
  ringkv tas 42 'hello again' 1           replace it if it is at version 1
  ringkv get 42 --json                    read it, as JSON
  ringkv del 42 2                         delete it if it is at version 2
  ringkv set 0x10 @photo.jpg              data from a file (hex:0a0b for raw bytes)
  ringkv status --addr 127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072

Exit codes: 0 for every outcome (outcomes are answers), 1 for bad input,
2 when the server cannot be reached or did not answer in time.";

#[derive(Debug, Parser)]
#[command(name = "ringkv", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Server(s) to talk to (HOST:PORT, comma-separated for status).
    #[arg(long, global = true, env = "RINGKV_ADDR", default_value = "127.0.0.1:7070", value_delimiter = ',')]
    addr: Vec<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value_t = 5.0)]
    timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a server (a replica) in the foreground.
    Server(server_cmd::ServerArgs),
    /// Start a local cluster of server processes and open the shell.
    Up(up::UpArgs),
    /// Interactive shell against a server.
    Shell,
    /// Show each server's role, term, log, applied and snapshot index.
    Status(admin::StatusArgs),
    /// Check a stopped server's data directory offline.
    Verify(admin::VerifyArgs),
    /// Closed-loop load generator: throughput and latency percentiles.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Op(ops::Op),
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
    let timeout = Duration::try_from_secs_f64(cli.timeout).unwrap_or(Duration::from_secs(5));
    let opts = ClientOptions { timeout, ..ClientOptions::default() };
    Ok(Client::new(&cli.addr.join(","), opts)?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.cmd {
        Cmd::Server(args) => {
            init_logging();
            server_cmd::run(args.clone()).await?;
        }
        Cmd::Up(args) => up::run(args.clone(), cli.json).await?,
        Cmd::Shell => shell::run(&client(&cli)?, &cli.addr.join(", "), cli.json).await?,
        Cmd::Status(args) => admin::status(args.clone(), &cli.addr, cli.json).await?,
        Cmd::Verify(args) => admin::verify(args.clone(), cli.json)?,
        Cmd::Bench(args) => bench::run(args.clone(), &cli.addr[0], cli.json).await?,
        Cmd::Op(op) => match op.run(&client(&cli)?).await {
            Ok(reply) if cli.json => println!("{}", output::json(&reply)),
            Ok(reply) => println!("{}", output::readable(&reply)),
            Err(e) => {
                eprintln!("ringkv: {e}");
                return Ok(ExitCode::from(e.exit_code() as u8));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringkv: {e:#}");
            ExitCode::from(1)
        }
    }
}
