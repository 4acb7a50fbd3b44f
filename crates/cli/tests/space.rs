//! Disk space (docs/design.md §7.1): a data dir on a small tmpfs fills up,
//! writes are refused with RESOURCE_EXHAUSTED and an alarm while reads and
//! deletes go on, and writes resume by themselves once space is back; the
//! state's quota the same way. Mounting tmpfs needs root (tests and CI
//! have it); without it these tests say SKIPPED and pass.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{opts, spec, start};
use num_bigint::BigInt;
use ringkv_client::{Client, ClientError, Outcome};
use ringkv_testkit::Cluster;

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let size = format!("size={mib}m");
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(dir.path()).status();
        if !ok.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, mib: u64) {
        let size = format!("remount,size={mib}m");
        let ok = Command::new("mount").args(["-o", &size]).arg(self.path()).status().unwrap();
        assert!(ok.success(), "cannot resize the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn resource_exhausted(e: &ClientError) -> Option<String> {
    match e {
        ClientError::Rpc(s) if s.code() == tonic::Code::ResourceExhausted => Some(s.message().to_owned()),
        _ => None,
    }
}

/// 64 KiB of bytes that say which key they belong to.
fn value(k: u64) -> Vec<u8> {
    let mut v = format!("value of {k}:").into_bytes();
    v.resize(64 * 1024, b'x');
    v
}

/// Writes fresh keys from `from` until one is refused; returns the keys
/// acknowledged and the refusal's message. Any other error fails the test.
async fn fill(client: &Client, from: u64) -> (Vec<u64>, String) {
    let mut acked = Vec::new();
    for k in from.. {
        match client.set(&BigInt::from(k), 1, value(k)).await {
            Ok(r) => {
                assert_eq!(r.outcome, Outcome::Success, "set {k}");
                acked.push(k);
            }
            Err(e) => match resource_exhausted(&e) {
                Some(msg) => return (acked, msg),
                None => panic!("set {k} after {} writes: {e} (want RESOURCE_EXHAUSTED)", acked.len()),
            },
        }
        assert!(acked.len() < 100_000, "never refused");
    }
    unreachable!()
}

async fn alarms(cluster: &Cluster) -> Vec<String> {
    cluster.replica(0, 0).status(false, Duration::from_secs(5)).await.expect("status").alarms
}

async fn check_all(client: &Client, keys: &[u64]) {
    for &k in keys {
        let got = client.get(&BigInt::from(k)).await.unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert_eq!(got.value.expect("an acknowledged key").data.as_ref(), value(k).as_slice(), "key {k}");
    }
}

/// Writes until retried ones go through again (space measured every
/// 200 ms), within `within`.
async fn wait_writable(client: &Client, k: u64, within: Duration) {
    let started = Instant::now();
    loop {
        match client.set(&BigInt::from(k), 1, value(k)).await {
            Ok(r) if r.outcome == Outcome::Success => return,
            Ok(r) => panic!("set {k}: {:?}", r.outcome),
            Err(e) if resource_exhausted(&e).is_some() && started.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("writes did not resume within {within:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_serves_reads_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount(24) else { return };
    let args = ["--min-free-bytes", "6291456", "--snapshot-interval", "0"];
    let mut cluster = start(spec(1, 1, &args).dir(fs.path().join("ring"))).await;
    let client = cluster.client(opts(false)).unwrap();
    let (mut acked, refusal) = fill(&client, 0).await;
    assert!(acked.len() >= 20, "only {} writes fit", acked.len());
    assert!(refusal.contains("disk nearly full") && refusal.contains("min_free_bytes"), "{refusal}");
    let alarm = alarms(&cluster).await;
    assert!(alarm.iter().any(|a| a.contains("disk nearly full")), "status shows no alarm: {alarm:?}");
    check_all(&client, &acked).await;
    let first = *acked.first().unwrap();
    assert_eq!(client.del(&BigInt::from(first)).await.unwrap().outcome, Outcome::Success, "deletes go on");
    acked.remove(0);
    assert!(cluster.reap_exited().is_empty(), "the server exited on a full disk:\n{}", cluster.logs());

    fs.resize(64);
    let next = acked.last().unwrap() + 1;
    wait_writable(&client, next, Duration::from_secs(5)).await;
    acked.push(next);
    assert!(alarms(&cluster).await.is_empty(), "the alarm stays after space is back");

    cluster.kill9_all();
    cluster.launch().await.expect("restart");
    let client = cluster.client(opts(false)).unwrap();
    check_all(&client, &acked).await;
    assert_eq!(client.get(&BigInt::from(first)).await.unwrap().value, None, "the delete stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_refuses_writes_until_deletes_bring_the_state_below_it() {
    let quota = 2 * 1024 * 1024;
    let args = ["--quota-bytes".to_owned(), quota.to_string(), "--snapshot-interval".into(), "0".into()];
    let cluster = start(spec(1, 1, &[]).args(&args)).await;
    let client = cluster.client(opts(false)).unwrap();
    let (acked, refusal) = fill(&client, 0).await;
    assert!(refusal.contains("quota exceeded") && refusal.contains("raise quota_bytes"), "{refusal}");
    // 64 KiB values: the quota holds about 30 of them.
    assert!((20..=40).contains(&acked.len()), "{} writes under a 2 MiB quota", acked.len());
    assert!(alarms(&cluster).await.iter().any(|a| a.contains("quota exceeded")));
    check_all(&client, &acked).await;
    for &k in &acked[..acked.len() / 2] {
        assert_eq!(client.del(&BigInt::from(k)).await.unwrap().outcome, Outcome::Success, "del {k}");
    }
    wait_writable(&client, 1_000_000, Duration::from_secs(5)).await;
    assert!(alarms(&cluster).await.is_empty());
}

/// Without the reserve the disk really fills: the log's write fails with
/// ENOSPC (or LMDB's with EIO) and Raft stops. The process then exits non-zero, saying why,
/// instead of answering UNAVAILABLE forever; restarted once space is
/// back, it has every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_on_disk_stops_the_process_with_the_reason() {
    let Some(fs) = Tmpfs::mount(16) else { return };
    let args = ["--min-free-bytes", "0", "--snapshot-interval", "0"];
    let mut cluster = start(spec(1, 1, &args).dir(fs.path().join("ring"))).await;
    let client = cluster.client(opts(false)).unwrap();
    let mut acked = Vec::new();
    for k in 0u64..1000 {
        match client.set(&BigInt::from(k), 1, value(k)).await {
            Ok(r) if r.outcome == Outcome::Success => acked.push(k),
            _ => break,
        }
    }
    assert!(acked.len() < 1000, "16 MiB took 64 MiB of values");
    let started = Instant::now();
    let exited = loop {
        let exited = cluster.reap_exited();
        if !exited.is_empty() {
            break exited;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the server lives on without Raft:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!exited[0].2.success(), "exit status {:?}", exited[0].2);
    let logs = cluster.logs();
    // The log's write says ENOSPC; LMDB's short write says only EIO, so the
    // server adds what it sees: a full file system.
    assert!(logs.contains("raft stopped") && logs.contains("file system is full"), "the reason is not given:\n{logs}");

    fs.resize(64);
    cluster.launch().await.expect("restart once space is back");
    check_all(&cluster.client(opts(false)).unwrap(), &acked).await;
}
