//! The portals' `/metrics` and `/healthz`: the exposition parses with a
//! Prometheus text parser, requests are counted by route and status by
//! exactly the number sent, and the caches, the bus and the health say
//! what happened.

mod common;

use prometheus_parse::{Scrape, Value};
use ringkv_testkit::free_port;
use shop::pb::ProductId;

struct Metrics(Scrape);

impl Metrics {
    async fn of(addr: &str) -> Metrics {
        let text = reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics").text().await.expect("body");
        assert!(text.ends_with("# EOF\n"), "{text}");
        Metrics(Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses"))
    }

    /// The sum of the samples `name` whose labels include `labels`.
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

    fn requests(&self, route: &str, status: &str) -> f64 {
        self.value("shop_requests_total", &[("route", route), ("status", status)])
    }
}

async fn health(addr: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}/healthz")).await.expect("healthz answers");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

const GET_PRODUCT: &str = "/shop.v1.AdminPortal/GetProduct";
const CREATE_PRODUCT: &str = "/shop.v1.AdminPortal/CreateProduct";

#[tokio::test]
async fn an_admin_portal_counts_its_requests_caches_and_invalidations() {
    let metrics = format!("127.0.0.1:{}", free_port().expect("a port"));
    let spec = common::Spec::new(1, 1).portal_args(&["--metrics-listen", &metrics]);
    let Some(shop) = common::start(spec).await else { return };
    let mut admin = shop.portal(0);
    let before = Metrics::of(&metrics).await;
    admin.create_product(common::product("p1", "a lamp", 3, 9.5)).await.expect("created");
    let gets = 4;
    for _ in 0..gets {
        admin.get_product(ProductId { pid: "p1".into() }).await.expect("found");
    }
    let missing = admin.get_product(ProductId { pid: "p404".into() }).await.expect_err("no such product");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // The portal hears its own invalidation back from the broker.
    let received = |m: &Metrics| m.value("shop_invalidations_received_total", &[]);
    let mut after = Metrics::of(&metrics).await;
    for _ in 0..100 {
        if received(&after) > received(&before) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = Metrics::of(&metrics).await;
    }

    let moved = |route, status| after.requests(route, status) - before.requests(route, status);
    assert_eq!(moved(CREATE_PRODUCT, "0"), 1.0);
    assert_eq!(moved(GET_PRODUCT, "0"), f64::from(gets));
    assert_eq!(moved(GET_PRODUCT, "5"), 1.0, "NOT_FOUND is gRPC code 5");
    let latency = |m: &Metrics| m.value("shop_request_duration_seconds_count", &[("route", GET_PRODUCT)]);
    assert_eq!(latency(&after) - latency(&before), f64::from(gets + 1));
    // Every cached read of a product is a hit or a miss, once.
    let looked_up = |m: &Metrics| {
        m.value("shop_cache_hits_total", &[("kind", "product")])
            + m.value("shop_cache_misses_total", &[("kind", "product")])
    };
    assert_eq!(looked_up(&after) - looked_up(&before), f64::from(gets + 1));
    assert!(after.value("shop_cache_hits_total", &[("kind", "product")]) >= f64::from(gets - 1));
    let sent = |m: &Metrics| m.value("shop_invalidations_sent_total", &[]);
    assert_eq!(sent(&after) - sent(&before), 1.0);
    assert!(received(&after) > received(&before));
    assert_eq!(after.value("shop_mqtt_connected", &[]), 1.0);
    assert!(after.value("process_resident_memory_bytes", &[]) > 0.0);
    let (code, body) = health(&metrics).await;
    assert_eq!((code, body.as_str()), (200, "ok: serving; caching on\n"));
}

#[tokio::test]
async fn a_customer_portal_counts_requests_by_route_pattern_and_status() {
    let Some(shop) = common::start(common::Spec::new(1, 0)).await else { return };
    let metrics = format!("127.0.0.1:{}", free_port().expect("a port"));
    let portal = shop.start_customer_portal(&["--metrics-listen", &metrics]).await;
    let count = |text: &str| -> f64 {
        // prometheus-parse's sample pattern does not take braces inside a
        // label value (valid in the format), so this sample is read as text.
        let line =
            text.lines().find(|l| l.starts_with(r#"shop_requests_total{route="/api/v1/products/{pid}",status="401"}"#));
        line.and_then(|l| l.rsplit(' ').next()).map_or(0.0, |v| v.parse().expect("a number"))
    };
    let scrape = || async {
        reqwest::get(format!("http://{metrics}/metrics")).await.expect("metrics").text().await.expect("body")
    };
    let before = scrape().await;
    let http = reqwest::Client::new();
    let sent = 3;
    for i in 0..sent {
        let url = format!("{}/api/v1/products/p{i}", portal.url);
        let resp = http.get(url).bearer_auth("nobody").send().await.expect("answers");
        assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    let after = scrape().await;
    // One label value for every product id: the route's pattern.
    assert_eq!(count(&after) - count(&before), f64::from(sent), "{after}");
    assert!(!after.contains("/api/v1/products/p0"), "{after}");
    // The rest of the exposition parses.
    let parsed = Metrics(Scrape::parse(after.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses"));
    assert!(parsed.value("process_open_fds", &[]) > 0.0);
    let (code, _) = health(&metrics).await;
    assert_eq!(code, 200);
}
