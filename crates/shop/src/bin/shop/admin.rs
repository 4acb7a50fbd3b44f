//! `shop admin …`: customers and products through an admin portal, defined
//! once and used both as one-shot commands (`shop admin product get p1`) and
//! as shell lines (`product get p1`, see `shell.rs`), so the two cannot drift
//! apart.
//!
//! The wire's Update replaces every field, so a partial update (`update p1
//! --quantity 12`) reads the item, fills in the fields not given and sends
//! the update at the version it read; if someone else changed the item in
//! between (ABORTED) it reads again, a few times, then gives up. With
//! `--version V` the update is sent at exactly V, once: the user asked for
//! that version and no other.
//!
//! Errors are values (`AdminError`) that know their exit code: 1 for bad
//! input and refused operations, 2 when there was no answer (the portal
//! cannot be reached, is too slow, or cannot reach the database).

use std::error::Error as _;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use shop::pb::admin_portal_client::AdminPortalClient;
use shop::pb::{Customer, CustomerId, ListRequest, Product, ProductId};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::output::{self, Output};

/// How many times a partial update reads and writes again after losing a
/// race for the item (ABORTED) before it gives up.
pub const UPDATE_ATTEMPTS: u32 = 5;

/// Items per page of `list --all` (the most the portal gives at once).
pub const ALL_PAGE: u32 = 1000;

/// Items per page when the request says 0 (admin.proto's ListRequest).
const DEFAULT_PAGE: u32 = 100;

const CUSTOMER_EXAMPLES: &str = "\
Examples:
  shop admin customer create c1 --name 'Ada Lovelace' --email ada@example.org
  shop admin customer get c1
  shop admin customer update c1 --email ada@lovelace.org       the name is kept
  shop admin customer update c1 --name Ada --version 2         only if still at version 2
  shop admin customer delete c1
  shop admin customer list --limit 20
  shop admin customer list --after c20 --limit 20              the next page
  shop admin customer list --all --json

A CID is 1-128 bytes of text; a name 1-200 bytes; an email local@domain.";

const PRODUCT_EXAMPLES: &str = "\
Examples:
  shop admin product create p1 --description 'Blue mug' --quantity 10 --price 4.50
  shop admin product get p1 --json
  shop admin product update p1 --quantity 12                   the rest is kept
  shop admin product update p1 --price 3.99 --version 4        only if still at version 4
  shop admin product delete p1
  shop admin product list --after p1 --limit 50
  shop admin product list --all

A PID is 1-128 bytes of text; a description at most 4096 bytes; a quantity
0 to 1e12 units; a price 0 to 1e10 with at most two decimals (4.50).";

/// One admin command, as typed by the user.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum AdminCmd {
    /// Create, read, change, delete and list customers.
    #[command(subcommand, after_help = CUSTOMER_EXAMPLES)]
    Customer(CustomerCmd),
    /// Create, read, change, delete and list products.
    #[command(subcommand, after_help = PRODUCT_EXAMPLES)]
    Product(ProductCmd),
}

/// The customer commands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum CustomerCmd {
    /// Create customer CID (at version 1); refused if it exists.
    #[command(after_help = "Example:\n  shop admin customer create c1 --name 'Ada Lovelace' --email ada@example.org")]
    Create {
        /// The customer's id.
        cid: String,
        /// Full name, 1-200 bytes.
        #[arg(long)]
        name: String,
        /// Email address, local@domain.
        #[arg(long)]
        email: String,
    },
    /// Show customer CID.
    #[command(after_help = "Example:\n  shop admin customer get c1 --json")]
    Get {
        /// The customer's id.
        cid: String,
    },
    /// Change the name and/or email of customer CID; the fields not given are kept.
    #[command(
        group(ArgGroup::new("fields").args(["name", "email"]).required(true).multiple(true)),
        after_help = "Examples:\n  shop admin customer update c1 --email ada@lovelace.org\n  \
                      shop admin customer update c1 --name Ada --version 2"
    )]
    Update {
        /// The customer's id.
        cid: String,
        /// New full name.
        #[arg(long)]
        name: Option<String>,
        /// New email address.
        #[arg(long)]
        email: Option<String>,
        /// Change it only if it is at this version (default: the version just
        /// read, with a few retries if someone else changes it meanwhile).
        #[arg(long, value_parser = parse_version)]
        version: Option<i64>,
    },
    /// Delete customer CID and show what was removed.
    #[command(after_help = "Example:\n  shop admin customer delete c1")]
    Delete {
        /// The customer's id.
        cid: String,
    },
    /// List customers in order of CID.
    #[command(after_help = "Examples:\n  shop admin customer list --limit 20\n  \
                            shop admin customer list --after c20 --limit 20\n  shop admin customer list --all")]
    List(ListArgs),
}

/// The product commands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum ProductCmd {
    /// Create product PID (at version 1); refused if it exists.
    #[command(
        after_help = "Example:\n  shop admin product create p1 --description 'Blue mug' --quantity 10 --price 4.50"
    )]
    Create {
        /// The product's id.
        pid: String,
        /// What it is, at most 4096 bytes.
        #[arg(long)]
        description: String,
        /// Units in stock, 0 to 1e12.
        #[arg(long, value_parser = parse_quantity, allow_negative_numbers = true)]
        quantity: i64,
        /// Unit price, at most two decimals: 4.50.
        #[arg(long, value_parser = parse_price, allow_negative_numbers = true)]
        price: f64,
    },
    /// Show product PID.
    #[command(after_help = "Example:\n  shop admin product get p1 --json")]
    Get {
        /// The product's id.
        pid: String,
    },
    /// Change the description, quantity and/or price of product PID; the fields not given are kept.
    #[command(
        group(ArgGroup::new("fields").args(["description", "quantity", "price"]).required(true).multiple(true)),
        after_help = "Examples:\n  shop admin product update p1 --quantity 12\n  \
                      shop admin product update p1 --price 3.99 --version 4"
    )]
    Update {
        /// The product's id.
        pid: String,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New number of units in stock.
        #[arg(long, value_parser = parse_quantity, allow_negative_numbers = true)]
        quantity: Option<i64>,
        /// New unit price.
        #[arg(long, value_parser = parse_price, allow_negative_numbers = true)]
        price: Option<f64>,
        /// Change it only if it is at this version (default: the version just
        /// read, with a few retries if someone else changes it meanwhile).
        #[arg(long, value_parser = parse_version)]
        version: Option<i64>,
    },
    /// Delete product PID and show what was removed.
    #[command(after_help = "Example:\n  shop admin product delete p1")]
    Delete {
        /// The product's id.
        pid: String,
    },
    /// List products in order of PID.
    #[command(after_help = "Examples:\n  shop admin product list --limit 50\n  \
                            shop admin product list --after p50 --limit 50\n  shop admin product list --all --json")]
    List(ListArgs),
}

/// Runs one command against the portal(s) and prints its answer (stdout)
/// or its error (stderr, one line); returns the exit code.
pub async fn run(cmd: &AdminCmd, portal: &[String], timeout: Duration, json: bool) -> ExitCode {
    let answer = match Portal::connect(portal, timeout) {
        Ok(portal) => portal.execute(cmd).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(out) => {
            println!("{}", output::render(&out, json));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Which page of a list.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ListArgs {
    /// Start after this id (the last one of the previous page).
    #[arg(long, value_name = "ID", default_value = "", hide_default_value = true)]
    pub after: String,
    /// Items per page, 1-1000 (default: the portal's, 100).
    #[arg(long, value_name = "N", conflicts_with = "all", value_parser = parse_limit, allow_negative_numbers = true)]
    pub limit: Option<u32>,
    /// Every item (after --after), fetched page by page.
    #[arg(long)]
    pub all: bool,
}

/// A quantity: a whole number (the portal checks the range).
fn parse_quantity(text: &str) -> Result<i64, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not a whole number of units"))
}

/// A page size: a whole number (the portal checks the range).
fn parse_limit(text: &str) -> Result<u32, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not a number of items (1-1000)"))
}

/// A price: a finite decimal number such as 4.50 (the portal checks the
/// range and the number of decimals).
fn parse_price(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(p) if p.is_finite() => Ok(p),
        _ => Err(format!("{text:?} is not a price (a decimal number such as 4.50)")),
    }
}

/// A version: versions start at 1 (0 on the wire means "any version", which
/// is what leaving out --version already does, safely).
fn parse_version(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("{text:?} is not a version (a whole number from 1; leave --version out for the current one)")),
    }
}

/// Why a command has no answer to show.
#[derive(Debug)]
pub enum AdminError {
    /// A portal address that is not one.
    Address { addr: String, reason: String },
    /// The portal answered, or the transport failed, with this status.
    /// `what` names the item ("product p1", "customers").
    Rpc { portal: String, what: String, status: Status },
    /// No answer within the timeout.
    Timeout { portal: String, timeout: Duration },
    /// A partial update lost the race for the item every time.
    Contended { what: String, attempts: u32, status: Status },
}

/// What became of a request, for the exit code and the message.
#[derive(Debug, PartialEq)]
enum Kind {
    /// The user's input or a refusal by the portal: exit code 1.
    Refused,
    /// The portal could not be reached or did not answer: exit code 2.
    Unreachable,
    /// The portal answered that it cannot get an answer (the database): 2.
    Unavailable,
}

impl AdminError {
    /// The process exit code: 1 for bad input and refused operations, 2 when
    /// there was no answer.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Address { .. } | AdminError::Contended { .. } => 1,
            AdminError::Timeout { .. } => 2,
            AdminError::Rpc { status, .. } => match kind(status) {
                Kind::Refused => 1,
                Kind::Unreachable | Kind::Unavailable => 2,
            },
        }
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Address { addr, reason } => write!(f, "bad portal address {addr:?}: {reason}"),
            AdminError::Timeout { portal, timeout } => {
                write!(f, "{portal}: no answer from the admin portal within {}s", timeout.as_secs_f64())
            }
            AdminError::Contended { what, attempts, status } => write!(
                f,
                "{what}: changed by someone else {attempts} times while being updated; nothing was changed, try again \
                 ({}: {})",
                code_name(status.code()),
                status.message()
            ),
            AdminError::Rpc { portal, what, status } => match kind(status) {
                Kind::Unreachable => write!(f, "{portal}: cannot reach the admin portal: {}", transport_causes(status)),
                _ => write!(f, "{what}: {}", status_line(status)),
            },
        }
    }
}

impl std::error::Error for AdminError {}

/// How a status reads: what it means, its code's name and the portal's
/// message, e.g. `not found (NOT_FOUND): no product p9`.
fn status_line(status: &Status) -> String {
    let meaning = match status.code() {
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::InvalidArgument => "refused as invalid",
        Code::Aborted => "version conflict",
        Code::FailedPrecondition => "refused",
        Code::Unavailable => "the admin portal cannot reach the database",
        Code::DeadlineExceeded => "the admin portal got no answer from the database in time",
        Code::Unimplemented => "not served there (is it an admin portal?)",
        _ => "failed",
    };
    let code = code_name(status.code());
    match status.message() {
        "" => format!("{meaning} ({code})"),
        message => format!("{meaning} ({code}): {message}"),
    }
}

fn kind(status: &Status) -> Kind {
    // A status with a source was made on this side, from a transport error.
    if status.source().is_some() {
        return Kind::Unreachable;
    }
    match status.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::Aborted
        | Code::FailedPrecondition
        | Code::OutOfRange => Kind::Refused,
        _ => Kind::Unavailable,
    }
}

/// Whether a status is this side's timeout (tonic reports it as CANCELLED).
fn timed_out(status: &Status) -> bool {
    let mut cause = status.source();
    while let Some(c) = cause {
        if c.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The message of a transport failure and its causes, each said once
/// (layers often repeat their cause in their own message).
fn transport_causes(status: &Status) -> String {
    let mut parts = vec![status.message().to_string()];
    let mut cause = status.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    join_once(&parts)
}

/// Joins messages with ": ", leaving out each that an earlier or later one
/// already says, and tonic's uninformative "transport error".
fn join_once(parts: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let part = part.trim();
        let said_later = parts[i + 1..].iter().any(|p| p.contains(part));
        if part.is_empty() || part == "transport error" || said_later || kept.iter().any(|k| k.contains(part)) {
            continue;
        }
        kept.push(part);
    }
    if kept.is_empty() {
        return "transport error".into();
    }
    kept.join(": ")
}

/// The name gRPC gives a code, as in the proto's comments.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One portal address as an endpoint: "host:port" or "http://host:port".
fn endpoint(addr: &str, timeout: Duration) -> Result<Endpoint, AdminError> {
    let bad = |reason: String| AdminError::Address { addr: addr.to_string(), reason };
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(bad("empty (give HOST:PORT)".into()));
    }
    let uri = match addr.split_once("://") {
        Some(("http", _)) => addr.to_string(),
        Some((scheme, _)) => {
            return Err(bad(format!("{scheme}:// is not supported (give HOST:PORT or http://HOST:PORT)")))
        }
        None => format!("http://{addr}"),
    };
    let ep = Endpoint::from_shared(uri).map_err(|e| bad(e.to_string()))?;
    if ep.uri().port_u16().is_none() {
        return Err(bad("no port (give HOST:PORT)".into()));
    }
    Ok(ep.connect_timeout(timeout).timeout(timeout).tcp_nodelay(true))
}

/// A connection to one admin portal, or to several with the requests
/// spread over them (every portal serves the same data).
#[derive(Debug, Clone)]
pub struct Portal {
    client: AdminPortalClient<Channel>,
    /// The addresses as given, for messages.
    shown: String,
    timeout: Duration,
}

impl Portal {
    /// Prepares the connection; nothing is sent until the first command, so
    /// only a malformed address fails here.
    pub fn connect(addrs: &[String], timeout: Duration) -> Result<Portal, AdminError> {
        let endpoints = addrs.iter().map(|a| endpoint(a, timeout)).collect::<Result<Vec<_>, _>>()?;
        let channel = match endpoints.as_slice() {
            [] => return Err(AdminError::Address { addr: String::new(), reason: "no portal given".into() }),
            [one] => one.connect_lazy(),
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        Ok(Portal { client: AdminPortalClient::new(channel), shown: addrs.join(","), timeout })
    }

    /// The addresses, as given.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Carries out one command and returns what to show.
    pub async fn execute(&self, cmd: &AdminCmd) -> Result<Output, AdminError> {
        match cmd {
            AdminCmd::Customer(c) => self.customer(c).await,
            AdminCmd::Product(p) => self.product(p).await,
        }
    }

    async fn customer(&self, cmd: &CustomerCmd) -> Result<Output, AdminError> {
        let mut c = self.client.clone();
        let what = |cid: &str| format!("customer {cid}");
        Ok(match cmd {
            CustomerCmd::Create { cid, name, email } => {
                let new = Customer { cid: cid.clone(), name: name.clone(), email: email.clone(), version: 0 };
                Output::Customer(self.call(&what(cid), c.create_customer(new)).await?)
            }
            CustomerCmd::Get { cid } => Output::Customer(self.get_customer(cid).await?),
            CustomerCmd::Delete { cid } => Output::DeletedCustomer(
                self.call(&what(cid), c.delete_customer(CustomerId { cid: cid.clone() })).await?,
            ),
            CustomerCmd::Update { cid, name, email, version } => {
                let fill = |mut item: Customer| {
                    item.name = name.clone().unwrap_or(item.name);
                    item.email = email.clone().unwrap_or(item.email);
                    item
                };
                let complete = (name.is_some() && email.is_some())
                    .then(|| fill(Customer { cid: cid.clone(), ..Customer::default() }));
                let read = || async { self.get_customer(cid).await.map(fill) };
                let send = |item| {
                    let mut c = c.clone();
                    async move { c.update_customer(item).await }
                };
                Output::Customer(self.update(&what(cid), *version, complete, read, send).await?)
            }
            CustomerCmd::List(args) => {
                let (items, next) = self
                    .list("customers", args, |after, limit| {
                        let mut c = c.clone();
                        async move {
                            let page = c.list_customers(ListRequest { after, limit }).await?.into_inner();
                            Ok(page.customers.into_iter().map(|x| (x.cid.clone(), x)).collect())
                        }
                    })
                    .await?;
                Output::Customers { items, next }
            }
        })
    }

    async fn product(&self, cmd: &ProductCmd) -> Result<Output, AdminError> {
        let mut c = self.client.clone();
        let what = |pid: &str| format!("product {pid}");
        Ok(match cmd {
            ProductCmd::Create { pid, description, quantity, price } => {
                let new = Product {
                    pid: pid.clone(),
                    description: description.clone(),
                    quantity: *quantity,
                    price: *price,
                    version: 0,
                };
                Output::Product(self.call(&what(pid), c.create_product(new)).await?)
            }
            ProductCmd::Get { pid } => Output::Product(self.get_product(pid).await?),
            ProductCmd::Delete { pid } => {
                Output::DeletedProduct(self.call(&what(pid), c.delete_product(ProductId { pid: pid.clone() })).await?)
            }
            ProductCmd::Update { pid, description, quantity, price, version } => {
                let fill = |mut item: Product| {
                    item.description = description.clone().unwrap_or(item.description);
                    item.quantity = quantity.unwrap_or(item.quantity);
                    item.price = price.unwrap_or(item.price);
                    item
                };
                let complete = (description.is_some() && quantity.is_some() && price.is_some())
                    .then(|| fill(Product { pid: pid.clone(), ..Product::default() }));
                let read = || async { self.get_product(pid).await.map(fill) };
                let send = |item| {
                    let mut c = c.clone();
                    async move { c.update_product(item).await }
                };
                Output::Product(self.update(&what(pid), *version, complete, read, send).await?)
            }
            ProductCmd::List(args) => {
                let (items, next) = self
                    .list("products", args, |after, limit| {
                        let mut c = c.clone();
                        async move {
                            let page = c.list_products(ListRequest { after, limit }).await?.into_inner();
                            Ok(page.products.into_iter().map(|x| (x.pid.clone(), x)).collect())
                        }
                    })
                    .await?;
                Output::Products { items, next }
            }
        })
    }

    async fn get_customer(&self, cid: &str) -> Result<Customer, AdminError> {
        let mut c = self.client.clone();
        self.call(&format!("customer {cid}"), c.get_customer(CustomerId { cid: cid.to_string() })).await
    }

    async fn get_product(&self, pid: &str) -> Result<Product, AdminError> {
        let mut c = self.client.clone();
        self.call(&format!("product {pid}"), c.get_product(ProductId { pid: pid.to_string() })).await
    }

    /// One update, for customers and products alike. `complete` is the
    /// item when every field is given (nothing to read); `read` reads the
    /// item and fills in the fields given; `send` sends an Update.
    ///
    /// With `version`, the item is sent at that version, once. Without one,
    /// a complete item is sent once at version 0 ("any version"), and a
    /// partial change at the version read, read again and retried on
    /// ABORTED (someone else changed it in between).
    async fn update<T, R, RF, S, SF>(
        &self,
        what: &str,
        version: Option<i64>,
        complete: Option<T>,
        read: R,
        send: S,
    ) -> Result<T, AdminError>
    where
        T: Versioned,
        R: Fn() -> RF,
        RF: Future<Output = Result<T, AdminError>>,
        S: Fn(T) -> SF,
        SF: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        if complete.is_some() || version.is_some() {
            let mut item = match complete {
                Some(item) => item,
                None => read().await?,
            };
            item.set_version(version.unwrap_or(0));
            return self.call(what, send(item)).await;
        }
        let mut attempt = 1;
        loop {
            let item = read().await?;
            match self.call(what, send(item)).await {
                Err(AdminError::Rpc { status, .. }) if status.code() == Code::Aborted && attempt < UPDATE_ATTEMPTS => {
                    attempt += 1;
                }
                Err(AdminError::Rpc { status, .. }) if status.code() == Code::Aborted => {
                    return Err(AdminError::Contended { what: what.to_string(), attempts: attempt, status });
                }
                other => return other,
            }
        }
    }

    /// One page, or with `--all` every page, of a list. `page(after, limit)`
    /// fetches a page as (id, item) pairs. The second value is the id to
    /// continue after when the page came back full (there may be more).
    async fn list<T, P, PF>(&self, what: &str, args: &ListArgs, page: P) -> Result<(Vec<T>, Option<String>), AdminError>
    where
        P: Fn(String, u32) -> PF,
        PF: Future<Output = Result<Vec<(String, T)>, Status>>,
    {
        if !args.all {
            let limit = args.limit.unwrap_or(0);
            let items = self.call_raw(what, page(args.after.clone(), limit)).await?;
            let full = items.len() as u32 == if limit == 0 { DEFAULT_PAGE } else { limit };
            let next = if full { items.last().map(|(id, _)| id.clone()) } else { None };
            return Ok((items.into_iter().map(|(_, x)| x).collect(), next));
        }
        let (mut all, mut after) = (Vec::new(), args.after.clone());
        loop {
            let items = self.call_raw(what, page(after.clone(), ALL_PAGE)).await?;
            let done = (items.len() as u32) < ALL_PAGE;
            if let Some((id, _)) = items.last() {
                after = id.clone();
            }
            all.extend(items.into_iter().map(|(_, x)| x));
            if done {
                return Ok((all, None));
            }
        }
    }

    /// Awaits one RPC, within the timeout, and names its failure.
    async fn call<T>(
        &self,
        what: &str,
        rpc: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, AdminError> {
        self.call_raw(what, async { rpc.await.map(tonic::Response::into_inner) }).await
    }

    async fn call_raw<T>(&self, what: &str, rpc: impl Future<Output = Result<T, Status>>) -> Result<T, AdminError> {
        // The endpoint has the same timeout; this one also bounds the wait
        // for a ready portal among several (none of which may answer).
        let timeout = || AdminError::Timeout { portal: self.shown.clone(), timeout: self.timeout };
        match tokio::time::timeout(self.timeout, rpc).await {
            Err(_) => Err(timeout()),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(status)) if timed_out(&status) => Err(timeout()),
            Ok(Err(status)) => Err(AdminError::Rpc { portal: self.shown.clone(), what: what.to_string(), status }),
        }
    }
}

/// A customer or a product: an item with a version.
trait Versioned {
    fn set_version(&mut self, version: i64);
}

impl Versioned for Customer {
    fn set_version(&mut self, version: i64) {
        self.version = version;
    }
}

impl Versioned for Product {
    fn set_version(&mut self, version: i64) {
        self.version = version;
    }
}

#[cfg(test)]
mod tests;
