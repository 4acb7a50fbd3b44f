//! Operator commands: `ringkv status` (ask running servers about
//! themselves and the ring) and `ringkv verify` (check a stopped server's
//! files).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ringkv_client::{Admin, ClientOptions, NodeStatus};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Also compute each replica's state digest (a full scan).
    #[arg(long)]
    pub digest: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The data directory of a stopped server.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Asks one server for its status (a digest scans the whole state: it gets
/// 30 s).
pub async fn fetch_status(addr: &str, digest: bool) -> anyhow::Result<NodeStatus> {
    let opts = ClientOptions { timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(2), ring: false };
    Admin::new(addr, &opts)?.status(digest).await.with_context(|| format!("status from {addr}"))
}

/// `ringkv status`: the ring (from the first address that answers) and
/// every replica of every position.
pub async fn status(args: StatusArgs, addrs: &[String], json: bool) -> anyhow::Result<()> {
    let view = super::ring::RingView::fetch(addrs, args.digest).await.context("no server answered")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view.json())?);
    } else {
        view.print();
    }
    if !view.any_answered() {
        anyhow::bail!("no replica answered");
    }
    Ok(())
}

pub fn verify(args: VerifyArgs, json: bool) -> anyhow::Result<()> {
    let report = ringkv_server::verify::verify_dir(&args.data_dir)
        .with_context(|| format!("verification of {} failed", args.data_dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}: OK", args.data_dir.display());
        println!("  snapshots         {:?}", report.snapshots);
        println!("  pairs proven      {} (each snapshot = previous + log replayed)", report.pairs_checked);
        match report.store_index {
            Some(i) if report.store_proven => {
                println!("  store             index {i}, proven (= a snapshot + log replayed)")
            }
            Some(i) => println!("  store             index {i}, not proven (no snapshot and log reach it)"),
            None => println!("  store             none (recovery loads the newest snapshot)"),
        }
        println!(
            "  log               {} entries, index {}..={}",
            report.log_entries, report.log_first, report.log_last
        );
        println!(
            "  recovers to       index {}, {} keys, {} sessions, digest {} (keys and values alone: {})",
            report.recovered_index, report.keys, report.sessions, report.digest, report.data_digest
        );
    }
    Ok(())
}
