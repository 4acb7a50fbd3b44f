//! `shop server`: one ringkv replica, exactly as `ringkv server` runs it
//! (the same flags, `ringkv_server::cli::ServerArgs`, and the same server).
//! It is here so that `shop up` needs one executable: `cargo run --bin shop`
//! builds the shop package alone, not the `ringkv` binary.

use anyhow::Context;
pub use ringkv_server::cli::ServerArgs;

pub const ABOUT: &str =
    "Run a ringkv replica in the foreground (the same as `ringkv server`; here so that `shop up` needs one executable)";

pub const EXAMPLES: &str = "\
Examples:
  shop server --data-dir d --listen 127.0.0.1:7070
  shop server --config shop-data/ring.toml --position 0 --node-id 1 --data-dir shop-data/p0/r1 \\
      --listen 127.0.0.1:7071 --raft-listen 127.0.0.1:8071
Every flag is that of `ringkv server` (see its --help and the README). Stops
gracefully on Ctrl-C or SIGTERM; logs go to stderr (RUST_LOG=debug for more).";

/// Runs the replica until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    crate::portal::init_logging_with("info,openraft=warn");
    let config = args.config()?;
    ringkv_server::server::run(config, crate::portal::shutdown()).await.context("server failed")
}
