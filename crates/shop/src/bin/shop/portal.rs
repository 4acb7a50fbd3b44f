//! `shop admin-portal` and `shop customer-portal`: one portal instance in
//! the foreground. Both take the same instance flags (`InstanceArgs`).

use std::net::SocketAddr;
use std::time::Duration;

use shop::cache::CacheConfig;
use shop::portal::{serve, PortalConfig};
use tokio::signal::unix::{signal, SignalKind};

pub const EXAMPLES: &str = "\
Examples:
  shop admin-portal --ringkv 127.0.0.1:7070 --mqtt mqtt://127.0.0.1:1883
  shop admin-portal --listen 127.0.0.1:7101 --ringkv 127.0.0.1:7070,127.0.0.1:7073 --mqtt mqtt://127.0.0.1:1883 --cache-ttl 10
Run several on different ports against the same ring and broker: each has
its own cache, kept fresh by the others' invalidations. Without --mqtt there
are no invalidations, so nothing is cached. Stops on Ctrl-C or SIGTERM; logs
go to stderr (RUST_LOG=debug for more).";

pub const CUSTOMER_EXAMPLES: &str = "\
Examples:
  shop customer-portal --ringkv 127.0.0.1:7070 --mqtt mqtt://127.0.0.1:1883
  shop customer-portal --listen 127.0.0.1:8081 --ringkv 127.0.0.1:7070 --mqtt mqtt://127.0.0.1:1883
  curl -H 'Authorization: Bearer ada' http://127.0.0.1:8080/api/v1/products
The storefront is at http://127.0.0.1:8080/ (sign in with a customer id).
Run several against the same ring and broker: orders are safe from any of
them at once. Stops on Ctrl-C or SIGTERM; logs go to stderr.";

#[derive(Debug, Clone, clap::Args)]
pub struct PortalArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "SHOP_ADMIN_LISTEN", default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    #[command(flatten)]
    instance: InstanceArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CustomerPortalArgs {
    /// Address to serve HTTP on.
    #[arg(long, env = "SHOP_CUSTOMER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    instance: InstanceArgs,
}

/// What every portal instance needs: the ring, the broker, its cache.
#[derive(Debug, Clone, clap::Args)]
pub struct InstanceArgs {
    /// ringkv servers, comma-separated (any of the ring's: the client learns
    /// the ring from them and sends each request to the group owning its key).
    #[arg(long, env = "SHOP_RINGKV", default_value = "127.0.0.1:7070", value_delimiter = ',')]
    ringkv: Vec<String>,
    /// MQTT broker for cache invalidations: mqtt://HOST:PORT.
    #[arg(long, env = "SHOP_MQTT")]
    mqtt: Option<String>,
    /// Most documents cached per kind (0: no cache).
    #[arg(long, default_value_t = 10_000)]
    cache_entries: u64,
    /// Seconds a cached document may be served at most (the bound on
    /// staleness should an invalidation be lost).
    #[arg(long, default_value = "30", value_parser = crate::parse_secs)]
    cache_ttl: Duration,
    /// Seconds one database call may take, retries included, before the
    /// request fails with UNAVAILABLE.
    #[arg(long, default_value = "5", value_parser = crate::parse_secs)]
    db_timeout: Duration,
    /// Serve /metrics and /healthz over HTTP here (default: not served).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

impl InstanceArgs {
    fn config(&self, listen: SocketAddr) -> PortalConfig {
        init_logging();
        if self.mqtt.is_none() {
            tracing::warn!("no --mqtt broker: invalidations cannot be received, so nothing is cached");
        }
        PortalConfig {
            listen,
            ringkv: self.ringkv.clone(),
            mqtt: self.mqtt.clone(),
            cache: CacheConfig { entries: self.cache_entries, ttl: self.cache_ttl },
            db_timeout: self.db_timeout,
            metrics_listen: self.metrics_listen,
        }
    }
}

pub async fn run(args: PortalArgs) -> anyhow::Result<()> {
    let config = args.instance.config(args.listen);
    let ringkv = args.instance.ringkv.join(",");
    let ready = move |addr: SocketAddr| tracing::info!("admin portal serving on {addr} (ringkv {ringkv})");
    serve(config, ready, shutdown()).await?;
    tracing::info!("admin portal stopped");
    Ok(())
}

pub async fn run_customer(args: CustomerPortalArgs) -> anyhow::Result<()> {
    let config = args.instance.config(args.listen);
    let ringkv = args.instance.ringkv.join(",");
    let ready = move |addr: SocketAddr| tracing::info!("customer portal serving on http://{addr}/ (ringkv {ringkv})");
    shop::web::serve(config, ready, shutdown()).await?;
    tracing::info!("customer portal stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init_logging() {
    init_logging_with("info,rumqttc=warn");
}

/// Logs to stderr at `default` levels, or as RUST_LOG says.
pub fn init_logging_with(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
