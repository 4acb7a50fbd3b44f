//! Starting an admin portal: its instance (`instance`), the gRPC server; stopping it on Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use ringkv_metrics::{Requests, StatusOf};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::instance::{connect, PortalConfig};
use crate::pb::admin_portal_server::AdminPortalServer;
use crate::portal::admin::AdminService;

/// Largest request accepted: the biggest valid document is about 5 KiB.
const MAX_REQUEST: usize = 64 * 1024;

/// Runs the portal until Ctrl-C or SIGTERM. `ready` is told the bound
/// address once the portal accepts connections.
pub async fn serve(
    config: PortalConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let catalog = connect(&config, "admin")?;
    let requests = Requests::new(|uri, _| uri.path().to_owned(), StatusOf::Grpc);
    let metrics = crate::metrics::start(config.metrics_listen, &requests, &catalog).await?;
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let service = AdminPortalServer::new(AdminService::new(catalog))
        .max_decoding_message_size(MAX_REQUEST)
        .max_encoding_message_size(16 * 1024 * 1024);
    ready(addr);
    if let Some(m) = &metrics {
        m.serving();
    }
    tonic::transport::Server::builder()
        .layer(requests)
        .add_service(service)
        // TCP_NODELAY on every accepted connection: an answer written in
        // parts must not wait for the client's delayed ACK (40 ms).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
        .context("admin portal")?;
    Ok(())
}
