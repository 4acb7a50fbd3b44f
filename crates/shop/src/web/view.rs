//! Documents as the customer portal shows them (JSON and pages alike):
//! prices in currency units and in cents, stock in hand, order totals.

use serde::Serialize;

use crate::model::{cents_to_price, Order, Product, Versioned};

#[derive(Debug, Serialize)]
pub struct ProductView {
    pub pid: String,
    pub description: String,
    /// Units in stock.
    pub quantity: i64,
    pub price: f64,
    pub price_cents: i64,
    pub version: i64,
}

impl From<Versioned<Product>> for ProductView {
    fn from(v: Versioned<Product>) -> Self {
        let p = v.doc;
        ProductView {
            pid: p.pid,
            description: p.description,
            quantity: p.quantity,
            price: cents_to_price(p.price_cents),
            price_cents: p.price_cents,
            version: v.version,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LineView {
    pub pid: String,
    pub quantity: i64,
    pub unit_price: f64,
    pub unit_price_cents: i64,
    pub subtotal: f64,
    pub subtotal_cents: i64,
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    pub oid: String,
    pub state: &'static str,
    pub created_ms: i64,
    pub lines: Vec<LineView>,
    pub total: f64,
    pub total_cents: i64,
    pub version: i64,
}

impl From<&Versioned<Order>> for OrderView {
    fn from(v: &Versioned<Order>) -> Self {
        let o = &v.doc;
        let lines = o
            .lines
            .iter()
            .map(|(pid, l)| {
                let subtotal = l.quantity.saturating_mul(l.unit_price_cents);
                LineView {
                    pid: pid.clone(),
                    quantity: l.quantity,
                    unit_price: cents_to_price(l.unit_price_cents),
                    unit_price_cents: l.unit_price_cents,
                    subtotal: cents_to_price(subtotal),
                    subtotal_cents: subtotal,
                }
            })
            .collect();
        let total = o.total_cents();
        OrderView {
            oid: o.oid.clone(),
            state: o.state.name(),
            created_ms: o.created_ms,
            lines,
            total: cents_to_price(total),
            total_cents: total,
            version: v.version,
        }
    }
}

/// An order in a listing.
#[derive(Debug, Serialize)]
pub struct OrderSummary {
    pub oid: String,
    pub state: &'static str,
    pub created_ms: i64,
    /// Products in it, and units in all.
    pub lines: usize,
    pub units: i64,
    pub total: f64,
    pub total_cents: i64,
}

impl From<&Versioned<Order>> for OrderSummary {
    fn from(v: &Versioned<Order>) -> Self {
        let o = &v.doc;
        OrderSummary {
            oid: o.oid.clone(),
            state: o.state.name(),
            created_ms: o.created_ms,
            lines: o.lines.len(),
            units: o.lines.values().map(|l| l.quantity).sum(),
            total: cents_to_price(o.total_cents()),
            total_cents: o.total_cents(),
        }
    }
}

/// Cents as text with two decimals: 1999 → "19.99".
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(1999), "19.99");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(0), "0.00");
        assert_eq!(money(-250), "-2.50");
    }
}
