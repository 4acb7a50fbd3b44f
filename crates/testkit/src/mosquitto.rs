//! A real Mosquitto broker on a free loopback port, for the shop's tests.
//!
//! Debian's `mosquitto`, which `.ci/run` installs. On a machine without it
//! `Mosquitto::start` answers `Ok(None)` after saying so on stderr, so a
//! test can skip visibly; under CI (`CI=true`) a missing broker is an error
//! instead: CI must never pass by skipping.
//!
//! The broker keeps nothing on disk (`persistence false`): a restart loses
//! every session and queued message, which is what the shop's tests of
//! broker loss want.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::Process;
use crate::{port, TestkitError};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or killed) broker.
#[derive(Debug)]
pub struct Mosquitto {
    process: Process,
    port: u16,
}

impl Mosquitto {
    /// Starts a broker logging to `dir/mosquitto.log`, or `None` when
    /// `mosquitto` is not installed and this is not CI.
    pub fn start(dir: &Path) -> Result<Option<Mosquitto>, TestkitError> {
        let Some(exe) = find() else {
            let why = "mosquitto is not installed (apt-get install mosquitto; .ci/run does)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                return Err(TestkitError::Spec(format!("{why}, and CI must not skip")));
            }
            eprintln!("SKIPPED: {why}");
            return Ok(None);
        };
        let port = port::free_port()?;
        let config = dir.join("mosquitto.conf");
        // set_tcp_nodelay: forward each small message at once (Nagle would
        // hold it for the delayed ACK, ~40 ms on loopback).
        let text =
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n");
        std::fs::write(&config, text).map_err(TestkitError::io(format!("cannot write {}", config.display())))?;
        let argv = vec![exe.display().to_string(), "-c".into(), config.display().to_string()];
        let mut broker = Mosquitto { process: Process::new("mosquitto", argv, dir.join("mosquitto.log")), port };
        broker.process.start()?;
        broker.wait_ready()?;
        Ok(Some(broker))
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: every client's connection drops at once.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts it again on the same port and waits until it accepts.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.process.restart()?;
        self.wait_ready()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.process.exited() {
                return Err(self.process.failure(format!("exited with {status} at start")));
            }
            if Instant::now() >= deadline {
                return Err(self.process.failure("did not accept connections within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// `mosquitto` on PATH, or where Debian puts it (`/usr/sbin`, often not on
/// a user's PATH).
fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
}
