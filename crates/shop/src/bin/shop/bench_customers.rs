//! `shop bench customers`: simulated customers over HTTP against every
//! customer portal given, admin reads over gRPC alongside, and at the end
//! the stock invariant checked against the database itself.
//!
//! Set-up, through the first admin portal and the first customer portal:
//! customers `bench-c0…` (created if missing, their open orders from an
//! earlier run cancelled), products `bench-p0…` with ample stock and one
//! scarce product `bench-scarce` (so that some line changes are refused
//! with 409), each set to the stock given here.
//!
//! Each customer loops until the time is up: browse the products, open an
//! order (on the next portal in turn), set 1-3 lines (now and then the
//! scarce product), read the order, change one line a third of the time,
//! and cancel half of the orders. The orders it keeps are cancelled oldest
//! first once it keeps `KEEP` of them, so that no customer reaches the
//! portal's limit of open orders.
//!
//! The invariant, for every bench product, once the load has stopped and
//! every pending change is finished (`Orders::audit`):
//! `quantity + units in open orders == stock given at set-up` and
//! `held == units in open orders`. The stock given is the quantity set
//! plus the units that orders open before the load hold (orders of other
//! customers, or of bench customers beyond `--customers`), as an audit
//! just before the load finds them: setting a quantity leaves `held` as
//! it is.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::join_all;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use shop::cache::CacheConfig;
use shop::instance::{connect, PortalConfig};
use shop::orders::Orders;
use shop::pb::{Customer, Product, ProductId};
use tonic::Code;

use crate::bench::{self, histogram, Admin};
use crate::output::table;

pub const EXAMPLES: &str = "\
Examples:
  shop bench customers --customer-url http://127.0.0.1:8080,http://127.0.0.1:8081 \\
      --portal 127.0.0.1:7100 --ringkv 127.0.0.1:7070
  shop bench customers --customers 16 --duration 10 --json
It writes customers bench-c0…, products bench-p0… and bench-scarce, and
orders of those customers; nothing else. Exit code 1 if the invariant does
not hold at the end (or the set-up fails).";

/// Stock of each ample product.
const STOCK: i64 = 1_000_000;
/// Orders a customer keeps open at most (the portal allows 100).
const KEEP: usize = 20;
/// Deadline of one HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct CustomersArgs {
    /// Simulated customers, each a task of its own with its own CID.
    #[arg(long, default_value_t = 64)]
    customers: usize,
    /// Seconds of load.
    #[arg(long, default_value = "30", value_parser = crate::parse_secs)]
    duration: Duration,
    /// Customer portals (base URLs), comma-separated: all of them are used.
    #[arg(long, env = "SHOP_CUSTOMER_URL", default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    customer_url: Vec<String>,
    /// ringkv servers, comma-separated, for the final audit.
    #[arg(long, env = "SHOP_RINGKV", default_value = "127.0.0.1:7070", value_delimiter = ',')]
    ringkv: Vec<String>,
    /// Products with ample stock.
    #[arg(long, default_value_t = 16)]
    products: usize,
    /// Units of the scarce product.
    #[arg(long, default_value_t = 10)]
    scarce: i64,
    /// Admin reads (GetProduct) per second over gRPC, spread over --portal
    /// (0: none).
    #[arg(long, default_value_t = 20.0)]
    admin_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Browse,
    Open,
    Set,
    Show,
    Cancel,
    AdminRead,
}

const OPS: [(Op, &str); 6] = [
    (Op::Browse, "browse"),
    (Op::Open, "open"),
    (Op::Set, "set"),
    (Op::Show, "show"),
    (Op::Cancel, "cancel"),
    (Op::AdminRead, "admin read"),
];

/// Latencies and answers of each operation.
struct Tally {
    lat: Vec<Histogram<u64>>,
    statuses: Vec<BTreeMap<String, u64>>,
}

impl Tally {
    fn new() -> Tally {
        Tally { lat: OPS.iter().map(|_| histogram()).collect(), statuses: vec![BTreeMap::new(); OPS.len()] }
    }

    fn record(&mut self, op: Op, started: Instant, status: String) {
        let i = op as usize;
        self.lat[i].saturating_record(started.elapsed().as_micros() as u64);
        *self.statuses[i].entry(status).or_default() += 1;
    }

    fn add(&mut self, other: Tally) {
        for (mine, theirs) in self.lat.iter_mut().zip(other.lat) {
            mine.add(theirs).expect("same bounds");
        }
        for (mine, theirs) in self.statuses.iter_mut().zip(other.statuses) {
            for (k, v) in theirs {
                *mine.entry(k).or_default() += v;
            }
        }
    }

    fn count(&self, op: Op, status: &str) -> u64 {
        self.statuses[op as usize].get(status).copied().unwrap_or(0)
    }
}

/// One HTTP request of the API; its status and JSON body (`Null` if none),
/// or `error`/`timeout` when there was no answer.
async fn call(
    http: &reqwest::Client,
    tally: &mut Tally,
    op: Op,
    url: String,
    method: Method,
    cid: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let started = Instant::now();
    let mut req = http.request(method, url).bearer_auth(cid);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let answer = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(bytes) => Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok((status, body)) => {
            tally.record(op, started, status.to_string());
            Some((status, body))
        }
        Err(e) => {
            tally.record(op, started, if e.is_timeout() { "timeout" } else { "error" }.into());
            None
        }
    }
}

fn api(base: &str, path: &str) -> String {
    format!("{}/api/v1{path}", base.trim_end_matches('/'))
}

fn cid(i: usize) -> String {
    format!("bench-c{i}")
}

fn pid(j: usize) -> String {
    format!("bench-p{j}")
}

const SCARCE: &str = "bench-scarce";

pub async fn run(args: CustomersArgs, portals: &[String], json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(args.customers > 0 && args.products > 0, "--customers and --products must be positive");
    anyhow::ensure!(!args.customer_url.is_empty(), "--customer-url names no portal");
    anyhow::ensure!(args.scarce >= 0, "--scarce must be 0 or more");
    let admins: Vec<Admin> = portals.iter().map(|a| bench::connect(a)).collect::<anyhow::Result<_>>()?;
    let http = reqwest::Client::builder().timeout(HTTP_TIMEOUT).tcp_nodelay(true).build()?;

    let set = prepare(&args, &admins[0], &http).await?;
    // Orders left open by others (or by customers beyond --customers of an
    // earlier run) still hold units: the stock given is what was set now
    // plus what they hold, as the database says before the load.
    let db = audit_orders(&args.ringkv)?;
    let before = db.audit().await.context("auditing the orders before the load")?;
    let mut given = BTreeMap::new();
    for (pid, stock) in &set {
        let held = before.products.iter().find(|p| &p.pid == pid).map_or(0, |p| p.in_orders);
        given.insert(pid.clone(), stock + held);
    }
    let pids: Arc<Vec<String>> = Arc::new((0..args.products).map(pid).collect());

    let start = Instant::now();
    let deadline = start + args.duration;
    let shoppers: Vec<_> = (0..args.customers)
        .map(|i| {
            let (http, urls, pids) = (http.clone(), args.customer_url.clone(), pids.clone());
            tokio::spawn(async move { shopper(i, http, urls, pids, deadline).await })
        })
        .collect();
    let reader = (args.admin_rate > 0.0).then(|| {
        let (admins, pids, rate) = (admins.clone(), pids.clone(), args.admin_rate);
        tokio::spawn(async move { admin_reads(admins, pids, rate, deadline).await })
    });
    let mut tally = Tally::new();
    for s in shoppers {
        tally.add(s.await?);
    }
    if let Some(r) = reader {
        tally.add(r.await?);
    }
    let elapsed = start.elapsed();

    let audit_started = Instant::now();
    let check = invariant(&db, &given).await?;
    let audit_time = audit_started.elapsed();

    let opened = tally.count(Op::Open, "201");
    let rate = opened as f64 / elapsed.as_secs_f64();
    let cache_note = "not measured: the portals do not expose their cache counters";
    if json_out {
        let ops: serde_json::Map<String, Value> = OPS
            .iter()
            .map(|&(op, name)| {
                let (h, s) = (&tally.lat[op as usize], &tally.statuses[op as usize]);
                let v = json!({"count": h.len(), "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99), "statuses": s});
                (name.replace(' ', "_"), v)
            })
            .collect();
        let out = json!({
            "customers": args.customers,
            "customer_portals": args.customer_url,
            "admin_portals": portals,
            "duration_s": elapsed.as_secs_f64(),
            "orders": opened,
            "orders_per_sec": rate,
            "operations": ops,
            "cache_hit_ratio": null,
            "cache_hit_ratio_note": cache_note,
            "invariant": {
                "holds": check.violations.is_empty(),
                "products": given.len(),
                "violations": check.violations,
                "orders_audited": check.orders,
                "open_orders": check.open,
                "pending_finished": check.finished,
                "decisions_unpruned": check.decisions,
                "audit_s": audit_time.as_secs_f64(),
            },
        });
        println!("{out}");
    } else {
        println!(
            "{} customers over {} customer portal(s) ({}) for {:.1} s; admin reads at {}/s over {} admin portal(s)",
            args.customers,
            args.customer_url.len(),
            args.customer_url.join(", "),
            elapsed.as_secs_f64(),
            args.admin_rate,
            portals.len()
        );
        println!("orders: {opened} opened, {rate:.1} orders/s; {} cancelled", tally.count(Op::Cancel, "200"));
        let us = |v: u64| format!("{v} µs");
        let rows = OPS.iter().map(|&(op, name)| {
            let (h, s) = (&tally.lat[op as usize], &tally.statuses[op as usize]);
            let statuses: Vec<String> = s.iter().map(|(k, v)| format!("{k}×{v}")).collect();
            vec![
                name.to_string(),
                h.len().to_string(),
                us(h.value_at_quantile(0.5)),
                us(h.value_at_quantile(0.99)),
                statuses.join(" "),
            ]
        });
        println!(
            "{}",
            table(
                &["OPERATION", "COUNT", "P50", "P99", "STATUSES"],
                &[false, true, true, true, false],
                rows,
                "operations"
            )
        );
        println!("cache hit ratio: {cache_note}");
        let what = format!(
            "audit of {} orders ({} open, {} pending changes finished, {} decisions unpruned) in {:.1} s",
            check.orders,
            check.open,
            check.finished,
            check.decisions,
            audit_time.as_secs_f64()
        );
        if check.violations.is_empty() {
            println!(
                "invariant: holds for all {} bench products (quantity + in orders = stock given, held = in orders); {what}",
                given.len()
            );
        } else {
            println!("invariant: DOES NOT HOLD; {what}");
            for v in &check.violations {
                println!("  {v}");
            }
        }
    }
    anyhow::ensure!(
        check.violations.is_empty(),
        "the stock invariant does not hold for {} bench product(s)",
        check.violations.len()
    );
    Ok(())
}

/// Creates the customers and products, cancels the customers' open orders
/// left by an earlier run, sets every product's stock; answers the stock
/// given to each product.
async fn prepare(args: &CustomersArgs, admin: &Admin, http: &reqwest::Client) -> anyhow::Result<BTreeMap<String, i64>> {
    for i in 0..args.customers {
        let c = Customer {
            cid: cid(i),
            name: format!("Bench customer {i}"),
            email: format!("bench-c{i}@bench.example"),
            version: 0,
        };
        match admin.clone().create_customer(c).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => anyhow::bail!("cannot create customer {}: {}: {}", cid(i), s.code(), s.message()),
        }
    }
    let base = &args.customer_url[0];
    let cancelled = join_all((0..args.customers).map(|i| cancel_all(http, base, cid(i)))).await;
    for c in cancelled {
        c?;
    }
    let mut given = BTreeMap::new();
    let mut products: Vec<(String, i64, f64)> =
        (0..args.products).map(|j| (pid(j), STOCK, (100 + 25 * (j as i64 % 40)) as f64 / 100.0)).collect();
    products.push((SCARCE.to_owned(), args.scarce, 9.99));
    for (pid, quantity, price) in products {
        let p = Product { pid: pid.clone(), description: format!("bench product {pid}"), quantity, price, version: 0 };
        match admin.clone().create_product(p.clone()).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {
                admin.clone().update_product(p).await.with_context(|| format!("cannot set the stock of {pid}"))?;
            }
            Err(s) => anyhow::bail!("cannot create product {pid}: {}: {}", s.code(), s.message()),
        }
        given.insert(pid, quantity);
    }
    Ok(given)
}

/// Cancels every open order of `cid`.
async fn cancel_all(http: &reqwest::Client, base: &str, cid: String) -> anyhow::Result<()> {
    let resp = http.get(api(base, "/orders")).bearer_auth(&cid).send().await.context("customer portal")?;
    let status = resp.status();
    let body: Value = resp.json().await.with_context(|| format!("listing the orders of {cid}"))?;
    anyhow::ensure!(status.is_success(), "cannot list the orders of {cid}: {status} {body}");
    for oid in body["orders"].as_array().into_iter().flatten().filter_map(|o| o["oid"].as_str()) {
        let resp = http.delete(api(base, &format!("/orders/{oid}"))).bearer_auth(&cid).send().await?;
        anyhow::ensure!(resp.status().is_success(), "cannot cancel order {oid} of {cid}: {}", resp.status());
    }
    Ok(())
}

/// One simulated customer, until `deadline`.
async fn shopper(
    i: usize,
    http: reqwest::Client,
    urls: Vec<String>,
    pids: Arc<Vec<String>>,
    deadline: Instant,
) -> Tally {
    let mut rng = StdRng::seed_from_u64(rand::random::<u64>() ^ i as u64);
    let mut tally = Tally::new();
    let cid = cid(i);
    let mut kept: VecDeque<(String, String)> = VecDeque::new();
    let limit = (pids.len() + 1).min(1000);
    let mut k = 0;
    while Instant::now() < deadline {
        let base = urls[(i + k) % urls.len()].clone();
        k += 1;
        let t = &mut tally;
        call(&http, t, Op::Browse, api(&base, &format!("/products?limit={limit}")), Method::GET, &cid, None).await;
        let oid = match call(&http, t, Op::Open, api(&base, "/orders"), Method::POST, &cid, None).await {
            Some((201, body)) => match body["oid"].as_str() {
                Some(oid) => oid.to_owned(),
                None => continue,
            },
            // Refused or no answer: a breath, then the next round.
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mut chosen: Vec<String> = Vec::new();
        let n = rng.random_range(1..=3);
        while chosen.len() < n.min(pids.len()) {
            let p = &pids[rng.random_range(0..pids.len())];
            if !chosen.contains(p) {
                chosen.push(p.clone());
            }
        }
        if rng.random_bool(0.25) {
            chosen[0] = SCARCE.to_owned();
        }
        let item = |pid: &str| api(&base, &format!("/orders/{oid}/items/{pid}"));
        for p in &chosen {
            let q = rng.random_range(1..=3);
            call(&http, t, Op::Set, item(p), Method::PUT, &cid, Some(json!({ "quantity": q }))).await;
        }
        call(&http, t, Op::Show, api(&base, &format!("/orders/{oid}")), Method::GET, &cid, None).await;
        if rng.random_bool(1.0 / 3.0) {
            let p = &chosen[rng.random_range(0..chosen.len())];
            let q = rng.random_range(0..=4);
            call(&http, t, Op::Set, item(p), Method::PUT, &cid, Some(json!({ "quantity": q }))).await;
        }
        let cancel = |base: &str, oid: &str| api(base, &format!("/orders/{oid}"));
        if rng.random_bool(0.5) {
            call(&http, t, Op::Cancel, cancel(&base, &oid), Method::DELETE, &cid, None).await;
        } else {
            kept.push_back((base.clone(), oid));
            if kept.len() > KEEP {
                let (b, old) = kept.pop_front().expect("not empty");
                call(&http, t, Op::Cancel, cancel(&b, &old), Method::DELETE, &cid, None).await;
            }
        }
    }
    tally
}

/// GetProduct at `rate` per second, round robin over the admin portals.
async fn admin_reads(admins: Vec<Admin>, pids: Arc<Vec<String>>, rate: f64, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0usize;
    while Instant::now() < deadline {
        tick.tick().await;
        let mut admin = admins[n % admins.len()].clone();
        let pid = pids[n % pids.len()].clone();
        n += 1;
        let started = Instant::now();
        let status = match admin.get_product(ProductId { pid }).await {
            Ok(_) => "OK".to_owned(),
            Err(s) => format!("{:?}", s.code()),
        };
        tally.record(Op::AdminRead, started, status);
    }
    tally
}

/// Orders straight on the database (no portal, no cache, no broker).
fn audit_orders(ringkv: &[String]) -> anyhow::Result<Orders> {
    let config = PortalConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ringkv: ringkv.to_vec(),
        mqtt: None,
        cache: CacheConfig { entries: 0, ttl: Duration::from_secs(1) },
        db_timeout: Duration::from_secs(10),
        metrics_listen: None,
    };
    Ok(Orders::new(connect(&config, "bench").context("connecting to ringkv for the audit")?))
}

/// What the final audit found.
struct Check {
    orders: usize,
    open: usize,
    finished: usize,
    decisions: usize,
    violations: Vec<String>,
}

/// Audits the store directly (no portal, no cache) and checks every bench
/// product against the stock given to it.
async fn invariant(orders: &Orders, given: &BTreeMap<String, i64>) -> anyhow::Result<Check> {
    let audit = orders.audit().await.context("auditing the orders")?;
    let mut violations = Vec::new();
    let mut decisions = 0;
    for (pid, &stock) in given {
        let Some(p) = audit.products.iter().find(|p| &p.pid == pid) else {
            violations.push(format!("{pid}: missing from the store"));
            continue;
        };
        decisions += p.decisions;
        if p.quantity + p.in_orders != stock {
            violations.push(format!(
                "{pid}: quantity {} + in open orders {} = {}, but {stock} were given",
                p.quantity,
                p.in_orders,
                p.quantity + p.in_orders
            ));
        }
        if p.held != p.in_orders {
            violations.push(format!("{pid}: held {} but {} in open orders", p.held, p.in_orders));
        }
    }
    Ok(Check { orders: audit.orders, open: audit.open, finished: audit.finished, decisions, violations })
}
