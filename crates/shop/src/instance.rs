//! What every portal instance runs on, admin or customer: a ring-aware
//! database client, this instance's caches, and the bus that keeps them
//! fresh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ringkv_client::{Client, ClientOptions};

use crate::bus::Bus;
use crate::cache::{CacheConfig, Caches};
use crate::catalog::Catalog;
use crate::store::Store;

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
    /// Where `/metrics` and `/healthz` are served; `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
}

/// The catalog of a new instance; `role` names it in its MQTT client id.
pub fn connect(config: &PortalConfig, role: &str) -> anyhow::Result<Catalog> {
    let opts = ClientOptions { timeout: config.db_timeout, ring: true, ..ClientOptions::default() };
    let db = Client::new(&config.ringkv.join(","), opts).context("ringkv client")?;
    let caches = Arc::new(Caches::new(config.cache));
    let bus = match &config.mqtt {
        Some(url) => {
            let id = format!("shop-{role}-{}-{}", std::process::id(), rand::random::<u32>());
            Some(Bus::start(url, &id, caches.clone())?)
        }
        None => None,
    };
    Ok(Catalog::new(Store::new(db), caches, bus))
}
