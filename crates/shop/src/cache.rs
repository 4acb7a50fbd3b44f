//! One portal instance's cache of recently read documents of one kind.
//!
//! Bounded in entries, with a TTL as the hard bound on staleness (moka's
//! async cache). Its one rule: **an entry is replaced or dropped only by a
//! newer version**, so duplicated, reordered or echoed invalidations are
//! harmless. Three more things keep it from serving stale data:
//!
//! - a read that misses registers first (`begin_read`); invalidations that
//!   arrive while it is in flight are noted against it, and `finish_read`
//!   does not insert a value they made stale (a read that raced a delete
//!   inserts nothing);
//! - invalidations and inserts of one cache are serialized by one async
//!   lock, so none falls between another's check and its change;
//! - when the broker connection is lost, `flush` empties the cache and
//!   turns it off (every read goes to the database, nothing is inserted)
//!   until `enable`, after the subscription is back. Reads begun before a
//!   flush insert nothing after it.
//!
//! A cached document is never used for a decision that must be exact: the
//! writers in `store` always read the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use moka::notification::RemovalCause;
use tokio::sync::Mutex;

use crate::keys::Kind;
use crate::model::{Customer, Document, Product, Versioned};

/// What an invalidation says about a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It was written; this is its version now.
    Version(i64),
    /// It was deleted.
    Deleted,
}

/// Sizing of a cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Most entries kept (0: no caching at all).
    pub entries: u64,
    /// Longest an entry is served after it was read.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { entries: 10_000, ttl: Duration::from_secs(30) }
    }
}

/// Hits, misses and invalidations so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries dropped by invalidations.
    pub dropped: u64,
    /// Flushes on broker loss.
    pub flushes: u64,
    /// Entries moka removed for room or for age (the TTL).
    pub evicted: u64,
}

/// A read in flight, from `begin_read` to `finish_read`.
#[derive(Debug)]
#[must_use = "a begun read must be finished"]
pub struct ReadTicket {
    id: String,
    seq: u64,
    epoch: u64,
}

pub struct DocCache<T> {
    docs: Cache<String, Arc<Versioned<T>>>,
    /// 0: never enabled.
    capacity: u64,
    guard: Mutex<InFlight>,
    enabled: AtomicBool,
    /// Bumped by every flush.
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    dropped: AtomicU64,
    flushes: AtomicU64,
    /// Shared with moka's eviction listener.
    evicted: Arc<AtomicU64>,
}

/// Invalidations seen while reads of the same id were in flight.
#[derive(Default)]
struct InFlight {
    /// Numbers every change noted, so a read knows which came after it began.
    seq: u64,
    reads: HashMap<String, Pending>,
}

#[derive(Default)]
struct Pending {
    readers: usize,
    changes: Vec<(u64, Change)>,
}

impl<T: Document> DocCache<T> {
    /// An empty cache, off until `enable` (an instance enables it once its
    /// invalidations arrive).
    pub fn new(config: CacheConfig) -> DocCache<T> {
        let evicted = Arc::new(AtomicU64::new(0));
        let counted = evicted.clone();
        let docs = Cache::builder()
            .max_capacity(config.entries)
            .time_to_live(config.ttl)
            .eviction_listener(move |_, _, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        DocCache {
            docs,
            capacity: config.entries,
            guard: Mutex::default(),
            enabled: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            evicted,
        }
    }

    /// The cached document `id`, if caching is on and it is there.
    pub async fn get(&self, id: &str) -> Option<Arc<Versioned<T>>> {
        let hit = match self.enabled.load(Ordering::Acquire) {
            true => self.docs.get(id).await,
            false => None,
        };
        let counter = if hit.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Registers a read of `id` from the database that is about to start.
    pub async fn begin_read(&self, id: &str) -> ReadTicket {
        let mut g = self.guard.lock().await;
        let epoch = self.epoch.load(Ordering::Acquire);
        g.reads.entry(id.to_owned()).or_default().readers += 1;
        ReadTicket { id: id.to_owned(), seq: g.seq, epoch }
    }

    /// Ends a read: caches what it found unless an invalidation that came
    /// while it was in flight makes it stale, or a flush came. Must be
    /// called for every `begin_read` (the catalog runs both in one spawned
    /// task, so a cancelled request cannot skip it).
    pub async fn finish_read(&self, ticket: ReadTicket, found: Option<Versioned<T>>) {
        let mut g = self.guard.lock().await;
        let changes = match g.reads.get_mut(&ticket.id) {
            Some(p) => {
                p.readers -= 1;
                let later: Vec<Change> = p.changes.iter().filter(|(s, _)| *s > ticket.seq).map(|(_, c)| *c).collect();
                if p.readers == 0 {
                    g.reads.remove(&ticket.id);
                }
                later
            }
            None => Vec::new(),
        };
        let Some(found) = found else { return };
        let current = self.enabled.load(Ordering::Acquire) && self.epoch.load(Ordering::Acquire) == ticket.epoch;
        let fresh = changes.iter().all(|c| matches!(c, Change::Version(v) if *v <= found.version));
        if current && fresh {
            self.put_if_newer(ticket.id, found).await;
        }
    }

    /// Applies a change announced for `id` (by another instance, or this
    /// one's own echo).
    pub async fn apply(&self, id: &str, change: Change) {
        let mut g = self.guard.lock().await;
        note(&mut g, id, change);
        let stale = match (change, self.docs.get(id).await) {
            (_, None) => false,
            (Change::Deleted, Some(_)) => true,
            (Change::Version(v), Some(cached)) => cached.version < v,
        };
        if stale {
            self.docs.invalidate(id).await;
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records this instance's own write: the new document replaces an
    /// older cached one.
    pub async fn wrote(&self, written: Versioned<T>) {
        let mut g = self.guard.lock().await;
        let id = written.doc.id().to_owned();
        note(&mut g, &id, Change::Version(written.version));
        if self.enabled.load(Ordering::Acquire) {
            self.put_if_newer(id, written).await;
        }
    }

    /// Records this instance's own delete.
    pub async fn deleted(&self, id: &str) {
        self.apply(id, Change::Deleted).await;
    }

    /// Empties the cache and turns it off (the broker connection is lost:
    /// invalidations may be missed from now on).
    pub fn flush(&self) {
        self.enabled.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.docs.invalidate_all();
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns caching on (invalidations are arriving). Reads begun before
    /// insert nothing: what they read may predate the subscription.
    pub fn enable(&self) {
        if self.capacity > 0 {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.enabled.store(true, Ordering::Release);
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// Inserts unless a newer or equal version is cached. The guard is held.
    async fn put_if_newer(&self, id: String, v: Versioned<T>) {
        if self.docs.get(&id).await.is_some_and(|c| c.version >= v.version) {
            return;
        }
        self.docs.insert(id, Arc::new(v)).await;
    }
}

/// Notes `change` against the reads of `id` in flight, if any.
fn note(g: &mut InFlight, id: &str, change: Change) {
    g.seq += 1;
    let seq = g.seq;
    if let Some(p) = g.reads.get_mut(id) {
        p.changes.push((seq, change));
    }
}

/// The caches of one portal instance, one per kind of document.
pub struct Caches {
    pub customers: DocCache<Customer>,
    pub products: DocCache<Product>,
}

impl Caches {
    pub fn new(config: CacheConfig) -> Caches {
        Caches { customers: DocCache::new(config), products: DocCache::new(config) }
    }

    /// Applies an invalidation received for a document of `kind`.
    pub async fn apply(&self, kind: Kind, id: &str, change: Change) {
        match kind {
            Kind::Customer => self.customers.apply(id, change).await,
            Kind::Product => self.products.apply(id, change).await,
            // Orders are never cached: every read of one goes to the database.
            Kind::Order | Kind::CustomerIndex | Kind::ProductIndex | Kind::OrderIndex => {}
        }
    }

    pub fn flush(&self) {
        self.customers.flush();
        self.products.flush();
    }

    pub fn enable(&self) {
        self.customers.enable();
        self.products.enable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pid: &str, version: i64, quantity: i64) -> Versioned<Product> {
        Versioned { version, doc: Product { pid: pid.into(), quantity, price_cents: 1, ..Product::default() } }
    }

    fn on() -> DocCache<Product> {
        let c = DocCache::new(CacheConfig::default());
        c.enable();
        c
    }

    async fn cached(c: &DocCache<Product>, id: &str) -> Option<i64> {
        c.get(id).await.map(|v| v.version)
    }

    async fn read(c: &DocCache<Product>, found: Versioned<Product>) {
        let t = c.begin_read(found.doc.id()).await;
        c.finish_read(t, Some(found)).await;
    }

    #[tokio::test]
    async fn only_a_newer_version_replaces_or_drops_an_entry() {
        let c = on();
        read(&c, doc("p", 3, 0)).await;
        assert_eq!(cached(&c, "p").await, Some(3));
        for old in [1, 2, 3] {
            c.apply("p", Change::Version(old)).await; // duplicates, reordering, own echo
            assert_eq!(cached(&c, "p").await, Some(3), "v{old} must not drop v3");
        }
        read(&c, doc("p", 2, 0)).await;
        assert_eq!(cached(&c, "p").await, Some(3), "an older read does not replace");
        c.apply("p", Change::Version(4)).await;
        assert_eq!(cached(&c, "p").await, None);
        read(&c, doc("p", 4, 0)).await;
        c.apply("p", Change::Deleted).await;
        assert_eq!(cached(&c, "p").await, None);
        assert_eq!(c.stats().dropped, 2);
    }

    #[tokio::test]
    async fn a_read_overtaken_by_an_invalidation_inserts_nothing_stale() {
        let c = on();
        // Read v1 from the database; v2 is announced before it finishes.
        let t = c.begin_read("p").await;
        c.apply("p", Change::Version(2)).await;
        c.finish_read(t, Some(doc("p", 1, 0))).await;
        assert_eq!(cached(&c, "p").await, None, "v1 came back after v2 was announced");
        // The same race, but the read saw v2 itself: fine to cache.
        let t = c.begin_read("p").await;
        c.apply("p", Change::Version(2)).await;
        c.finish_read(t, Some(doc("p", 2, 0))).await;
        assert_eq!(cached(&c, "p").await, Some(2));
        // A delete during the read: whatever it saw may be gone.
        c.apply("p", Change::Deleted).await;
        let t = c.begin_read("p").await;
        c.apply("p", Change::Deleted).await;
        c.finish_read(t, Some(doc("p", 5, 0))).await;
        assert_eq!(cached(&c, "p").await, None);
        // Changes before a read began do not block it.
        let t = c.begin_read("p").await;
        c.finish_read(t, Some(doc("p", 1, 0))).await;
        assert_eq!(cached(&c, "p").await, Some(1));
    }

    #[tokio::test]
    async fn overlapping_reads_are_judged_each_by_its_own_start() {
        let c = on();
        let early = c.begin_read("p").await;
        c.apply("p", Change::Version(3)).await;
        let late = c.begin_read("p").await;
        c.finish_read(late, Some(doc("p", 3, 0))).await;
        assert_eq!(cached(&c, "p").await, Some(3));
        c.finish_read(early, Some(doc("p", 2, 0))).await;
        assert_eq!(cached(&c, "p").await, Some(3), "the early read's v2 did not replace v3");
        assert!(c.guard.lock().await.reads.is_empty(), "finished reads leave nothing behind");
    }

    #[tokio::test]
    async fn a_flush_turns_caching_off_and_voids_reads_in_flight() {
        let c = on();
        read(&c, doc("p", 1, 0)).await;
        let t = c.begin_read("q").await;
        c.flush();
        assert_eq!(cached(&c, "p").await, None);
        c.finish_read(t, Some(doc("q", 1, 0))).await;
        read(&c, doc("r", 1, 0)).await;
        c.enable();
        assert_eq!(cached(&c, "q").await, None, "read began before the flush");
        assert_eq!(cached(&c, "r").await, None, "read done while caching was off");
        // A read begun while off and finished after enable: it may predate
        // the subscription.
        c.flush();
        let t = c.begin_read("s").await;
        c.enable();
        c.finish_read(t, Some(doc("s", 1, 0))).await;
        assert_eq!(cached(&c, "s").await, None);
        read(&c, doc("s", 1, 0)).await;
        assert_eq!(cached(&c, "s").await, Some(1), "caching is back");
    }

    #[tokio::test]
    async fn own_writes_replace_older_copies_only() {
        let c = on();
        read(&c, doc("p", 2, 0)).await;
        c.wrote(doc("p", 3, 7)).await;
        assert_eq!(c.get("p").await.map(|v| v.doc.quantity), Some(7));
        c.wrote(doc("p", 1, 9)).await; // recreated elsewhere, and our delete not yet seen: no
        assert_eq!(cached(&c, "p").await, Some(3));
        c.deleted("p").await;
        c.wrote(doc("p", 1, 9)).await;
        assert_eq!(cached(&c, "p").await, Some(1));
    }

    #[tokio::test]
    async fn a_cache_of_no_entries_never_turns_on() {
        let c: DocCache<Product> = DocCache::new(CacheConfig { entries: 0, ttl: Duration::from_secs(1) });
        c.enable();
        assert!(!c.is_enabled());
        read(&c, doc("p", 1, 0)).await;
        assert_eq!(cached(&c, "p").await, None);
    }
}
