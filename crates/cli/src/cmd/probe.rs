//! `ringkv probe`: what a writer sees of the cluster, write by write.
//! Writes fresh keys back to back through the client library (its retries,
//! its leader tracking, its exactly-once session), one write in flight, and
//! prints a line per acknowledged write:
//!
//! ```text
//! ack SENT_US ACKED_US OUTCOME KEY
//! ```
//!
//! (Unix microseconds, when the write was handed to the client and when its
//! answer came back) and `error SENT_US FAILED_US MESSAGE` for a write the
//! client gave up on. A gap between two acks is an outage as a client
//! lives it: `bench/failover.py` kills leaders under it.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use num_bigint::BigInt;
use ringkv_client::Client;

#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Stop after this many acknowledged writes (default: until stopped).
    #[arg(long)]
    pub count: Option<u64>,
    /// Bytes of data per value.
    #[arg(long, default_value_t = 64)]
    pub value_size: usize,
}

fn unix_us() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
}

/// Writes until `count` acks, or until stdout is closed.
pub async fn run(args: &ProbeArgs, client: &Client) -> anyhow::Result<()> {
    // Fresh keys: this run's start in microseconds, shifted past any count
    // of writes one run makes.
    let first = BigInt::from(unix_us()) << 32;
    let data = vec![b'x'; args.value_size];
    let mut out = std::io::stdout().lock();
    let (mut acked, mut n) = (0u64, 0u64);
    while args.count.is_none_or(|c| acked < c) {
        let key = &first + n;
        n += 1;
        let sent = unix_us();
        let line = match client.set(&key, 0, data.clone()).await {
            Ok(reply) => {
                acked += 1;
                format!("ack {sent} {} {} {key}", unix_us(), reply.outcome)
            }
            Err(e) => format!("error {sent} {} {e}", unix_us()),
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}
