//! The shop's documents as they are stored (JSON, one per ringkv value),
//! and the checks every document passes before it is written.
//!
//! Money is integer cents (`price_cents`): the wire's `double price` is
//! converted once, on the way in, and refused if it is not a whole number
//! of cents, so that sums of prices never drift.

use std::collections::{BTreeMap, BTreeSet};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::keys::Kind;
use crate::ShopError;

/// Longest id, in bytes of UTF-8 (well inside ringkv's key limit).
pub const MAX_ID_BYTES: usize = 128;
/// Longest customer name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest email address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest product description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Most units of one product in stock.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// Highest price, in cents (10^10 currency units): far inside the range
/// where a double holds every cent exactly.
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;

/// A document kept in ringkv under its kind's key for its id.
pub trait Document: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Which kind of key it lives under.
    const KIND: Kind;
    /// Its id.
    fn id(&self) -> &str;
    /// Checks every field; the error says which field and why.
    fn validate(&self) -> Result<(), ShopError>;
}

/// A document at the version ringkv holds it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub version: i64,
    pub doc: T,
}

/// A buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub cid: String,
    pub name: String,
    pub email: String,
    /// Orders placed and not cancelled: the size of `orders`, kept with
    /// it; a customer is deleted only at 0, checked on the version the
    /// delete is conditional on.
    #[serde(default)]
    pub open_orders: u32,
    /// The OIDs of those orders.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub orders: BTreeSet<String>,
}

/// Something for sale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub pid: String,
    pub description: String,
    /// Units in stock, ≥ 0.
    pub quantity: i64,
    /// Price of one unit in cents, ≥ 0.
    pub price_cents: i64,
    /// Units held by open orders: the sum of their lines of this product.
    /// `quantity + held` is the stock the admins have given it, and only
    /// an admin's edit of `quantity` changes that sum (docs/shop.md §6).
    #[serde(default)]
    pub held: i64,
    /// This product's answer to each order change that touched it, by
    /// change id, kept until the order has recorded the outcome (the saga's
    /// single point of decision; see `orders`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decided: BTreeMap<String, Decided>,
    /// Chosen at random when the product is created: an order change names
    /// it, so that a product deleted and created again under the same pid
    /// is never charged for a change meant for the old one.
    #[serde(default)]
    pub generation: u64,
}

/// A product's decision on one order change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub decision: Decision,
    /// When it was decided (ms since the epoch): decisions left behind by
    /// a portal that died are swept once they are old.
    pub at_ms: i64,
}

/// Whether a change's units were taken from (or returned to) stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    Applied,
    /// Stock was short: `available` units were in stock.
    Refused {
        available: i64,
    },
}

/// Most lines in one order.
pub const MAX_LINES: usize = 100;
/// Most open orders per customer.
pub const MAX_OPEN_ORDERS: usize = 100;

/// A customer's order: its lines, and at most one change in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub oid: String,
    pub cid: String,
    pub created_ms: i64,
    pub state: OrderState,
    /// By pid.
    pub lines: BTreeMap<String, Line>,
    /// The change begun and not yet finished (the saga's intent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// Changes begun so far: the next change's id is `OID:changes`.
    #[serde(default)]
    pub changes: u64,
    /// How the last finished change ended, for the instance that began it
    /// when another instance finished it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Finished>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Open,
    Cancelled,
}

impl OrderState {
    pub fn name(self) -> &'static str {
        match self {
            OrderState::Open => "open",
            OrderState::Cancelled => "cancelled",
        }
    }
}

/// One product in an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub quantity: i64,
    /// The product's price when the line was first set (units keep the price they were ordered at).
    pub unit_price_cents: i64,
    /// The product's generation then (what a cancel returns the units to).
    #[serde(default)]
    pub generation: u64,
}

/// A change in flight: what it does to each product and to the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `OID:N`: unique, as OIDs are and N grows.
    pub id: String,
    pub started_ms: i64,
    /// Cancel the order once every step is applied.
    pub cancel: bool,
    /// One per product touched (a line change has one; a cancel, one per line).
    pub steps: Vec<Step>,
}

/// One product's part of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub pid: String,
    /// The product's generation when the change began.
    pub generation: u64,
    /// Units taken from stock (negative: returned).
    pub delta: i64,
    /// The line's quantity once applied (0: no line).
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// How a change ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub id: String,
    pub decision: Decision,
}

impl Order {
    /// The sum of the lines, in cents.
    pub fn total_cents(&self) -> i64 {
        self.lines.values().map(|l| l.quantity.saturating_mul(l.unit_price_cents)).fold(0, i64::saturating_add)
    }
}

impl Document for Customer {
    const KIND: Kind = Kind::Customer;

    fn id(&self) -> &str {
        &self.cid
    }

    fn validate(&self) -> Result<(), ShopError> {
        check_id(Kind::Customer, &self.cid)?;
        check_text("name", &self.name, 1, MAX_NAME_BYTES)?;
        check_email(&self.email)
    }
}

impl Document for Order {
    const KIND: Kind = Kind::Order;

    fn id(&self) -> &str {
        &self.oid
    }

    fn validate(&self) -> Result<(), ShopError> {
        check_id(Kind::Order, &self.oid)?;
        check_id(Kind::Customer, &self.cid)?;
        if self.lines.len() > MAX_LINES {
            return Err(ShopError::invalid(format!("an order holds at most {MAX_LINES} products")));
        }
        Ok(())
    }
}

impl Document for Product {
    const KIND: Kind = Kind::Product;

    fn id(&self) -> &str {
        &self.pid
    }

    fn validate(&self) -> Result<(), ShopError> {
        check_id(Kind::Product, &self.pid)?;
        check_text("description", &self.description, 0, MAX_DESCRIPTION_BYTES)?;
        if !(0..=MAX_QUANTITY).contains(&self.quantity) {
            return Err(ShopError::invalid(format!(
                "quantity {} is out of range: it must be 0 to {MAX_QUANTITY}",
                self.quantity
            )));
        }
        if !(0..=MAX_PRICE_CENTS).contains(&self.price_cents) {
            return Err(ShopError::invalid(format!("price of {} cents is out of range", self.price_cents)));
        }
        Ok(())
    }
}

/// An id: 1 to `MAX_ID_BYTES` bytes, no control characters (they would be
/// invisible in every listing and log).
pub fn check_id(kind: Kind, id: &str) -> Result<(), ShopError> {
    let what = kind.id_name();
    if id.is_empty() {
        return Err(ShopError::invalid(format!("{what} is empty")));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(ShopError::invalid(format!("{what} is {} bytes; the longest is {MAX_ID_BYTES}", id.len())));
    }
    if id.chars().any(char::is_control) {
        return Err(ShopError::invalid(format!("{what} {id:?} contains a control character")));
    }
    Ok(())
}

fn check_text(field: &str, text: &str, min: usize, max: usize) -> Result<(), ShopError> {
    if text.len() < min {
        return Err(ShopError::invalid(format!("{field} is empty")));
    }
    if text.len() > max {
        return Err(ShopError::invalid(format!("{field} is {} bytes; the longest is {max}", text.len())));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ShopError::invalid(format!("{field} contains a control character")));
    }
    Ok(())
}

/// An address of the form local@domain, the domain with a dot and no empty
/// label: enough to catch typing mistakes, not a full RFC 5322 parser
/// (only sending mail proves an address).
fn check_email(email: &str) -> Result<(), ShopError> {
    let bad = |why: &str| Err(ShopError::invalid(format!("email {email:?} is not valid: {why}")));
    if email.len() > MAX_EMAIL_BYTES {
        return bad(&format!("it is {} bytes; the longest is {MAX_EMAIL_BYTES}", email.len()));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains a space or a control character");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return bad("it has no @");
    };
    if local.is_empty() || local.contains('@') {
        return bad("the part before the @ is empty or has another @");
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return bad("the domain after the @ needs a dot and no empty part");
    }
    Ok(())
}

/// A price in currency units as cents: finite, ≥ 0, a whole number of
/// cents (4.5 and 4.50 are 450; 1.005 is refused, not rounded).
pub fn price_to_cents(price: f64) -> Result<i64, ShopError> {
    if !price.is_finite() {
        return Err(ShopError::invalid(format!("price {price} is not a number")));
    }
    if price < 0.0 {
        return Err(ShopError::invalid(format!("price {price} is negative")));
    }
    let cents = (price * 100.0).round();
    if cents > MAX_PRICE_CENTS as f64 {
        return Err(ShopError::invalid(format!("price {price} is above the highest, {}", MAX_PRICE_CENTS / 100)));
    }
    // A double holds a price to about 1e-16 relative: a difference above
    // that from a whole number of cents is a third decimal.
    if (price * 100.0 - cents).abs() > 1e-6 {
        return Err(ShopError::invalid(format!("price {price} has more than two decimals")));
    }
    Ok(cents as i64)
}

/// Cents as currency units, for the wire.
pub fn cents_to_price(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(cid: &str, name: &str, email: &str) -> Customer {
        Customer { cid: cid.into(), name: name.into(), email: email.into(), open_orders: 0, orders: BTreeSet::new() }
    }

    #[test]
    fn prices_are_whole_cents() {
        assert_eq!(price_to_cents(4.5).unwrap(), 450);
        assert_eq!(price_to_cents(0.1 + 0.2).unwrap(), 30);
        assert_eq!(price_to_cents(0.0).unwrap(), 0);
        assert_eq!(price_to_cents(19.99).unwrap(), 1999);
        assert_eq!(price_to_cents(1e10).unwrap(), MAX_PRICE_CENTS);
        for bad in [f64::NAN, f64::INFINITY, -0.01, 1.005, 1e10 + 1.0] {
            assert!(price_to_cents(bad).is_err(), "{bad}");
        }
        assert_eq!(cents_to_price(1999), 19.99);
    }

    #[test]
    fn customers_are_checked() {
        assert!(customer("c1", "Ada", "ada@example.org").validate().is_ok());
        assert!(customer("ü-ñ", "Zoë", "z@b.co").validate().is_ok());
        for (c, why) in [
            (customer("", "Ada", "a@b.c"), "empty"),
            (customer(&"x".repeat(129), "Ada", "a@b.c"), "129 bytes"),
            (customer("a\u{7}b", "Ada", "a@b.c"), "control"),
            (customer("c", "", "a@b.c"), "name is empty"),
            (customer("c", &"n".repeat(201), "a@b.c"), "name is 201"),
            (customer("c", "Ada", "no-at-sign"), "no @"),
            (customer("c", "Ada", "@b.c"), "before the @"),
            (customer("c", "Ada", "a@localhost"), "dot"),
            (customer("c", "Ada", "a@b..c"), "dot"),
            (customer("c", "Ada", "a b@c.d"), "space"),
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(why), "{c:?}: {e}");
        }
        assert!(customer(&"x".repeat(128), "Ada", "a@b.c").validate().is_ok());
    }

    #[test]
    fn products_are_checked() {
        let p =
            Product { pid: "p".into(), description: String::new(), quantity: 0, price_cents: 0, ..Default::default() };
        assert!(p.validate().is_ok());
        assert!(Product { quantity: -1, ..p.clone() }.validate().is_err());
        assert!(Product { quantity: MAX_QUANTITY + 1, ..p.clone() }.validate().is_err());
        assert!(Product { description: "d".repeat(4097), ..p.clone() }.validate().is_err());
        assert!(Product { description: "two\nlines".into(), ..p.clone() }.validate().is_ok());
    }

    #[test]
    fn documents_round_trip_as_json() {
        let c = customer("c1", "Ada", "a@b.c");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"cid":"c1","name":"Ada","email":"a@b.c","open_orders":0}"#);
        let back: Customer = serde_json::from_str(r#"{"cid":"c1","name":"Ada","email":"a@b.c"}"#).unwrap();
        assert_eq!(back, c, "open_orders defaults to 0");
    }
}
