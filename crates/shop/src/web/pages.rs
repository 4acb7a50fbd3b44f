//! The storefront: server-rendered pages, plain HTML forms, no JavaScript.
//! Signing in sets a cookie naming the customer (as the API's Bearer CID
//! does; SameSite=Lax keeps other sites' forms from posting as them). A
//! refused operation shows its message in the page, with the API's status.

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::catalog::MAX_LIMIT;
use crate::model::{Customer, Order, OrderState, Product, Versioned};
use crate::web::error::ApiError;
use crate::web::extract::{customer, Ids};
use crate::web::view::money;
use crate::web::AppState;

const COOKIE: &str = "shop_cid";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}\
nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ccc;padding-bottom:.5rem}\
nav form{margin-left:auto}table{border-collapse:collapse;width:100%;margin:1rem 0}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee}td.n,th.n{text-align:right}\
.error{background:#fdd;border:1px solid #c66;padding:.5rem;margin:1rem 0}\
.note{background:#efe;border:1px solid #6a6;padding:.5rem;margin:1rem 0}input[type=number]{width:5rem}";

/// A page with the navigation bar for `who` (if signed in) and `error`.
fn page(title: &str, who: Option<&Customer>, error: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ringkv shop" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                nav {
                    strong { a href="/" { "ringkv shop" } }
                    @if let Some(c) = who {
                        a href="/" { "Products" }
                        a href="/orders" { "Orders" }
                        form method="post" action="/sign-out" {
                            span #who { "Signed in as " (c.name) " (" (c.cid) ") " }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                h1 { (title) }
                @if let Some(e) = error { p .error #error role="alert" { (e) } }
                (body)
            }
        }
    }
}

/// The page's answer for a refused operation: its message, with the
/// status the API would give.
fn refused(title: &str, who: Option<&Customer>, e: &ApiError, body: Markup) -> Response {
    let (status, _, message) = e.parts();
    (status, Html(page(title, who, Some(&message), body).into_string())).into_response()
}

/// The signed-in customer, if the cookie names one.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Versioned<Customer>>, ApiError> {
    let Some(cid) = cookie(headers) else { return Ok(None) };
    match customer(state, &cid).await {
        Ok(c) => Ok(Some(c)),
        Err(ApiError::Unauthorized(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .and_then(|(_, v)| percent_decode_str(v).decode_utf8().ok().map(|s| s.into_owned()))
}

/// Every page that needs a customer: the sign-in page if there is none.
macro_rules! customer_or_sign_in {
    ($state:expr, $headers:expr) => {
        match signed_in(&$state, &$headers).await {
            Ok(Some(c)) => c,
            Ok(None) => return sign_in_page(StatusCode::OK, None),
            Err(e) => return refused("Unavailable", None, &e, html! {}),
        }
    };
}

fn sign_in_page(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        p { "Sign in with your customer id (CID) to browse and order." }
        form method="post" action="/sign-in" {
            label { "Customer id " input #cid type="text" name="cid" required autofocus; }
            " "
            button #sign-in type="submit" { "Sign in" }
        }
    };
    (status, Html(page("Sign in", None, error, body).into_string())).into_response()
}

/// `/`: the catalogue, or the sign-in form.
pub async fn home(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let c = customer_or_sign_in!(s, headers);
    catalogue(&s, &c.doc, None).await
}

async fn catalogue(s: &AppState, c: &Customer, error: Option<&ApiError>) -> Response {
    let products = match s.orders.catalog().list::<Product>("", MAX_LIMIT).await {
        Ok(p) => p,
        Err(e) => return refused("Products", Some(c), &e.into(), html! {}),
    };
    let body = html! {
        table #products {
            thead { tr { th { "Product" } th { "Description" } th .n { "Price" } th .n { "In stock" } } }
            tbody {
                @for p in &products {
                    tr id={ "product-" (p.doc.pid) } {
                        td { (p.doc.pid) }
                        td { (p.doc.description) }
                        td .n .price { (money(p.doc.price_cents)) }
                        td .n .stock { (p.doc.quantity) }
                    }
                }
            }
        }
        @if products.is_empty() { p { "Nothing for sale yet." } }
        p { a href="/orders" { "Your orders" } " — open one to add products to it." }
    };
    let message = error.map(|e| e.parts().2);
    let status = error.map_or(StatusCode::OK, |e| e.parts().0);
    (status, Html(page("Products", Some(c), message.as_deref(), body).into_string())).into_response()
}

#[derive(Deserialize)]
pub struct SignIn {
    cid: String,
}

pub async fn sign_in(
    State(s): State<AppState>,
    form: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(SignIn { cid })) = form else {
        return sign_in_page(StatusCode::BAD_REQUEST, Some("the form is incomplete: give a customer id"));
    };
    let cid = cid.trim();
    match customer(&s, cid).await {
        Ok(_) => {
            let value = utf8_percent_encode(cid, NON_ALPHANUMERIC);
            let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax");
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => {
            let (status, _, message) = e.parts();
            sign_in_page(status, Some(&message))
        }
    }
}

pub async fn sign_out() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// `/orders`: the customer's open orders, and a button for a new one.
pub async fn orders(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let c = customer_or_sign_in!(s, headers);
    orders_page(&s, &c.doc, None).await
}

async fn orders_page(s: &AppState, c: &Customer, error: Option<&ApiError>) -> Response {
    let orders = match s.orders.list(&c.cid).await {
        Ok(o) => o,
        Err(e) => return refused("Your orders", Some(c), &e.into(), html! {}),
    };
    let body = html! {
        form method="post" action="/orders" { button #new-order type="submit" { "New order" } }
        @if orders.is_empty() { p { "No open orders." } } @else {
            table #orders {
                thead { tr { th { "Order" } th .n { "Products" } th .n { "Units" } th .n { "Total" } } }
                tbody {
                    @for o in &orders {
                        tr id={ "order-" (o.doc.oid) } {
                            td { a href={ "/orders/" (o.doc.oid) } { (o.doc.oid) } }
                            td .n { (o.doc.lines.len()) }
                            td .n { (o.doc.lines.values().map(|l| l.quantity).sum::<i64>()) }
                            td .n .total { (money(o.doc.total_cents())) }
                        }
                    }
                }
            }
        }
    };
    let message = error.map(|e| e.parts().2);
    let status = error.map_or(StatusCode::OK, |e| e.parts().0);
    (status, Html(page("Your orders", Some(c), message.as_deref(), body).into_string())).into_response()
}

pub async fn open_order(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let c = customer_or_sign_in!(s, headers);
    match s.orders.open(&c.doc.cid).await {
        Ok(o) => Redirect::to(&format!("/orders/{}", path_segment(&o.doc.oid))).into_response(),
        Err(e) => orders_page(&s, &c.doc, Some(&e.into())).await,
    }
}

/// `/orders/{oid}`: its lines, a form per line, one to add a product, the
/// total, and the cancel button.
pub async fn order(State(s): State<AppState>, headers: HeaderMap, oid: Result<Ids<String>, ApiError>) -> Response {
    let c = customer_or_sign_in!(s, headers);
    let Ok(Ids(oid)) = oid else { return not_found_page(Some(&c.doc)) };
    match s.orders.get(&c.doc.cid, &oid).await {
        Ok(o) => order_page(&s, &c.doc, &o, StatusCode::OK, None, None).await,
        Err(e) => refused("Order", Some(&c.doc), &e.into(), html! { p { a href="/orders" { "Your orders" } } }),
    }
}

async fn order_page(
    s: &AppState,
    c: &Customer,
    o: &Versioned<Order>,
    status: StatusCode,
    error: Option<&str>,
    note: Option<&str>,
) -> Response {
    let products = s.orders.catalog().list::<Product>("", MAX_LIMIT).await.unwrap_or_default();
    let open = o.doc.state == OrderState::Open;
    let action = format!("/orders/{}/items", path_segment(&o.doc.oid));
    let body = html! {
        @if let Some(n) = note { p .note #note { (n) } }
        p { "State: " strong #state { (o.doc.state.name()) } }
        table #lines {
            thead { tr { th { "Product" } th .n { "Unit price" } th .n { "Quantity" } th .n { "Subtotal" } } }
            tbody {
                @for (pid, l) in &o.doc.lines {
                    tr id={ "line-" (pid) } {
                        td { (pid) }
                        td .n { (money(l.unit_price_cents)) }
                        td .n {
                            @if open {
                                form method="post" action=(action) {
                                    input type="hidden" name="pid" value=(pid);
                                    input type="number" name="quantity" min="0" value=(l.quantity) aria-label="quantity";
                                    " " button type="submit" { "Set" }
                                }
                            } @else { (l.quantity) }
                        }
                        td .n { (money(l.quantity.saturating_mul(l.unit_price_cents))) }
                    }
                }
            }
            tfoot { tr { th colspan="3" { "Total" } th .n #total { (money(o.doc.total_cents())) } } }
        }
        @if open {
            h2 { "Add a product" }
            form #add method="post" action=(action) {
                select #add-pid name="pid" aria-label="product" {
                    @for p in &products {
                        option value=(p.doc.pid) {
                            (p.doc.pid) " — " (p.doc.description) " — " (money(p.doc.price_cents)) " (" (p.doc.quantity) " in stock)"
                        }
                    }
                }
                " " input #add-quantity type="number" name="quantity" min="0" value="1" aria-label="quantity";
                " " button #add-button type="submit" { "Set in order" }
            }
            form method="post" action={ "/orders/" (path_segment(&o.doc.oid)) "/cancel" } {
                p { button #cancel type="submit" { "Cancel this order" } " (every unit goes back to stock)" }
            }
        }
        p { a href="/orders" { "All your orders" } }
    };
    let title = format!("Order {}", o.doc.oid);
    (status, Html(page(&title, Some(c), error, body).into_string())).into_response()
}

#[derive(Deserialize)]
pub struct SetItem {
    pid: String,
    quantity: String,
}

pub async fn set_item(
    State(s): State<AppState>,
    headers: HeaderMap,
    oid: Result<Ids<String>, ApiError>,
    form: Result<Form<SetItem>, axum::extract::rejection::FormRejection>,
) -> Response {
    let c = customer_or_sign_in!(s, headers);
    let Ok(Ids(oid)) = oid else { return not_found_page(Some(&c.doc)) };
    let (pid, quantity) = match form {
        Ok(Form(f)) => match f.quantity.trim().parse::<i64>() {
            Ok(q) => (f.pid, q),
            Err(_) => {
                return order_refused(
                    &s,
                    &c.doc,
                    &oid,
                    ApiError::BadRequest(format!("quantity {:?} is not a whole number", f.quantity)),
                )
                .await
            }
        },
        Err(e) => return order_refused(&s, &c.doc, &oid, ApiError::BadRequest(e.body_text())).await,
    };
    match s.orders.set_line(&c.doc.cid, &oid, &pid, quantity).await {
        Ok(o) => Redirect::to(&format!("/orders/{}", path_segment(&o.doc.oid))).into_response(),
        Err(e) => order_refused(&s, &c.doc, &oid, e.into()).await,
    }
}

pub async fn cancel(State(s): State<AppState>, headers: HeaderMap, oid: Result<Ids<String>, ApiError>) -> Response {
    let c = customer_or_sign_in!(s, headers);
    let Ok(Ids(oid)) = oid else { return not_found_page(Some(&c.doc)) };
    match s.orders.cancel(&c.doc.cid, &oid).await {
        Ok(o) => {
            let note = format!("Order {} is cancelled; its units are back in stock.", o.doc.oid);
            order_page(&s, &c.doc, &o, StatusCode::OK, None, Some(&note)).await
        }
        Err(e) => order_refused(&s, &c.doc, &oid, e.into()).await,
    }
}

/// The order page again with `e`'s message, or the error alone if the
/// order cannot be shown.
async fn order_refused(s: &AppState, c: &Customer, oid: &str, e: ApiError) -> Response {
    let (status, _, message) = e.parts();
    match s.orders.get(&c.cid, oid).await {
        Ok(o) => order_page(s, c, &o, status, Some(&message), None).await,
        Err(_) => refused("Order", Some(c), &e, html! { p { a href="/orders" { "Your orders" } } }),
    }
}

pub async fn not_found(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let who = signed_in(&s, &headers).await.ok().flatten();
    not_found_page(who.as_ref().map(|c| &c.doc))
}

fn not_found_page(who: Option<&Customer>) -> Response {
    let body = html! { p { a href="/" { "Back to the shop" } } };
    (StatusCode::NOT_FOUND, Html(page("Not found", who, Some("There is no such page."), body).into_string()))
        .into_response()
}

fn path_segment(id: &str) -> String {
    utf8_percent_encode(id, NON_ALPHANUMERIC).to_string()
}
