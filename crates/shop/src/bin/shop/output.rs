//! How the admin commands' answers are shown: readable by default, JSON
//! with `--json`.
//!
//! The readable form is for people: one item as a header line and an
//! indented line of fields, a list as an aligned table, long text cut (in
//! the display only, saying so). The JSON form is for programs and is never
//! cut: one object per line for an item, one array on one line for a list,
//! with the fields named as in proto/shop/v1/admin.proto.

use serde::Serialize;
use shop::pb::{Customer, Product};

/// Longest text, in bytes, shown in full for one item.
const SHOW_BYTES: usize = 200;

/// Longest text, in characters, shown in a table cell.
const CELL_CHARS: usize = 40;

/// What a command answered, ready to be shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A customer as created, read or updated.
    Customer(Customer),
    /// A product as created, read or updated.
    Product(Product),
    /// The customer a delete removed.
    DeletedCustomer(Customer),
    /// The product a delete removed.
    DeletedProduct(Product),
    /// A page of customers (or all of them); `next` is the id to continue
    /// after when the page came back full.
    Customers { items: Vec<Customer>, next: Option<String> },
    /// A page of products, as for customers.
    Products { items: Vec<Product>, next: Option<String> },
}

/// The readable or the JSON form.
pub fn render(out: &Output, json: bool) -> String {
    if json {
        self::json(out)
    } else {
        readable(out)
    }
}

/// Renders an answer for people.
pub fn readable(out: &Output) -> String {
    match out {
        Output::Customer(c) => customer(c),
        Output::Product(p) => product(p),
        Output::DeletedCustomer(c) => format!("deleted {}", customer(c)),
        Output::DeletedProduct(p) => format!("deleted {}", product(p)),
        Output::Customers { items, next } => {
            let rows = items
                .iter()
                .map(|c| vec![show_id(&c.cid), c.version.to_string(), show_cell(&c.name), show_id(&c.email)]);
            with_next(
                table(&["CID", "VERSION", "NAME", "EMAIL"], &[false, true, false, false], rows, "customers"),
                next,
            )
        }
        Output::Products { items, next } => {
            let rows = items.iter().map(|p| {
                vec![
                    show_id(&p.pid),
                    p.version.to_string(),
                    p.quantity.to_string(),
                    show_price(p.price),
                    show_cell(&p.description),
                ]
            });
            let head = ["PID", "VERSION", "QUANTITY", "PRICE", "DESCRIPTION"];
            with_next(table(&head, &[false, true, true, true, false], rows, "products"), next)
        }
    }
}

fn customer(c: &Customer) -> String {
    format!(
        "customer {}  version {}\n  name {}  email {}",
        show_id(&c.cid),
        c.version,
        show_text(&c.name),
        show_id(&c.email)
    )
}

fn product(p: &Product) -> String {
    format!(
        "product {}  version {}\n  description {}  quantity {}  price {}",
        show_id(&p.pid),
        p.version,
        show_text(&p.description),
        p.quantity,
        show_price(p.price)
    )
}

/// A price as money: two decimals.
fn show_price(price: f64) -> String {
    format!("{price:.2}")
}

/// An id (or an email) as is when it is one plain word, quoted otherwise
/// (spaces, quotes, control characters, or empty).
pub(crate) fn show_id(id: &str) -> String {
    let plain = !id.is_empty() && id.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\'');
    if plain {
        id.to_string()
    } else {
        format!("{id:?}")
    }
}

/// Free text in quotes, cut after `SHOW_BYTES` bytes (saying so).
pub(crate) fn show_text(text: &str) -> String {
    if text.len() <= SHOW_BYTES {
        return format!("{text:?}");
    }
    let mut end = SHOW_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes in all)", &text[..end], text.len())
}

/// Free text in quotes for a table cell, cut after `CELL_CHARS` characters.
pub(crate) fn show_cell(text: &str) -> String {
    match text.char_indices().nth(CELL_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…", &text[..end]),
    }
}

/// An aligned table with a header row; `right` says which columns are
/// right-aligned (numbers). The last column is not padded.
pub(crate) fn table(head: &[&str], right: &[bool], rows: impl Iterator<Item = Vec<String>>, plural: &str) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    if rows.is_empty() {
        return format!("(no {plural})");
    }
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let padded: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, cell)| match (right[i], i == last) {
                (true, _) => format!("{cell:>w$}", w = widths[i]),
                (false, true) => cell,
                (false, false) => format!("{cell:<w$}", w = widths[i]),
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut lines = vec![line(head.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.into_iter().map(line));
    lines.join("\n")
}

/// A table followed by how to get the next page, if there may be one.
pub(crate) fn with_next(table: String, next: &Option<String>) -> String {
    match next {
        None => table,
        Some(id) => {
            let quoted = shlex::try_quote(id).map(|q| q.into_owned()).unwrap_or_else(|_| format!("{id:?}"));
            format!("{table}\n(more after this page: --after {quoted})")
        }
    }
}

/// A customer's JSON object, fields in the proto's order.
#[derive(Serialize)]
struct CustomerJson<'a> {
    cid: &'a str,
    name: &'a str,
    email: &'a str,
    version: i64,
}

/// A product's JSON object, fields in the proto's order.
#[derive(Serialize)]
struct ProductJson<'a> {
    pid: &'a str,
    description: &'a str,
    quantity: i64,
    price: f64,
    version: i64,
}

fn customer_json(c: &Customer) -> CustomerJson<'_> {
    CustomerJson { cid: &c.cid, name: &c.name, email: &c.email, version: c.version }
}

fn product_json(p: &Product) -> ProductJson<'_> {
    ProductJson { pid: &p.pid, description: &p.description, quantity: p.quantity, price: p.price, version: p.version }
}

/// Renders an answer as JSON on one line: an object for one item (a
/// deleted one too), an array for a list.
pub fn json(out: &Output) -> String {
    let value = match out {
        Output::Customer(c) | Output::DeletedCustomer(c) => serde_json::to_string(&customer_json(c)),
        Output::Product(p) | Output::DeletedProduct(p) => serde_json::to_string(&product_json(p)),
        Output::Customers { items, .. } => serde_json::to_string(&items.iter().map(customer_json).collect::<Vec<_>>()),
        Output::Products { items, .. } => serde_json::to_string(&items.iter().map(product_json).collect::<Vec<_>>()),
    };
    // Strings and numbers always serialize; a non-finite price becomes null.
    value.unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ada() -> Customer {
        Customer { cid: "c1".into(), name: "Ada".into(), email: "ada@example.org".into(), version: 2 }
    }

    fn mug() -> Product {
        Product { pid: "p1".into(), description: "Blue mug".into(), quantity: 10, price: 4.5, version: 1 }
    }

    fn parsed(text: &str) -> serde_json::Value {
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn one_item_readable() {
        assert_eq!(readable(&Output::Customer(ada())), "customer c1  version 2\n  name \"Ada\"  email ada@example.org");
        assert_eq!(
            readable(&Output::Product(mug())),
            "product p1  version 1\n  description \"Blue mug\"  quantity 10  price 4.50"
        );
        assert_eq!(
            readable(&Output::DeletedProduct(mug())),
            "deleted product p1  version 1\n  description \"Blue mug\"  quantity 10  price 4.50"
        );
        assert!(readable(&Output::DeletedCustomer(ada())).starts_with("deleted customer c1  version 2\n"));
        let odd = Customer { cid: "c 1".into(), name: "A \"B\"".into(), ..ada() };
        assert_eq!(
            readable(&Output::Customer(odd)),
            "customer \"c 1\"  version 2\n  name \"A \\\"B\\\"\"  email ada@example.org"
        );
    }

    #[test]
    fn long_text_is_cut_in_the_readable_form_only() {
        let long = Product { description: "é".repeat(150), ..mug() };
        let shown = readable(&Output::Product(long.clone()));
        assert!(shown.contains(&format!("\"{}\"… (300 bytes in all)", "é".repeat(100))), "{shown}");
        let v = parsed(&json(&Output::Product(long)));
        assert_eq!(v["description"].as_str().map(|s| s.chars().count()), Some(150));
    }

    #[test]
    fn lists_readable() {
        let grace =
            Customer { cid: "c10".into(), name: "Grace Hopper".into(), email: "grace@navy.mil".into(), version: 13 };
        let out = Output::Customers { items: vec![ada(), grace], next: None };
        assert_eq!(
            readable(&out),
            "CID  VERSION  NAME            EMAIL\n\
             c1         2  \"Ada\"           ada@example.org\n\
             c10       13  \"Grace Hopper\"  grace@navy.mil"
        );
        let cheap = Product { pid: "p2".into(), price: 0.5, quantity: 1234, ..mug() };
        let out = Output::Products { items: vec![mug(), cheap], next: Some("p2".into()) };
        assert_eq!(
            readable(&out),
            "PID  VERSION  QUANTITY  PRICE  DESCRIPTION\n\
             p1         1        10   4.50  \"Blue mug\"\n\
             p2         1      1234   0.50  \"Blue mug\"\n\
             (more after this page: --after p2)"
        );
        assert_eq!(readable(&Output::Customers { items: vec![], next: None }), "(no customers)");
        assert_eq!(readable(&Output::Products { items: vec![], next: None }), "(no products)");
        let out = Output::Products { items: vec![mug()], next: Some("p 9".into()) };
        assert!(readable(&out).ends_with("--after 'p 9')"), "{}", readable(&out));
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            json(&Output::Customer(ada())),
            r#"{"cid":"c1","name":"Ada","email":"ada@example.org","version":2}"#
        );
        assert_eq!(
            json(&Output::Product(mug())),
            r#"{"pid":"p1","description":"Blue mug","quantity":10,"price":4.5,"version":1}"#
        );
        assert_eq!(json(&Output::DeletedCustomer(ada())), json(&Output::Customer(ada())));
        assert_eq!(json(&Output::DeletedProduct(mug())), json(&Output::Product(mug())));
        let list = parsed(&json(&Output::Products { items: vec![mug(), mug()], next: Some("p1".into()) }));
        assert_eq!(
            list,
            json!([
                {"pid": "p1", "description": "Blue mug", "quantity": 10, "price": 4.5, "version": 1},
                {"pid": "p1", "description": "Blue mug", "quantity": 10, "price": 4.5, "version": 1},
            ])
        );
        assert_eq!(parsed(&json(&Output::Customers { items: vec![ada()], next: None }))[0]["email"], "ada@example.org");
        assert_eq!(json(&Output::Customers { items: vec![], next: None }), "[]");
        assert_eq!(render(&Output::Customer(ada()), true), json(&Output::Customer(ada())));
        assert_eq!(render(&Output::Customer(ada()), false), readable(&Output::Customer(ada())));
    }
}
