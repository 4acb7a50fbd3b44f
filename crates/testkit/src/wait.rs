//! Waiting on a condition with a deadline: the only way tests wait (never
//! a bare sleep for something to happen).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::TestkitError;

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds, or fails with `what` once `within` has
/// passed.
pub async fn until<F, Fut>(what: &str, within: Duration, mut cond: F) -> Result<(), TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        if started.elapsed() >= within {
            return Err(TestkitError::Timeout { what: what.to_owned(), secs: within.as_secs_f64() });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Polls `probe` until it yields a value, or fails once `within` has passed.
pub async fn value<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> Result<T, TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if started.elapsed() >= within {
            return Err(TestkitError::Timeout { what: what.to_owned(), secs: within.as_secs_f64() });
        }
        tokio::time::sleep(POLL).await;
    }
}
