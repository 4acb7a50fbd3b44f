//! How `shop customer …` shows the customer portal's answers: readable by
//! default (aligned tables, money with two decimals, the order's total),
//! and with `--json` the portal's own JSON, on one line.
//!
//! The readable form is built from the portal's JSON (docs/shop.md §7);
//! amounts are shown from the exact `*_cents` fields, never from floats.

use serde::Deserialize;
use serde_json::Value;
use shop::web::view::money;

use crate::output::{show_cell, show_id, show_text, table, with_next};

/// A product as the portal answers it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductOut {
    pub pid: String,
    #[serde(default)]
    pub description: String,
    pub quantity: i64,
    pub price_cents: i64,
    #[serde(default)]
    pub version: i64,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LineOut {
    pub pid: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub subtotal_cents: i64,
}

/// An order with its lines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderOut {
    pub oid: String,
    pub state: String,
    #[serde(default)]
    pub created_ms: i64,
    #[serde(default)]
    pub lines: Vec<LineOut>,
    pub total_cents: i64,
    #[serde(default)]
    pub version: i64,
}

/// An order in the customer's list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SummaryOut {
    pub oid: String,
    pub state: String,
    #[serde(default)]
    pub created_ms: i64,
    pub lines: usize,
    pub units: i64,
    pub total_cents: i64,
}

/// What a customer command answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A page of products; `next` is where the next page starts, shown only
    /// when the page came back full (`limit` items).
    Products {
        items: Vec<ProductOut>,
        next: Option<String>,
        limit: usize,
    },
    Product(ProductOut),
    /// An order just opened, changed or read.
    Order(OrderOut),
    /// The order as a cancel left it.
    Cancelled(OrderOut),
    Orders(Vec<SummaryOut>),
}

/// The readable form, or the portal's JSON (`raw`) on one line.
pub fn render(answer: &Answer, raw: &Value, json: bool) -> String {
    if json {
        raw.to_string()
    } else {
        readable(answer)
    }
}

/// Renders an answer for people.
pub fn readable(answer: &Answer) -> String {
    match answer {
        Answer::Products { items, next, limit } => {
            let rows = items.iter().map(|p| {
                vec![show_id(&p.pid), p.quantity.to_string(), money(p.price_cents), show_cell(&p.description)]
            });
            let t = table(&["PID", "IN STOCK", "PRICE", "DESCRIPTION"], &[false, true, true, false], rows, "products");
            // The portal names a `next` for every non-empty page; only a
            // full page may have more after it.
            let next = next.clone().filter(|_| items.len() >= *limit);
            with_next(t, &next)
        }
        Answer::Product(p) => format!(
            "product {}  version {}\n  description {}  in stock {}  price {}",
            show_id(&p.pid),
            p.version,
            show_text(&p.description),
            p.quantity,
            money(p.price_cents)
        ),
        Answer::Order(o) => order(o),
        Answer::Cancelled(o) => format!("cancelled {}", order(o)),
        Answer::Orders(list) => {
            let rows = list.iter().map(|o| {
                vec![
                    show_id(&o.oid),
                    o.state.clone(),
                    o.lines.to_string(),
                    o.units.to_string(),
                    money(o.total_cents),
                    utc(o.created_ms),
                ]
            });
            let head = ["OID", "STATE", "LINES", "UNITS", "TOTAL", "CREATED"];
            table(&head, &[false, false, true, true, true, false], rows, "open orders")
        }
    }
}

/// An order: a header line, its lines as a table, and the total.
fn order(o: &OrderOut) -> String {
    let head = format!("order {}  {}  version {}  created {}", show_id(&o.oid), o.state, o.version, utc(o.created_ms));
    let rows = o
        .lines
        .iter()
        .map(|l| vec![show_id(&l.pid), l.quantity.to_string(), money(l.unit_price_cents), money(l.subtotal_cents)]);
    let lines = table(&["PID", "QUANTITY", "UNIT PRICE", "SUBTOTAL"], &[false, true, true, true], rows, "lines");
    format!("{head}\n{}\ntotal {}", indent(&lines), money(o.total_cents))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (the
/// milliseconds themselves if out of chrono's range).
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mug() -> ProductOut {
        ProductOut { pid: "mug".into(), description: "Blue mug".into(), quantity: 2, price_cents: 450, version: 3 }
    }

    fn an_order() -> OrderOut {
        OrderOut {
            oid: "00ab".into(),
            state: "open".into(),
            created_ms: 1_764_715_501_000,
            lines: vec![
                LineOut { pid: "mug".into(), quantity: 2, unit_price_cents: 450, subtotal_cents: 900 },
                LineOut { pid: "pen".into(), quantity: 10, unit_price_cents: 125, subtotal_cents: 1250 },
            ],
            total_cents: 2150,
            version: 5,
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_715_501_999), "2025-12-02 22:45:01 UTC");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn products_table() {
        let pen =
            ProductOut { pid: "pen".into(), description: "Pen".into(), quantity: 1234, price_cents: 5, version: 1 };
        let page = Answer::Products { items: vec![mug(), pen.clone()], next: Some("pen".into()), limit: 100 };
        assert_eq!(
            readable(&page),
            "PID  IN STOCK  PRICE  DESCRIPTION\n\
             mug         2   4.50  \"Blue mug\"\n\
             pen      1234   0.05  \"Pen\""
        );
        let full = Answer::Products { items: vec![mug(), pen], next: Some("pen".into()), limit: 2 };
        assert!(readable(&full).ends_with("\n(more after this page: --after pen)"), "{}", readable(&full));
        assert_eq!(readable(&Answer::Products { items: vec![], next: None, limit: 100 }), "(no products)");
    }

    #[test]
    fn one_product() {
        assert_eq!(
            readable(&Answer::Product(mug())),
            "product mug  version 3\n  description \"Blue mug\"  in stock 2  price 4.50"
        );
    }

    #[test]
    fn an_order_with_its_total() {
        assert_eq!(
            readable(&Answer::Order(an_order())),
            "order 00ab  open  version 5  created 2025-12-02 22:45:01 UTC\n\
             \x20 PID  QUANTITY  UNIT PRICE  SUBTOTAL\n\
             \x20 mug         2        4.50      9.00\n\
             \x20 pen        10        1.25     12.50\n\
             total 21.50"
        );
        let empty = OrderOut { lines: vec![], total_cents: 0, ..an_order() };
        assert!(readable(&Answer::Order(empty)).ends_with("\n  (no lines)\ntotal 0.00"));
        let gone = OrderOut { state: "cancelled".into(), ..an_order() };
        assert!(readable(&Answer::Cancelled(gone)).starts_with("cancelled order 00ab  cancelled  version 5"));
    }

    #[test]
    fn orders_list() {
        let s = SummaryOut {
            oid: "00ab".into(),
            state: "open".into(),
            created_ms: 0,
            lines: 2,
            units: 12,
            total_cents: 2150,
        };
        assert_eq!(
            readable(&Answer::Orders(vec![s])),
            "OID   STATE  LINES  UNITS  TOTAL  CREATED\n\
             00ab  open       2     12  21.50  1970-01-01 00:00:00 UTC"
        );
        assert_eq!(readable(&Answer::Orders(vec![])), "(no open orders)");
    }

    #[test]
    fn json_is_the_portals_on_one_line() {
        let raw = json!({"oid": "00ab", "state": "open", "lines": [], "total": 0.0, "total_cents": 0});
        let order: OrderOut = serde_json::from_value(raw.clone()).unwrap();
        let shown = render(&Answer::Order(order), &raw, true);
        assert!(!shown.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&shown).unwrap(), raw);
    }
}
