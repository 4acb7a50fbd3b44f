//! `ringkv server`: one replica in the foreground (its flags are
//! `ringkv_server::cli::ServerArgs`, shared with `shop server`). The server
//! stops gracefully on SIGINT or SIGTERM.

use anyhow::Context;
pub use ringkv_server::cli::ServerArgs;

/// Runs a server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    ringkv_server::server::run(config, crate::signal::shutdown()).await.context("server failed")
}
