//! The portals under faults: the broker killed and restarted mid-run (the
//! instances flush, serve correct data from the database, reconnect and
//! cache again), and a ringkv replica killed (the portal keeps serving).

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{fresh, product, Spec};
use shop::pb::{self, ProductId};

async fn get(admin: &mut common::Admin, pid: &str) -> pb::Product {
    admin.get_product(ProductId { pid: pid.into() }).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_loss_flushes_and_caching_resumes_after_it_returns() {
    let Some(mut shop) = common::start(Spec::new(1, 2)).await else { return };
    let (mut a, mut b) = (shop.portal(0), shop.portal(1));
    a.create_product(product("p1", "Blue mug", 10, 4.5)).await.unwrap();
    assert_eq!(get(&mut b, "p1").await.version, 1, "cached on b");

    shop.broker().kill9();
    for p in &shop.portals {
        common::wait_logged(p, "connection lost", 1).await;
    }
    // a's invalidation cannot be delivered now; b must not serve its old copy.
    for quantity in 11..16 {
        let written = a.update_product(product("p1", "Blue mug", quantity, 4.5)).await.unwrap().into_inner();
        let seen = get(&mut b, "p1").await;
        assert_eq!((seen.version, seen.quantity), (written.version, quantity), "b served a stale copy");
    }

    shop.broker().restart().unwrap();
    for p in &shop.portals {
        common::wait_logged(p, "caching on", 2).await;
    }
    // Caching resumed, and invalidations flow again: b's cached copy is
    // replaced after a's write.
    assert_eq!(get(&mut b, "p1").await.quantity, 15);
    let written = a.update_product(product("p1", "Blue mug", 20, 4.5)).await.unwrap().into_inner();
    ringkv_testkit::wait::until("b to serve a's write", Duration::from_secs(2), || {
        let mut b = b.clone();
        async move { get(&mut b, "p1").await.version == written.version }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_the_portal_keeps_serving() {
    let Some(mut shop) = common::start(Spec::new(3, 1)).await else { return };
    let mut admin = shop.portal(0);
    admin.create_product(product("p1", "Blue mug", 0, 4.5)).await.unwrap();
    let leader = shop.ring.wait_leader(0, Duration::from_secs(10)).await.unwrap();
    // Writes and uncached reads go on while the leader dies.
    let progress = Arc::new(AtomicI64::new(0));
    let writer = {
        let (mut admin, progress) = (admin.clone(), progress.clone());
        tokio::spawn(async move {
            let mut last = 0;
            for q in 1..=40 {
                let cur = admin.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
                assert_eq!(cur.quantity, last, "an acknowledged write was lost");
                let next = pb::Product { quantity: q, ..cur };
                admin.update_product(next).await.unwrap();
                last = q;
                progress.store(q, Ordering::Release);
            }
            last
        })
    };
    ringkv_testkit::wait::until("10 writes before the kill", Duration::from_secs(20), || {
        let progress = progress.clone();
        async move { progress.load(Ordering::Acquire) >= 10 }
    })
    .await
    .unwrap();
    shop.ring.kill9(0, leader);
    let last = writer.await.unwrap();
    assert_eq!(get(&mut admin, "p1").await.quantity, last);
    let p = admin.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
    assert_eq!(p.quantity, 40);
}
