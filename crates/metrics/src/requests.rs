//! Requests by route and status, and their latency, for any HTTP service:
//! a tower layer, so the shop's customer portal (axum) and admin portal
//! (tonic, gRPC over HTTP/2) count theirs with the same code.
//!
//! The route is what the service says it is (axum's matched path, a gRPC
//! method's path), never the raw URI, so that the label's values stay few.
//! Labels are owned strings: one small allocation per request, fine for a
//! portal (the database's own hot path uses static labels instead).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use tower_service::Service;

use crate::histogram::{Histogram, LATENCY_SECONDS};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// How a response says how it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOf {
    /// The HTTP status code ("200", "404").
    Http,
    /// The gRPC status: `grpc-status` in the headers (an error answered at
    /// once), else "0" (OK: a success's status travels in the trailers).
    Grpc,
}

impl StatusOf {
    fn of<B>(self, resp: &http::Response<B>) -> String {
        match self {
            StatusOf::Http => resp.status().as_u16().to_string(),
            StatusOf::Grpc => match resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
                Some(code) => code.to_owned(),
                None => "0".to_owned(),
            },
        }
    }
}

/// Names a request's route.
pub type RouteOf = fn(&http::Uri, &http::Extensions) -> String;

/// The counters and histograms, and the layer that fills them. Clones
/// share them.
#[derive(Debug, Clone)]
pub struct Requests {
    count: Family<RouteStatus, Counter>,
    seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    route: RouteOf,
    status: StatusOf,
}

fn latency() -> Histogram {
    Histogram::seconds(LATENCY_SECONDS)
}

impl Requests {
    pub fn new(route: RouteOf, status: StatusOf) -> Requests {
        Requests { count: Family::default(), seconds: Family::new_with_constructor(latency), route, status }
    }

    /// Registers `requests` (by route and status) and
    /// `request_duration_seconds` (by route) under `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("requests", "Requests served, by route and status.", self.count.clone());
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response's headers.",
            self.seconds.clone(),
        );
    }

    fn record(&self, route: String, status: String, started: Instant) {
        self.seconds.get_or_create(&RouteLabel { route: route.clone() }).observe_duration(started.elapsed());
        self.count.get_or_create(&RouteStatus { route, status }).inc();
    }
}

impl<S> Layer<S> for Requests {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded { inner, requests: self.clone() }
    }
}

/// A service whose requests are counted.
#[derive(Debug, Clone)]
pub struct Recorded<S> {
    inner: S,
    requests: Requests,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<http::Request<B>> for Recorded<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let route = (self.requests.route)(req.uri(), req.extensions());
        let started = Instant::now();
        let answer = self.inner.call(req);
        let requests = self.requests.clone();
        Box::pin(async move {
            let answer = answer.await;
            let status = match &answer {
                Ok(resp) => requests.status.of(resp),
                Err(_) => "failed".to_owned(),
            };
            requests.record(route, status, started);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use prometheus_client::encoding::text::encode;

    use super::*;

    fn path(uri: &http::Uri, _: &http::Extensions) -> String {
        uri.path().to_owned()
    }

    #[tokio::test]
    async fn each_request_counts_once_under_its_route_and_status() {
        let requests = Requests::new(path, StatusOf::Grpc);
        let mut svc = requests.layer(tower_service_fn(|req: http::Request<()>| {
            let mut resp = http::Response::new(());
            if req.uri().path() == "/shop.v1.AdminPortal/GetProduct" {
                resp.headers_mut().insert("grpc-status", http::HeaderValue::from_static("5"));
            }
            resp
        }));
        for uri in
            ["/shop.v1.AdminPortal/GetProduct", "/shop.v1.AdminPortal/GetProduct", "/shop.v1.AdminPortal/ListProducts"]
        {
            let req = http::Request::builder().uri(uri).body(()).expect("a request");
            svc.call(req).await.expect("answers");
        }
        let mut registry = Registry::default();
        requests.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("requests_total{route=\"/shop.v1.AdminPortal/GetProduct\",status=\"5\"} 2\n"), "{text}");
        assert!(
            text.contains("requests_total{route=\"/shop.v1.AdminPortal/ListProducts\",status=\"0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("request_duration_seconds_count{route=\"/shop.v1.AdminPortal/GetProduct\"} 2\n"),
            "{text}"
        );
    }

    /// A service answering each request with `f`.
    fn tower_service_fn<F>(f: F) -> FnService<F> {
        FnService(f)
    }

    #[derive(Clone)]
    struct FnService<F>(F);

    impl<F> Service<http::Request<()>> for FnService<F>
    where
        F: Fn(http::Request<()>) -> http::Response<()>,
    {
        type Response = http::Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<()>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<()>) -> Self::Future {
            std::future::ready(Ok((self.0)(req)))
        }
    }
}
