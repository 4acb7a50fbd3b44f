//! Finding the executables under test, and running one to completion.
//!
//! Tests of the `ringkv` package know its binary (`CARGO_BIN_EXE_ringkv`);
//! tests of other packages (the shop's) do not, so the kit looks where
//! cargo puts it: `RINGKV_BIN` if set, else `ringkv` in the target
//! directory the running test binary lives in (`target/<profile>/deps/..`).
//! `scripts/test` builds every binary before any test runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::TestkitError;

/// The `ringkv` executable: `RINGKV_BIN`, else the one cargo built beside
/// the running test.
pub fn ringkv() -> Result<PathBuf, TestkitError> {
    built("ringkv", "RINGKV_BIN")
}

/// An executable of this workspace called `name`: the path in `env_var` if
/// set, else the one in the running binary's target directory.
pub fn built(name: &str, env_var: &str) -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().map_err(TestkitError::io("cannot find the running executable"))?;
    // target/<profile>/deps/test-hash, or target/<profile>/bin for a tool.
    let candidates = me.ancestors().skip(1).take(2).map(|dir| dir.join(name));
    for path in candidates {
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(TestkitError::Spec(format!(
        "cannot find the `{name}` executable beside {} (run `cargo build --workspace --bins` first, or set {env_var})",
        me.display()
    )))
}

/// What a finished command said.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `exe` with `args` to completion, stdin closed.
pub fn run<I, S>(exe: &Path, args: I) -> Result<Output, TestkitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_env(exe, args, &[])
}

/// `run` with `env` added to the environment.
pub fn run_env<I, S>(exe: &Path, args: I, env: &[(&str, &str)]) -> Result<Output, TestkitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(TestkitError::io(format!("cannot run {}", exe.display())))?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
