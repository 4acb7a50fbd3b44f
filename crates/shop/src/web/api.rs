//! The customer portal's JSON API, `/api/v1/…` (docs/shop.md §7). Every
//! handler names the customer (`Buyer`), so an unknown one gets 401 before
//! anything runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::catalog::{Freshness, DEFAULT_LIMIT};
use crate::model::Product;
use crate::web::error::ApiError;
use crate::web::extract::{Buyer, Ids, JsonBody, Params};
use crate::web::view::{OrderSummary, OrderView, ProductView};
use crate::web::AppState;

type Answer = Result<axum::response::Response, ApiError>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: u32,
}

pub async fn products(State(s): State<AppState>, _: Buyer, Params(page): Params<Page>) -> Answer {
    let found = s.orders.catalog().list::<Product>(&page.after, page.limit).await?;
    // A full page may have more after it; a short one is the last.
    let full = found.len()
        == match page.limit {
            0 => DEFAULT_LIMIT,
            l => l,
        } as usize;
    let next = found.last().filter(|_| full).map(|p| p.doc.pid.clone());
    let products: Vec<ProductView> = found.into_iter().map(ProductView::from).collect();
    Ok(Json(json!({ "products": products, "next": next })).into_response())
}

pub async fn product(State(s): State<AppState>, _: Buyer, Ids(pid): Ids<String>) -> Answer {
    let p = s.orders.catalog().get::<Product>(&pid, Freshness::Cached).await?;
    Ok(Json(ProductView::from(p)).into_response())
}

pub async fn open_order(State(s): State<AppState>, Buyer(c): Buyer) -> Answer {
    let order = s.orders.open(&c.doc.cid).await?;
    Ok((StatusCode::CREATED, Json(OrderView::from(&order))).into_response())
}

pub async fn orders(State(s): State<AppState>, Buyer(c): Buyer) -> Answer {
    let orders = s.orders.list(&c.doc.cid).await?;
    let orders: Vec<OrderSummary> = orders.iter().map(OrderSummary::from).collect();
    Ok(Json(json!({ "orders": orders })).into_response())
}

pub async fn order(State(s): State<AppState>, Buyer(c): Buyer, Ids(oid): Ids<String>) -> Answer {
    let order = s.orders.get(&c.doc.cid, &oid).await?;
    Ok(Json(OrderView::from(&order)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    quantity: i64,
}

pub async fn set_item(
    State(s): State<AppState>,
    Buyer(c): Buyer,
    Ids((oid, pid)): Ids<(String, String)>,
    JsonBody(body): JsonBody<SetQuantity>,
) -> Answer {
    let order = s.orders.set_line(&c.doc.cid, &oid, &pid, body.quantity).await?;
    Ok(Json(OrderView::from(&order)).into_response())
}

pub async fn cancel(State(s): State<AppState>, Buyer(c): Buyer, Ids(oid): Ids<String>) -> Answer {
    let order = s.orders.cancel(&c.doc.cid, &oid).await?;
    Ok(Json(OrderView::from(&order)).into_response())
}
