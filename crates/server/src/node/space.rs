//! Disk space: the state's size (its LMDB pages) against `quota_bytes`,
//! and the data dir's file system's free space against `min_free_bytes`,
//! measured every `SPACE_EVERY`; between two looks the bytes of the
//! writes let through are counted against the free space.
//!
//! A write proposed into a full disk would fail in the log or in LMDB, and
//! openraft stops its core on any storage error: a replica that can never
//! write again. So writes are refused *before* they are proposed, with
//! RESOURCE_EXHAUSTED and an alarm in status, while the disk still has
//! room; reads and deletes go on (a delete's log entry is small and it is
//! what frees space), and writes resume by themselves once the data fits
//! again. The reserve also covers what the replica writes on its own:
//! followers' log appends and LMDB growth (a follower applies whatever its
//! leader sends) and snapshots, which the trigger postpones while one
//! would not fit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sm::store::KvStore;

/// How often usage is measured: a burst of writes between two looks must
/// fit in the reserve.
const SPACE_EVERY: Duration = Duration::from_millis(200);

/// Free bytes under which a storage failure is put down to a full disk.
const FULL_BELOW: u64 = 1 << 20;

/// The last measurement; shared by the write path, the snapshot trigger
/// and status.
pub struct Space {
    dir: PathBuf,
    store: Option<KvStore>,
    quota: u64,
    min_free: u64,
    used: AtomicU64,
    free: AtomicU64,
    /// Bytes written since `free` was measured (estimated: see `spend`).
    spent: AtomicU64,
    /// What LMDB will need at the next checkpoint, when last measured:
    /// twice the bytes waiting in the store's overlay (copy on write).
    pending: AtomicU64,
    /// Below the reserve at the last look.
    low: AtomicBool,
    /// Free bytes from which writes resume once low: a quarter of the
    /// reserve above it, plus what the overlay was waiting to write when
    /// the alarm rose (a checkpoint moves the estimate by that much), so
    /// that writes do not flap on and off at the line.
    resume_at: AtomicU64,
}

impl Space {
    /// Measures once now, then every `SPACE_EVERY` on a task of its own.
    pub fn watch(dir: &Path, store: KvStore, quota_bytes: u64, min_free_bytes: u64) -> Arc<Space> {
        let space = Arc::new(Space {
            dir: dir.to_owned(),
            store: Some(store),
            quota: quota_bytes,
            min_free: min_free_bytes,
            used: AtomicU64::new(0),
            free: AtomicU64::new(u64::MAX),
            spent: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            low: AtomicBool::new(false),
            resume_at: AtomicU64::new(0),
        });
        space.measure();
        let weak = Arc::downgrade(&space);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SPACE_EVERY);
            loop {
                tick.tick().await;
                let Some(space) = weak.upgrade() else { break };
                tokio::task::spawn_blocking(move || space.measure()).await.ok();
            }
        });
        space
    }

    fn measure(&self) {
        let was = self.alarm();
        // Writes let through from here on count until the next look.
        self.spent.store(0, Ordering::Relaxed);
        if let Some(store) = &self.store {
            self.pending.store(store.pending_bytes().saturating_mul(2), Ordering::Relaxed);
            match store.used_bytes() {
                Ok(used) => self.used.store(used, Ordering::Relaxed),
                Err(e) => tracing::warn!("cannot measure the state's size: {e}"),
            }
        }
        match free_bytes(&self.dir) {
            Ok(free) => self.free.store(free, Ordering::Relaxed),
            Err(e) => tracing::warn!("cannot read the free space of {}: {e}", self.dir.display()),
        }
        match (was, self.alarm()) {
            (None, Some(alarm)) => tracing::warn!("{alarm}: writes are refused until space is back"),
            (Some(_), None) => tracing::info!("disk space is back: writes accepted again"),
            _ => {}
        }
    }

    /// Counts a write let through: about twice its bytes reach the disk
    /// (the log record, then the LMDB pages).
    pub fn spend(&self, bytes: u64) {
        self.spent.fetch_add(bytes.saturating_mul(2), Ordering::Relaxed);
    }

    fn free_now(&self) -> u64 {
        let free = self.free.load(Ordering::Relaxed);
        free.saturating_sub(self.spent.load(Ordering::Relaxed)).saturating_sub(self.pending.load(Ordering::Relaxed))
    }

    /// Whether the data dir's file system is below the reserve (the
    /// quota aside: every replica holds the same state).
    pub fn disk_low(&self) -> bool {
        let was = self.low.load(Ordering::Relaxed);
        let line = if was { self.resume_at.load(Ordering::Relaxed) } else { self.min_free };
        let low = self.free_now() < line;
        if low && !was {
            let band = (self.min_free / 4).saturating_add(self.pending.load(Ordering::Relaxed));
            self.resume_at.store(self.min_free.saturating_add(band), Ordering::Relaxed);
        }
        if low != was {
            self.low.store(low, Ordering::Relaxed);
        }
        low
    }

    /// Why writes are refused now, if they are.
    pub fn alarm(&self) -> Option<String> {
        // The writes since the last look count against the quota too (half
        // of what `spend` counts: the state holds each once).
        let used = self.used.load(Ordering::Relaxed).saturating_add(self.spent.load(Ordering::Relaxed) / 2);
        let free = self.free_now();
        if self.quota > 0 && used >= self.quota {
            return Some(format!(
                "quota exceeded: {used} of {} bytes of state; delete keys or raise quota_bytes",
                self.quota
            ));
        }
        self.disk_low().then(|| {
            format!(
                "disk nearly full: {free} bytes free on the data dir's file system, under min_free_bytes = {} \
                 (writes resume from {} free); free space or move the data dir",
                self.min_free,
                self.resume_at.load(Ordering::Relaxed)
            )
        })
    }

    /// What a storage failure most likely means, when the data dir's file
    /// system is (nearly) full now: LMDB reports a short write into a full
    /// disk as EIO, not ENOSPC, so the operator would not learn the cause
    /// from its error alone.
    pub fn diagnose_failure(&self) -> Option<String> {
        let free = free_bytes(&self.dir).ok()?;
        (free < FULL_BELOW).then(|| {
            format!(
                "the data dir's file system is full ({free} bytes free on {}): free space, then restart",
                self.dir.display()
            )
        })
    }

    /// Whether `bytes` more can be written and still leave the reserve
    /// (the snapshot trigger asks before writing a snapshot).
    pub fn room_for(&self, bytes: u64) -> bool {
        self.free_now() >= self.min_free.saturating_add(bytes)
    }
}

fn free_bytes(dir: &Path) -> nix::Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir)?;
    Ok((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(quota: u64, min_free: u64, used: u64, free: u64) -> Space {
        let s = Space {
            dir: PathBuf::new(),
            store: None,
            quota,
            min_free,
            used: AtomicU64::new(0),
            free: AtomicU64::new(0),
            spent: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            low: AtomicBool::new(false),
            resume_at: AtomicU64::new(0),
        };
        s.used.store(used, Ordering::Relaxed);
        s.free.store(free, Ordering::Relaxed);
        s
    }

    #[test]
    fn the_alarm_says_which_limit_and_what_to_do() {
        assert_eq!(space(0, 10, 1 << 40, 11).alarm(), None, "no quota: only free space counts");
        let quota = space(100, 10, 100, 1000).alarm().unwrap();
        assert!(quota.contains("quota exceeded: 100 of 100 bytes") && quota.contains("raise quota_bytes"), "{quota}");
        let spending = space(0, 10, 5, 30);
        spending.spend(11);
        assert!(spending.alarm().is_some(), "30 free less 2 x 11 written is below the reserve of 10");
        let full = space(0, 10, 5, 9).alarm().unwrap();
        assert!(full.contains("9 bytes free") && full.contains("min_free_bytes = 10"), "{full}");
        assert!(space(0, 10, 5, 30).room_for(20));
        // Once below the reserve, writes resume only a quarter above it.
        let hysteresis = space(0, 100, 5, 99);
        assert!(hysteresis.alarm().is_some());
        hysteresis.free.store(120, Ordering::Relaxed);
        assert!(hysteresis.alarm().is_some(), "resumed at 120 free, under 100 + 25");
        hysteresis.free.store(125, Ordering::Relaxed);
        assert!(hysteresis.alarm().is_none());
        hysteresis.free.store(110, Ordering::Relaxed);
        assert!(hysteresis.alarm().is_none(), "above the reserve, never low since");
        assert!(!space(0, 10, 5, 29).room_for(20));
    }

    #[test]
    fn free_space_is_read_from_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }
}
