//! The HTTP endpoint: `/metrics` and `/healthz` on their own listener,
//! apart from the process's API so that a scraper or a load balancer's
//! probe never queues behind client traffic, and so that it can be off.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::process::ProcessCollector;

/// What Prometheus asks for and prometheus-client writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the process can serve, and why (the body of `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// 200.
    Ready(String),
    /// 503.
    NotReady(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

type HealthFn = dyn Fn() -> Health + Send + Sync;

struct Shared {
    registry: Registry,
    health: Box<HealthFn>,
}

/// A bound metrics listener, not serving yet.
pub struct Endpoint {
    listener: TcpListener,
}

impl Endpoint {
    /// Binds `addr` (port 0: any free port; see `local_addr`).
    pub async fn bind(addr: SocketAddr) -> Result<Endpoint, MetricsError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(Endpoint { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `registry` (with the process collector added) and `health`
    /// in a task of its own, until the runtime ends.
    pub fn serve(self, mut registry: Registry, health: impl Fn() -> Health + Send + Sync + 'static) {
        registry.register_collector(Box::new(ProcessCollector));
        let shared = Arc::new(Shared { registry, health: Box::new(health) });
        let app = Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(shared);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(self.listener, app).await {
                tracing::error!("metrics endpoint stopped: {e}");
            }
        });
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut body = String::new();
    match encode(&mut body, &shared.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}\n")).into_response(),
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match (shared.health)() {
        Health::Ready(why) => (StatusCode::OK, format!("{why}\n")).into_response(),
        Health::NotReady(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[tokio::test]
    async fn serves_parseable_metrics_and_health_as_it_changes() {
        let mut registry = Registry::default();
        let requests: Counter = Counter::default();
        registry.register("requests", "Requests served.", requests.clone());
        requests.inc_by(3);
        let ready = Arc::new(AtomicBool::new(false));
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().expect("an address")).await.expect("binds");
        let addr = endpoint.local_addr().expect("bound");
        let flag = ready.clone();
        endpoint.serve(registry, move || match flag.load(Ordering::SeqCst) {
            true => Health::Ready("ok".into()),
            false => Health::NotReady("recovering".into()),
        });

        let page = reqwest::get(format!("http://{addr}/metrics")).await.expect("answers");
        assert_eq!(page.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let text = page.text().await.expect("a body");
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
        let value = |name: &str| scrape.samples.iter().find(|s| s.metric == name).map(|s| s.value.clone());
        // OpenMetrics names a counter's sample NAME_total, which this
        // Prometheus-format parser reads as untyped.
        assert_eq!(value("requests_total"), Some(prometheus_parse::Value::Untyped(3.0)), "{text}");
        assert!(value("process_resident_memory_bytes").is_some(), "{text}");

        let health = reqwest::get(format!("http://{addr}/healthz")).await.expect("answers");
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(health.text().await.expect("a body"), "recovering\n");
        ready.store(true, Ordering::SeqCst);
        let health = reqwest::get(format!("http://{addr}/healthz")).await.expect("answers");
        assert_eq!(health.status(), StatusCode::OK);
    }
}
