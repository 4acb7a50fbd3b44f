//! The `shop.v1.AdminPortal` service: requests checked and turned into
//! catalog operations, documents turned back into messages. No decisions
//! here: the catalog and the store make them.

use tonic::{Request, Response, Status};

use crate::catalog::{no_open_orders, no_units_in_orders, Catalog, Freshness};
use crate::model::{cents_to_price, price_to_cents, Customer, Product, Versioned};
use crate::pb::{self, admin_portal_server::AdminPortal};
use crate::portal::status::to_status;
use crate::ShopError;

/// Request metadata that asks a Get for the database's latest, not the
/// cache's copy (as HTTP's `Cache-Control: no-cache`).
pub const CACHE_CONTROL: &str = "cache-control";

pub struct AdminService {
    catalog: Catalog,
}

impl AdminService {
    pub fn new(catalog: Catalog) -> AdminService {
        AdminService { catalog }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdminPortal for AdminService {
    async fn create_customer(&self, req: Request<pb::Customer>) -> Answer<pb::Customer> {
        let c = req.into_inner();
        let doc = Customer { cid: c.cid, name: c.name, email: c.email, open_orders: 0, orders: Default::default() };
        reply(self.catalog.create(doc).await, customer_pb)
    }

    async fn update_customer(&self, req: Request<pb::Customer>) -> Answer<pb::Customer> {
        let c = req.into_inner();
        let expected = expected_version(c.version).map_err(to_status)?;
        let merge = |cur: &Customer| {
            Ok(Customer { cid: c.cid.clone(), name: c.name.clone(), email: c.email.clone(), ..cur.clone() })
        };
        reply(self.catalog.update(&c.cid, expected, merge).await, customer_pb)
    }

    async fn get_customer(&self, req: Request<pb::CustomerId>) -> Answer<pb::Customer> {
        let fresh = freshness(&req);
        reply(self.catalog.get(&req.into_inner().cid, fresh).await, customer_pb)
    }

    async fn delete_customer(&self, req: Request<pb::CustomerId>) -> Answer<pb::Customer> {
        reply(self.catalog.delete(&req.into_inner().cid, no_open_orders).await, customer_pb)
    }

    async fn list_customers(&self, req: Request<pb::ListRequest>) -> Answer<pb::CustomerList> {
        let r = req.into_inner();
        let page = self.catalog.list::<Customer>(&r.after, r.limit).await;
        reply(page, |p| pb::CustomerList { customers: p.into_iter().map(customer_pb).collect() })
    }

    async fn create_product(&self, req: Request<pb::Product>) -> Answer<pb::Product> {
        let p = req.into_inner();
        let doc = Product { generation: rand::random(), ..product_doc(p).map_err(to_status)? };
        reply(self.catalog.create(doc).await, product_pb)
    }

    async fn update_product(&self, req: Request<pb::Product>) -> Answer<pb::Product> {
        let p = req.into_inner();
        let (pid, expected) = (p.pid.clone(), expected_version(p.version).map_err(to_status)?);
        let doc = product_doc(p).map_err(to_status)?;
        // What orders hold and have decided is theirs: an admin edits the
        // stock in hand (`quantity`), on the version read like any writer.
        let merge = |cur: &Product| {
            Ok(Product { held: cur.held, decided: cur.decided.clone(), generation: cur.generation, ..doc.clone() })
        };
        reply(self.catalog.update(&pid, expected, merge).await, product_pb)
    }

    async fn get_product(&self, req: Request<pb::ProductId>) -> Answer<pb::Product> {
        let fresh = freshness(&req);
        reply(self.catalog.get(&req.into_inner().pid, fresh).await, product_pb)
    }

    async fn delete_product(&self, req: Request<pb::ProductId>) -> Answer<pb::Product> {
        reply(self.catalog.delete(&req.into_inner().pid, no_units_in_orders).await, product_pb)
    }

    async fn list_products(&self, req: Request<pb::ListRequest>) -> Answer<pb::ProductList> {
        let r = req.into_inner();
        let page = self.catalog.list::<Product>(&r.after, r.limit).await;
        reply(page, |p| pb::ProductList { products: p.into_iter().map(product_pb).collect() })
    }
}

fn reply<T, M>(result: Result<T, ShopError>, to_pb: impl FnOnce(T) -> M) -> Answer<M> {
    result.map(|v| Response::new(to_pb(v))).map_err(to_status)
}

/// An update's `version`: 0 for "whatever is current", else the version
/// the update is conditional on.
fn expected_version(version: i64) -> Result<Option<i64>, ShopError> {
    match version {
        0 => Ok(None),
        v if v < 0 => Err(ShopError::invalid(format!("version {v} is negative; 0 means any version"))),
        v => Ok(Some(v)),
    }
}

fn freshness<T>(req: &Request<T>) -> Freshness {
    match req.metadata().get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
        Some(v) if v.eq_ignore_ascii_case("no-cache") => Freshness::Latest,
        _ => Freshness::Cached,
    }
}

fn product_doc(p: pb::Product) -> Result<Product, ShopError> {
    let price_cents = price_to_cents(p.price)?;
    Ok(Product { pid: p.pid, description: p.description, quantity: p.quantity, price_cents, ..Product::default() })
}

fn customer_pb(v: Versioned<Customer>) -> pb::Customer {
    pb::Customer { cid: v.doc.cid, name: v.doc.name, email: v.doc.email, version: v.version }
}

fn product_pb(v: Versioned<Product>) -> pb::Product {
    pb::Product {
        pid: v.doc.pid,
        description: v.doc.description,
        quantity: v.doc.quantity,
        price: cents_to_price(v.doc.price_cents),
        version: v.version,
    }
}
