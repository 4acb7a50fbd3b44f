//! Read-index batching: one leadership confirmation serves every
//! linearizable read that was waiting for one.
//!
//! A linearizable read needs the leader to confirm, with a majority, that
//! it still leads, and then to apply up to the commit index it had then
//! (openraft's `ensure_linearizable`: a heartbeat round to every follower).
//! Doing that once per read costs two RPCs per read. Instead, reads queue
//! here; one confirmation runs at a time, and when it ends it answers
//! every read that was queued *before it started*. Reads that arrive while
//! it runs wait for the next one, which starts as soon as the current one
//! ends. So each read is answered by a confirmation that began after the
//! read arrived, which is all linearizability asks (the leader led, and its
//! commit index covered every write acknowledged before the read arrived,
//! at a moment within the read's own interval); this is etcd's
//! `linearizableReadLoop`. Under load, a round serves hundreds of reads.
//!
//! The confirmation runs in its own task, so a reader that goes away (its
//! client hung up) does not cancel it for the others.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

type Confirm<T, E> = dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, E>> + Send>> + Send + Sync;

/// Coalesces concurrent confirmations. Cheap to clone.
pub struct ReadBatcher<T, E> {
    confirm: Arc<Confirm<T, E>>,
    state: Arc<Mutex<State<T, E>>>,
}

impl<T, E> Clone for ReadBatcher<T, E> {
    fn clone(&self) -> Self {
        Self { confirm: self.confirm.clone(), state: self.state.clone() }
    }
}

struct State<T, E> {
    /// Reads that arrived since the running round started.
    waiting: Vec<oneshot::Sender<Result<T, E>>>,
    /// Whether a driver task is running rounds.
    running: bool,
}

impl<T, E> ReadBatcher<T, E>
where
    T: Clone + Send + 'static,
    E: Clone + Send + 'static,
{
    /// `confirm` does one confirmation (and waits for the apply it needs).
    pub fn new<F, Fut>(confirm: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let confirm: Arc<Confirm<T, E>> = Arc::new(move || Box::pin(confirm()));
        Self { confirm, state: Arc::new(Mutex::new(State { waiting: Vec::new(), running: false })) }
    }

    /// Returns the result of a confirmation that started after this call.
    pub async fn confirm(&self) -> Result<T, E> {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut state = self.lock();
            state.waiting.push(tx);
            !mem::replace(&mut state.running, true)
        };
        if start_driver {
            tokio::spawn(self.clone().drive());
        }
        match rx.await {
            Ok(result) => result,
            // The driver died (a panic in `confirm`): confirm alone.
            Err(_) => (self.confirm)().await,
        }
    }

    /// Runs rounds while reads are waiting.
    async fn drive(self) {
        let _reset = Reset(self.state.clone());
        loop {
            let batch = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                mem::take(&mut state.waiting)
            };
            // Everyone in `batch` arrived before this call starts.
            crate::metrics::get().read_round(batch.len());
            let result = (self.confirm)().await;
            for tx in batch {
                let _ = tx.send(result.clone());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// If the driver stops anyhow (a panic), lets the next read start another
/// and drops the queued senders, whose readers then confirm alone.
struct Reset<T, E>(Arc<Mutex<State<T, E>>>);

impl<T, E> Drop for Reset<T, E> {
    fn drop(&mut self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.running {
            state.running = false;
            state.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// A confirmation that counts its rounds and answers its own number:
    /// `started` is how many rounds had begun.
    fn counting(started: Arc<AtomicU64>, gate: Option<Arc<Semaphore>>) -> ReadBatcher<u64, String> {
        ReadBatcher::new(move || {
            let round = started.fetch_add(1, Ordering::SeqCst) + 1;
            let gate = gate.clone();
            async move {
                match gate {
                    Some(g) => g.acquire().await.map_err(|e| e.to_string())?.forget(),
                    None => tokio::time::sleep(Duration::from_micros(round % 7 * 100)).await,
                }
                Ok(round)
            }
        })
    }

    async fn until(cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "condition not reached in 5 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_read_arriving_during_a_round_waits_for_the_next_one() {
        let started = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let b = counting(started.clone(), Some(gate.clone()));
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.confirm().await }
        });
        until(|| started.load(Ordering::SeqCst) == 1).await;
        // Round 1 is running: these two arrive after it started.
        let late: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.confirm().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(1);
        assert_eq!(first.await.unwrap(), Ok(1));
        until(|| started.load(Ordering::SeqCst) == 2).await;
        assert!(late.iter().all(|t| !t.is_finished()), "answered by a round that began before they arrived");
        gate.add_permits(1);
        for t in late {
            assert_eq!(t.await.unwrap(), Ok(2), "both late reads share round 2");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_read_is_answered_by_a_round_that_started_after_it_arrived() {
        let started = Arc::new(AtomicU64::new(0));
        let b = counting(started.clone(), None);
        let readers: Vec<_> = (0..2000u64)
            .map(|i| {
                let (b, started) = (b.clone(), started.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(i % 97 * 50)).await;
                    let before = started.load(Ordering::SeqCst);
                    let round = b.confirm().await.unwrap();
                    assert!(round > before, "answered by round {round}, but {before} rounds had started on arrival");
                })
            })
            .collect();
        for r in readers {
            r.await.unwrap();
        }
        let rounds = started.load(Ordering::SeqCst);
        assert!(rounds < 1000, "{rounds} rounds for 2000 concurrent reads: no batching");
    }

    #[tokio::test]
    async fn an_error_reaches_every_read_of_the_round_and_the_next_round_starts_afresh() {
        let calls = Arc::new(AtomicU64::new(0));
        let b: ReadBatcher<u64, String> = ReadBatcher::new({
            let calls = calls.clone();
            move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if n == 0 {
                        Err("not leader".to_owned())
                    } else {
                        Ok(n)
                    }
                }
            }
        });
        let (x, y) = tokio::join!(b.confirm(), b.confirm());
        assert_eq!((x, y), (Err("not leader".to_owned()), Err("not leader".to_owned())));
        assert_eq!(b.confirm().await, Ok(1));
    }

    #[tokio::test]
    async fn a_panicking_round_does_not_strand_its_readers() {
        let calls = Arc::new(AtomicU64::new(0));
        let b: ReadBatcher<u64, String> = ReadBatcher::new({
            let calls = calls.clone();
            move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n != 0, "first round fails hard");
                    Ok(n)
                }
            }
        });
        assert_eq!(b.confirm().await, Ok(1));
        assert_eq!(b.confirm().await, Ok(2));
    }
}
