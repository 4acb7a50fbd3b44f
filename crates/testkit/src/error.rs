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
    #[error("{name} {why}; last log line: {last_line} (log: {})", log.display())]
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
    /// free port between choosing and binding it): worth a retry.
    pub fn is_port_taken(&self) -> bool {
        match self {
            TestkitError::Process { last_line, .. } => {
                last_line.contains("cannot listen") || last_line.contains("Address already in use")
            }
            _ => false,
        }
    }
}
