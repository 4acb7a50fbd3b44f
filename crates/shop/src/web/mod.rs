//! The customer portal: HTTP/1.1 with a JSON API under `/api/v1` and the
//! storefront's server-rendered pages, over the same orders and catalog.

pub mod api;
pub mod error;
pub mod extract;
pub mod pages;
pub mod view;

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use axum::Router;
use ringkv_metrics::{Requests, StatusOf};
use tokio::net::TcpListener;

use crate::instance::{connect, PortalConfig};
use crate::orders::Orders;
use crate::web::error::ApiError;

/// Largest request body: a JSON line change or a form is a few bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub orders: Orders,
}

/// Every route of the customer portal, each counted in `requests` under
/// its route pattern (`/api/v1/products/{pid}`).
pub fn router(state: AppState, requests: Requests) -> Router {
    let api = Router::new()
        .route("/products", get(api::products))
        .route("/products/{pid}", get(api::product))
        .route("/orders", get(api::orders).post(api::open_order))
        .route("/orders/{oid}", get(api::order).delete(api::cancel))
        .route("/orders/{oid}/items/{pid}", put(api::set_item))
        .route_layer(requests.clone())
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(pages::home))
        .route("/sign-in", post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/orders", get(pages::orders).post(pages::open_order))
        .route("/orders/{oid}", get(pages::order))
        .route("/orders/{oid}/items", post(pages::set_item))
        .route("/orders/{oid}/cancel", post(pages::cancel))
        // Before nesting: the API's routes are counted by its own layer.
        .route_layer(requests)
        .nest("/api/v1", api)
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The route pattern axum matched (the raw path would make a label value
/// per order id).
fn matched_route(_: &axum::http::Uri, ext: &axum::http::Extensions) -> String {
    ext.get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

async fn no_route(req: Request) -> impl IntoResponse {
    ApiError::NoRoute(req.uri().path().to_owned())
}

/// Runs a customer portal until `shutdown`; `ready` is told the bound
/// address once it accepts connections.
pub async fn serve(
    config: PortalConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let catalog = connect(&config, "customer")?;
    let requests = Requests::new(matched_route, StatusOf::Http);
    let metrics = crate::metrics::start(config.metrics_listen, &requests, &catalog).await?;
    let app = router(AppState { orders: Orders::new(catalog) }, requests);
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    ready(addr);
    if let Some(m) = &metrics {
        m.serving();
    }
    // TCP_NODELAY on every connection: an answer written in parts must not
    // wait for the client's delayed ACK (40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("customer portal")?;
    Ok(())
}
