//! Streams of single-key requests (`GetMany`, `PutMany`, `DelMany` and the
//! compatibility API's `GetAll`, `PutAll`, `DelAll`): each request served
//! as its own RPC would be, up to `WINDOW` at once, answered in request
//! order. Requests on the same key run one after another, in request
//! order: they may reach different replicas (a forwarded one overtaken by
//! a local one), so running them at once would let a batch
//! `[put k a, put k b]` end with `a`, or `[del k, del k]` answer the
//! second `SUCCESS`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::{FutureExt, Shared};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, Streaming};

/// Requests of a stream in flight at once: enough to fill write batches
/// and read-index rounds, few enough that a stream's memory stays small.
pub const WINDOW: usize = 64;

/// A request of a batch: the key that orders it.
pub trait Keyed {
    fn batch_key(&self) -> &[u8];
}

/// Resolves when a request has been answered.
type Done = Shared<oneshot::Receiver<()>>;

/// The last request in flight on each key (at most `WINDOW` entries).
#[derive(Default)]
struct InFlight(Mutex<HashMap<Vec<u8>, Done>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Done>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a request on `key`: returns what it must wait for (the
    /// one before it on that key), its own completion, and the sender
    /// whose drop (when the request ends, or is cancelled) completes it.
    fn enter(&self, key: &[u8]) -> (Option<Done>, Done, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel::<()>();
        let mine = rx.shared();
        (self.lock().insert(key.to_vec(), mine.clone()), mine, tx)
    }

    /// Forgets `key` if no later request on it came in meanwhile.
    fn leave(&self, key: &[u8], mine: &Done) {
        let mut map = self.lock();
        if map.get(key).is_some_and(|last| last.ptr_eq(mine)) {
            map.remove(key);
        }
    }
}

/// Answers a stream of requests with `one`; an error ends the stream.
pub fn in_order<T, R, Fut>(
    request: Request<Streaming<T>>,
    one: impl Fn(T) -> Fut + Send + 'static,
) -> BoxStream<'static, Result<R, Status>>
where
    T: Keyed + Send + 'static,
    R: Send + 'static,
    Fut: std::future::Future<Output = Result<Response<R>, Status>> + Send + 'static,
{
    let in_flight = Arc::new(InFlight::default());
    let answers = request
        .into_inner()
        .map(move |msg| {
            let in_flight = in_flight.clone();
            // Registered here, as the stream yields: in request order.
            let call = msg.map(|msg| {
                let key = msg.batch_key().to_vec();
                let (before, mine, done) = in_flight.enter(&key);
                (key, before, mine, done, one(msg))
            });
            async move {
                let (key, before, mine, done, call) = call?;
                if let Some(before) = before {
                    before.await.ok();
                }
                let answer = call.await;
                in_flight.leave(&key, &mine);
                drop(done);
                Ok(answer?.into_inner())
            }
        })
        .buffered(WINDOW);
    Box::pin(answers)
}
