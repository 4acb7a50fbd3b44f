//! What a portal says about itself on `/metrics` and `/healthz`
//! (`--metrics-listen`), through the same endpoint as the database's
//! servers (`ringkv-metrics`):
//!
//! - requests by route and status and their latency (`Requests`, a layer
//!   on the portal's HTTP or gRPC service);
//! - its caches, per kind: hits, misses, entries dropped by invalidations,
//!   evictions, flushes (read at scrape from the caches' own counters);
//! - invalidations sent and received, and whether the MQTT subscription is
//!   up (`bus.rs`); the saga's steps decided and order changes finished,
//!   applied or refused (`orders.rs`): counted where they happen in this
//!   process's `Recorder` (`get()`).
//!
//! `/healthz` is 503 until the portal accepts connections, then 200, its
//! body saying whether caching is on (a portal without its broker still
//! serves, from the database).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ringkv_metrics::{Endpoint, Health, MetricsError, Requests};

use crate::cache::{CacheStats, Caches};
use crate::catalog::Catalog;

static RECORDER: LazyLock<Recorder> = LazyLock::new(Recorder::default);

/// The process's recorder.
pub fn get() -> &'static Recorder {
    &RECORDER
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Figures counted where they happen.
#[derive(Debug, Default)]
pub struct Recorder {
    invalidations_sent: Counter,
    invalidations_received: Counter,
    mqtt_connected: Gauge,
    saga_steps: Family<DecisionLabel, Counter>,
    saga_changes: Family<DecisionLabel, Counter>,
}

fn decision(applied: bool) -> DecisionLabel {
    DecisionLabel { decision: if applied { "applied" } else { "refused" } }
}

impl Recorder {
    fn register(&self, r: &mut Registry) {
        r.register("invalidations_sent", "Invalidations published to the broker.", self.invalidations_sent.clone());
        r.register(
            "invalidations_received",
            "Invalidations received from the broker (this instance's own included).",
            self.invalidations_received.clone(),
        );
        r.register("mqtt_connected", "1 while the invalidation subscription is up.", self.mqtt_connected.clone());
        r.register(
            "saga_steps",
            "Products' decisions on order changes, as this instance's saga steps met them.",
            self.saga_steps.clone(),
        );
        r.register(
            "saga_changes",
            "Order changes this instance finished: applied, or refused (undone: nothing taken).",
            self.saga_changes.clone(),
        );
    }

    pub fn invalidation_sent(&self) {
        self.invalidations_sent.inc();
    }

    pub fn invalidation_received(&self) {
        self.invalidations_received.inc();
    }

    pub fn mqtt(&self, connected: bool) {
        self.mqtt_connected.set(i64::from(connected));
    }

    pub fn saga_step(&self, applied: bool) {
        self.saga_steps.get_or_create(&decision(applied)).inc();
    }

    pub fn saga_change(&self, applied: bool) {
        self.saga_changes.get_or_create(&decision(applied)).inc();
    }
}

/// The caches' own counters, read at scrape.
#[derive(Clone)]
struct CacheCollector(Catalog);

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

type StatFn = fn(&CacheStats) -> u64;

const CACHE_FIGURES: [(&str, &str, StatFn); 5] = [
    ("cache_hits", "Reads served from the cache.", |s| s.hits),
    ("cache_misses", "Reads that went to the database.", |s| s.misses),
    ("cache_invalidated", "Entries dropped by invalidations.", |s| s.dropped),
    ("cache_evictions", "Entries evicted for room or age (TTL).", |s| s.evicted),
    ("cache_flushes", "Flushes when the broker was lost.", |s| s.flushes),
];

fn kinds(caches: &Caches) -> [(&'static str, CacheStats); 2] {
    [("customer", caches.customers.stats()), ("product", caches.products.stats())]
}

impl Collector for CacheCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = kinds(self.0.caches());
        for (name, help, figure) in CACHE_FIGURES {
            let probe = ConstCounter::new(0u64);
            let mut family = e.encode_descriptor(name, help, None, probe.metric_type())?;
            for (kind, s) in &stats {
                ConstCounter::new(figure(s)).encode(family.encode_family(&KindLabel { kind })?)?;
            }
        }
        Ok(())
    }
}

/// A portal's metrics endpoint; `ready` once the portal accepts connections.
pub struct PortalMetrics {
    ready: Arc<AtomicBool>,
}

impl PortalMetrics {
    /// Binds `addr` and serves `requests`, the caches and bus of `catalog`
    /// and the recorder, as `shop_*`. Returns the bound address.
    pub async fn serve(
        addr: SocketAddr,
        requests: &Requests,
        catalog: &Catalog,
    ) -> Result<(PortalMetrics, Option<SocketAddr>), MetricsError> {
        let endpoint = Endpoint::bind(addr).await?;
        let bound = endpoint.local_addr();
        let mut registry = Registry::default();
        let ours = registry.sub_registry_with_prefix("shop");
        requests.register(ours);
        get().register(ours);
        ours.register_collector(Box::new(CacheCollector(catalog.clone())));
        let ready = Arc::new(AtomicBool::new(false));
        let (flag, catalog) = (ready.clone(), catalog.clone());
        endpoint.serve(registry, move || health(flag.load(Ordering::Acquire), &catalog));
        Ok((PortalMetrics { ready }, bound))
    }

    pub fn serving(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

fn health(ready: bool, catalog: &Catalog) -> Health {
    if !ready {
        return Health::NotReady("starting: the portal does not accept connections yet".into());
    }
    match catalog.bus() {
        Some(bus) if bus.is_ready() => Health::Ready("ok: serving; caching on".into()),
        Some(_) => Health::Ready("ok: serving from the database; caching off (MQTT broker not connected)".into()),
        None => Health::Ready("ok: serving from the database; no MQTT broker configured, so no caching".into()),
    }
}

/// Starts the endpoint when `addr` is set.
pub async fn start(
    addr: Option<SocketAddr>,
    requests: &Requests,
    catalog: &Catalog,
) -> anyhow::Result<Option<PortalMetrics>> {
    let Some(addr) = addr else { return Ok(None) };
    let (metrics, bound) = PortalMetrics::serve(addr, requests, catalog).await?;
    tracing::info!(addr = ?bound, "serving /metrics and /healthz");
    Ok(Some(metrics))
}
