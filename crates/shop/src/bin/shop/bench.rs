//! `shop bench`: measures admin portals from outside, as clients see them.
//!
//! 1. read latency through one portal, cache hits against database reads
//!    (`cache-control: no-cache`), interleaved in one run so both see the
//!    same machine;
//! 2. with two portals, the invalidation latency: from a write acknowledged
//!    by the first until the second serves the new version;
//! 3. admin writes/s at each client count (each client updates its own
//!    product, so the figure is the portal's and the database's, not a
//!    single document's contention).
//!
//! It writes products `bench-0…` (created if missing) and nothing else.
//!
//! `shop bench customers` is another workload, with flags of its own:
//! simulated customers over HTTP against customer portals (see
//! `bench_customers.rs`).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use shop::pb::admin_portal_client::AdminPortalClient;
use shop::pb::{Product, ProductId};
use tonic::transport::Channel;
use tonic::{Code, Request};

pub(crate) type Admin = AdminPortalClient<Channel>;

#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another workload instead of the admin portal measurements.
    #[command(subcommand)]
    workload: Option<Workload>,
    /// Client counts for the write phase, comma-separated.
    #[arg(long, default_value = "1,64", value_delimiter = ',')]
    clients: Vec<usize>,
    /// Seconds per write phase.
    #[arg(long, default_value = "5", value_parser = crate::parse_secs)]
    duration: Duration,
    /// Reads of each kind in the read phase.
    #[arg(long, default_value_t = 2000)]
    reads: usize,
    /// Writes timed in the invalidation phase (needs two --portal addresses).
    #[arg(long, default_value_t = 200)]
    rounds: usize,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Workload {
    /// Simulated customers over HTTP against every --customer-url (browse,
    /// open an order, set lines, read it, change one, cancel half), admin
    /// reads over gRPC against --portal, then the stock invariant checked
    /// against the database (--ringkv); exits 1 if it does not hold.
    #[command(after_help = crate::bench_customers::EXAMPLES)]
    Customers(crate::bench_customers::CustomersArgs),
}

pub async fn run(args: BenchArgs, portals: &[String], json_out: bool) -> anyhow::Result<()> {
    if let Some(Workload::Customers(c)) = args.workload {
        return crate::bench_customers::run(c, portals, json_out).await;
    }
    anyhow::ensure!(args.clients.iter().all(|&c| c > 0), "--clients must be positive");
    anyhow::ensure!(args.reads > 0 && args.rounds > 0, "--reads and --rounds must be positive");
    let a = connect(&portals[0])?;
    let products = args.clients.iter().copied().max().unwrap_or(1);
    prepare(&a, products).await?;

    let (hit, db) = read_latency(&a, args.reads).await?;
    let invalidation = match portals.get(1) {
        Some(b) => Some(invalidation_latency(&a, &connect(b)?, args.rounds).await?),
        None => None,
    };
    let mut writes = Vec::new();
    for &clients in &args.clients {
        writes.push((clients, write_rate(&a, clients, args.duration).await?));
    }

    if json_out {
        let h = |h: &Histogram<u64>| json!({"p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99)});
        let out = json!({
            "read_cache_hit": h(&hit),
            "read_database": h(&db),
            "invalidation": invalidation.as_ref().map(h),
            "writes": writes.iter().map(|(c, w)| json!({"clients": c, "per_sec": w.rate, "p50_us": w.lat.value_at_quantile(0.5), "p99_us": w.lat.value_at_quantile(0.99)})).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    let us = |v: u64| format!("{:.0} µs", v as f64);
    println!("read latency through {} ({} each, interleaved):", portals[0], args.reads);
    println!("  cache hit      p50 {:>9}  p99 {:>9}", us(hit.value_at_quantile(0.5)), us(hit.value_at_quantile(0.99)));
    println!("  database read  p50 {:>9}  p99 {:>9}", us(db.value_at_quantile(0.5)), us(db.value_at_quantile(0.99)));
    println!(
        "  ratio: a cache hit takes {:.2}× the time of a database read (p50)",
        hit.value_at_quantile(0.5) as f64 / db.value_at_quantile(0.5).max(1) as f64
    );
    if let Some(inv) = &invalidation {
        println!("invalidation latency {} → {} ({} writes):", portals[0], portals[1], args.rounds);
        println!(
            "  p50 {:>9}  p99 {:>9}  max {:>9}",
            us(inv.value_at_quantile(0.5)),
            us(inv.value_at_quantile(0.99)),
            us(inv.max())
        );
    }
    println!("admin writes (UpdateProduct, one product per client, {:?} each):", args.duration);
    let base = writes.first().map_or(1.0, |(_, w)| w.rate.max(1e-9));
    for (clients, w) in &writes {
        println!(
            "  {clients:>4} clients  {:>8.0} writes/s  p50 {:>9}  p99 {:>9}  ({:.2}× the first row)",
            w.rate,
            us(w.lat.value_at_quantile(0.5)),
            us(w.lat.value_at_quantile(0.99)),
            w.rate / base
        );
    }
    Ok(())
}

pub(crate) fn connect(addr: &str) -> anyhow::Result<Admin> {
    let uri = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    let channel = tonic::transport::Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(AdminPortalClient::new(channel))
}

fn pid(n: usize) -> String {
    format!("bench-{n}")
}

/// Creates the products the run writes, or leaves them if they exist.
async fn prepare(admin: &Admin, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        let p = Product { pid: pid(i), description: "bench".into(), quantity: 0, price: 1.0, version: 0 };
        match admin.clone().create_product(p).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => anyhow::bail!("cannot create {}: {}: {}", pid(i), s.code(), s.message()),
        }
    }
    Ok(())
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn get(pid: &str, fresh: bool) -> Request<ProductId> {
    let mut req = Request::new(ProductId { pid: pid.into() });
    if fresh {
        req.metadata_mut().insert("cache-control", "no-cache".parse().expect("ascii"));
    }
    req
}

async fn read_latency(admin: &Admin, reads: usize) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let (mut hit, mut db) = (histogram(), histogram());
    let mut admin = admin.clone();
    admin.get_product(get(&pid(0), false)).await?;
    for _ in 0..reads {
        for (fresh, h) in [(false, &mut hit), (true, &mut db)] {
            let t = Instant::now();
            admin.get_product(get(&pid(0), fresh)).await?;
            h.record(t.elapsed().as_micros() as u64)?;
        }
    }
    Ok((hit, db))
}

async fn invalidation_latency(a: &Admin, b: &Admin, rounds: usize) -> anyhow::Result<Histogram<u64>> {
    let (mut a, mut b) = (a.clone(), b.clone());
    let mut lat = histogram();
    for i in 0..rounds {
        b.get_product(get(&pid(0), false)).await?; // cached on b
        let p = Product { pid: pid(0), description: "bench".into(), quantity: i as i64, price: 1.0, version: 0 };
        let written = a.update_product(p).await?.into_inner().version;
        let t = Instant::now();
        while b.get_product(get(&pid(0), false)).await?.into_inner().version < written {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "b still serves the old version after 10 s");
        }
        lat.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(lat)
}

struct Rate {
    rate: f64,
    lat: Histogram<u64>,
}

async fn write_rate(admin: &Admin, clients: usize, duration: Duration) -> anyhow::Result<Rate> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let mut admin = admin.clone();
            tokio::spawn(async move {
                let mut lat = histogram();
                let mut q = 0;
                while start.elapsed() < duration {
                    q += 1;
                    let p = Product { pid: pid(c), description: "bench".into(), quantity: q, price: 1.0, version: 0 };
                    let t = Instant::now();
                    admin.update_product(p).await?;
                    lat.record(t.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok(lat)
            })
        })
        .collect();
    let mut lat = histogram();
    for t in tasks {
        lat.add(t.await??)?;
    }
    Ok(Rate { rate: lat.len() as f64 / start.elapsed().as_secs_f64(), lat })
}
