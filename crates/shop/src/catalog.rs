//! The admin's operations on customers and products: the store for every
//! write and every exact read, the instance's cache for other reads, an
//! invalidation on the bus after every write.
//!
//! Order of a write: the database first (the write is decided there), then
//! this instance's cache, then the announcement to the others. A read
//! tries the cache, else reads the database and offers what it found to
//! the cache (which refuses it if an invalidation overtook the read).

use std::sync::Arc;

use futures::future::join_all;

use crate::bus::Bus;
use crate::cache::{Caches, Change, DocCache};
use crate::model::{check_id, Customer, Document, Product, Versioned};
use crate::store::Store;
use crate::ShopError;

/// Items per page when a listing asks for 0.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most items per page.
pub const MAX_LIMIT: u32 = 1000;

/// A document kind this catalog caches.
pub trait Cached: Document {
    fn cache(caches: &Caches) -> &DocCache<Self>;
}

impl Cached for Customer {
    fn cache(caches: &Caches) -> &DocCache<Self> {
        &caches.customers
    }
}

impl Cached for Product {
    fn cache(caches: &Caches) -> &DocCache<Self> {
        &caches.products
    }
}

/// Whether a read may be answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The cache if it has the document (stale by at most the TTL, and in
    /// practice by the invalidation latency).
    Cached,
    /// The database (linearizable); the cache is refreshed with it.
    Latest,
}

#[derive(Clone)]
pub struct Catalog {
    store: Store,
    caches: Arc<Caches>,
    bus: Option<Bus>,
}

impl Catalog {
    /// A catalog over `store`; with no bus, nothing is announced and the
    /// caches stay off (nothing would keep them fresh).
    pub fn new(store: Store, caches: Arc<Caches>, bus: Option<Bus>) -> Catalog {
        Catalog { store, caches, bus }
    }

    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    pub fn bus(&self) -> Option<&Bus> {
        self.bus.as_ref()
    }

    pub async fn create<T: Cached>(&self, doc: T) -> Result<Versioned<T>, ShopError> {
        let created = self.store.create(doc).await?;
        self.written(&created).await;
        Ok(created)
    }

    pub async fn get<T: Cached>(&self, id: &str, freshness: Freshness) -> Result<Versioned<T>, ShopError> {
        check_id(T::KIND, id)?;
        if freshness == Freshness::Cached {
            if let Some(hit) = T::cache(&self.caches).get(id).await {
                return Ok((*hit).clone());
            }
        }
        // Spawned so that a cancelled request still finishes the ticket.
        let (me, key) = (self.clone(), id.to_owned());
        let read = tokio::spawn(async move {
            let cache = T::cache(&me.caches);
            let ticket = cache.begin_read(&key).await;
            let found = me.store.read::<T>(&key).await;
            cache.finish_read(ticket, found.as_ref().ok().cloned().flatten()).await;
            found
        });
        let found = read.await.map_err(|e| ShopError::Unavailable(format!("read task failed: {e}")))??;
        found.ok_or_else(|| ShopError::NotFound { kind: T::KIND, id: id.to_owned() })
    }

    /// Replaces document `doc.id()` with what `merge(current)` makes of
    /// it, at version `expected` if given.
    pub async fn update<T, F>(&self, id: &str, expected: Option<i64>, merge: F) -> Result<Versioned<T>, ShopError>
    where
        T: Cached,
        F: Fn(&T) -> Result<T, ShopError>,
    {
        check_id(T::KIND, id)?;
        let (_, new) = self.store.update(id, expected, merge).await?;
        self.written(&new).await;
        Ok(new)
    }

    /// Deletes document `id` if `allowed(current)`; answers what was removed.
    pub async fn delete<T, F>(&self, id: &str, allowed: F) -> Result<Versioned<T>, ShopError>
    where
        T: Cached,
        F: Fn(&T) -> Result<(), ShopError>,
    {
        check_id(T::KIND, id)?;
        let removed = self.store.delete(id, allowed).await?;
        T::cache(&self.caches).deleted(id).await;
        if let Some(bus) = &self.bus {
            bus.announce(T::KIND, id, Change::Deleted);
        }
        Ok(removed)
    }

    /// Up to `limit` documents with ids after `after`, ascending.
    pub async fn list<T: Cached>(&self, after: &str, limit: u32) -> Result<Vec<Versioned<T>>, ShopError> {
        if !after.is_empty() {
            check_id(T::KIND, after)?;
        }
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            l if l > MAX_LIMIT => {
                return Err(ShopError::invalid(format!("limit {l} is above the most per page, {MAX_LIMIT}")))
            }
            l => l,
        } as usize;
        let ids = self.store.listed_after(T::KIND, after).await?;
        let mut page = Vec::with_capacity(limit.min(ids.len()));
        // Listed ids may have no document (docs/shop.md): read a chunk at a
        // time until the page is full.
        for chunk in ids.chunks(limit) {
            for found in join_all(chunk.iter().map(|id| self.get::<T>(id, Freshness::Cached))).await {
                match found {
                    Ok(doc) if page.len() < limit => page.push(doc),
                    Ok(_) | Err(ShopError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if page.len() >= limit {
                break;
            }
        }
        Ok(page)
    }

    /// Tells this instance's cache and the other instances that `doc` was
    /// written at its version.
    pub async fn written<T: Cached>(&self, doc: &Versioned<T>) {
        T::cache(&self.caches).wrote(doc.clone()).await;
        if let Some(bus) = &self.bus {
            bus.announce(T::KIND, doc.doc.id(), Change::Version(doc.version));
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The customer-specific rule for deletes: none while orders are open.
pub fn no_open_orders(c: &Customer) -> Result<(), ShopError> {
    match c.open_orders {
        0 => Ok(()),
        n => Err(ShopError::Precondition(format!(
            "customer {} has {n} open order(s): deliver or cancel them first",
            c.cid
        ))),
    }
}

/// The product-specific rule for deletes: none while open orders hold
/// units of it or a change of it is being decided (the units would vanish
/// from the stock the admins gave).
pub fn no_units_in_orders(p: &Product) -> Result<(), ShopError> {
    match (p.held, p.decided.len()) {
        (0, 0) => Ok(()),
        (0, n) => Err(ShopError::Precondition(format!(
            "product {} has {n} order change(s) in flight: try again in a moment",
            p.pid
        ))),
        (held, _) => Err(ShopError::Precondition(format!(
            "product {} has {held} unit(s) in open orders: they must be cancelled first",
            p.pid
        ))),
    }
}
