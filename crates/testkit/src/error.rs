//! What can go wrong starting or driving processes, said so that the
//! reader knows which process and where its log is.

use std::path::PathBuf;

/// A test kit failure.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A process exited by itself, or never got ready.
    #[error("{name} {why}; last log lines: {last_line} (log: {})", log.display())]
    Process { name: String, why: String, last_line: String, log: PathBuf },
    /// A condition did not hold within its deadline.
    #[error("timed out after {secs:.1} s waiting for {what}")]
    Timeout { what: String, secs: f64 },
    /// The request to start something was wrong.
    #[error("{0}")]
    Spec(String),
}

impl TestkitError {
    /// A closure that wraps an `io::Error` with what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Io { what, source }
    }

    /// Whether a server could not bind its port (another process took the
    /// free port between choosing and binding it): worth a retry. The whole
    /// log is searched: the bind error is not always its last line (Raft,
    /// already started, may log its own shutdown after it).
    pub fn is_port_taken(&self) -> bool {
        let taken = |text: &str| text.contains("cannot listen") || text.contains("Address already in use");
        match self {
            TestkitError::Process { last_line, log, .. } => {
                taken(last_line) || std::fs::read_to_string(log).is_ok_and(|text| taken(&text))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_error_anywhere_in_the_log_is_a_taken_port() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(&log, "starting\nError: cannot listen on 127.0.0.1:7070\nERROR openraft: channel closed\n")
            .unwrap();
        let exited = |log: PathBuf| TestkitError::Process {
            name: "replica".into(),
            why: "exited".into(),
            last_line: "ERROR openraft: channel closed".into(),
            log,
        };
        assert!(exited(log).is_port_taken());
        assert!(!exited(dir.path().join("missing.log")).is_port_taken());
    }
}
