//! Deliberately broken builds: each bug here exists to prove that a test
//! catches it (the fault harness, `ringkv faults`, in
//! `crates/cli/tests/faults.rs`), or injects a storage failure no real disk
//! here can be made to produce (`crates/cli/tests/fsync.rs`). They are
//! compiled in only with the `broken` feature, which a release build
//! refuses, and a process carries only the bugs named in `RINGKV_BROKEN`
//! (a comma-separated list); a server that carries any says so in its log
//! and in status' version.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

#[cfg(all(feature = "broken", not(debug_assertions)))]
compile_error!("the broken feature is for the fault harness's tests only: build it without --release");

/// The environment variable that names the bugs a broken build carries.
pub const ENV: &str = "RINGKV_BROKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// A replica that believes it leads answers linearizable reads from its
    /// own store without read-index: a paused or partitioned leader that
    /// was replaced serves stale reads.
    StaleReads,
    /// At start-up the log entries after the store's checkpoint are marked
    /// applied without being applied: a restarted replica loses the writes
    /// of its last second, acknowledged ones included.
    LostWrites,
    /// The exactly-once check is skipped: a write the client sent again
    /// after a lost answer is applied a second time.
    DoubleApply,
    /// The log's fdatasync fails (EIO) while the data dir holds a file
    /// named `FAIL_FSYNC`: the test chooses the moment.
    FsyncError,
}

const ALL: [Bug; 4] = [Bug::StaleReads, Bug::LostWrites, Bug::DoubleApply, Bug::FsyncError];

impl Bug {
    pub fn name(self) -> &'static str {
        match self {
            Bug::StaleReads => "stale-reads",
            Bug::LostWrites => "lost-writes",
            Bug::DoubleApply => "double-apply",
            Bug::FsyncError => "fsync-error",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Bug::StaleReads => "a leader answers reads without read-index",
            Bug::LostWrites => "a restart skips replaying the log",
            Bug::DoubleApply => "resent writes are applied again",
            Bug::FsyncError => "the log's fdatasync fails while FAIL_FSYNC exists in the data dir",
        }
    }
}

/// Whether this process carries `bug`. Always false without the feature,
/// where the check compiles away.
pub fn active(bug: Bug) -> bool {
    cfg!(feature = "broken") && chosen().as_ref().is_ok_and(|bugs| bugs.contains(&bug))
}

/// The bugs `RINGKV_BROKEN` names, or why it cannot be read; a server of a
/// broken build refuses to start without a valid list (a broken build
/// that is not broken would make its test pass for the wrong reason).
pub fn check() -> Result<Vec<Bug>, String> {
    if !cfg!(feature = "broken") {
        if std::env::var_os(ENV).is_some() {
            tracing::warn!("{ENV} is ignored: this build carries no deliberate bugs");
        }
        return Ok(Vec::new());
    }
    let bugs = chosen().clone()?;
    for bug in &bugs {
        tracing::warn!("BROKEN BUILD ({ENV} names {}): {}; for testing the fault harness only", bug.name(), bug.what());
    }
    Ok(bugs)
}

/// What status' version adds for a broken build.
pub fn version_suffix() -> Option<String> {
    let bugs = chosen().as_ref().ok().filter(|b| cfg!(feature = "broken") && !b.is_empty())?;
    let names: Vec<String> = bugs.iter().map(|b| format!("{}: {}", b.name(), b.what())).collect();
    Some(format!("BROKEN BUILD ({})", names.join("; ")))
}

fn chosen() -> &'static Result<Vec<Bug>, String> {
    static CHOSEN: OnceLock<Result<Vec<Bug>, String>> = OnceLock::new();
    CHOSEN.get_or_init(|| parse(&std::env::var(ENV).unwrap_or_default()))
}

fn parse(list: &str) -> Result<Vec<Bug>, String> {
    let names = || ALL.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
    let bugs = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            ALL.into_iter()
                .find(|b| b.name() == name)
                .ok_or_else(|| format!("{ENV}: unknown bug {name:?}; this broken build knows {}", names()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if bugs.is_empty() {
        return Err(format!("this is a deliberately broken build: set {ENV} to the bugs to carry ({})", names()));
    }
    Ok(bugs)
}

/// The last log index found at start-up (`LostWrites` skips applying up to it).
static REPLAY_END: AtomicU64 = AtomicU64::new(0);

/// `LostWrites`: the log at start-up ends at `index`.
pub fn set_replay_end(index: u64) {
    REPLAY_END.store(index, Ordering::Relaxed);
}

/// `LostWrites`: whether the entry at `index` is one replayed at start-up,
/// which this bug marks applied without applying.
pub fn skips_replay(index: u64) -> bool {
    active(Bug::LostWrites) && index <= REPLAY_END.load(Ordering::Relaxed)
}

/// `FsyncError`: the failure the log's fdatasync in `dir` gets instead of
/// syncing, if it is to fail now.
pub fn fsync_error(dir: &std::path::Path) -> std::io::Result<()> {
    if active(Bug::FsyncError) && dir.join("FAIL_FSYNC").exists() {
        return Err(std::io::Error::other(
            "Input/output error (injected: RINGKV_BROKEN=fsync-error, FAIL_FSYNC present)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_known_bugs_only() {
        assert_eq!(parse("lost-writes, double-apply"), Ok(vec![Bug::LostWrites, Bug::DoubleApply]));
        assert!(parse("").unwrap_err().contains("set RINGKV_BROKEN"));
        assert!(parse("slow").unwrap_err().contains("unknown bug \"slow\""));
    }

    #[test]
    fn a_real_build_carries_none() {
        if !cfg!(feature = "broken") {
            assert!(ALL.iter().all(|&b| !active(b)));
            assert_eq!(version_suffix(), None);
        }
    }
}
