//! `shop`: the reference shop's command. Runs the whole system (`up`), its
//! processes one at a time (portals, a ringkv replica), and talks to the
//! portals as admin and customer CLIs, a shell, or a load generator.
//!
//! This file holds the command line's shape and the exit-code policy; the
//! admin commands are in `admin.rs` (shared with the shell, `shell.rs`),
//! their printing in `output.rs`; the customer CLI in `customer.rs` and
//! `customer_output.rs`; the portals' start-up in `portal.rs`; `up.rs`,
//! `server.rs` and `broker.rs` run the system; `bench.rs` and
//! `bench_customers.rs` load it.

mod admin;
mod bench;
mod bench_customers;
mod broker;
mod customer;
mod customer_output;
mod output;
mod portal;
mod server;
mod shell;
mod up;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

const ABOUT: &str = "shop: the reference shop on ringkv (portals, admin and customer CLIs, benchmark).";

const LONG_ABOUT: &str = "\
shop: the reference shop on ringkv.

`shop up` starts the whole system on this machine: a ringkv ring, an MQTT
broker, two admin and two customer portals, and a demo catalogue.

Customers, products and orders are JSON documents in a ringkv ring. Admin
portals (`shop admin-portal`) serve the catalogue over gRPC
(proto/shop/v1/admin.proto); customer portals (`shop customer-portal`) serve
a JSON API over HTTP and the storefront's web pages. Run as many instances
of each as you like: each has its own cache, kept fresh by invalidations
over MQTT, and orders never oversell however many buy at once. `shop admin`
and `shop shell` talk to an admin portal, `shop customer` to a customer
portal. The schema, the order saga and the error codes are in docs/shop.md.";

const EXAMPLES: &str = "\
Examples:
  shop up                                     the whole system; storefront on http://127.0.0.1:8080/
  shop admin-portal --listen 127.0.0.1:7100 --ringkv 127.0.0.1:7070,127.0.0.1:7071 --mqtt mqtt://127.0.0.1:1883
  shop admin product create p1 --description 'Blue mug' --quantity 10 --price 4.50
  shop admin product update p1 --quantity 12
  shop admin product list --json
  shop admin customer create c1 --name 'Ada Lovelace' --email ada@example.org
  shop shell
  shop bench --portal 127.0.0.1:7100,127.0.0.1:7101
  shop customer --url http://127.0.0.1:8080 --cid c1 order new
  shop bench customers --customer-url http://127.0.0.1:8080,http://127.0.0.1:8081 --ringkv 127.0.0.1:7070

Exit codes: 0 on success, 1 for bad input, usage or a refused operation (not
found, already exists, version conflict, stock short), 2 when the portal cannot
be reached, did not answer in time, or cannot reach the database.";

#[derive(Debug, Parser)]
#[command(name = "shop", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Admin portal(s) to talk to: HOST:PORT, or several comma-separated.
    #[arg(long, global = true, env = "SHOP_ADMIN_ADDR", default_value = "127.0.0.1:7100", value_delimiter = ',')]
    portal: Vec<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value = "5", value_parser = parse_secs)]
    timeout: Duration,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run an admin portal (gRPC) in the foreground.
    #[command(after_help = portal::EXAMPLES)]
    AdminPortal(portal::PortalArgs),
    /// Run a customer portal (HTTP/JSON API and the storefront) in the foreground.
    #[command(after_help = portal::CUSTOMER_EXAMPLES)]
    CustomerPortal(portal::CustomerPortalArgs),
    /// Manage customers and products through an admin portal.
    #[command(subcommand)]
    Admin(admin::AdminCmd),
    /// Shop as a customer through a customer portal (HTTP): the catalogue
    /// and your orders.
    #[command(after_help = customer::EXAMPLES)]
    Customer(customer::CustomerArgs),
    /// Interactive shell against an admin portal (type help inside).
    Shell,
    /// Load an admin portal: read latency cached and not, invalidation
    /// latency between two portals, writes/s at several client counts; or,
    /// with `bench customers`, simulated customers over HTTP.
    Bench(bench::BenchArgs),
    /// Boxed: a replica's flags are many, the other commands' few.
    #[command(about = server::ABOUT, after_help = server::EXAMPLES)]
    Server(Box<server::ServerArgs>),
    /// Start the whole shop (ringkv ring, MQTT broker, admin and customer
    /// portals), load a demo catalogue, open the admin shell.
    #[command(after_help = up::EXAMPLES)]
    Up(up::UpArgs),
}

/// Positive seconds, fractions allowed.
fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 => Duration::try_from_secs_f64(s).map_err(|e| e.to_string()),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::AdminPortal(args) => portal::run(args).await?,
        Cmd::CustomerPortal(args) => portal::run_customer(args).await?,
        Cmd::Admin(cmd) => return Ok(admin::run(&cmd, &cli.portal, cli.timeout, cli.json).await),
        Cmd::Customer(args) => return Ok(customer::run(&args, cli.timeout, cli.json).await),
        Cmd::Shell => return shell::run(&cli.portal, cli.timeout, cli.json).await,
        Cmd::Bench(args) => bench::run(args, &cli.portal, cli.json).await?,
        Cmd::Server(args) => server::run(*args).await?,
        Cmd::Up(args) => return up::run(args, cli.json, cli.timeout).await,
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are no error; a usage mistake is bad input
            // (1), not clap's 2, which here means "no answer".
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shop: {e:#}");
            ExitCode::from(1)
        }
    }
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
    fn customer_flags() {
        use customer::{CustomerCmd, OrderCmd};
        let argv = ["shop", "customer", "--portal-url", "http://h:1", "--cid", "ada", "order", "set", "o1", "p1", "-1"];
        let Cmd::Customer(args) = Cli::try_parse_from(argv).unwrap().cmd else { panic!("not customer") };
        assert_eq!(args.url, "http://h:1");
        assert_eq!(args.cid, "ada");
        assert_eq!(args.cmd, CustomerCmd::Order(OrderCmd::Set { oid: "o1".into(), pid: "p1".into(), quantity: -1 }));
        let argv = ["shop", "--portal", "a:1,b:2", "bench", "customers", "--customer-url", "http://x:1,http://y:2"];
        assert!(matches!(Cli::try_parse_from(argv).unwrap().cmd, Cmd::Bench(_)));
        assert!(Cli::try_parse_from(["shop", "bench", "--reads", "1", "customers"]).is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "x", "NaN"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
