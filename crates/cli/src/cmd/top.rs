//! `ringkv top`: a live table of every replica of a ring, from each one's
//! `/metrics`: role, term, applied index and its rate, requests per second
//! and their p99 latency, refreshed every second (`--once`: one table,
//! from two scrapes an interval apart, for scripts and tests).
//!
//! The replicas are those `ringkv up` started (its `cluster.json` lists
//! each one's metrics address), or the `--metrics` addresses given.
//! Rates and p99 are over the last interval: differences of counters and
//! histogram buckets between two scrapes, p99 interpolated within its
//! bucket as Prometheus's `histogram_quantile` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use prometheus_parse::{Scrape, Value};

/// How long one scrape may take before the replica is shown as down.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// Flags of `ringkv top`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The data directory of a `ringkv up` cluster: its cluster.json names
    /// every replica's metrics address.
    #[arg(long, default_value = "ringkv-data")]
    pub data_dir: PathBuf,
    /// Metrics addresses (HOST:PORT, comma-separated) instead of
    /// cluster.json's.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Seconds between refreshes (and between the two scrapes of --once).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print one table and exit.
    #[arg(long)]
    pub once: bool,
}

/// What one scrape of one replica said.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sample {
    position: Option<String>,
    node_id: Option<String>,
    role: Option<String>,
    term: Option<f64>,
    leader: Option<f64>,
    applied: Option<f64>,
    /// Every KeyValue request so far, all RPCs and outcomes.
    requests: f64,
    /// Latency buckets summed over RPCs: upper bound → cumulative count.
    latency: BTreeMap<Bound, f64>,
}

/// A bucket's upper bound, ordered (+Inf last).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound(f64);

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => Some(*x),
        Value::Histogram(_) | Value::Summary(_) => None,
    }
}

impl Sample {
    fn from_text(text: &str) -> anyhow::Result<Sample> {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
        let mut s = Sample::default();
        for m in &scrape.samples {
            match (m.metric.as_str(), &m.value) {
                ("ringkv_node_info", _) => {
                    s.position = m.labels.get("position").map(str::to_owned);
                    s.node_id = m.labels.get("node_id").map(str::to_owned);
                }
                ("ringkv_raft_role", v) if number(v) == Some(1.0) => s.role = m.labels.get("role").map(str::to_owned),
                ("ringkv_raft_term", v) => s.term = number(v),
                ("ringkv_raft_leader_id", v) => s.leader = number(v),
                ("ringkv_raft_applied_index", v) => s.applied = number(v),
                ("ringkv_requests_total", v) => s.requests += number(v).unwrap_or(0.0),
                ("ringkv_request_duration_seconds", Value::Histogram(buckets)) => {
                    for b in buckets {
                        *s.latency.entry(Bound(b.less_than)).or_default() += b.count;
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// One row of the table: a replica's latest sample and what changed since
/// the one before.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    addr: String,
    now: Option<Sample>,
    applied_rate: Option<f64>,
    ops_rate: Option<f64>,
    p99: Option<f64>,
}

fn row(addr: &str, before: Option<&Sample>, now: Option<Sample>, secs: f64) -> Row {
    let (mut applied_rate, mut ops_rate, mut p99) = (None, None, None);
    if let (Some(b), Some(n)) = (before, &now) {
        applied_rate = n.applied.zip(b.applied).map(|(n, b)| (n - b) / secs);
        ops_rate = Some((n.requests - b.requests) / secs);
        p99 = quantile(0.99, &b.latency, &n.latency);
    }
    Row { addr: addr.to_owned(), now, applied_rate, ops_rate, p99 }
}

/// The `q` quantile of the observations made between two cumulative
/// histograms, interpolated linearly within its bucket (the lowest
/// bucket's lower bound is 0; a quantile in +Inf is the highest bound).
fn quantile(q: f64, before: &BTreeMap<Bound, f64>, now: &BTreeMap<Bound, f64>) -> Option<f64> {
    let delta: Vec<(f64, f64)> = now.iter().map(|(b, n)| (b.0, n - before.get(b).copied().unwrap_or(0.0))).collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(upper, count) in &delta {
        if count >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let within = count - below;
            let frac = if within > 0.0 { (rank - below) / within } else { 1.0 };
            return Some(lower + (upper - lower) * frac);
        }
        (lower, below) = (upper, count);
    }
    None
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn latency(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The table, one replica a line, position by position.
fn render(rows: &[Row], interval: f64) -> String {
    let mut out = format!(
        "ringkv top: {} replica(s), rates over {interval:.1} s\n{:<4} {:<5} {:<21} {:<10} {:>6} {:>6} {:>10} {:>10} {:>9} {:>9}\n",
        rows.len(),
        "POS",
        "NODE",
        "METRICS",
        "ROLE",
        "TERM",
        "LEADER",
        "APPLIED",
        "APPLIED/s",
        "OPS/s",
        "P99"
    );
    let mut total = 0.0;
    for r in rows {
        let Some(s) = &r.now else {
            out.push_str(&format!("{:<4} {:<5} {:<21} {:<10}\n", "?", "?", r.addr, "down"));
            continue;
        };
        total += r.ops_rate.unwrap_or(0.0);
        out.push_str(&format!(
            "{:<4} {:<5} {:<21} {:<10} {:>6} {:>6} {:>10} {:>10} {:>9} {:>9}\n",
            s.position.as_deref().unwrap_or("?"),
            s.node_id.as_deref().unwrap_or("?"),
            r.addr,
            s.role.as_deref().unwrap_or("starting"),
            opt(s.term),
            opt(s.leader),
            opt(s.applied),
            rate(r.applied_rate),
            rate(r.ops_rate),
            latency(r.p99),
        ));
    }
    out.push_str(&format!("total {total:.0} requests/s (each forwarded request counts on every replica it passes)\n"));
    out
}

/// The metrics addresses: the flag's, or those in `DIR/cluster.json`.
fn targets(args: &TopArgs) -> anyhow::Result<Vec<String>> {
    if !args.metrics.is_empty() {
        return Ok(args.metrics.clone());
    }
    let path = args.data_dir.join("cluster.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("cannot read {} (start a cluster with `ringkv up`, or give --metrics)", path.display())
    })?;
    targets_in(&text, &path)
}

fn targets_in(cluster_json: &str, path: &Path) -> anyhow::Result<Vec<String>> {
    let listing: serde_json::Value = serde_json::from_str(cluster_json)?;
    let addrs: Vec<String> = listing["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metrics_address"].as_str().map(str::to_owned))
        .collect();
    if addrs.is_empty() {
        bail!("{} lists no metrics address (was the cluster started with --no-metrics?)", path.display());
    }
    Ok(addrs)
}

async fn scrape(http: &reqwest::Client, addr: &str) -> Option<Sample> {
    let resp = http.get(format!("http://{addr}/metrics")).send().await.ok()?;
    Sample::from_text(&resp.text().await.ok()?).ok()
}

async fn scrape_all(http: &reqwest::Client, addrs: &[String]) -> Vec<Option<Sample>> {
    futures::future::join_all(addrs.iter().map(|a| scrape(http, a))).await
}

pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    if args.interval.is_nan() || args.interval <= 0.0 {
        bail!("--interval must be a positive number of seconds");
    }
    let addrs = targets(&args)?;
    let http = reqwest::Client::builder().timeout(SCRAPE_TIMEOUT).build()?;
    let interval = Duration::from_secs_f64(args.interval);
    let mut before = scrape_all(&http, &addrs).await;
    let mut at = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval.saturating_sub(at.elapsed())) => {}
            _ = crate::signal::shutdown() => return Ok(()),
        }
        let now = scrape_all(&http, &addrs).await;
        let secs = at.elapsed().as_secs_f64();
        at = Instant::now();
        let rows: Vec<Row> =
            addrs.iter().zip(&before).zip(now.clone()).map(|((a, b), n)| row(a, b.as_ref(), n, secs)).collect();
        let table = render(&rows, secs);
        if args.once {
            print!("{table}");
            return Ok(());
        }
        // Clear the screen and home the cursor, then the table.
        print!("\x1b[2J\x1b[H{table}");
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> BTreeMap<Bound, f64> {
        pairs.iter().map(|&(b, c)| (Bound(b), c)).collect()
    }

    #[test]
    fn p99_is_interpolated_within_its_bucket_over_the_interval_only() {
        let before = buckets(&[(0.001, 50.0), (0.01, 50.0), (f64::INFINITY, 50.0)]);
        // 100 new observations: 90 under 1 ms, 10 between 1 and 10 ms.
        let now = buckets(&[(0.001, 140.0), (0.01, 150.0), (f64::INFINITY, 150.0)]);
        let p99 = quantile(0.99, &before, &now).expect("observations");
        assert!((p99 - 0.0091).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(0.5, &now, &now), None, "nothing observed in between");
        let inf = buckets(&[(0.001, 0.0), (f64::INFINITY, 10.0)]);
        assert_eq!(quantile(0.99, &BTreeMap::new(), &inf), Some(0.001));
    }

    #[test]
    fn a_scrape_gives_role_indexes_and_requests_over_every_rpc() {
        let text = "\
# TYPE ringkv_node_info gauge
ringkv_node_info{node_id=\"2\",position=\"1\",version=\"0.1.0\"} 1
# TYPE ringkv_raft_role gauge
ringkv_raft_role{role=\"leader\"} 0
ringkv_raft_role{role=\"follower\"} 1
# TYPE ringkv_raft_term gauge
ringkv_raft_term 7
# TYPE ringkv_raft_applied_index gauge
ringkv_raft_applied_index 1234
# TYPE ringkv_requests counter
ringkv_requests_total{rpc=\"get\",outcome=\"SUCCESS\"} 10
ringkv_requests_total{rpc=\"set\",outcome=\"UNAVAILABLE\"} 5
# TYPE ringkv_request_duration_seconds histogram
ringkv_request_duration_seconds_bucket{rpc=\"get\",le=\"0.001\"} 9
ringkv_request_duration_seconds_bucket{rpc=\"get\",le=\"+Inf\"} 10
ringkv_request_duration_seconds_bucket{rpc=\"set\",le=\"0.001\"} 1
ringkv_request_duration_seconds_bucket{rpc=\"set\",le=\"+Inf\"} 5
# EOF
";
        let s = Sample::from_text(text).expect("parses");
        assert_eq!((s.position.as_deref(), s.node_id.as_deref()), (Some("1"), Some("2")));
        assert_eq!(s.role.as_deref(), Some("follower"));
        assert_eq!((s.term, s.applied, s.requests), (Some(7.0), Some(1234.0), 15.0));
        assert_eq!(s.latency, buckets(&[(0.001, 10.0), (f64::INFINITY, 15.0)]));
    }

    #[test]
    fn rows_show_rates_and_a_replica_that_did_not_answer_is_down() {
        let before = Sample { applied: Some(100.0), requests: 10.0, ..Sample::default() };
        let now = Sample { role: Some("leader".into()), applied: Some(300.0), requests: 410.0, ..before.clone() };
        let r = row("127.0.0.1:9070", Some(&before), Some(now), 2.0);
        assert_eq!((r.applied_rate, r.ops_rate), (Some(100.0), Some(200.0)));
        let table = render(&[r, row("127.0.0.1:9071", None, None, 2.0)], 2.0);
        assert!(table.lines().nth(2).is_some_and(|l| l.contains("leader") && l.contains("200")), "{table}");
        assert!(table.lines().nth(3).is_some_and(|l| l.contains("127.0.0.1:9071") && l.contains("down")), "{table}");
    }

    #[test]
    fn targets_come_from_cluster_json() {
        let json = r#"{"processes":[{"metrics_address":"127.0.0.1:9070"},{"metrics_address":"127.0.0.1:9071"}]}"#;
        let path = Path::new("cluster.json");
        assert_eq!(targets_in(json, path).expect("targets"), ["127.0.0.1:9070", "127.0.0.1:9071"]);
        assert!(targets_in(r#"{"processes":[{"address":"x"}]}"#, path).is_err());
    }
}
