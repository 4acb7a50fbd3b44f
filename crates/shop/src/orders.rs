//! Orders, and the saga that keeps stock exact on a store that offers only
//! single-key compare-and-set.
//!
//! Stock lives in the product (`quantity` in stock, `held` by open orders)
//! and changes only by compare-and-set on the version read from the
//! database, never from a cache. A change of an order touches the order and
//! one product per line, so it runs as a small saga (docs/shop.md §6):
//!
//! 1. **Intent**: the change is written into the order as `pending`, with a
//!    unique id `OID:N`. An order has at most one pending change.
//! 2. **Decide**: each product touched records its decision on that id
//!    (`decided[id]`) in the same write that moves its stock, or records a
//!    refusal when stock is short. The product is the one place a change is
//!    decided: whoever gets there first decides, everyone after reads it.
//! 3. **Commit**: the order takes the outcome (lines changed, or not) and
//!    drops `pending`, by compare-and-set on the version holding it.
//! 4. **Prune**: each product forgets the id.
//!
//! Any instance that reads an order with a pending change runs steps 2–4
//! for it, so a portal killed at any point leaves nothing half done for
//! longer than it takes someone to look at the order.
//!
//! Why a product never applies a change twice, though decisions are
//! pruned: a decider writes the product only at the version `v` it read
//! with the id absent, and only if the order, read *after* `v`, still has
//! that change pending. A prune happens only after the commit, and a commit
//! only after a decision; so if the id was pruned by version `v`, the
//! commit came before the decider read the order, which then shows the
//! change finished, and the decider stops. If the prune came after `v`, the
//! write at `v` fails. A change is never pending again once finished.

use std::collections::BTreeMap;

use futures::future::join_all;
use rand::Rng;

use crate::catalog::{Catalog, Freshness};
use crate::keys::Kind;
use crate::model::{
    check_id, Customer, Decided, Decision, Finished, Line, Order, OrderState, Pending, Product, Step, Versioned,
    MAX_LINES, MAX_OPEN_ORDERS, MAX_QUANTITY,
};
use crate::store::{backoff, now_ms, Store, MAX_ATTEMPTS};
use crate::ShopError;

/// A decision older than this, whose order has moved on, is swept by the
/// next change of its product (its pruner died).
const SWEEP_AFTER_MS: i64 = 10_000;
/// Most stale decisions checked per product write.
const SWEEP_PER_WRITE: usize = 4;

/// The customers' operations on orders.
#[derive(Clone)]
pub struct Orders {
    catalog: Catalog,
}

impl Orders {
    pub fn new(catalog: Catalog) -> Orders {
        Orders { catalog }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn store(&self) -> &Store {
        self.catalog.store()
    }

    /// A new, empty order of customer `cid`.
    pub async fn open(&self, cid: &str) -> Result<Versioned<Order>, ShopError> {
        let customer = self.catalog.get::<Customer>(cid, Freshness::Latest).await?;
        if customer.doc.orders.len() >= MAX_OPEN_ORDERS {
            return Err(too_many_orders(cid));
        }
        let order = loop {
            let oid = format!("{:016x}", rand::rng().random::<u64>());
            let doc = Order {
                oid,
                cid: cid.to_owned(),
                created_ms: now_ms(),
                state: OrderState::Open,
                lines: BTreeMap::new(),
                pending: None,
                changes: 0,
                last: None,
            };
            match self.store().create(doc).await {
                Err(ShopError::AlreadyExists { .. }) => continue,
                other => break other?,
            }
        };
        // Killed here, the order exists unlisted and empty: it holds no
        // stock, and nobody was told its OID.
        let oid = order.doc.oid.clone();
        self.catalog
            .update::<Customer, _>(cid, None, |c| {
                if c.orders.len() >= MAX_OPEN_ORDERS {
                    return Err(too_many_orders(cid));
                }
                let mut c = c.clone();
                c.orders.insert(oid.clone());
                c.open_orders = c.orders.len() as u32;
                Ok(c)
            })
            .await?;
        Ok(order)
    }

    /// Order `oid` of customer `cid`, any pending change finished.
    pub async fn get(&self, cid: &str, oid: &str) -> Result<Versioned<Order>, ShopError> {
        check_id(Kind::Order, oid)?;
        match self.store().read::<Order>(oid).await? {
            Some(o) if o.doc.cid == cid => self.finish(o).await,
            // Another customer's order is as good as none.
            _ => Err(ShopError::NotFound { kind: Kind::Order, id: oid.to_owned() }),
        }
    }

    /// The open orders of customer `cid`, newest first. An order listed
    /// but cancelled or missing (a cancel cut short) is unlisted here.
    pub async fn list(&self, cid: &str) -> Result<Vec<Versioned<Order>>, ShopError> {
        let customer = self.catalog.get::<Customer>(cid, Freshness::Latest).await?;
        let found = join_all(customer.doc.orders.iter().map(|oid| self.get(cid, oid))).await;
        let mut open = Vec::new();
        let mut stale = Vec::new();
        for (oid, found) in customer.doc.orders.iter().zip(found) {
            match found {
                Ok(o) if o.doc.state == OrderState::Open => open.push(o),
                Ok(_) | Err(ShopError::NotFound { .. }) => stale.push(oid.clone()),
                Err(e) => return Err(e),
            }
        }
        if !stale.is_empty() {
            self.unlist(cid, &stale).await?;
        }
        open.sort_by(|a, b| b.doc.created_ms.cmp(&a.doc.created_ms).then_with(|| a.doc.oid.cmp(&b.doc.oid)));
        Ok(open)
    }

    /// Sets the quantity of product `pid` in order `oid` (0 removes the
    /// line), taking the difference from stock or returning it.
    pub async fn set_line(
        &self,
        cid: &str,
        oid: &str,
        pid: &str,
        quantity: i64,
    ) -> Result<Versioned<Order>, ShopError> {
        check_id(Kind::Product, pid)?;
        if !(0..=MAX_QUANTITY).contains(&quantity) {
            return Err(ShopError::invalid(format!(
                "quantity {quantity} is out of range: it must be 0 to {MAX_QUANTITY}"
            )));
        }
        for attempt in 0..MAX_ATTEMPTS {
            let order = self.get(cid, oid).await?;
            if order.doc.state == OrderState::Cancelled {
                return Err(ShopError::Precondition(format!("order {oid} is cancelled")));
            }
            let line = order.doc.lines.get(pid);
            let held = line.map_or(0, |l| l.quantity);
            let product = match self.store().read::<Product>(pid).await? {
                Some(p) => p,
                None => return Err(ShopError::NotFound { kind: Kind::Product, id: pid.to_owned() }),
            };
            if quantity == held {
                return Ok(order);
            }
            if line.is_none() && order.doc.lines.len() >= MAX_LINES {
                return Err(ShopError::Precondition(format!("order {oid} already holds {MAX_LINES} products")));
            }
            let delta = quantity - held;
            // Read from the database just now: a refusal here is one the
            // product would make too, and costs no write.
            if delta > product.doc.quantity {
                return Err(ShopError::Shortage {
                    pid: pid.to_owned(),
                    requested: delta,
                    available: product.doc.quantity,
                });
            }
            let step = Step {
                pid: pid.to_owned(),
                generation: product.doc.generation,
                delta,
                quantity,
                // Units in an order keep the price they were ordered at: a
                // line takes the price when it is first set.
                unit_price_cents: line.map_or(product.doc.price_cents, |l| l.unit_price_cents),
            };
            let Some((id, begun)) = self.begin(order, false, vec![step]).await? else {
                backoff(attempt).await;
                continue;
            };
            crash_point("intent");
            let done = self.finish(begun).await?;
            return match done.doc.last.as_ref() {
                Some(Finished { id: last, decision: Decision::Refused { available } }) if *last == id => {
                    Err(ShopError::Shortage { pid: pid.to_owned(), requested: delta, available: *available })
                }
                // Applied; or finished by another instance, with more
                // changes after it: the order as it is now is the answer.
                _ => Ok(done),
            };
        }
        Err(ShopError::Contention { kind: Kind::Order, id: oid.to_owned(), attempts: MAX_ATTEMPTS })
    }

    /// Cancels order `oid`: every line's units go back to stock. Cancelling
    /// a cancelled order answers it as it is.
    pub async fn cancel(&self, cid: &str, oid: &str) -> Result<Versioned<Order>, ShopError> {
        for attempt in 0..MAX_ATTEMPTS {
            let order = self.get(cid, oid).await?;
            if order.doc.state == OrderState::Cancelled {
                self.unlist(cid, &[oid.to_owned()]).await?;
                return Ok(order);
            }
            let steps = order
                .doc
                .lines
                .iter()
                .map(|(pid, l)| Step {
                    pid: pid.clone(),
                    generation: l.generation,
                    delta: -l.quantity,
                    quantity: 0,
                    unit_price_cents: l.unit_price_cents,
                })
                .collect();
            let Some((_, begun)) = self.begin(order, true, steps).await? else {
                backoff(attempt).await;
                continue;
            };
            crash_point("intent");
            let done = self.finish(begun).await?;
            self.unlist(cid, &[oid.to_owned()]).await?;
            return Ok(done);
        }
        Err(ShopError::Contention { kind: Kind::Order, id: oid.to_owned(), attempts: MAX_ATTEMPTS })
    }

    /// Step 1: records the change in the order at the version read. The
    /// change's id and the order holding it, or `None` if the order moved.
    async fn begin(
        &self,
        order: Versioned<Order>,
        cancel: bool,
        steps: Vec<Step>,
    ) -> Result<Option<(String, Versioned<Order>)>, ShopError> {
        let mut doc = order.doc;
        let id = format!("{}:{}", doc.oid, doc.changes);
        doc.changes += 1;
        doc.pending = Some(Pending { id: id.clone(), started_ms: now_ms(), cancel, steps });
        Ok(self.store().replace(order.version, doc).await?.map(|o| (id, o)))
    }

    /// Steps 2–4 for whatever change `order` has pending, until it has
    /// none; answers the order then.
    pub async fn finish(&self, mut order: Versioned<Order>) -> Result<Versioned<Order>, ShopError> {
        'changes: while let Some(change) = order.doc.pending.clone() {
            let oid = order.doc.oid.clone();
            let mut outcome = Decision::Applied;
            for step in &change.steps {
                match self.decide(&oid, &change.id, step).await? {
                    Some(Decision::Applied) => crate::metrics::get().saga_step(true),
                    // Only a line change takes units, and it has one step.
                    Some(refused) => {
                        crate::metrics::get().saga_step(false);
                        outcome = refused;
                        break;
                    }
                    // Finished by someone else meanwhile.
                    None => {
                        order = self.read_order(&oid).await?;
                        continue 'changes;
                    }
                }
            }
            crash_point("decision");
            order = match self.commit(order, &change, outcome).await? {
                Some(done) => {
                    crash_point("commit");
                    crate::metrics::get().saga_change(outcome == Decision::Applied);
                    for step in &change.steps {
                        self.prune(step, &change.id).await;
                    }
                    done
                }
                None => self.read_order(&oid).await?,
            };
        }
        Ok(order)
    }

    /// Step 2 for one product: its decision on change `id`, made now if
    /// nobody has; `None` if the order no longer has the change pending.
    async fn decide(&self, oid: &str, id: &str, step: &Step) -> Result<Option<Decision>, ShopError> {
        for attempt in 0..MAX_ATTEMPTS {
            let product =
                self.store().read::<Product>(&step.pid).await?.filter(|p| p.doc.generation == step.generation);
            if let Some(d) = product.as_ref().and_then(|p| p.doc.decided.get(id)) {
                return Ok(Some(d.decision));
            }
            // Read after the product: see the module's comment.
            let order = self.store().read::<Order>(oid).await?;
            if order.and_then(|o| o.doc.pending).is_none_or(|p| p.id != id) {
                return Ok(None);
            }
            let Some(product) = product else {
                // The product is gone for good (a product with open orders
                // cannot be deleted, and generations never return): the
                // same answer for everyone, so nothing need be recorded.
                return Ok(Some(match step.delta {
                    d if d > 0 => Decision::Refused { available: 0 },
                    _ => Decision::Applied,
                }));
            };
            let mut doc = product.doc.clone();
            let decision = if step.delta <= doc.quantity {
                if doc.held < -step.delta {
                    return Err(ShopError::Corrupt {
                        kind: Kind::Product,
                        id: step.pid.clone(),
                        why: format!("{} held, {} to return by {id}", doc.held, -step.delta),
                    });
                }
                doc.quantity -= step.delta;
                doc.held += step.delta;
                Decision::Applied
            } else {
                Decision::Refused { available: doc.quantity }
            };
            doc.decided.insert(id.to_owned(), Decided { decision, at_ms: now_ms() });
            self.sweep(&mut doc, id).await?;
            match self.store().replace(product.version, doc).await {
                Ok(Some(written)) => {
                    self.catalog.written(&written).await;
                    return Ok(Some(decision));
                }
                Ok(None) => backoff(attempt).await,
                Err(ShopError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ShopError::Contention { kind: Kind::Product, id: step.pid.clone(), attempts: MAX_ATTEMPTS })
    }

    /// Step 3: the order takes the outcome of `change` and drops it; the
    /// order then, or `None` if another instance committed it first.
    async fn commit(
        &self,
        mut order: Versioned<Order>,
        change: &Pending,
        outcome: Decision,
    ) -> Result<Option<Versioned<Order>>, ShopError> {
        for attempt in 0..MAX_ATTEMPTS {
            if order.doc.pending.as_ref().is_none_or(|p| p.id != change.id) {
                return Ok(None);
            }
            let mut doc = order.doc.clone();
            doc.pending = None;
            doc.last = Some(Finished { id: change.id.clone(), decision: outcome });
            if outcome == Decision::Applied && change.cancel {
                // The lines stay, as a record of what was cancelled.
                doc.state = OrderState::Cancelled;
            } else if outcome == Decision::Applied {
                for s in &change.steps {
                    match s.quantity {
                        0 => doc.lines.remove(&s.pid),
                        quantity => doc.lines.insert(
                            s.pid.clone(),
                            Line { quantity, unit_price_cents: s.unit_price_cents, generation: s.generation },
                        ),
                    };
                }
            }
            match self.store().replace(order.version, doc).await? {
                Some(done) => return Ok(Some(done)),
                None => {
                    backoff(attempt).await;
                    order = self.read_order(&order.doc.oid).await?;
                }
            }
        }
        Err(ShopError::Contention { kind: Kind::Order, id: order.doc.oid, attempts: MAX_ATTEMPTS })
    }

    /// Step 4: product `step.pid` forgets change `id`. Best effort: a
    /// decision left behind is swept by a later change of the product.
    async fn prune(&self, step: &Step, id: &str) {
        for attempt in 0..MAX_ATTEMPTS {
            let found = match self.store().read::<Product>(&step.pid).await {
                Ok(found) => found,
                Err(e) => return tracing::warn!("cannot prune decision {id} from product {}: {e}", step.pid),
            };
            let Some(product) = found.filter(|p| p.doc.decided.contains_key(id)) else { return };
            let mut doc = product.doc.clone();
            doc.decided.remove(id);
            match self.store().replace(product.version, doc).await {
                Ok(Some(written)) => return self.catalog.written(&written).await,
                Ok(None) => backoff(attempt).await,
                Err(e) => return tracing::warn!("cannot prune decision {id} from product {}: {e}", step.pid),
            }
        }
    }

    /// Drops from `doc` the old decisions (not `current`) whose orders no
    /// longer have them pending: their pruner died after the commit.
    async fn sweep(&self, doc: &mut Product, current: &str) -> Result<(), ShopError> {
        let old: Vec<String> = doc
            .decided
            .iter()
            .filter(|(id, d)| id.as_str() != current && now_ms() - d.at_ms > SWEEP_AFTER_MS)
            .map(|(id, _)| id.clone())
            .take(SWEEP_PER_WRITE)
            .collect();
        for id in old {
            let oid = id.rsplit_once(':').map_or(id.as_str(), |(oid, _)| oid);
            let order = self.store().read::<Order>(oid).await?;
            if order.and_then(|o| o.doc.pending).is_none_or(|p| p.id != id) {
                doc.decided.remove(&id);
            }
        }
        Ok(())
    }

    /// Removes `oids` from customer `cid`'s open orders.
    async fn unlist(&self, cid: &str, oids: &[String]) -> Result<(), ShopError> {
        let listed = self.catalog.get::<Customer>(cid, Freshness::Latest).await?;
        if !oids.iter().any(|o| listed.doc.orders.contains(o)) {
            return Ok(());
        }
        self.catalog
            .update::<Customer, _>(cid, None, |c| {
                let mut c = c.clone();
                for oid in oids {
                    c.orders.remove(oid);
                }
                c.open_orders = c.orders.len() as u32;
                Ok(c)
            })
            .await?;
        Ok(())
    }

    async fn read_order(&self, oid: &str) -> Result<Versioned<Order>, ShopError> {
        self.store()
            .read::<Order>(oid)
            .await?
            .ok_or_else(|| ShopError::NotFound { kind: Kind::Order, id: oid.to_owned() })
    }

    /// Finishes every pending change of every order and compares, for each
    /// product, its stock with the units its orders hold.
    pub async fn audit(&self) -> Result<Audit, ShopError> {
        let mut audit = Audit::default();
        let mut in_orders: BTreeMap<String, i64> = BTreeMap::new();
        for oid in self.store().listed_after(Kind::Order, "").await? {
            let Some(order) = self.store().read::<Order>(&oid).await? else { continue };
            if order.doc.pending.is_some() {
                audit.finished += 1;
            }
            let order = self.finish(order).await?;
            audit.orders += 1;
            if order.doc.state == OrderState::Open {
                audit.open += 1;
                for (pid, line) in &order.doc.lines {
                    *in_orders.entry(pid.clone()).or_default() += line.quantity;
                }
            }
        }
        for pid in self.store().listed_after(Kind::Product, "").await? {
            let Some(p) = self.store().read::<Product>(&pid).await? else { continue };
            let ordered = in_orders.remove(&pid).unwrap_or(0);
            audit.products.push(ProductAudit {
                pid,
                quantity: p.doc.quantity,
                held: p.doc.held,
                in_orders: ordered,
                decisions: p.doc.decided.len(),
            });
        }
        audit.orphan_lines = in_orders.into_iter().collect();
        Ok(audit)
    }
}

/// What `Orders::audit` found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Audit {
    /// Orders read, and how many of them are open.
    pub orders: usize,
    pub open: usize,
    /// Pending changes the audit finished.
    pub finished: usize,
    pub products: Vec<ProductAudit>,
    /// Units in open orders of products that no longer exist (should be none).
    pub orphan_lines: Vec<(String, i64)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProductAudit {
    pub pid: String,
    pub quantity: i64,
    pub held: i64,
    pub in_orders: i64,
    /// Decisions not yet pruned.
    pub decisions: usize,
}

impl Audit {
    /// Every product's `held` equals the units its open orders hold, and no
    /// order holds units of a product that is gone.
    pub fn holds(&self) -> bool {
        self.orphan_lines.is_empty() && self.products.iter().all(|p| p.held == p.in_orders)
    }
}

/// Fault injection for tests: with `SHOP_CRASH_AFTER=intent`, `decision`
/// or `commit` in its environment, the process dies on the spot (as
/// `kill -9` would) after that step of the first order change it makes,
/// so that a test can check another instance finishes the change.
fn crash_point(step: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var("SHOP_CRASH_AFTER").ok()).as_deref() == Some(step) {
        eprintln!("SHOP_CRASH_AFTER={step}: dying after the {step} step, as a test asked");
        std::process::abort();
    }
}

fn too_many_orders(cid: &str) -> ShopError {
    ShopError::Precondition(format!(
        "customer {cid} has {MAX_OPEN_ORDERS} open orders, the most allowed: cancel one first"
    ))
}
