//! Starting an admin portal: the database client, the caches, the bus,
//! the gRPC server; stopping it on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringkv_client::{Client, ClientOptions};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::bus::Bus;
use crate::cache::{CacheConfig, Caches};
use crate::catalog::Catalog;
use crate::pb::admin_portal_server::AdminPortalServer;
use crate::portal::admin::AdminService;
use crate::store::Store;

/// Largest request accepted: the biggest valid document is about 5 KiB.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct PortalConfig {
    pub listen: SocketAddr,
    /// ringkv servers (any of the ring's; the client learns the ring).
    pub ringkv: Vec<String>,
    /// The MQTT broker; `None`: no invalidations, so no caching.
    pub mqtt: Option<String>,
    pub cache: CacheConfig,
    /// Deadline of one database call, retries included.
    pub db_timeout: Duration,
}

/// Runs the portal until Ctrl-C or SIGTERM. `ready` is told the bound
/// address once the portal accepts connections.
pub async fn serve(
    config: PortalConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let opts = ClientOptions { timeout: config.db_timeout, ring: true, ..ClientOptions::default() };
    let db = Client::new(&config.ringkv.join(","), opts).context("ringkv client")?;
    let caches = Arc::new(Caches::new(config.cache));
    let bus = match &config.mqtt {
        Some(url) => {
            let id = format!("shop-admin-{}-{}", std::process::id(), rand::random::<u32>());
            Some(Bus::start(url, &id, caches.clone())?)
        }
        None => None,
    };
    let catalog = Catalog::new(Store::new(db), caches, bus);
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let service = AdminPortalServer::new(AdminService::new(catalog))
        .max_decoding_message_size(MAX_REQUEST)
        .max_encoding_message_size(16 * 1024 * 1024);
    ready(addr);
    tonic::transport::Server::builder()
        .add_service(service)
        // TCP_NODELAY on every accepted connection: an answer written in
        // parts must not wait for the client's delayed ACK (40 ms).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
        .context("admin portal")?;
    Ok(())
}
