//! Waiting for the signals that mean "stop".
//!
//! `ringkv server` and `ringkv up --no-shell` stop gracefully on SIGINT
//! (Ctrl-C), SIGTERM or SIGHUP (the terminal went away) alike. With the
//! interactive shell in front, Ctrl-C belongs to the shell (it cancels the
//! running command, as in any shell), so only SIGTERM and SIGHUP are watched
//! from outside it: see `shell::run`. (rustyline is built with its
//! `signal-hook` feature so that it leaves SIGINT to us.)

use tokio::signal::unix::{signal, SignalKind};

/// Completes on SIGINT, SIGTERM or SIGHUP.
pub async fn shutdown() {
    tokio::select! {
        _ = interrupt() => {}
        _ = terminate() => {}
    }
}

/// Completes on SIGINT (Ctrl-C).
pub async fn interrupt() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!("cannot watch SIGINT: {e}");
        std::future::pending::<()>().await;
    }
}

/// Completes on SIGTERM or SIGHUP.
pub async fn terminate() {
    tokio::select! {
        _ = one(SignalKind::terminate(), "SIGTERM") => {}
        _ = one(SignalKind::hangup(), "SIGHUP") => {}
    }
}

/// Completes when `kind` arrives; never, after a warning, if it cannot be
/// watched (which should not happen on Unix).
async fn one(kind: SignalKind, name: &str) {
    match signal(kind) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::warn!("cannot watch {name}: {e}");
            std::future::pending::<()>().await;
        }
    }
}
