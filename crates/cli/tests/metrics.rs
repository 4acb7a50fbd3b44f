//! `/metrics` and `/healthz` of real servers, and `ringkv top` over them:
//! the exposition parses with a Prometheus text parser and its counters
//! move by exactly the requests sent; a replica whose group lost its
//! majority says 503 until the group is whole again; `top --once` shows
//! every replica of a ring.

mod common;

use std::time::Duration;

use common::ONE_AT_A_TIME;
use num_bigint::BigInt;
use prometheus_parse::{Scrape, Value};
use ringkv_client::{ClientOptions, Outcome};
use ringkv_ring::Placement;
use ringkv_testkit::Cluster;

/// One scrape of a server's `/metrics`, parsed.
struct Metrics(Scrape);

impl Metrics {
    async fn of(addr: &str) -> Metrics {
        let text = reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics").text().await.expect("body");
        assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF:\n{text}");
        Metrics(Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses"))
    }

    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching = self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
        matching
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{name} is not a number: {other:?}"),
            })
            .sum()
    }

    /// The cumulative count of bucket `le` of histogram `name`.
    fn bucket(&self, name: &str, le: f64) -> f64 {
        let buckets = self.0.samples.iter().filter(|s| s.metric == name).filter_map(|s| match &s.value {
            Value::Histogram(b) => Some(b),
            _ => None,
        });
        buckets.flatten().filter(|b| b.less_than == le).map(|b| b.count).sum()
    }

    fn requests(&self, rpc: &str, outcome: &str) -> f64 {
        self.value("ringkv_requests_total", &[("rpc", rpc), ("outcome", outcome)])
    }

    /// Observations in the latency histogram of `rpc`.
    fn latency_count(&self, rpc: &str) -> f64 {
        self.value("ringkv_request_duration_seconds_count", &[("rpc", rpc)])
    }
}

/// `/healthz`'s status and body; status 0 when nothing listens (a
/// replica that is stopped or still starting).
async fn health(addr: &str) -> (u16, String) {
    match reqwest::get(format!("http://{addr}/healthz")).await {
        Ok(resp) => (resp.status().as_u16(), resp.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn metrics_addr(cluster: &Cluster, p: usize, r: usize) -> String {
    cluster.replica(p, r).metrics_addr.clone().expect("started with metrics")
}

#[tokio::test]
async fn counters_move_by_exactly_the_requests_sent() {
    let cluster = common::start(common::spec(1, 1, &["--max-value-bytes", "16"]).metrics()).await;
    let addr = metrics_addr(&cluster, 0, 0);
    let client = cluster.client(common::opts(false)).expect("client");
    let key = |k: u32| BigInt::from(1000 + k);
    let before = Metrics::of(&addr).await;
    // Every outcome, each a known number of times.
    let (sets, missing, wrong_version) = (7, 3, 2);
    for k in 0..sets {
        assert_eq!(client.set(&key(k), 1, "v").await.expect("set").outcome, Outcome::Success);
    }
    assert_eq!(client.set(&key(0), 1, "again").await.expect("set").outcome, Outcome::Error);
    for k in 0..missing {
        assert_eq!(client.get(&key(500 + k)).await.expect("get").outcome, Outcome::Error);
    }
    assert_eq!(client.get(&key(0)).await.expect("get").outcome, Outcome::Success);
    for _ in 0..wrong_version {
        assert_eq!(client.test_and_set(&key(0), 1, "w", 9).await.expect("tas").outcome, Outcome::ErrorWv);
    }
    assert_eq!(client.test_and_set(&key(600), 1, "w", 1).await.expect("tas").outcome, Outcome::ErrorNe);
    assert!(client.set(&key(700), 1, "seventeen bytes!!").await.is_err(), "over --max-value-bytes");
    let after = Metrics::of(&addr).await;

    let moved = |rpc, outcome| after.requests(rpc, outcome) - before.requests(rpc, outcome);
    assert_eq!(moved("set", "SUCCESS"), f64::from(sets));
    assert_eq!(moved("set", "ERROR"), 1.0);
    assert_eq!(moved("set", "INVALID_ARGUMENT"), 1.0);
    assert_eq!(moved("get", "ERROR"), f64::from(missing));
    assert_eq!(moved("get", "SUCCESS"), 1.0);
    assert_eq!(moved("test_and_set", "ERROR_WV"), f64::from(wrong_version));
    assert_eq!(moved("test_and_set", "ERROR_NE"), 1.0);
    assert_eq!(moved("test_and_set", "SUCCESS"), 0.0);
    assert_eq!(after.latency_count("set") - before.latency_count("set"), f64::from(sets + 2));
    assert_eq!(after.latency_count("get") - before.latency_count("get"), f64::from(missing + 1));
    // Every valid write went through the batcher (an answer other than
    // SUCCESS is a write that applied so), every linearizable read through
    // a read-index round.
    let writes = |m: &Metrics| m.value("ringkv_write_requests_total", &[]);
    assert_eq!(writes(&after) - writes(&before), f64::from(sets + 1 + wrong_version + 1));
    let reads = |m: &Metrics| m.value("ringkv_read_index_reads_total", &[]);
    assert_eq!(reads(&after) - reads(&before), f64::from(missing + 1));
    // Served here, never forwarded: every request's path is 0 hops.
    let hops = |m: &Metrics| m.bucket("ringkv_request_hops", 0.0);
    assert_eq!(hops(&after) - hops(&before), f64::from(sets + missing + wrong_version + 4));
    assert_eq!(after.value("ringkv_forwards_total", &[]), 0.0);

    assert!(after.value("ringkv_log_appended_bytes_total", &[]) > before.value("ringkv_log_appended_bytes_total", &[]));
    assert!(after.value("ringkv_log_fsync_duration_seconds_count", &[]) > 0.0);
    assert!(after.value("ringkv_log_segments", &[]) >= 1.0);
    // The client's writes share one exactly-once session.
    assert_eq!(after.value("ringkv_sessions", &[]) - before.value("ringkv_sessions", &[]), 1.0);
    assert!(after.value("ringkv_raft_applied_index", &[]) >= before.value("ringkv_raft_applied_index", &[]) + 9.0);
    assert_eq!(after.value("ringkv_raft_role", &[("role", "leader")]), 1.0);
    assert_eq!(after.value("ringkv_raft_leader_id", &[]), 0.0);
    assert!(after.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(after.value("process_open_fds", &[]) > 0.0);
    let (code, body) = health(&addr).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn healthz_is_503_while_the_group_has_lost_its_majority_and_200_after() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = common::start(common::spec(1, 3, &[]).metrics()).await;
    for r in 0..3 {
        common::wait_for("every replica to be healthy", Duration::from_secs(10), || async {
            health(&metrics_addr(&cluster, 0, r)).await.0 == 200
        })
        .await;
    }
    let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.expect("a leader");
    // Stop the leader and one follower: the one left can neither lead nor
    // follow anyone.
    let survivor = (leader + 1) % 3;
    cluster.kill9(0, leader);
    cluster.kill9(0, (leader + 2) % 3);
    let addr = metrics_addr(&cluster, 0, survivor);
    common::wait_for("the survivor to say 503", Duration::from_secs(10), || async { health(&addr).await.0 == 503 })
        .await;
    let (_, body) = health(&addr).await;
    assert!(body.contains("no leader") || body.contains("no quorum"), "{body}");

    cluster.restart(0, leader).expect("restart");
    cluster.restart(0, (leader + 2) % 3).expect("restart");
    for r in 0..3 {
        let addr = metrics_addr(&cluster, 0, r);
        common::wait_for("every replica to be healthy again", Duration::from_secs(30), || async {
            health(&addr).await.0 == 200
        })
        .await;
    }
    let (_, body) = health(&addr).await;
    assert!(body.starts_with("ok: "), "{body}");
}

/// `n` keys that position `p` of an evenly spread 2-position ring owns.
fn keys_owned_by(p: usize, n: usize) -> Vec<BigInt> {
    let ring = ringkv_ring::Ring::evenly(ringkv_ring::DEFAULT_M, 2, Placement::Hash).expect("ring");
    (0..).map(BigInt::from).filter(|k| ring.owner_of_key(&ringkv_api::encode_key(k)) == p).take(n).collect()
}

#[tokio::test]
async fn ring_forwards_are_counted_and_top_shows_every_replica() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = common::start(common::spec(2, 1, &[]).metrics()).await;
    let (m0, m1) = (metrics_addr(&cluster, 0, 0), metrics_addr(&cluster, 1, 0));
    let client = cluster.replica(0, 0).client(ClientOptions::default()).expect("client");
    let sent = 5;
    let before = (Metrics::of(&m0).await, Metrics::of(&m1).await);
    for key in keys_owned_by(1, sent) {
        assert_eq!(client.set(&key, 1, "x").await.expect("set").outcome, Outcome::Success);
    }
    let after = (Metrics::of(&m0).await, Metrics::of(&m1).await);
    let ring_forwards = |m: &Metrics| m.value("ringkv_forwards_total", &[("leg", "ring")]);
    assert_eq!(ring_forwards(&after.0) - ring_forwards(&before.0), sent as f64);
    // Both nodes handled each request: position 0 relayed it, 1 served it.
    for (b, a) in [(&before.0, &after.0), (&before.1, &after.1)] {
        assert_eq!(a.requests("set", "SUCCESS") - b.requests("set", "SUCCESS"), sent as f64);
    }
    // One hop each, counted where the client called.
    let one_hop = |m: &Metrics| m.bucket("ringkv_request_hops", 1.0);
    let no_hop = |m: &Metrics| m.bucket("ringkv_request_hops", 0.0);
    assert_eq!(one_hop(&after.0) - one_hop(&before.0), sent as f64);
    assert_eq!(no_hop(&after.0) - no_hop(&before.0), 0.0);

    let targets = format!("{m0},{m1}");
    let (code, out, err) = common::ringkv(&["top", "--once", "--interval", "0.5", "--metrics", &targets]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ringkv top: 2 replica(s)"), "{out}");
    assert!(
        lines[1].split_whitespace().eq([
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
        ]),
        "{out}"
    );
    for (p, m) in [(0, &m0), (1, &m1)] {
        let row: Vec<&str> = lines[2 + p].split_whitespace().collect();
        assert_eq!(row[..4], [p.to_string().as_str(), "0", m.as_str(), "leader"], "{out}");
        assert!(row[6].parse::<u64>().is_ok_and(|applied| applied > 0), "{out}");
    }
    assert!(lines[4].starts_with("total "), "{out}");
}
