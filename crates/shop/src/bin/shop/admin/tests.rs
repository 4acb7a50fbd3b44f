//! The admin commands' unit tests, against an in-memory portal (a mock of
//! the one RPC service, for this piece alone; the real portal is tested
//! end to end in crates/shop/tests and tests/python).
use super::*;
use clap::{CommandFactory, Parser};

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Line {
    #[command(subcommand)]
    cmd: AdminCmd,
}

fn parse(line: &str) -> Result<AdminCmd, clap::Error> {
    Line::try_parse_from(shlex::split(line).unwrap()).map(|l| l.cmd)
}

fn error(line: &str) -> String {
    parse(line).unwrap_err().to_string()
}

#[test]
fn the_command_line_is_consistent() {
    Line::command().debug_assert();
}

#[test]
fn commands_parse() {
    assert_eq!(
        parse("product create p1 --description 'Blue mug' --quantity 10 --price 4.50").unwrap(),
        AdminCmd::Product(ProductCmd::Create {
            pid: "p1".into(),
            description: "Blue mug".into(),
            quantity: 10,
            price: 4.5
        })
    );
    assert_eq!(
        parse("customer update c1 --email a@b.c --version 3").unwrap(),
        AdminCmd::Customer(CustomerCmd::Update {
            cid: "c1".into(),
            name: None,
            email: Some("a@b.c".into()),
            version: Some(3)
        })
    );
    assert_eq!(
        parse("product list --after p9 --limit 5").unwrap(),
        AdminCmd::Product(ProductCmd::List(ListArgs { after: "p9".into(), limit: Some(5), all: false }))
    );
    assert_eq!(
        parse("customer list --all").unwrap(),
        AdminCmd::Customer(CustomerCmd::List(ListArgs { after: String::new(), limit: None, all: true }))
    );
    for ok in ["customer get c1", "customer delete c1", "product get p1", "product delete p1"] {
        assert!(parse(ok).is_ok(), "{ok}");
    }
    // Negative numbers reach the portal, which says what the range is.
    assert!(matches!(
        parse("product update p1 --quantity -1 --price -2").unwrap(),
        AdminCmd::Product(ProductCmd::Update { quantity: Some(-1), price: Some(p), .. }) if p == -2.0
    ));
}

#[test]
fn bad_input_is_a_clear_usage_error() {
    assert!(error("product create p1 --description d --quantity 1 --price abc").contains("\"abc\" is not a price"));
    assert!(error("product create p1 --description d --quantity 1 --price NaN").contains("not a price"));
    assert!(error("product create p1 --description d --quantity 1.5 --price 1").contains("not a whole number"));
    assert!(error("product update p1 --quantity lots").contains("not a whole number"));
    assert!(error("customer update c1 --name A --version 0").contains("not a version"));
    assert!(error("customer update c1 --name A --version two").contains("not a version"));
    assert!(error("customer update c1").contains("--name"), "an update must change something");
    assert!(error("product update p1 --version 2").contains("--quantity"));
    assert!(error("customer create c1 --name A").contains("--email"));
    assert!(error("product list --all --limit 5").contains("cannot be used with"));
    assert!(error("product list --limit -1").contains("not a number of items"));
    assert!(error("product list --limit ten").contains("not a number of items"));
}

#[test]
fn the_help_teaches() {
    let mut cmd = Line::command();
    let customer = cmd.find_subcommand_mut("customer").unwrap().render_long_help().to_string();
    for example in ["customer create c1", "customer update c1 --email", "--version 2", "customer list --after"] {
        assert!(customer.contains(example), "customer help lacks {example:?}:\n{customer}");
    }
    let product = cmd.find_subcommand_mut("product").unwrap().render_long_help().to_string();
    for example in ["product create p1 --description", "--price 4.50", "product update p1 --quantity 12", "--all"] {
        assert!(product.contains(example), "product help lacks {example:?}:\n{product}");
    }
    let update = cmd
        .find_subcommand_mut("product")
        .and_then(|p| p.find_subcommand_mut("update"))
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(update.contains("kept") && update.contains("--version"), "{update}");
}

#[test]
fn addresses() {
    let t = Duration::from_secs(1);
    assert_eq!(endpoint("127.0.0.1:7100", t).unwrap().uri().to_string(), "http://127.0.0.1:7100/");
    assert_eq!(endpoint("http://localhost:7100", t).unwrap().uri().port_u16(), Some(7100));
    for bad in ["", "127.0.0.1", "https://a:1", "a b:1"] {
        let e = endpoint(bad, t).unwrap_err();
        assert_eq!(e.exit_code(), 1, "{bad}");
        assert!(e.to_string().starts_with("bad portal address"), "{e}");
    }
    assert!(Portal::connect(&[], t).is_err());
}

fn rpc(status: Status) -> AdminError {
    AdminError::Rpc { portal: "127.0.0.1:7100".into(), what: "product p9".into(), status }
}

#[test]
fn exit_codes_and_messages() {
    let e = rpc(Status::not_found("no product p9"));
    assert_eq!((e.exit_code(), e.to_string()), (1, "product p9: not found (NOT_FOUND): no product p9".into()));
    for refused in [
        Status::invalid_argument("price has 3 decimals"),
        Status::already_exists("p9"),
        Status::aborted("version is 3"),
        Status::failed_precondition("open orders"),
    ] {
        assert_eq!(rpc(refused).exit_code(), 1);
    }
    let e = rpc(Status::unavailable("ringkv: no leader"));
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        "product p9: the admin portal cannot reach the database (UNAVAILABLE): ringkv: no leader"
    );
    assert_eq!(rpc(Status::deadline_exceeded("")).exit_code(), 2);
    assert_eq!(rpc(Status::new(Code::Aborted, "")).to_string(), "product p9: version conflict (ABORTED)");
    let timeout = AdminError::Timeout { portal: "a:1".into(), timeout: Duration::from_millis(1500) };
    assert_eq!(
        (timeout.exit_code(), timeout.to_string()),
        (2, "a:1: no answer from the admin portal within 1.5s".into())
    );
    let contended = AdminError::Contended { what: "product p9".into(), attempts: 5, status: Status::aborted("v7") };
    assert_eq!(contended.exit_code(), 1);
    assert!(contended.to_string().contains("5 times") && contended.to_string().contains("ABORTED: v7"));
}

#[test]
fn causes_are_said_once() {
    let parts = ["tcp connect error", "transport error", "tcp connect error", "Connection refused (os error 111)"];
    let parts: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    assert_eq!(join_once(&parts), "tcp connect error: Connection refused (os error 111)");
    let parts: Vec<String> = ["a: b", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(join_once(&parts), "a: b: c");
}

/// A closed port: nothing listens there once the listener is dropped.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn an_unreachable_portal_is_exit_code_2() {
    let addr = closed_port();
    let portal = Portal::connect(std::slice::from_ref(&addr), Duration::from_secs(2)).unwrap();
    let e = portal.execute(&parse("product get p1").unwrap()).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let text = e.to_string();
    assert!(text.starts_with(&format!("{addr}: cannot reach the admin portal: ")), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn a_silent_portal_is_a_timeout() {
    // Connections are accepted (by the kernel) but never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let timeout = Duration::from_millis(300);
    for addrs in [vec![addr.clone()], vec![addr.clone(), closed_port()]] {
        let portal = Portal::connect(&addrs, timeout).unwrap();
        let started = std::time::Instant::now();
        let e = portal.execute(&parse("customer list").unwrap()).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(started.elapsed() < Duration::from_secs(3), "the timeout bounds the wait");
        if addrs.len() == 1 {
            assert_eq!(e.to_string(), format!("{addr}: no answer from the admin portal within 0.3s"));
        }
    }
}

/// A portal with the products' contract in memory (versions, ABORTED,
/// paging), to test the update and list logic of this side. `meddle`
/// updates make someone else's change first, so they are ABORTED.
mod portal {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use shop::pb::admin_portal_server::{AdminPortal, AdminPortalServer};
    use shop::pb::*;
    use tonic::{Request, Response, Status};

    #[derive(Default)]
    pub struct State {
        pub products: BTreeMap<String, Product>,
        pub meddle: u32,
        pub gets: u32,
        pub updates: Vec<Product>,
    }

    #[derive(Clone, Default)]
    pub struct Memory(pub Arc<Mutex<State>>);

    type Answer<T> = Result<Response<T>, Status>;

    fn unimplemented<T>() -> Answer<T> {
        Err(Status::unimplemented("not in this test portal"))
    }

    #[tonic::async_trait]
    impl AdminPortal for Memory {
        async fn create_customer(&self, _: Request<Customer>) -> Answer<Customer> {
            unimplemented()
        }
        async fn update_customer(&self, _: Request<Customer>) -> Answer<Customer> {
            unimplemented()
        }
        async fn get_customer(&self, _: Request<CustomerId>) -> Answer<Customer> {
            unimplemented()
        }
        async fn delete_customer(&self, _: Request<CustomerId>) -> Answer<Customer> {
            unimplemented()
        }
        async fn list_customers(&self, _: Request<ListRequest>) -> Answer<CustomerList> {
            unimplemented()
        }
        async fn create_product(&self, _: Request<Product>) -> Answer<Product> {
            unimplemented()
        }
        async fn delete_product(&self, _: Request<ProductId>) -> Answer<Product> {
            unimplemented()
        }

        async fn get_product(&self, r: Request<ProductId>) -> Answer<Product> {
            let mut s = self.0.lock().unwrap();
            s.gets += 1;
            let pid = r.into_inner().pid;
            s.products.get(&pid).cloned().map(Response::new).ok_or_else(|| Status::not_found(format!("no {pid}")))
        }

        async fn update_product(&self, r: Request<Product>) -> Answer<Product> {
            let mut s = self.0.lock().unwrap();
            let new = r.into_inner();
            s.updates.push(new.clone());
            let meddle = s.meddle > 0;
            s.meddle = s.meddle.saturating_sub(1);
            let Some(old) = s.products.get_mut(&new.pid) else {
                return Err(Status::not_found(format!("no {}", new.pid)));
            };
            if meddle {
                old.version += 1;
            }
            if new.version != 0 && new.version != old.version {
                return Err(Status::aborted(format!("at version {}", old.version)));
            }
            *old = Product { version: old.version + 1, ..new };
            Ok(Response::new(old.clone()))
        }

        async fn list_products(&self, r: Request<ListRequest>) -> Answer<ProductList> {
            let r = r.into_inner();
            let limit = if r.limit == 0 { 100 } else { r.limit as usize };
            let s = self.0.lock().unwrap();
            let products = s.products.values().filter(|p| p.pid > r.after).take(limit).cloned().collect();
            Ok(Response::new(ProductList { products }))
        }
    }

    /// Serves `memory` on a free loopback port; returns the address.
    pub async fn serve(memory: Memory) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let router = tonic::transport::Server::builder().add_service(AdminPortalServer::new(memory));
        tokio::spawn(router.serve_with_incoming(incoming));
        addr
    }
}

async fn portal_with(products: impl IntoIterator<Item = Product>) -> (Portal, portal::Memory) {
    let memory = portal::Memory::default();
    memory.0.lock().unwrap().products = products.into_iter().map(|p| (p.pid.clone(), p)).collect();
    let addr = portal::serve(memory.clone()).await;
    (Portal::connect(&[addr], Duration::from_secs(5)).unwrap(), memory)
}

fn mug(version: i64) -> Product {
    Product { pid: "p1".into(), description: "Blue mug".into(), quantity: 10, price: 4.5, version }
}

async fn product(portal: &Portal, line: &str) -> Result<Product, AdminError> {
    match portal.execute(&parse(line).unwrap()).await? {
        Output::Product(p) => Ok(p),
        other => panic!("{line}: {other:?}"),
    }
}

#[tokio::test]
async fn a_partial_update_keeps_the_other_fields() {
    let (portal, memory) = portal_with([mug(3)]).await;
    let p = product(&portal, "product update p1 --quantity 12").await.unwrap();
    assert_eq!(p, Product { quantity: 12, version: 4, ..mug(0) });
    let s = memory.0.lock().unwrap();
    assert_eq!(s.updates, [Product { quantity: 12, ..mug(3) }], "sent at the version read");
}

#[tokio::test]
async fn a_partial_update_retries_a_lost_race_then_gives_up() {
    let (portal, memory) = portal_with([mug(1)]).await;
    memory.0.lock().unwrap().meddle = 2;
    let p = product(&portal, "product update p1 --price 3.99").await.unwrap();
    assert_eq!((p.price, p.description.as_str(), p.version), (3.99, "Blue mug", 4));
    assert_eq!(memory.0.lock().unwrap().updates.len(), 3);

    memory.0.lock().unwrap().meddle = 100;
    let e = product(&portal, "product update p1 --price 1").await.unwrap_err();
    assert!(matches!(e, AdminError::Contended { attempts: UPDATE_ATTEMPTS, .. }), "{e}");
    assert_eq!(e.exit_code(), 1);
    assert_eq!(memory.0.lock().unwrap().updates.len(), 3 + UPDATE_ATTEMPTS as usize);
}

#[tokio::test]
async fn an_explicit_version_is_sent_once() {
    let (portal, memory) = portal_with([mug(2)]).await;
    let e = product(&portal, "product update p1 --quantity 1 --version 1").await.unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().starts_with("product p1: version conflict (ABORTED): at version 2"), "{e}");
    assert_eq!(memory.0.lock().unwrap().updates.len(), 1, "no retry");
    let p = product(&portal, "product update p1 --quantity 1 --version 2").await.unwrap();
    assert_eq!((p.quantity, p.version), (1, 3));
    assert_eq!(memory.0.lock().unwrap().updates[1].version, 2);
}

#[tokio::test]
async fn a_complete_update_needs_no_read() {
    let (portal, memory) = portal_with([mug(5)]).await;
    let p = product(&portal, "product update p1 --description Cup --quantity 2 --price 1.25").await.unwrap();
    assert_eq!(p, Product { pid: "p1".into(), description: "Cup".into(), quantity: 2, price: 1.25, version: 6 });
    let s = memory.0.lock().unwrap();
    assert_eq!((s.gets, s.updates[0].version), (0, 0), "no read, any version");
}

#[tokio::test]
async fn not_found_is_exit_code_1() {
    let (portal, _) = portal_with([]).await;
    let e = product(&portal, "product get p9").await.unwrap_err();
    assert_eq!((e.exit_code(), e.to_string()), (1, "product p9: not found (NOT_FOUND): no p9".into()));
    let e = product(&portal, "product update p9 --quantity 1").await.unwrap_err();
    assert_eq!(e.exit_code(), 1);
}

#[tokio::test]
async fn lists_page_by_page() {
    let items = (0..2500).map(|i| Product { pid: format!("p{i:05}"), ..mug(1) });
    let (portal, _) = portal_with(items).await;
    let list = |line: &str| {
        let cmd = parse(line).unwrap();
        let portal = portal.clone();
        async move {
            match portal.execute(&cmd).await.unwrap() {
                Output::Products { items, next } => (items.into_iter().map(|p| p.pid).collect::<Vec<_>>(), next),
                other => panic!("{other:?}"),
            }
        }
    };
    let (all, next) = list("product list --all").await;
    assert_eq!((all.len(), all[0].as_str(), all[2499].as_str(), next), (2500, "p00000", "p02499", None));
    let (rest, _) = list("product list --all --after p01999").await;
    assert_eq!((rest.len(), rest[0].as_str()), (500, "p02000"));
    let (page, next) = list("product list --after p00009 --limit 2").await;
    assert_eq!((page, next), (vec!["p00010".to_string(), "p00011".into()], Some("p00011".into())));
    let (page, next) = list("product list").await;
    assert_eq!((page.len(), next), (100, Some("p00099".into())));
    let (page, next) = list("product list --after p02498").await;
    assert_eq!((page, next), (vec!["p02499".to_string()], None));
}
