//! Disk space (docs/design.md §7.1): a data dir on a small tmpfs fills up,
//! writes are refused with RESOURCE_EXHAUSTED and an alarm while reads and
//! deletes go on, and writes resume by themselves once space is back; the
//! state's quota the same way. Mounting tmpfs needs root (tests and CI
//! have it); without it these tests say SKIPPED and pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{opts, spec, start};
use num_bigint::BigInt;
use ringkv_client::{Client, ClientError, Outcome};
use ringkv_testkit::Cluster;

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _fresh: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// On a fresh directory.
    fn mount(mib: u64) -> Option<Tmpfs> {
        let fresh = tempfile::tempdir().unwrap();
        let mut fs = Tmpfs::mount_at(fresh.path(), mib)?;
        fs._fresh = Some(fresh);
        Some(fs)
    }

    /// On `dir` (created if missing).
    fn mount_at(dir: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let size = format!("size={mib}m");
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(dir).status();
        if !ok.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs { dir: dir.to_owned(), _fresh: None })
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn resize(&self, mib: u64) {
        let size = format!("remount,size={mib}m");
        let ok = Command::new("mount").args(["-o", &size]).arg(self.path()).status().unwrap();
        assert!(ok.success(), "cannot resize the tmpfs");
    }

    /// Fills it with a ballast file until `leave` bytes are free.
    fn fill_to(&self, leave: u64) -> PathBuf {
        let free = nix::sys::statvfs::statvfs(self.path()).map(|s| s.blocks_available() * s.fragment_size()).unwrap();
        let ballast = self.path().join("ballast");
        std::fs::write(&ballast, vec![0u8; free.saturating_sub(leave) as usize]).unwrap();
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
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

/// A refused write left nothing behind.
async fn absent(client: &Client, k: u64) {
    let got = client.get(&BigInt::from(k)).await.unwrap_or_else(|e| panic!("get {k}: {e}"));
    assert_eq!(got.value, None, "key {k} was refused, yet it is there");
}

/// Sets fresh key `k` through any replica, sending it again while the
/// group answers UNAVAILABLE (an election) or RESOURCE_EXHAUSTED (a leader
/// short of space, until another takes over), within `within`. Returns
/// how many answers were refusals.
async fn set_retrying(client: &Client, k: u64, within: Duration) -> usize {
    let started = Instant::now();
    let mut refused = 0;
    loop {
        match client.set(&BigInt::from(k), 1, value(k)).await {
            Ok(r) if r.outcome == Outcome::Success => return refused,
            // An earlier attempt whose answer was lost took effect.
            Ok(r) if r.value.as_ref().is_some_and(|v| v.data.as_ref() == value(k).as_slice()) => return refused,
            Ok(r) => panic!("set {k}: {:?}", r.outcome),
            Err(e) if started.elapsed() < within => {
                refused += 1;
                if refused == 1 {
                    eprintln!("set {k}: {e} (sending it again)");
                }
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("set {k} not accepted within {within:?}: {e}"),
        }
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
    absent(&client, acked.last().unwrap() + 1).await;
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
    absent(&client, acked.last().unwrap() + 1).await;
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

/// Three replicas, each data dir on a tmpfs of its own. The leader's disk
/// fills: it hands leadership over (openraft 0.9 cannot transfer it, so it
/// goes quiet) and a replica with space takes the group's writes; once its
/// space is back it catches up. Then a follower's disk fills completely:
/// its log write fails, it exits saying why, the group goes on, and
/// restarted with space it catches up. Nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_one_replica_does_not_stop_its_group() {
    let _one = common::ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut disks = Vec::new();
    for r in 0..3 {
        let Some(fs) = Tmpfs::mount_at(&root.path().join(format!("p0/r{r}")), 160) else { return };
        disks.push(fs);
    }
    let args = ["--min-free-bytes", "16777216", "--snapshot-interval", "0"];
    let mut cluster = start(spec(1, 3, &args).dir(root.path())).await;
    let client = cluster.client(opts(false)).unwrap();
    let mut acked: Vec<u64> = Vec::new();
    for k in 0..20 {
        set_retrying(&client, k, Duration::from_secs(5)).await;
        acked.push(k);
    }

    // The leader's disk: 10 MiB left, below the 16 MiB reserve.
    let full = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
    let ballast = disks[full].fill_to(10 << 20);
    let started = Instant::now();
    let (mut k, mut refused) = (20, 0);
    let leader = loop {
        refused += set_retrying(&client, k, Duration::from_secs(10)).await;
        acked.push(k);
        k += 1;
        match cluster.leader(0).await {
            Some(l) if l != full => break l,
            _ => assert!(started.elapsed() < Duration::from_secs(10), "the replica short of space still leads"),
        }
    };
    eprintln!(
        "leader {full} short of space: replica {leader} leads {:?} after the disk filled; {} writes meanwhile, {refused} attempts refused",
        started.elapsed(),
        k - 20
    );
    for _ in 0..5 {
        set_retrying(&client, k, Duration::from_secs(5)).await;
        acked.push(k);
        k += 1;
    }
    let Some(status) = cluster.replica(0, full).status(false, Duration::from_secs(5)).await else {
        panic!("replica {full} does not answer:\n{}", cluster.replica(0, full).process.log())
    };
    assert!(status.alarms.iter().any(|a| a.contains("disk nearly full")), "no alarm: {:?}", status.alarms);
    check_all(&client, &acked).await;

    // Space back: the alarm clears and it catches up, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    cluster.wait_identical(0, Duration::from_secs(20)).await.expect("the replica did not catch up");
    assert!(cluster.reap_exited().is_empty(), "a replica exited:\n{}", cluster.logs());
    // Free space is measured every 200 ms.
    let replica = cluster.replica(0, full);
    common::wait_for("the alarm to clear", Duration::from_secs(5), || async {
        replica.status(false, Duration::from_secs(1)).await.is_some_and(|s| s.alarms.is_empty())
    })
    .await;

    // A follower's disk fills up completely.
    let leader = cluster.wait_leader(0, Duration::from_secs(10)).await.unwrap();
    let follower = (leader + 1) % 3;
    let ballast = disks[follower].fill_to(2 << 20);
    let started = Instant::now();
    let exited = loop {
        set_retrying(&client, k, Duration::from_secs(10)).await;
        acked.push(k);
        k += 1;
        let exited = cluster.reap_exited();
        if !exited.is_empty() {
            break exited;
        }
        let log = || cluster.replica(0, follower).process.log();
        assert!(started.elapsed() < Duration::from_secs(30), "the full follower {follower} never failed:\n{}", log());
    };
    assert_eq!(exited[0].1, follower, "{exited:?}");
    assert!(!exited[0].2.success(), "exit status {:?}", exited[0].2);
    let log = cluster.replica(0, follower).process.log();
    // ENOSPC from the log, or LMDB's EIO with the server's diagnosis.
    let full = log.contains("No space left") || log.contains("file system is full");
    assert!(log.contains("raft stopped") && full, "no reason given:\n{log}");
    for _ in 0..5 {
        set_retrying(&client, k, Duration::from_secs(5)).await;
        acked.push(k);
        k += 1;
    }

    std::fs::remove_file(&ballast).unwrap();
    cluster.restart(0, follower).unwrap();
    common::wait_serving(&cluster, 0, follower).await;
    cluster.wait_identical(0, Duration::from_secs(30)).await.expect("the follower did not catch up");
    check_all(&cluster.client(opts(false)).unwrap(), &acked).await;
    eprintln!("{} acknowledged writes, all there; replicas identical", acked.len());
}
