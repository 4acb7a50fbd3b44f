//! What a ringkv process says about itself, shared by the server and the
//! shop's portals so that every process answers the same two URLs:
//!
//! - `GET /metrics`: every metric of the process's registry in the
//!   Prometheus (OpenMetrics) text exposition, plus the process's own
//!   resident memory, open file descriptors and threads (`process`);
//! - `GET /healthz`: 200 when the process can serve, else 503, the reason
//!   in the body either way (`endpoint`).
//!
//! `requests` counts any HTTP service's requests by route and status (a
//! tower layer: the shop's portals, axum and tonic alike).
//!
//! Metrics are `prometheus-client` types; `histogram::Histogram` replaces
//! its histogram on hot paths because that one takes a mutex per
//! observation, while this one is a handful of relaxed atomic adds.

pub mod endpoint;
pub mod histogram;
pub mod process;
pub mod requests;

pub use endpoint::{Endpoint, Health, MetricsError};
pub use histogram::Histogram;
pub use prometheus_client;
pub use requests::{Requests, StatusOf};
