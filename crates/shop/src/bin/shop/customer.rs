//! `shop customer …`: a customer's view of the shop, through a customer
//! portal's JSON API over HTTP (docs/shop.md §7): the catalogue, and the
//! customer's own orders.
//!
//! Every request carries `Authorization: Bearer <CID>`. Errors are values
//! (`CustomerError`) that know their exit code, as the admin commands'
//! do: 1 for bad input and refusals (4xx), 2 when there was no answer (the
//! portal cannot be reached, did not answer in time, or answered 502/503/
//! 504: it cannot reach the database).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::customer_output::{self, Answer, OrderOut, ProductOut, SummaryOut};

pub const EXAMPLES: &str = "\
Examples:
  export SHOP_CUSTOMER_URL=http://127.0.0.1:8080 SHOP_CID=ada
  shop customer products
  shop customer products --after mug --limit 20
  shop customer product mug --json
  shop customer order new                            prints the new order's OID
  shop customer order set 3f2a9c0d1e2b4a56 mug 2     two mugs in that order
  shop customer order set 3f2a9c0d1e2b4a56 mug 0     the mugs go back to stock
  shop customer order show 3f2a9c0d1e2b4a56
  shop customer order list
  shop customer order cancel 3f2a9c0d1e2b4a56
  shop customer --url http://127.0.0.1:8081 --cid grace order list --json

Exit codes: 0 on success, 1 for bad input or a refusal (unknown customer,
order or product, stock short, a cancelled order), 2 when the portal cannot
be reached, did not answer in time, or cannot reach the database (503).";

/// Where, and for whom.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct CustomerArgs {
    /// The customer portal's base URL (not the global --portal, which names
    /// admin portals).
    #[arg(long, alias = "portal-url", env = "SHOP_CUSTOMER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The customer to act as (sent as Authorization: Bearer CID).
    #[arg(long, env = "SHOP_CID")]
    pub cid: String,
    #[command(subcommand)]
    pub cmd: CustomerCmd,
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum CustomerCmd {
    /// List the catalogue in order of PID, a page at a time.
    #[command(after_help = "Examples:\n  shop customer products\n  shop customer products --after mug --limit 20")]
    Products {
        /// Start after this PID (the last one of the previous page).
        #[arg(long, value_name = "PID", default_value = "", hide_default_value = true)]
        after: String,
        /// Products per page, 1-1000 (default: the portal's, 100).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show product PID.
    #[command(after_help = "Example:\n  shop customer product mug")]
    Product {
        /// The product's id.
        pid: String,
    },
    /// Open, change, show, list and cancel your orders.
    #[command(subcommand)]
    Order(OrderCmd),
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum OrderCmd {
    /// Open a new, empty order and show it (with its OID).
    #[command(after_help = "Example:\n  shop customer order new --json")]
    New,
    /// Set the quantity of product PID in order OID (0 removes the line);
    /// the difference is taken from stock or given back.
    #[command(after_help = "Examples:\n  shop customer order set 3f2a9c0d1e2b4a56 mug 2\n  \
                            shop customer order set 3f2a9c0d1e2b4a56 mug 0")]
    Set {
        /// The order's id.
        oid: String,
        /// The product's id.
        pid: String,
        /// Units wanted in all, 0 or more.
        #[arg(allow_negative_numbers = true, value_parser = parse_quantity)]
        quantity: i64,
    },
    /// Show order OID: its lines and total.
    #[command(after_help = "Example:\n  shop customer order show 3f2a9c0d1e2b4a56")]
    Show {
        /// The order's id.
        oid: String,
    },
    /// List your open orders, newest first, with their totals.
    #[command(after_help = "Example:\n  shop customer order list")]
    List,
    /// Cancel order OID: every line's units go back to stock.
    #[command(after_help = "Example:\n  shop customer order cancel 3f2a9c0d1e2b4a56")]
    Cancel {
        /// The order's id.
        oid: String,
    },
}

/// A whole number (the portal checks the range, so that its message is
/// the one shown for a negative quantity too).
fn parse_quantity(text: &str) -> Result<i64, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not a whole number of units"))
}

/// Why a command has no answer to show.
#[derive(Debug)]
pub enum CustomerError {
    /// A base URL that is not one.
    Url { url: String, reason: String },
    /// No connection to the portal.
    Unreachable { url: String, reason: String },
    /// No answer within the timeout.
    Timeout { url: String, timeout: Duration },
    /// The portal answered with an error status.
    Status { status: StatusCode, code: String, message: String },
    /// The answer is not the portal's JSON (is that a customer portal?).
    Garbled { url: String, status: StatusCode, reason: String },
}

impl CustomerError {
    /// 1 for bad input and refusals, 2 when there was no answer.
    pub fn exit_code(&self) -> u8 {
        match self {
            CustomerError::Url { .. } | CustomerError::Garbled { .. } => 1,
            CustomerError::Unreachable { .. } | CustomerError::Timeout { .. } => 2,
            CustomerError::Status { status, .. } => match status.as_u16() {
                502..=504 => 2,
                _ => 1,
            },
        }
    }
}

impl std::fmt::Display for CustomerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CustomerError::Url { url, reason } => write!(f, "bad customer portal URL {url:?}: {reason}"),
            CustomerError::Unreachable { url, reason } => {
                write!(f, "{url}: cannot reach the customer portal: {reason}")
            }
            CustomerError::Timeout { url, timeout } => {
                write!(f, "{url}: no answer from the customer portal within {}s", timeout.as_secs_f64())
            }
            CustomerError::Status { status, code, message } => {
                write!(f, "{message} ({} {code})", status.as_u16())
            }
            CustomerError::Garbled { url, status, reason } => write!(
                f,
                "{url}: answered {} but not with the customer portal's JSON (is it one?): {reason}",
                status.as_u16()
            ),
        }
    }
}

impl std::error::Error for CustomerError {}

/// Runs one command and prints its answer (stdout) or its error (stderr,
/// one line); returns the exit code.
pub async fn run(args: &CustomerArgs, timeout: Duration, json: bool) -> ExitCode {
    match execute(args, timeout).await {
        Ok((answer, raw)) => {
            println!("{}", customer_output::render(&answer, &raw, json));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The answer, and the portal's JSON it came from.
pub async fn execute(args: &CustomerArgs, timeout: Duration) -> Result<(Answer, Value), CustomerError> {
    let portal = Portal::new(&args.url, &args.cid, timeout)?;
    match &args.cmd {
        CustomerCmd::Products { after, limit } => {
            let mut query = Vec::new();
            if !after.is_empty() {
                query.push(("after", after.clone()));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            let raw = portal.call(Method::GET, &["products"], &query, None).await?;
            let items: Vec<ProductOut> = portal.parse(&raw["products"])?;
            let next = raw["next"].as_str().map(str::to_owned);
            let limit = limit.map_or(100, |l| l as usize);
            Ok((Answer::Products { items, next, limit }, raw))
        }
        CustomerCmd::Product { pid } => {
            let raw = portal.call(Method::GET, &["products", pid], &[], None).await?;
            Ok((Answer::Product(portal.parse(&raw)?), raw))
        }
        CustomerCmd::Order(cmd) => {
            let (answer, raw) = match cmd {
                OrderCmd::New => {
                    let raw = portal.call(Method::POST, &["orders"], &[], None).await?;
                    (Answer::Order(portal.parse(&raw)?), raw)
                }
                OrderCmd::Set { oid, pid, quantity } => {
                    let body = json!({ "quantity": quantity });
                    let raw = portal.call(Method::PUT, &["orders", oid, "items", pid], &[], Some(body)).await?;
                    (Answer::Order(portal.parse(&raw)?), raw)
                }
                OrderCmd::Show { oid } => {
                    let raw = portal.call(Method::GET, &["orders", oid], &[], None).await?;
                    (Answer::Order(portal.parse(&raw)?), raw)
                }
                OrderCmd::List => {
                    let raw = portal.call(Method::GET, &["orders"], &[], None).await?;
                    let list: Vec<SummaryOut> = portal.parse(&raw["orders"])?;
                    (Answer::Orders(list), raw)
                }
                OrderCmd::Cancel { oid } => {
                    let raw = portal.call(Method::DELETE, &["orders", oid], &[], None).await?;
                    let order: OrderOut = portal.parse(&raw)?;
                    (Answer::Cancelled(order), raw)
                }
            };
            Ok((answer, raw))
        }
    }
}

/// One customer portal, for one customer.
pub struct Portal {
    http: reqwest::Client,
    base: String,
    cid: String,
    timeout: Duration,
}

impl Portal {
    pub fn new(url: &str, cid: &str, timeout: Duration) -> Result<Portal, CustomerError> {
        let base = url.trim_end_matches('/').to_owned();
        let bad = |reason: &str| CustomerError::Url { url: url.to_owned(), reason: reason.to_owned() };
        let parsed = reqwest::Url::parse(&base).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad("only http:// is served by customer portals"));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Portal { http, base, cid: cid.to_owned(), timeout })
    }

    /// `METHOD /api/v1/<segments…>`, each segment percent-encoded; the
    /// answer's JSON on success (2xx), the portal's error otherwise.
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, CustomerError> {
        let path: String = segments.iter().map(|s| format!("/{}", utf8_percent_encode(s, NON_ALPHANUMERIC))).collect();
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.cid);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        let garbled = |reason: String| CustomerError::Garbled { url: self.base.clone(), status, reason };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if !status.is_success() && status.is_server_error() => {
                // A proxy or a dying portal: no JSON, but the status says enough.
                return Err(CustomerError::Status {
                    status,
                    code: "no_body".into(),
                    message: format!("the customer portal answered {status}"),
                });
            }
            Err(e) => return Err(garbled(e.to_string())),
        };
        if status.is_success() {
            return Ok(value);
        }
        let err = &value["error"];
        match (err["code"].as_str(), err["message"].as_str()) {
            (Some(code), Some(message)) => {
                Err(CustomerError::Status { status, code: code.to_owned(), message: message.to_owned() })
            }
            _ => Err(garbled(format!("an error without the error object: {value}"))),
        }
    }

    pub fn parse<T: DeserializeOwned>(&self, value: &Value) -> Result<T, CustomerError> {
        T::deserialize(value).map_err(|e| CustomerError::Garbled {
            url: self.base.clone(),
            status: StatusCode::OK,
            reason: e.to_string(),
        })
    }

    fn transport(&self, e: reqwest::Error) -> CustomerError {
        if e.is_timeout() {
            return CustomerError::Timeout { url: self.base.clone(), timeout: self.timeout };
        }
        CustomerError::Unreachable { url: self.base.clone(), reason: causes(&e) }
    }
}

/// An error and its causes, innermost last, without repeats.
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, name: &str, message: &str) -> CustomerError {
        CustomerError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            code: name.into(),
            message: message.into(),
        }
    }

    #[test]
    fn errors_read_as_one_line_and_have_their_exit_codes() {
        let short = status(409, "insufficient_stock", "product mug: 6 more unit(s) wanted, 2 in stock");
        assert_eq!(short.to_string(), "product mug: 6 more unit(s) wanted, 2 in stock (409 insufficient_stock)");
        assert_eq!(short.exit_code(), 1);
        for (code, exit) in [(400, 1), (401, 1), (404, 1), (413, 1), (500, 1), (502, 2), (503, 2), (504, 2)] {
            assert_eq!(status(code, "x", "y").exit_code(), exit, "{code}");
        }
        let url = || "http://127.0.0.1:1".to_owned();
        assert_eq!(CustomerError::Unreachable { url: url(), reason: "refused".into() }.exit_code(), 2);
        assert_eq!(CustomerError::Timeout { url: url(), timeout: Duration::from_secs(5) }.exit_code(), 2);
        assert_eq!(CustomerError::Url { url: url(), reason: "bad".into() }.exit_code(), 1);
    }

    #[test]
    fn only_http_urls() {
        assert!(Portal::new("http://127.0.0.1:8080/", "ada", Duration::from_secs(1)).is_ok());
        for bad in ["127.0.0.1:8080", "https://shop.example", "not a url"] {
            assert!(Portal::new(bad, "ada", Duration::from_secs(1)).is_err(), "{bad}");
        }
    }
}
