//! ringkv's fault harness, in the manner of Jepsen and etcd's robustness
//! tests: claims such as "every operation is linearizable" and "nothing
//! acknowledged is lost" become measured facts.
//!
//! A run ([`run::run`]) starts a Raft group of real `ringkv server`
//! processes whose peer links pass through userspace TCP proxies (both
//! from the test kit, `ringkv-testkit`), drives concurrent clients against it
//! ([`workload`]) that record every operation ([`history`]), injects faults
//! on a seeded schedule ([`nemesis`]: kill -9 and restart, SIGSTOP/SIGCONT,
//! partitions), heals, and checks the history per key for linearizability
//! against a versioned-register model ([`model`], [`checker`]), plus
//! convergence of the replicas; [`floors`] make a run that did too little
//! a failure. [`report`] and [`timeline`] say what
//! happened.
//!
//! The pieces take a group's addresses and processes, not a whole
//! deployment: a ring of several groups runs one set per group.

pub mod checker;
pub mod floors;
pub mod history;
pub mod model;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod timeline;
pub mod workload;

/// What can stop a run from completing (a violation is not an error: it is
/// the run's verdict).
#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("cluster: {0}")]
    Testkit(#[from] ringkv_testkit::TestkitError),
    #[error("history file {path}, line {line}: {why}")]
    History { path: String, line: usize, why: String },
}

impl FaultsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FaultsError {
        let context = context.into();
        move |source| FaultsError::Io { context, source }
    }
}
