//! Operator commands: `ringkv status` (ask running servers about
//! themselves) and `ringkv verify` (check a stopped server's files).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ringkv_api::pb::{admin_client::AdminClient, StatusReply, StatusRequest};

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

/// Asks one server for its status.
pub async fn fetch_status(addr: &str, digest: bool) -> anyhow::Result<StatusReply> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("bad address {addr:?}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.with_context(|| format!("cannot reach {addr}"))?;
    let reply = AdminClient::new(channel)
        .status(StatusRequest { with_digest: digest })
        .await
        .with_context(|| format!("status from {addr}"))?;
    Ok(reply.into_inner())
}

pub async fn status(args: StatusArgs, addrs: &[String], json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for addr in addrs {
        rows.push((addr.clone(), fetch_status(addr, args.digest).await));
    }
    if json {
        let json: Vec<_> = rows
            .iter()
            .map(|(addr, r)| match r {
                Ok(s) => serde_json::json!({
                    "address": addr, "node_id": s.node_id, "role": s.role, "term": s.term,
                    "leader_id": s.leader_id, "last_log_index": s.last_log_index,
                    "applied_index": s.applied_index, "snapshot_index": s.snapshot_index,
                    "purged_index": s.purged_index, "digest": s.digest, "digest_index": s.digest_index,
                    "keys": s.keys,
                    "members": s.members.iter().map(|m| serde_json::json!({"id": m.id, "addr": m.addr, "raft_addr": m.raft_addr})).collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({"address": addr, "error": format!("{e:#}")}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{:<22} {:>4} {:<10} {:>5} {:>6} {:>10} {:>10} {:>10}  digest", "address", "id", "role", "term", "leader", "last log", "applied", "snapshot");
        for (addr, r) in &rows {
            match r {
                Ok(s) => println!(
                    "{:<22} {:>4} {:<10} {:>5} {:>6} {:>10} {:>10} {:>10}  {}",
                    addr,
                    s.node_id,
                    s.role,
                    s.term,
                    s.leader_id.map_or("-".into(), |l| l.to_string()),
                    s.last_log_index,
                    s.applied_index,
                    s.snapshot_index,
                    s.digest.as_ref().map_or("-".into(), |d| format!("{d} @{} ({} keys)", s.digest_index, s.keys)),
                ),
                Err(e) => println!("{addr:<22} unreachable: {e:#}"),
            }
        }
    }
    if rows.iter().all(|(_, r)| r.is_err()) {
        anyhow::bail!("no server answered");
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
        println!("  log               {} entries, index {}..={}", report.log_entries, report.log_first, report.log_last);
        println!("  recovers to       index {}, {} keys, digest {}", report.recovered_index, report.keys, report.digest);
    }
    Ok(())
}
