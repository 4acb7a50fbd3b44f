//! One child process started from a command line, with the controls fault
//! tests need: `kill -9`, start again from the same argv, SIGSTOP/SIGCONT,
//! a clean stop (SIGTERM, then SIGKILL after a grace), and its log.
//!
//! Its stdout and stderr are appended to one log file, so a restarted
//! process's log follows its previous life's. Dropping a `Process` kills
//! it: a test that panics leaves nothing running.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::TestkitError;

/// A process to run (again and again) from one command line.
#[derive(Debug)]
pub struct Process {
    name: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    own_group: bool,
    child: Option<Child>,
    paused: bool,
    restarts: u32,
}

impl Process {
    /// A process called `name` in messages, started by `argv` (the
    /// executable first), logging to `log`. Not started yet.
    pub fn new(name: impl Into<String>, argv: Vec<String>, log: impl Into<PathBuf>) -> Process {
        Process {
            name: name.into(),
            argv,
            env: Vec::new(),
            log: log.into(),
            own_group: false,
            child: None,
            paused: false,
            restarts: 0,
        }
    }

    /// Sets an environment variable for every start.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Process {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs it in a process group of its own, so that a Ctrl-C typed in the
    /// terminal reaches the parent alone (which then decides).
    pub fn own_process_group(mut self) -> Process {
        self.own_group = true;
        self
    }

    /// Starts it; an error if it is already running.
    pub fn start(&mut self) -> Result<(), TestkitError> {
        if self.child.is_some() {
            return Err(TestkitError::Spec(format!("{} is already running", self.name)));
        }
        let Some((exe, args)) = self.argv.split_first() else {
            return Err(TestkitError::Spec(format!("{}: empty command line", self.name)));
        };
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir).map_err(TestkitError::io(format!("cannot create {}", dir.display())))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(TestkitError::io(format!("cannot open {}", self.log.display())))?;
        let err = log.try_clone().map_err(TestkitError::io("cannot share the log file"))?;
        let mut cmd = Command::new(exe);
        cmd.args(args).envs(self.env.iter().cloned()).stdin(Stdio::null()).stdout(log).stderr(err);
        if self.own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(TestkitError::io(format!("cannot start {} ({exe})", self.name)))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// SIGKILL (nothing gets a chance to flush) and reap. No-op if not
    /// running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Starts it again from the same command line (killing it first if it
    /// still runs).
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill9();
        self.restarts += 1;
        self.start()
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&mut self) {
        if self.signal(Signal::SIGSTOP) {
            self.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal(Signal::SIGCONT);
        self.paused = false;
    }

    /// Sends SIGCONT then SIGTERM (a clean stop), without waiting.
    pub fn request_stop(&mut self) {
        self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGTERM);
        self.paused = false;
    }

    /// Waits until it exits, up to `deadline`, then SIGKILLs it. Returns how
    /// it ended (`None` if it was not running or had to be killed).
    pub fn wait_stopped(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// A clean stop: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.request_stop();
        self.wait_stopped(Instant::now() + grace)
    }

    /// How it ended, if it exited by itself since it was started (it is
    /// then no longer running).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        self.paused = false;
        Some(status)
    }

    /// The error to report for a process that exited or never got ready.
    pub fn failure(&self, why: impl Into<String>) -> TestkitError {
        TestkitError::Process {
            name: self.name.clone(),
            why: why.into(),
            last_line: self.last_log_lines(3),
            log: self.log.clone(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times `restart` started it again.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command line that starts it (executable first).
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its whole log (empty if there is none yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` non-empty log lines, oldest first, joined by " | ": the
    /// reason a process gave is not always its very last line.
    pub fn last_log_lines(&self, n: usize) -> String {
        let text = self.log();
        let mut lines: Vec<&str> = text.lines().rev().map(str::trim).filter(|l| !l.is_empty()).take(n).collect();
        lines.reverse();
        lines.join(" | ")
    }

    /// The last non-empty line of its log: usually why it stopped.
    pub fn last_log_line(&self) -> Option<String> {
        let text = self.log();
        text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned())
    }

    /// Sends `sig`; whether the process was there to get it.
    fn signal(&self, sig: Signal) -> bool {
        match self.pid() {
            Some(pid) => kill(Pid::from_raw(pid as i32), sig).is_ok(),
            None => false,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, log: &Path) -> Process {
        Process::new("sh", vec!["/bin/sh".into(), "-c".into(), script.into()], log)
    }

    #[test]
    fn start_log_exit_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sub/p.log");
        let mut p = sh("echo hello; echo oops >&2; exit 3", &log);
        p.start().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(s) = p.exited() {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status.code(), Some(3));
        assert!(!p.is_running());
        assert_eq!(p.log(), "hello\noops\n");
        assert_eq!(p.last_log_line().as_deref(), Some("oops"));
        p.restart().unwrap();
        assert_eq!(p.restarts(), 1);
        p.wait_stopped(Instant::now() + Duration::from_secs(10));
        assert_eq!(p.log(), "hello\noops\nhello\noops\n", "a restart appends to the log");
    }

    #[test]
    fn stop_pause_and_kill() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh("trap 'exit 0' TERM; echo ready; while true; do sleep 0.01; done", &dir.path().join("p.log"));
        assert!(p.start().is_ok());
        assert!(p.start().is_err(), "a second start of a running process is refused");
        let started = Instant::now();
        while p.last_log_line().is_none() {
            assert!(started.elapsed() < Duration::from_secs(10), "the script never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        p.pause();
        assert!(p.is_paused());
        // A paused process still stops cleanly: stop sends SIGCONT first.
        let status = p.stop(Duration::from_secs(10)).expect("exited by itself");
        assert!(status.success(), "{status:?}");
        p.start().unwrap();
        let pid = p.pid().unwrap();
        p.kill9();
        assert!(!p.is_running());
        assert!(kill(Pid::from_raw(pid as i32), None).is_err(), "killed and reaped");
    }
}
