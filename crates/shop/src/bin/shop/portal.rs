//! `shop admin-portal`: runs one admin portal instance in the foreground.

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

#[derive(Debug, Clone, clap::Args)]
pub struct PortalArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "SHOP_ADMIN_LISTEN", default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
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
}

pub async fn run(args: PortalArgs) -> anyhow::Result<()> {
    init_logging();
    if args.mqtt.is_none() {
        tracing::warn!("no --mqtt broker: invalidations cannot be received, so nothing is cached");
    }
    let config = PortalConfig {
        listen: args.listen,
        ringkv: args.ringkv.clone(),
        mqtt: args.mqtt.clone(),
        cache: CacheConfig { entries: args.cache_entries, ttl: args.cache_ttl },
        db_timeout: args.db_timeout,
    };
    let ringkv = args.ringkv.join(",");
    let ready = move |addr: SocketAddr| tracing::info!("admin portal serving on {addr} (ringkv {ringkv})");
    serve(config, ready, shutdown()).await?;
    tracing::info!("admin portal stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
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
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttc=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
