//! `shop up` as a user runs it: the real command (`shop up --no-shell`) on
//! free loopback ports in a temporary directory. It must start the ring,
//! the embedded broker and the portals, load the demo catalogue once,
//! write `shop.json`, and on SIGTERM leave nothing running.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringkv_testkit::{free_port, free_port_block, wait, Process};
use shop::pb::admin_portal_client::AdminPortalClient;
use shop::pb::{ListRequest, Product, ProductId};

/// Customer portals `shop up` starts in these tests (its hidden
/// `--customer-portals`): the customer portal is on main, so both.
const CUSTOMER_PORTALS: u16 = 2;
/// How long `shop up` may take until `shop.json` is written.
const START: Duration = Duration::from_secs(120);
/// How long `shop up` and all its children may take to be gone on SIGTERM.
const STOP: Duration = Duration::from_secs(10);

const DEMO_PIDS: [&str; 8] = ["candle", "mug", "notebook", "pencils", "postcards", "tea", "teapot", "tote"];

/// The ports of one `shop up`.
#[derive(Debug, Clone)]
struct Ports {
    positions: u16,
    replicas: u16,
    base: u16,
    mqtt: u16,
    admin: u16,
    customer: u16,
}

impl Ports {
    fn free(positions: u16, replicas: u16) -> Ports {
        Ports {
            positions,
            replicas,
            // Raft 1000 above, metrics 2000 above every process's port.
            base: free_port_block(positions * replicas, &[1000, 2000]).unwrap(),
            mqtt: free_port().unwrap(),
            admin: free_port_block(2, &[2000]).unwrap(),
            customer: free_port_block(CUSTOMER_PORTALS, &[2000]).unwrap(),
        }
    }

    /// Every port `shop up` listens on.
    fn all(&self) -> Vec<u16> {
        let n = self.positions * self.replicas;
        let mut ports: Vec<u16> = (0..n).map(|i| self.base + i).collect();
        if self.replicas > 1 {
            ports.extend((0..n).map(|i| self.base + 1000 + i));
        }
        ports.extend([self.mqtt, self.admin, self.admin + 1]);
        ports.extend((0..CUSTOMER_PORTALS).map(|i| self.customer + i));
        ports.extend(self.metrics());
        ports
    }

    /// Every process's metrics port: the ring's, then the portals'.
    fn metrics(&self) -> Vec<u16> {
        let ring = (0..self.positions * self.replicas).map(|i| self.base + 2000 + i);
        let portals = [self.admin, self.admin + 1].into_iter().chain((0..CUSTOMER_PORTALS).map(|i| self.customer + i));
        ring.chain(portals.map(|p| p + 2000)).collect()
    }
}

/// A running `shop up`; dropped, it gets SIGTERM (then SIGKILL), so that a
/// failing test does not leave its children behind.
struct Up {
    process: Process,
    data: PathBuf,
}

impl Up {
    fn start(data: &Path, ports: &Ports, log: &Path) -> Up {
        let mut argv: Vec<String> = vec![env!("CARGO_BIN_EXE_shop").into(), "up".into(), "--no-shell".into()];
        for (flag, value) in [
            ("--data-dir", data.display().to_string()),
            ("--positions", ports.positions.to_string()),
            ("--replicas", ports.replicas.to_string()),
            ("--base-port", ports.base.to_string()),
            ("--mqtt-port", ports.mqtt.to_string()),
            ("--admin-port", ports.admin.to_string()),
            ("--customer-port", ports.customer.to_string()),
            ("--customer-portals", CUSTOMER_PORTALS.to_string()),
        ] {
            argv.extend([flag.to_owned(), value]);
        }
        let mut process = Process::new("shop up", argv, log);
        process.start().unwrap();
        Up { process, data: data.to_owned() }
    }

    /// `shop.json`, once written (it is written last, when all is up).
    async fn wait_listing(&mut self) -> serde_json::Value {
        let path = self.data.join("shop.json");
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.exited() {
                panic!("shop up exited ({status}) before it was up:\n{}", self.process.log());
            }
            if let Some(v) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()) {
                return v;
            }
            assert!(started.elapsed() < START, "no shop.json within {START:?}:\n{}", self.process.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The processes `shop up` started (its children, from /proc).
    fn children(&self) -> Vec<i32> {
        let me = self.process.pid().expect("running") as i32;
        let mut kids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid …: comm may hold spaces, so after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            if ppid == Some(me) {
                kids.push(pid);
            }
        }
        kids
    }

    /// SIGTERM, and how `shop up` ended within `STOP`.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = Pid::from_raw(self.process.pid().expect("running") as i32);
        kill(pid, Signal::SIGTERM).unwrap();
        let status = self.process.wait_stopped(Instant::now() + STOP);
        status.unwrap_or_else(|| panic!("shop up did not stop within {STOP:?} of SIGTERM:\n{}", self.process.log()))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(15));
    }
}

fn admin(addr: &str) -> AdminPortalClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    AdminPortalClient::new(channel)
}

async fn products(addr: &str) -> Vec<Product> {
    let req = ListRequest { after: String::new(), limit: 100 };
    admin(addr).list_products(req).await.unwrap_or_else(|e| panic!("{addr}: {e}")).into_inner().products
}

/// Connects to the broker at `port` (CONNECT answered by CONNACK),
/// subscribes to the shop's topics, then changes a product through
/// `admin`: true if the portal's invalidation comes through the broker.
async fn mqtt_carries_invalidations(port: u16, admin_addr: &str) -> bool {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (client, mut events) = AsyncClient::new(MqttOptions::new("up-test", "127.0.0.1", port), 10);
    let seen = async {
        let mut changed = false;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe("shop/v1/#", QoS::AtLeastOnce).await.unwrap()
                }
                Ok(Event::Incoming(Packet::SubAck(_))) if !changed => {
                    let mut tea =
                        admin(admin_addr).get_product(ProductId { pid: "tea".into() }).await.unwrap().into_inner();
                    tea.quantity += 1;
                    admin(admin_addr).update_product(tea).await.unwrap();
                    changed = true;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if changed && p.topic.starts_with("shop/v1/") => return true,
                Ok(_) => {}
                Err(e) => panic!("MQTT: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), seen).await.unwrap_or(false)
}

fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie has exited; only its parent's reaping is missing.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_everything_and_sigterm_stops_it_all() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = Ports::free(2, 3);
    let mut up = Up::start(&data, &ports, &tmp.path().join("up.log"));
    let listing = up.wait_listing().await;

    let addrs =
        |ports: &mut dyn Iterator<Item = u16>| -> Vec<String> { ports.map(|p| format!("127.0.0.1:{p}")).collect() };
    let ringkv = addrs(&mut (0..6).map(|i| ports.base + i));
    let admins = addrs(&mut (0..2).map(|i| ports.admin + i));
    let customers: Vec<String> =
        (0..CUSTOMER_PORTALS).map(|i| format!("http://127.0.0.1:{}", ports.customer + i)).collect();
    let expected = serde_json::json!({
        "ringkv": ringkv,
        "mqtt": format!("127.0.0.1:{}", ports.mqtt),
        "admin": admins,
        "customer": customers,
        "metrics": ports.metrics().iter().map(|p| format!("http://127.0.0.1:{p}")).collect::<Vec<_>>(),
    });
    assert_eq!(listing, expected);
    for port in ports.metrics() {
        let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.expect("healthz answers");
        assert_eq!(health.status(), reqwest::StatusCode::OK, "port {port}: {:?}", health.text().await);
    }
    let text = std::fs::read_to_string(data.join("shop.json")).unwrap();
    assert!(text.starts_with("{\n  \"ringkv\": [\n"), "pretty, in the documented order: {text}");

    for addr in &admins {
        let pids: Vec<String> = products(addr).await.into_iter().map(|p| p.pid).collect();
        assert_eq!(pids, DEMO_PIDS, "the demo through {addr}");
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for url in &customers {
        let r = http.get(format!("{url}/api/v1/products")).bearer_auth("ada").send().await.unwrap();
        assert_eq!(r.status(), 200, "{url} as ada");
    }
    assert!(
        mqtt_carries_invalidations(ports.mqtt, &admins[0]).await,
        "the embedded broker accepts an MQTT client and carries the portals' invalidations"
    );
    let out = up.process.log();
    assert!(out.contains("sign in as ada") && out.contains(&format!("http://127.0.0.1:{}/", ports.customer)), "{out}");

    let children = up.children();
    assert_eq!(children.len(), 6 + 2 + usize::from(CUSTOMER_PORTALS), "the ring and the portals: {children:?}");
    let status = up.terminate();
    assert!(status.success(), "shop up on SIGTERM: {status}\n{}", up.process.log());
    wait::until("every child of shop up to be gone", Duration::from_secs(5), || async {
        children.iter().all(|&pid| gone(pid))
    })
    .await
    .unwrap();
    let listening: Vec<u16> =
        ports.all().into_iter().filter(|&p| TcpStream::connect(("127.0.0.1", p)).is_ok()).collect();
    assert!(listening.is_empty(), "still listening after shop up stopped: {listening:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_on_the_same_data_does_not_load_the_demo_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = Ports::free(1, 1);
    let log = tmp.path().join("up.log");
    let mut first = Up::start(&data, &ports, &log);
    first.wait_listing().await;
    assert!(data.join("demo-loaded").exists());
    let admin0 = format!("127.0.0.1:{}", ports.admin);
    assert_eq!(products(&admin0).await.len(), DEMO_PIDS.len());
    // A product the demo has, deleted: loading the demo again would bring it back.
    admin(&admin0).delete_product(ProductId { pid: "mug".into() }).await.unwrap();
    assert!(first.terminate().success());
    drop(first);
    // shop up removes it itself as it starts, but the wait below must not
    // read it before then.
    std::fs::remove_file(data.join("shop.json")).unwrap();

    let mut second = Up::start(&data, &ports, &log);
    second.wait_listing().await;
    let pids: Vec<String> = products(&admin0).await.into_iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), DEMO_PIDS.len() - 1, "{pids:?}");
    assert!(!pids.iter().any(|p| p == "mug"), "the demo was loaded again: {pids:?}");
    assert!(second.process.log().contains("loaded before"), "{}", second.process.log());
    assert!(second.terminate().success());

    // The replicas keep their membership: the same data on other ports is
    // refused before anything starts.
    let mut moved = ports.clone();
    moved.base = free_port_block(1, &[]).unwrap();
    let mut third = Up::start(&data, &moved, &tmp.path().join("third.log"));
    let status = third.process.wait_stopped(Instant::now() + STOP).expect("exits by itself");
    assert!(!status.success());
    let out = third.process.log();
    assert!(out.contains("--base-port") && out.contains("--data-dir"), "{out}");
}
