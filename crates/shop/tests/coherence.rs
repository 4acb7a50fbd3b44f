//! Several portal instances on one database: a change made through one is
//! seen through the others within a bounded time (measured), an entry
//! cached everywhere is replaced after an update or delete elsewhere, and
//! concurrent editors through different instances lose no update.

mod common;

use std::time::{Duration, Instant};

use common::{fresh, product, Admin, Spec};
use shop::pb::{self, ProductId};
use tonic::Code;

/// How long an instance may serve the old version after a write elsewhere
/// was acknowledged: invalidations take milliseconds; this is the bound
/// the test enforces, far below the caches' TTL.
const BOUND: Duration = Duration::from_secs(2);

async fn get(admin: &mut Admin, pid: &str) -> Result<pb::Product, tonic::Status> {
    admin.get_product(ProductId { pid: pid.into() }).await.map(|r| r.into_inner())
}

/// How long until `admin` serves `pid` at `version` (or, with `None`,
/// answers NOT_FOUND); panics past `BOUND`.
async fn time_until_seen(admin: &mut Admin, pid: &str, version: Option<i64>) -> Duration {
    let start = Instant::now();
    loop {
        let seen = match get(admin, pid).await {
            Ok(p) => Some(p.version) == version,
            Err(s) if s.code() == Code::NotFound => version.is_none(),
            Err(s) => panic!("{s:?}"),
        };
        if seen {
            return start.elapsed();
        }
        assert!(start.elapsed() < BOUND, "{pid} still not at {version:?} after {BOUND:?}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_is_seen_through_the_other() {
    let Some(shop) = common::start(Spec::new(1, 2)).await else { return };
    let (mut a, mut b) = (shop.portal(0), shop.portal(1));
    a.create_product(product("p1", "Blue mug", 10, 4.5)).await.unwrap();
    // Cached on both.
    assert_eq!(get(&mut a, "p1").await.unwrap().version, 1);
    assert_eq!(get(&mut b, "p1").await.unwrap().version, 1);
    let mut lags = Vec::new();
    for i in 0..40 {
        let (writer, reader) = if i % 2 == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
        let updated = writer.update_product(product("p1", "Blue mug", i, 4.5)).await.unwrap().into_inner();
        lags.push(time_until_seen(reader, "p1", Some(updated.version)).await);
        // The new version stays: nothing put the old one back.
        let again = get(reader, "p1").await.unwrap();
        assert_eq!((again.version, again.quantity), (updated.version, i));
    }
    a.delete_product(ProductId { pid: "p1".into() }).await.unwrap();
    lags.push(time_until_seen(&mut b, "p1", None).await);
    lags.sort();
    eprintln!(
        "invalidation latency between two instances over {} writes: p50 {:?}, p99 {:?}, max {:?}",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_invalidations_the_ttl_bounds_staleness() {
    // The control that shows the cache is in use: an instance whose broker
    // is not the writers' serves the old version, until its TTL.
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let other_dir = shop.dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = ringkv_testkit::Mosquitto::start(&other_dir).unwrap().expect("mosquitto ran for the first one");
    let cut_off = shop.start_portal(Some(&other.url()), &["--cache-ttl".into(), "3".into()]).await;
    let (mut a, mut c) = (shop.portal(0), cut_off.client());
    a.create_product(product("p1", "Blue mug", 10, 4.5)).await.unwrap();
    assert_eq!(get(&mut c, "p1").await.unwrap().version, 1);
    let cached_at = Instant::now();
    a.update_product(product("p1", "Blue mug", 11, 4.5)).await.unwrap();
    assert_eq!(get(&mut c, "p1").await.unwrap().version, 1, "served from its cache");
    // Asked for the latest, it reads the database.
    let latest = c.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
    assert_eq!(latest.version, 2);
    // A fresh read refreshed its cache.
    assert_eq!(get(&mut c, "p1").await.unwrap().version, 2);
    a.update_product(product("p1", "Blue mug", 12, 4.5)).await.unwrap();
    let stale_for = time_until_seen_within(&mut c, "p1", 3, Duration::from_secs(10)).await;
    assert!(cached_at.elapsed() >= Duration::from_secs(3), "served fresh before any TTL expired");
    eprintln!("cut off from the writers' broker, an instance served the old version for {stale_for:?} (TTL 3 s)");
}

async fn time_until_seen_within(admin: &mut Admin, pid: &str, version: i64, within: Duration) -> Duration {
    let start = Instant::now();
    while get(admin, pid).await.unwrap().version != version {
        assert!(start.elapsed() < within, "still stale after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_editors_lose_no_update() {
    let Some(shop) = common::start(Spec::new(1, 2)).await else { return };
    let mut a = shop.portal(0);
    a.create_product(product("p1", "stock", 0, 1.0)).await.unwrap();
    const EDITORS: usize = 8;
    const EDITS: usize = 15;
    // Optimistic editors through both instances: read the latest, write
    // at that version, on ABORTED read again. Each acknowledged write adds
    // one unit, so the final quantity counts them all.
    let editors = (0..EDITORS).map(|e| {
        let mut admin = shop.portal(e % 2);
        tokio::spawn(async move {
            let (mut acked, mut aborted) = (Vec::new(), 0);
            while acked.len() < EDITS {
                let cur = admin.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
                let next = pb::Product { quantity: cur.quantity + 1, ..cur };
                match admin.update_product(next).await {
                    Ok(r) => acked.push(r.into_inner().version),
                    Err(s) if s.code() == Code::Aborted => aborted += 1,
                    Err(s) => panic!("{s:?}"),
                }
            }
            (acked, aborted)
        })
    });
    let (mut versions, mut aborted) = (Vec::new(), 0);
    for t in editors.collect::<Vec<_>>() {
        let (acked, a) = t.await.unwrap();
        versions.extend(acked);
        aborted += a;
    }
    versions.sort();
    let n = (EDITORS * EDITS) as i64;
    assert_eq!(versions, (2..2 + n).collect::<Vec<_>>(), "each acknowledged write is its own version of the chain");
    let last = a.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
    assert_eq!((last.version, last.quantity), (1 + n, n), "no increment lost or doubled");
    eprintln!(
        "{n} acknowledged optimistic writes by {EDITORS} editors through 2 instances; {aborted} ABORTED and retried"
    );

    // Blind writers (version 0) race the same way: the portal's own
    // compare-and-set loop retries for them; every acknowledged write is
    // again exactly one version.
    let blind = (0..4).map(|w| {
        let mut admin = shop.portal(w % 2);
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..EDITS {
                let next = product("p1", &format!("blind {w}/{i}"), 7, 1.0);
                acked.push(admin.update_product(next).await.unwrap().into_inner().version);
            }
            acked
        })
    });
    let mut blind_versions = Vec::new();
    for t in blind.collect::<Vec<_>>() {
        blind_versions.extend(t.await.unwrap());
    }
    blind_versions.sort();
    let m = blind_versions.len() as i64;
    assert_eq!(blind_versions, (2 + n..2 + n + m).collect::<Vec<_>>());
    let last = a.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
    assert_eq!(last.version, 1 + n + m);
    // Both instances end up serving the final version.
    for i in 0..2 {
        let mut admin = shop.portal(i);
        time_until_seen(&mut admin, "p1", Some(last.version)).await;
    }
}
