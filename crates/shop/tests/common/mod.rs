//! The shop's test system: a ringkv ring, a Mosquitto broker and admin
//! portal processes, started with the test kit on free loopback ports and
//! killed when dropped.

#![allow(dead_code)]

use std::time::Duration;

use ringkv_testkit::{exe, free_port, wait, Cluster, ClusterSpec, Mosquitto, Process};
use shop::pb::admin_portal_client::AdminPortalClient;
use shop::pb::{self, ListRequest};
use tempfile::TempDir;
use tonic::transport::Channel;

pub type Admin = AdminPortalClient<Channel>;

/// How long a portal may take to answer its first request.
const PORTAL_START: Duration = Duration::from_secs(30);

pub struct Shop {
    pub ring: Cluster,
    /// `None` when the portals were started without one.
    pub broker: Option<Mosquitto>,
    pub portals: Vec<Portal>,
    pub dir: TempDir,
}

pub struct Portal {
    pub process: Process,
    pub addr: String,
}

impl Portal {
    pub fn client(&self) -> Admin {
        client(&self.addr)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

pub fn client(addr: &str) -> Admin {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a loopback address")
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    AdminPortalClient::new(channel)
}

/// What to start.
pub struct Spec {
    pub replicas: usize,
    pub portals: usize,
    /// Extra flags for every portal.
    pub portal_args: Vec<String>,
}

impl Spec {
    pub fn new(replicas: usize, portals: usize) -> Spec {
        Spec { replicas, portals, portal_args: Vec::new() }
    }

    pub fn portal_args(mut self, args: &[&str]) -> Spec {
        self.portal_args.extend(args.iter().map(|s| s.to_string()));
        self
    }
}

/// Starts the system, or `None` (said on stderr) when Mosquitto is not
/// installed outside CI.
pub async fn start(spec: Spec) -> Option<Shop> {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path()).unwrap()?;
    let ring = Cluster::start(ClusterSpec::new(exe::ringkv().unwrap(), 1, spec.replicas)).await.unwrap();
    let mut shop = Shop { ring, broker: Some(broker), portals: Vec::new(), dir };
    for _ in 0..spec.portals {
        let mqtt = shop.broker.as_ref().map(Mosquitto::url);
        let portal = shop.start_portal(mqtt.as_deref(), &spec.portal_args).await;
        shop.portals.push(portal);
    }
    Some(shop)
}

impl Shop {
    /// The command line of a portal of `kind` on `addr`, against this ring
    /// and `mqtt`.
    fn portal_argv(&self, kind: &str, addr: &str, mqtt: Option<&str>) -> Vec<String> {
        let mut argv = vec![
            env!("CARGO_BIN_EXE_shop").to_owned(),
            kind.into(),
            "--listen".into(),
            addr.into(),
            "--ringkv".into(),
            self.ring.addrs().join(","),
        ];
        if let Some(url) = mqtt {
            argv.extend(["--mqtt".into(), url.to_owned()]);
        }
        argv
    }

    /// One more portal on a free port, against this ring and `mqtt`.
    pub async fn start_portal(&self, mqtt: Option<&str>, extra: &[String]) -> Portal {
        let n = self.portals.len();
        let addr = format!("127.0.0.1:{}", free_port().unwrap());
        let mut argv = self.portal_argv("admin-portal", &addr, mqtt);
        argv.extend(extra.iter().cloned());
        let log = self.dir.path().join(format!("portal{n}.log"));
        let mut process = Process::new(format!("admin portal {n}"), argv, log).env("RUST_LOG", "info,shop=debug");
        process.start().unwrap();
        let portal = Portal { process, addr };
        wait_ready(&portal).await;
        if mqtt.is_some() {
            wait_caching(&portal).await;
        }
        portal
    }

    pub fn portal(&self, i: usize) -> Admin {
        self.portals[i].client()
    }

    pub fn broker(&mut self) -> &mut Mosquitto {
        self.broker.as_mut().expect("started with a broker")
    }
}

/// Until the portal answers a request that needs the database.
pub async fn wait_ready(portal: &Portal) {
    let c = portal.client();
    let ok = wait::until("the admin portal to answer", PORTAL_START, || {
        let mut c = c.clone();
        async move { c.list_products(ListRequest { after: String::new(), limit: 1 }).await.is_ok() }
    })
    .await;
    if let Err(e) = ok {
        panic!("{e}\n{}", portal.log());
    }
}

/// Until the portal's log says its subscription is up `times` times in all.
pub async fn wait_logged(portal: &Portal, needle: &str, times: usize) {
    let ok = wait::until(&format!("{needle:?} ×{times} in the portal's log"), Duration::from_secs(20), || async {
        portal.log().matches(needle).count() >= times
    })
    .await;
    if let Err(e) = ok {
        panic!("{e}\n{}", portal.log());
    }
}

pub async fn wait_caching(portal: &Portal) {
    wait_logged(portal, "caching on", 1).await;
}

pub fn customer(cid: &str, name: &str, email: &str) -> pb::Customer {
    pb::Customer { cid: cid.into(), name: name.into(), email: email.into(), version: 0 }
}

pub fn product(pid: &str, description: &str, quantity: i64, price: f64) -> pb::Product {
    pb::Product { pid: pid.into(), description: description.into(), quantity, price, version: 0 }
}

/// A Get that bypasses the portal's cache.
pub fn fresh<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("cache-control", "no-cache".parse().unwrap());
    req
}

/// A customer portal process (HTTP), killed when dropped.
pub struct CustomerPortal {
    pub process: Process,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Shop {
    /// A customer portal on a free port, against this ring and broker (if
    /// any); returns once it answers an API request that needs the
    /// database (an unknown customer's 401).
    pub async fn start_customer_portal(&self, extra: &[&str]) -> CustomerPortal {
        self.start_customer_portal_with(extra, &[]).await
    }

    /// The same, with extra environment variables.
    pub async fn start_customer_portal_with(&self, extra: &[&str], env: &[(&str, &str)]) -> CustomerPortal {
        let addr = format!("127.0.0.1:{}", free_port().unwrap());
        let mqtt = self.broker.as_ref().map(Mosquitto::url);
        let mut argv = self.portal_argv("customer-portal", &addr, mqtt.as_deref());
        argv.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir.path().join(format!("customer-portal-{}.log", addr.replace(':', "-")));
        let mut process = Process::new(format!("customer portal {addr}"), argv, log).env("RUST_LOG", "info,shop=debug");
        for (k, v) in env {
            process = process.env(*k, *v);
        }
        process.start().unwrap();
        let portal = CustomerPortal { process, url: format!("http://{addr}") };
        wait_customer_portal(&portal).await;
        portal
    }
}

/// Until the customer portal answers an API request that needs the
/// database (an unknown customer's 401).
pub async fn wait_customer_portal(portal: &CustomerPortal) {
    let probe = format!("{}/api/v1/products?limit=1", portal.url);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let ok = wait::until("the customer portal to answer", PORTAL_START, || {
        let (http, probe) = (http.clone(), probe.clone());
        async move {
            let sent = http.get(&probe).bearer_auth("no such customer").send().await;
            sent.is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED)
        }
    })
    .await;
    if let Err(e) = ok {
        panic!("{e}\n{}", portal.process.log());
    }
}
