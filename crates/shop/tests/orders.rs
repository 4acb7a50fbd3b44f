//! Orders through real customer portal processes: the last units raced for
//! by many buyers, churn while portals are killed and the broker restarted,
//! and admin edits seen by customers through every instance. After each, an
//! audit straight from the database checks the stock invariant: for every
//! product, stock in hand + units in open orders = stock the admins gave,
//! and the product's `held` equals the units its open orders hold.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{customer, fresh, product, wait_customer_portal, CustomerPortal, Shop, Spec};
use rand::Rng;
use ringkv_testkit::wait;
use serde_json::{json, Value};
use shop::cache::CacheConfig;
use shop::instance::{connect, PortalConfig};
use shop::orders::{Audit, Orders};
use shop::pb::ProductId;

async fn start_storefront(shop: &Shop) -> CustomerPortal {
    shop.start_customer_portal(&[]).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// A request as customer `cid`: the status and the JSON body.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cid: &str,
    body: Option<Value>,
) -> reqwest::Result<(u16, Value)> {
    let mut req = http.request(method, url).bearer_auth(cid);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn open_order(http: &reqwest::Client, base: &str, cid: &str) -> reqwest::Result<(u16, Value)> {
    call(http, reqwest::Method::POST, &format!("{base}/api/v1/orders"), cid, None).await
}

async fn set_line(
    http: &reqwest::Client,
    base: &str,
    cid: &str,
    oid: &str,
    pid: &str,
    q: i64,
) -> reqwest::Result<(u16, Value)> {
    let url = format!("{base}/api/v1/orders/{oid}/items/{pid}");
    call(http, reqwest::Method::PUT, &url, cid, Some(json!({ "quantity": q }))).await
}

/// The orders library straight on the ring (no cache): what the audit uses.
fn orders_on(shop: &Shop) -> Orders {
    let config = PortalConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ringkv: shop.ring.addrs(),
        mqtt: None,
        cache: CacheConfig { entries: 0, ttl: Duration::from_secs(1) },
        db_timeout: Duration::from_secs(10),
        metrics_listen: None,
    };
    Orders::new(connect(&config, "audit").unwrap())
}

/// Asserts the invariant for every product in `given` (pid → stock given).
fn assert_invariant(audit: &Audit, given: &BTreeMap<String, i64>) {
    assert!(audit.orphan_lines.is_empty(), "lines of missing products: {:?}", audit.orphan_lines);
    for p in audit.products.iter().filter(|p| given.contains_key(&p.pid)) {
        let total = given[&p.pid];
        assert_eq!(p.held, p.in_orders, "{}: held {} but open orders hold {}", p.pid, p.held, p.in_orders);
        assert_eq!(
            p.quantity + p.in_orders,
            total,
            "{}: {} in stock + {} in orders ≠ {total} given",
            p.pid,
            p.quantity,
            p.in_orders
        );
    }
    assert!(audit.holds());
}

async fn create_customers(shop: &Shop, n: usize) -> Vec<String> {
    let mut admin = shop.portal(0);
    let mut cids = Vec::new();
    for i in 0..n {
        let cid = format!("buyer{i}");
        admin.create_customer(customer(&cid, &format!("Buyer {i}"), &format!("b{i}@example.org"))).await.unwrap();
        cids.push(cid);
    }
    cids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_units_are_sold_exactly_once() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let fronts = [start_storefront(&shop).await, start_storefront(&shop).await];
    shop.portal(0).create_product(product("last", "The last five", 5, 9.99)).await.unwrap();
    let cids = create_customers(&shop, 32).await;

    let http = http();
    let mut buyers = Vec::new();
    for (i, cid) in cids.iter().enumerate() {
        let (http, base, cid) = (http.clone(), fronts[i % 2].url.clone(), cid.clone());
        buyers.push(tokio::spawn(async move {
            let (status, order) = open_order(&http, &base, &cid).await.unwrap();
            assert_eq!(status, 201, "{order}");
            let oid = order["oid"].as_str().unwrap().to_owned();
            let (status, body) = set_line(&http, &base, &cid, &oid, "last", 1).await.unwrap();
            match status {
                200 => assert_eq!(body["total_cents"], 999, "{body}"),
                409 => assert_eq!(body["error"]["code"], "insufficient_stock", "{body}"),
                s => panic!("{s}: {body}"),
            }
            status
        }));
    }
    let mut statuses = Vec::new();
    for b in buyers {
        statuses.push(b.await.unwrap());
    }
    let sold = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(sold, 5, "statuses: {statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 27);

    let audit = orders_on(&shop).audit().await.unwrap();
    assert_invariant(&audit, &BTreeMap::from([("last".to_owned(), 5)]));
    let last = audit.products.iter().find(|p| p.pid == "last").unwrap();
    assert_eq!((last.quantity, last.in_orders), (0, 5));
    assert_eq!(audit.finished, 0, "every request finished its own change");
}

/// Given stock of the churn test's products: scarce enough that buyers
/// run into shortages.
const CHURN_STOCK: [(&str, i64); 3] = [("apple", 40), ("bread", 25), ("cheese", 10)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_portals_killed_and_the_broker_restarted_keeps_stock_exact() {
    let Some(mut shop) = common::start(Spec::new(1, 1)).await else { return };
    let mut fronts = [start_storefront(&shop).await, start_storefront(&shop).await];
    let mut given = BTreeMap::new();
    for (pid, stock) in CHURN_STOCK {
        shop.portal(0).create_product(product(pid, "churn", stock, 1.25)).await.unwrap();
        given.insert(pid.to_owned(), stock);
    }
    let cids = create_customers(&shop, 12).await;
    let urls: Vec<String> = fronts.iter().map(|f| f.url.clone()).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut buyers = Vec::new();
    for cid in cids {
        let (urls, stop, done, failed) = (urls.clone(), stop.clone(), done.clone(), failed.clone());
        buyers.push(tokio::spawn(async move { churn_buyer(&cid, &urls, &stop, &done, &failed).await }));
    }

    // Two kills of a customer portal mid-run, and one broker restart.
    let started = Instant::now();
    for (at, victim) in [(6, 0), (14, 1)] {
        tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
        fronts[victim].process.kill9();
        tokio::time::sleep(Duration::from_millis(500)).await;
        fronts[victim].process.restart().unwrap();
        wait_customer_portal(&fronts[victim]).await;
    }
    tokio::time::sleep_until((started + Duration::from_secs(20)).into()).await;
    shop.broker().kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    shop.broker().restart().unwrap();
    tokio::time::sleep_until((started + Duration::from_secs(30)).into()).await;
    stop.store(true, Ordering::Relaxed);
    for b in buyers {
        b.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("churn: {done} requests answered, {failed} failed (portal killed or restarting)");
    assert!(done > 200, "too little happened: {done} requests");
    assert!(fronts.iter().all(|f| f.process.restarts() == 1));

    let audit = orders_on(&shop).audit().await.unwrap();
    eprintln!("audit: {audit:?}");
    assert_invariant(&audit, &given);
    // Every order the audit read is finished now.
    let again = orders_on(&shop).audit().await.unwrap();
    assert_eq!(again.finished, 0);
}

/// One buyer's loop: open an order, set lines, change them, cancel about
/// half, against a random portal each request. A request that fails (the
/// portal died) is counted, and the buyer moves on.
async fn churn_buyer(cid: &str, urls: &[String], stop: &AtomicBool, done: &AtomicU64, failed: &AtomicU64) {
    let http = http();
    let pick = |rng: &mut rand::rngs::ThreadRng| urls[rng.random_range(0..urls.len())].clone();
    let count = |r: &reqwest::Result<(u16, Value)>| match r {
        Ok((s, body)) => {
            assert!(matches!(s, 200 | 201 | 409 | 503), "{s}: {body}");
            done.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let base = pick(&mut rand::rng());
        let r = open_order(&http, &base, cid).await;
        count(&r);
        let Ok((201, order)) = r else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let oid = order["oid"].as_str().unwrap().to_owned();
        for _ in 0..4 {
            let (pid, q) = {
                let mut rng = rand::rng();
                (CHURN_STOCK[rng.random_range(0..CHURN_STOCK.len())].0, rng.random_range(0..4))
            };
            let base = pick(&mut rand::rng());
            count(&set_line(&http, &base, cid, &oid, pid, q).await);
        }
        let base = pick(&mut rand::rng());
        count(&call(&http, reqwest::Method::GET, &format!("{base}/api/v1/orders/{oid}"), cid, None).await);
        if rand::rng().random_bool(0.5) {
            let base = pick(&mut rand::rng());
            count(&call(&http, reqwest::Method::DELETE, &format!("{base}/api/v1/orders/{oid}"), cid, None).await);
        } else {
            // Keep the customer under the open-order limit.
            let open = call(&http, reqwest::Method::GET, &format!("{base}/api/v1/orders"), cid, None).await;
            if let Ok((200, list)) = &open {
                if list["orders"].as_array().is_some_and(|o| o.len() > 5) {
                    let oldest = list["orders"].as_array().unwrap().last().unwrap()["oid"].as_str().unwrap().to_owned();
                    count(
                        &call(&http, reqwest::Method::DELETE, &format!("{base}/api/v1/orders/{oldest}"), cid, None)
                            .await,
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_change_reaches_customers_through_every_instance() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let fronts = [start_storefront(&shop).await, start_storefront(&shop).await];
    let mut admin = shop.portal(0);
    admin.create_product(product("mug", "Blue mug", 10, 4.5)).await.unwrap();
    create_customers(&shop, 1).await;
    let http = http();
    let read = |base: String| {
        let http = http.clone();
        async move {
            let (s, p) = call(&http, reqwest::Method::GET, &format!("{base}/api/v1/products/mug"), "buyer0", None)
                .await
                .unwrap();
            assert_eq!(s, 200, "{p}");
            p
        }
    };
    // Both instances cache it.
    for f in &fronts {
        assert_eq!(read(f.url.clone()).await["price_cents"], 450);
        assert_eq!(read(f.url.clone()).await["price_cents"], 450);
    }
    let cur = admin.get_product(fresh(ProductId { pid: "mug".into() })).await.unwrap().into_inner();
    let changed = shop::pb::Product { price: 3.75, description: "Blue mug, on sale".into(), ..cur };
    admin.update_product(changed).await.unwrap();
    let t0 = Instant::now();
    for f in &fronts {
        let url = f.url.clone();
        wait::until("the new price through this instance", Duration::from_secs(2), || {
            let read = read(url.clone());
            async move {
                let p = read.await;
                p["price_cents"] == 375 && p["description"] == "Blue mug, on sale"
            }
        })
        .await
        .unwrap();
    }
    eprintln!("both customer portals served the new price {:?} after the admin's write", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_cut_short_at_any_step_is_finished_by_another_instance() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let healthy = start_storefront(&shop).await;
    shop.portal(0).create_product(product("mug", "Blue mug", 10, 4.5)).await.unwrap();
    create_customers(&shop, 1).await;
    let http = http();
    let given = BTreeMap::from([("mug".to_owned(), 10)]);
    let mut expected_in_orders = 0;
    for step in ["intent", "decision", "commit"] {
        // A portal that dies after `step` of its first change: a line of 2,
        // then, in a second life, the cancel of that order.
        let mut doomed = shop.start_customer_portal_with(&[], &[("SHOP_CRASH_AFTER", step)]).await;
        let (_, order) = open_order(&http, &doomed.url, "buyer0").await.unwrap();
        let oid = order["oid"].as_str().unwrap().to_owned();
        let cut = set_line(&http, &doomed.url, "buyer0", &oid, "mug", 2).await;
        assert!(cut.is_err(), "the portal answered {cut:?} instead of dying after {step}");
        assert!(doomed.process.log().contains("dying after"), "{}", doomed.process.log());

        // Another instance reads the order: the change is finished forward.
        let url = format!("{}/api/v1/orders/{oid}", healthy.url);
        let (status, seen) = call(&http, reqwest::Method::GET, &url, "buyer0", None).await.unwrap();
        assert_eq!(status, 200, "{seen}");
        assert_eq!(seen["lines"][0]["quantity"], 2, "after a crash at {step}: {seen}");
        expected_in_orders += 2;
        let audit = orders_on(&shop).audit().await.unwrap();
        assert_invariant(&audit, &given);
        assert_eq!(audit.products[0].in_orders, expected_in_orders);

        // The cancel, cut short at the same step, is finished too.
        doomed.process.restart().unwrap();
        wait_customer_portal(&doomed).await;
        let cut =
            call(&http, reqwest::Method::DELETE, &format!("{}/api/v1/orders/{oid}", doomed.url), "buyer0", None).await;
        assert!(cut.is_err(), "the cancel answered {cut:?} instead of dying after {step}");
        let (status, seen) = call(&http, reqwest::Method::GET, &url, "buyer0", None).await.unwrap();
        assert_eq!((status, seen["state"].as_str()), (200, Some("cancelled")), "{seen}");
        expected_in_orders -= 2;
        let audit = orders_on(&shop).audit().await.unwrap();
        assert_invariant(&audit, &given);
        assert_eq!(audit.products[0].in_orders, expected_in_orders);
        doomed.process.kill9();
    }
    // The customer's list no longer shows the cancelled orders.
    let (_, list) =
        call(&http, reqwest::Method::GET, &format!("{}/api/v1/orders", healthy.url), "buyer0", None).await.unwrap();
    assert_eq!(list["orders"], json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_stock_in_hand_and_cannot_delete_what_orders_hold() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let front = start_storefront(&shop).await;
    let mut admin = shop.portal(0);
    admin.create_product(product("mug", "Blue mug", 10, 4.5)).await.unwrap();
    create_customers(&shop, 1).await;
    let http = http();
    let (_, order) = open_order(&http, &front.url, "buyer0").await.unwrap();
    let oid = order["oid"].as_str().unwrap().to_owned();
    assert_eq!(set_line(&http, &front.url, "buyer0", &oid, "mug", 4).await.unwrap().0, 200);

    // The admin sees 6 in hand and restocks to 20: the 4 held stay held.
    let cur = admin.get_product(fresh(ProductId { pid: "mug".into() })).await.unwrap().into_inner();
    assert_eq!(cur.quantity, 6);
    admin.update_product(shop::pb::Product { quantity: 20, ..cur }).await.unwrap();
    let given = BTreeMap::from([("mug".to_owned(), 24)]);
    assert_invariant(&orders_on(&shop).audit().await.unwrap(), &given);

    let refused = admin.delete_product(ProductId { pid: "mug".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("4 unit(s) in open orders"), "{}", refused.message());
    // The customer cannot be deleted either while the order is open.
    let refused = admin.delete_customer(shop::pb::CustomerId { cid: "buyer0".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");

    let url = format!("{}/api/v1/orders/{oid}", front.url);
    assert_eq!(call(&http, reqwest::Method::DELETE, &url, "buyer0", None).await.unwrap().0, 200);
    admin.delete_product(ProductId { pid: "mug".into() }).await.unwrap();
    admin.delete_customer(shop::pb::CustomerId { cid: "buyer0".into() }).await.unwrap();
}
