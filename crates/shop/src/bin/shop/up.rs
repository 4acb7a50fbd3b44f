//! `shop up`: the whole shop on this machine in one command.
//!
//! Starts, all from this one executable: a ringkv ring (`--positions`
//! groups of `--replicas` replicas, each a `shop server` process, reading
//! one generated `DIR/ring.toml`, as `ringkv up` does), an MQTT broker
//! (rumqttd inside this process, unless `--mqtt URL` names one), two
//! `shop admin-portal` and two `shop customer-portal` processes. It waits
//! until each answers, loads a small demo catalogue into a new data
//! directory, prints every address, writes them to `DIR/shop.json`, then
//! opens the admin shell (or waits).
//!
//! Leaving the shell, SIGTERM, SIGHUP, or (without the shell) Ctrl-C stops
//! every process it started: SIGTERM, then SIGKILL after a grace. In the
//! shell Ctrl-C only cancels the running command. The children run in
//! process groups of their own, so that a Ctrl-C typed in the terminal
//! reaches `up` alone, and `up` decides. A child that dies is reported and
//! not restarted. The children log to files under DIR, not the terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::StatusCode;
use ringkv_server::cli::LocalRingArgs;
use ringkv_testkit::cluster::RAFT_PORT_OFFSET;
use ringkv_testkit::{Cluster, ClusterSpec, Process};
use serde::Serialize;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tonic::Code;

use crate::admin::{AdminCmd, AdminError, CustomerCmd, ListArgs, Portal, ProductCmd};
use crate::shell::Editor;

/// How long the ring may take to elect its leaders.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one portal may take to answer after it was started.
const PORTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each child gets to stop on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Admin portals started.
const ADMIN_PORTALS: u16 = 2;
/// In DIR once the demo catalogue is loaded: it is loaded only once.
const DEMO_MARKER: &str = "demo-loaded";
/// Where everything is, in DIR, written once it all answers.
const LISTING: &str = "shop.json";
/// The customer the hint suggests (one of the demo's).
const DEMO_CUSTOMER: &str = "ada";

pub const EXAMPLES: &str = "\
Examples:
  shop up                                   everything on the default ports, data in ./shop-data
  shop up --no-shell                        run until Ctrl-C or SIGTERM (no admin shell)
  shop up --data-dir /tmp/s --base-port 9070 --admin-port 9100 --customer-port 9080 --mqtt-port 9883
  shop up --mqtt mqtt://127.0.0.1:1883      use a broker already running instead of the embedded one
  shop up --positions 1 --replicas 1        the smallest ring: one ringkv process

Ports (defaults): ringkv replica i (i = position·REPLICAS + replica) on
BASE+i, its Raft on BASE+1000+i (7070…, 8070…); MQTT on 1883; admin portals
(gRPC) on 7100, 7101; customer portals (HTTP) on 8080, 8081. The storefront
is http://127.0.0.1:8080/ (sign in as ada, grace or alan: the demo
customers). Every address is written to DIR/shop.json; logs go to
DIR/p<p>/r<r>/server.log, DIR/admin<i>.log, DIR/customer<i>.log and
DIR/broker.log. Leaving the shell, Ctrl-C (without the shell) or SIGTERM
stops everything. The demo catalogue is loaded into a new data directory
only (DIR/demo-loaded marks it); --no-demo skips it.";

/// Flags of `shop up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where everything keeps its data and logs.
    #[arg(long, default_value = "shop-data")]
    pub data_dir: PathBuf,
    /// The ringkv ring.
    #[command(flatten)]
    pub ring: LocalRingArgs,
    /// Use this MQTT broker (mqtt://HOST:PORT) instead of starting one.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// Port of the embedded MQTT broker (without --mqtt).
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// First admin portal port (gRPC): the portals listen on it and the next.
    #[arg(long, default_value_t = 7100)]
    pub admin_port: u16,
    /// First customer portal port (HTTP): the portals listen on it and the next.
    #[arg(long, default_value_t = 8080)]
    pub customer_port: u16,
    /// Customer portals started (0 to run without any).
    #[arg(long, default_value_t = 2, hide = true)]
    pub customer_portals: u16,
    /// Do not open the admin shell; run until Ctrl-C or SIGTERM. (Also the
    /// case when stdin is not a terminal.)
    #[arg(long)]
    pub no_shell: bool,
    /// Do not load the demo catalogue into a new data directory.
    #[arg(long)]
    pub no_demo: bool,
}

/// `DIR/shop.json`: where everything is.
#[derive(Debug, Serialize)]
struct Addresses<'a> {
    ringkv: &'a [String],
    mqtt: &'a str,
    admin: &'a [String],
    customer: Vec<String>,
    /// Every process's /metrics and /healthz: the ring's, then the portals'.
    metrics: Vec<String>,
}

/// The kinds of portal `up` starts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Admin,
    Customer,
}

impl Kind {
    fn subcommand(self) -> &'static str {
        match self {
            Kind::Admin => "admin-portal",
            Kind::Customer => "customer-portal",
        }
    }

    fn log(self) -> &'static str {
        match self {
            Kind::Admin => "admin",
            Kind::Customer => "customer",
        }
    }
}

/// One portal process.
struct Child {
    addr: String,
    process: Process,
}

/// The signals that stop `up`, watched from its very start so that none
/// arriving during start-up kills it before it could stop its children.
struct Signals {
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn watch() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    /// Completes on SIGTERM or SIGHUP.
    async fn terminate(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }

    /// Completes on SIGINT (Ctrl-C), SIGTERM or SIGHUP.
    async fn shutdown(&mut self) {
        tokio::select! {
            _ = self.terminate() => {}
            r = tokio::signal::ctrl_c() => {
                if r.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Starts everything, serves until the shell ends or a signal arrives, then
/// stops what it started.
pub async fn run(args: UpArgs, json: bool, timeout: Duration) -> anyhow::Result<ExitCode> {
    // SIGTERM and SIGHUP from the start (SIGINT is watched later: see shell).
    let mut signals = Signals::watch()?;
    if args.ring.replicas == 0 || args.ring.positions == 0 {
        bail!("--positions and --replicas must be at least 1");
    }
    let processes = u32::from(args.ring.positions) * u32::from(args.ring.replicas);
    if processes > u32::from(RAFT_PORT_OFFSET) {
        bail!("{processes} processes need more than the {RAFT_PORT_OFFSET} client ports below the Raft ports");
    }
    let mqtt_given = match &args.mqtt {
        Some(url) => Some(broker_address(url)?),
        None => None,
    };
    check_ports(&args)?;
    // The editor first: it must exist before SIGINT is watched (see shell).
    let editor = if !args.no_shell && std::io::stdin().is_terminal() { Some(Editor::open()?) } else { None };
    let exe = std::env::current_exe().context("cannot find the shop executable")?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    // An old listing would point at processes that are gone: shop.json
    // appears again once everything answers.
    let listing = data_dir.join(LISTING);
    if let Err(e) = std::fs::remove_file(&listing) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(anyhow!("cannot remove the old {}: {e}", listing.display()));
        }
    }
    init_logging(&data_dir)?;

    let spec = ClusterSpec::new(&exe, usize::from(args.ring.positions), usize::from(args.ring.replicas))
        .dir(&data_dir)
        .base_port(args.ring.base_port)
        .own_process_groups()
        .start_timeout(START_TIMEOUT)
        .metrics();
    let ring_file = write_ring(&data_dir, &spec)?;
    let spec = spec.ring_config(ring_file);
    println!("shop up: starting the ringkv ring ({processes} process(es)) …");
    let mut cluster = tokio::select! {
        c = Cluster::start(spec) => c.context("the ringkv ring did not start")?,
        _ = signals.shutdown() => bail!("interrupted while the ring was starting"),
    };
    let mut children = Vec::new();
    let result = async {
        let up = tokio::select! {
            up = start_rest(&args, &exe, &data_dir, &cluster, mqtt_given, &mut children) => up?,
            _ = signals.shutdown() => bail!("interrupted while the shop was starting"),
        };
        serve(editor, &up, &mut cluster, &mut children, &mut signals, json, timeout).await
    }
    .await;
    stop(&mut cluster, &mut children);
    result
}

/// What is up, once everything answers.
struct Up {
    admin: Vec<String>,
}

/// Starts the broker (unless given), the portals, loads the demo, prints
/// and writes the addresses.
async fn start_rest(
    args: &UpArgs,
    exe: &Path,
    data_dir: &Path,
    cluster: &Cluster,
    mqtt_given: Option<String>,
    children: &mut Vec<Child>,
) -> anyhow::Result<Up> {
    let ringkv = cluster.addrs();
    let (mqtt, embedded) = match mqtt_given {
        Some(addr) => (addr, false),
        None => (crate::broker::start(args.mqtt_port, "--mqtt-port")?.to_string(), true),
    };
    let mqtt_url = format!("mqtt://{mqtt}");
    let portal_argv = |kind: Kind, addr: &str| {
        let mut argv = vec![exe.display().to_string(), kind.subcommand().to_owned(), "--listen".into(), addr.into()];
        argv.extend(["--ringkv".into(), ringkv.join(","), "--mqtt".into(), mqtt_url.clone()]);
        argv.extend(["--metrics-listen".into(), metrics_addr(addr)]);
        argv
    };
    let admin: Vec<String> = (0..ADMIN_PORTALS).map(|i| format!("127.0.0.1:{}", args.admin_port + i)).collect();
    for (i, addr) in admin.iter().enumerate() {
        children.push(spawn(Kind::Admin, i, addr, portal_argv(Kind::Admin, addr), data_dir)?);
    }
    for child in children.iter_mut() {
        wait_admin(child).await?;
    }
    let marker = data_dir.join(DEMO_MARKER);
    let mut loaded_now = false;
    let demo = if args.no_demo {
        "not loaded (--no-demo)".to_owned()
    } else if marker.exists() {
        "loaded before (kept)".to_owned()
    } else {
        let (products, customers) = load_demo(&admin).await?;
        std::fs::write(&marker, "the demo catalogue was loaded into this shop\n")
            .with_context(|| format!("cannot write {}", marker.display()))?;
        loaded_now = true;
        format!("loaded: {products} products, {customers} customers")
    };
    let customer: Vec<String> =
        (0..args.customer_portals).map(|i| format!("127.0.0.1:{}", args.customer_port + i)).collect();
    let first = children.len();
    for (i, addr) in customer.iter().enumerate() {
        children.push(spawn(Kind::Customer, i, addr, portal_argv(Kind::Customer, addr), data_dir)?);
    }
    for child in &mut children[first..] {
        wait_customer(child, loaded_now).await?;
    }

    let customer_urls: Vec<String> = customer.iter().map(|a| format!("http://{a}")).collect();
    let ring_metrics = cluster.replicas().filter_map(|r| r.metrics_addr.clone());
    let portal_metrics: Vec<String> = admin.iter().chain(&customer).map(|a| metrics_addr(a)).collect();
    let metrics: Vec<String> =
        ring_metrics.chain(portal_metrics.iter().cloned()).map(|a| format!("http://{a}")).collect();
    let listing = Addresses {
        ringkv: &ringkv,
        mqtt: &mqtt,
        admin: &admin,
        customer: customer_urls.clone(),
        metrics: metrics.clone(),
    };
    let path = data_dir.join(LISTING);
    std::fs::write(&path, serde_json::to_string_pretty(&listing)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;

    println!("shop up: everything is up, data and logs in {}", data_dir.display());
    println!(
        "  ringkv            {}  ({} position(s) × {} replica(s); ring in ring.toml)",
        ringkv.join(" "),
        args.ring.positions,
        args.ring.replicas
    );
    println!("  mqtt broker       {mqtt}  ({})", if embedded { "embedded" } else { "given with --mqtt" });
    println!("  admin portals     {}  (gRPC)", admin.join(" "));
    if customer_urls.is_empty() {
        println!("  customer portals  none");
    } else {
        println!("  customer portals  {}", customer_urls.join(" "));
    }
    println!("  demo catalogue    {demo}");
    println!("  metrics, healthz  {}", metrics.join(" "));
    println!("  addresses in {}", path.display());
    if let Some(url) = customer_urls.first() {
        println!("Storefront: {url}/  (sign in as {DEMO_CUSTOMER})");
    }
    Ok(Up { admin })
}

/// Runs the shell (if given) or waits, watching for signals and deaths.
async fn serve(
    editor: Option<Editor>,
    up: &Up,
    cluster: &mut Cluster,
    children: &mut [Child],
    signals: &mut Signals,
    json: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    if let Some(editor) = editor {
        println!("Admin shell on the admin portals; leaving it (quit, Ctrl-D) stops everything.");
        let shell = crate::shell::run_editor(editor, &up.admin, timeout, json);
        tokio::pin!(shell);
        // Ctrl-C is the shell's (it cancels a command); leaving the shell or
        // SIGTERM stops everything.
        loop {
            tokio::select! {
                r = &mut shell => return r,
                _ = signals.terminate() => return Ok(ExitCode::SUCCESS),
                _ = watch.tick() => report_deaths(cluster, children)?,
            }
        }
    }
    println!("Ctrl-C or SIGTERM stops everything.");
    loop {
        tokio::select! {
            _ = signals.shutdown() => return Ok(ExitCode::SUCCESS),
            _ = watch.tick() => report_deaths(cluster, children)?,
        }
    }
}

/// Stops the portals (clients of the ring) first, then the ring: SIGTERM
/// to all of a kind at once, SIGKILL to whoever is left after the grace.
fn stop(cluster: &mut Cluster, children: &mut [Child]) {
    for c in children.iter_mut() {
        c.process.request_stop();
    }
    let deadline = Instant::now() + STOP_GRACE;
    for c in children.iter_mut() {
        c.process.wait_stopped(deadline);
    }
    cluster.stop(STOP_GRACE);
}

/// A portal's metrics address: its own port + 2000, as a ringkv server's.
fn metrics_addr(addr: &str) -> String {
    match addr.rsplit_once(':').and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?.checked_add(2000)?))) {
        Some((host, port)) => format!("{host}:{port}"),
        None => addr.to_owned(),
    }
}

/// Starts one portal, logging to `DIR/<kind><i>.log`.
fn spawn(kind: Kind, i: usize, addr: &str, argv: Vec<String>, data_dir: &Path) -> anyhow::Result<Child> {
    let name = format!("{} {i}", kind.subcommand());
    let mut process = Process::new(name, argv, data_dir.join(format!("{}{i}.log", kind.log()))).own_process_group();
    process.start()?;
    Ok(Child { addr: addr.to_owned(), process })
}

/// Waits until an admin portal answers a product listing.
async fn wait_admin(child: &mut Child) -> anyhow::Result<()> {
    let portal = Portal::connect(std::slice::from_ref(&child.addr), Duration::from_secs(1))?;
    let probe = AdminCmd::Product(ProductCmd::List(ListArgs { after: String::new(), limit: Some(1), all: false }));
    wait_ready(child, || {
        let portal = portal.clone();
        let probe = probe.clone();
        async move { portal.execute(&probe).await.is_ok() }
    })
    .await
}

/// Waits until a customer portal accepts connections and lists the
/// products to the demo customer (200). Unless the demo was just loaded,
/// that customer may be gone (or never was): then 401, which the portal
/// answers only once the database said there is no such customer, will do.
async fn wait_customer(child: &mut Child, demo_just_loaded: bool) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
    let url = format!("http://{}/api/v1/products", child.addr);
    let addr: SocketAddr = child.addr.parse()?;
    wait_ready(child, || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                return false;
            }
            match http.get(&url).bearer_auth(DEMO_CUSTOMER).send().await {
                Ok(r) => r.status() == StatusCode::OK || (!demo_just_loaded && r.status() == StatusCode::UNAUTHORIZED),
                Err(_) => false,
            }
        }
    })
    .await
}

/// Polls `ready` until it holds; an error if the process exits or the
/// deadline passes.
async fn wait_ready<F, Fut>(child: &mut Child, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PORTAL_TIMEOUT;
    loop {
        if let Some(status) = child.process.exited() {
            return Err(child.process.failure(format!("exited ({status}) at start")).into());
        }
        if ready().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let why = format!("did not answer on {} within {} s", child.addr, PORTAL_TIMEOUT.as_secs());
            return Err(child.process.failure(why).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo products: id, description, units in stock, price.
const DEMO_PRODUCTS: &[(&str, &str, i64, f64)] = &[
    ("mug", "Blue enamel mug, 350 ml", 40, 8.50),
    ("teapot", "Stoneware teapot for four cups", 12, 34.00),
    ("tea", "Loose-leaf breakfast tea, 250 g tin", 60, 9.90),
    ("notebook", "A5 dotted notebook, 120 pages", 80, 6.25),
    ("pencils", "Box of 12 HB pencils", 100, 4.80),
    ("tote", "Cotton tote bag with the shop's ring", 25, 12.00),
    ("candle", "Beeswax candle, burns 30 hours", 30, 15.50),
    ("postcards", "Set of 6 postcards of famous engines", 50, 5.00),
];

/// The demo customers: id, name, email.
const DEMO_CUSTOMERS: &[(&str, &str, &str)] = &[
    ("ada", "Ada Lovelace", "ada@example.org"),
    ("grace", "Grace Hopper", "grace@example.org"),
    ("alan", "Alan Turing", "alan@example.org"),
];

/// Creates the demo catalogue through the admin portals; one already there
/// (a load cut short before the marker was written) is kept.
async fn load_demo(admin: &[String]) -> anyhow::Result<(usize, usize)> {
    let portal = Portal::connect(admin, Duration::from_secs(10))?;
    let products = DEMO_PRODUCTS.iter().map(|&(pid, description, quantity, price)| {
        AdminCmd::Product(ProductCmd::Create { pid: pid.into(), description: description.into(), quantity, price })
    });
    let customers = DEMO_CUSTOMERS.iter().map(|&(cid, name, email)| {
        AdminCmd::Customer(CustomerCmd::Create { cid: cid.into(), name: name.into(), email: email.into() })
    });
    for cmd in products.chain(customers) {
        match portal.execute(&cmd).await {
            Ok(_) => {}
            Err(AdminError::Rpc { status, .. }) if status.code() == Code::AlreadyExists => {}
            Err(e) => return Err(anyhow!("cannot load the demo catalogue: {e}")),
        }
    }
    Ok((DEMO_PRODUCTS.len(), DEMO_CUSTOMERS.len()))
}

/// Reports each process that has exited since the last look; an error
/// once no ringkv replica is left.
fn report_deaths(cluster: &mut Cluster, children: &mut [Child]) -> anyhow::Result<()> {
    let died = cluster.reap_exited();
    let alive = cluster.replicas().filter(|r| r.process.is_running()).count();
    let total = cluster.replicas().count();
    for (p, r, status) in &died {
        eprintln!(
            "\nshop up: ringkv position {p} replica {r} exited: {status}; {alive} of {total} still running \
             (see p{p}/r{r}/server.log)"
        );
    }
    for c in children.iter_mut() {
        if let Some(status) = c.process.exited() {
            eprintln!(
                "\nshop up: {} on {} exited: {status} (see {})",
                c.process.name(),
                c.addr,
                c.process.log_path().display()
            );
        }
    }
    if alive == 0 && !died.is_empty() {
        bail!("no ringkv replica is running any more (see the server.log files)");
    }
    Ok(())
}

/// `mqtt://HOST:PORT` (or `HOST:PORT`) → `HOST:PORT`.
fn broker_address(url: &str) -> anyhow::Result<String> {
    let addr = url.strip_prefix("mqtt://").unwrap_or(url).trim_end_matches('/');
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(addr.to_owned()),
        _ => bail!("--mqtt {url:?}: want mqtt://HOST:PORT"),
    }
}

/// Every port `up` will listen on, with what it is for and the flag that
/// moves it; an error naming the flag for the first one that overlaps
/// another or is already in use.
fn check_ports(args: &UpArgs) -> anyhow::Result<()> {
    let mut wanted: Vec<(u32, String, &str)> = Vec::new();
    let n = u32::from(args.ring.positions) * u32::from(args.ring.replicas);
    for i in 0..n {
        let (p, r) = (i / u32::from(args.ring.replicas), i % u32::from(args.ring.replicas));
        let base = u32::from(args.ring.base_port) + i;
        wanted.push((base, format!("ringkv position {p} replica {r}"), "--base-port"));
        if args.ring.replicas > 1 {
            wanted.push((
                base + u32::from(RAFT_PORT_OFFSET),
                format!("ringkv position {p} replica {r}'s Raft"),
                "--base-port",
            ));
        }
    }
    if args.mqtt.is_none() {
        wanted.push((
            u32::from(args.mqtt_port),
            "the MQTT broker".into(),
            "--mqtt-port (or use the broker there with --mqtt URL)",
        ));
    }
    for i in 0..u32::from(ADMIN_PORTALS) {
        wanted.push((u32::from(args.admin_port) + i, format!("admin portal {i}"), "--admin-port"));
    }
    for i in 0..u32::from(args.customer_portals) {
        wanted.push((u32::from(args.customer_port) + i, format!("customer portal {i}"), "--customer-port"));
    }
    let mut seen: BTreeMap<u32, (&str, &str)> = BTreeMap::new();
    for (port, what, flag) in &wanted {
        if *port > u32::from(u16::MAX) {
            bail!("port {port} for {what} is out of range: change {flag}");
        }
        if let Some((other, other_flag)) = seen.insert(*port, (what, flag)) {
            bail!("port {port} would serve both {other} and {what}: change {other_flag} or {flag}");
        }
        if let Err(e) = TcpListener::bind(("127.0.0.1", *port as u16)) {
            bail!("port {port} for {what} is not free ({e}): change {flag}");
        }
    }
    Ok(())
}

/// Writes `DIR/ring.toml` for the spec's fixed ports.
fn write_ring(data_dir: &Path, spec: &ClusterSpec) -> anyhow::Result<PathBuf> {
    let addrs = (0..spec.positions)
        .map(|p| {
            (0..spec.replicas)
                .map(|r| spec.fixed_addresses(p, r)?.context("up runs on fixed ports"))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let path = data_dir.join("ring.toml");
    let ring = ringkv_server::config::RingConfig::default();
    let text = ringkv_server::cli::ring_file_text(&addrs, ring.m, ring.placement, "shop up")?;
    // The replicas keep their group's membership: a data directory made for
    // another ring (other ports, positions or replicas) cannot serve this one.
    match std::fs::read_to_string(&path) {
        Ok(old) if old != text => bail!(
            "{} holds a ring of other ports, positions or replicas: give the same --base-port, --positions and \
             --replicas as when it was made, or a new --data-dir",
            data_dir.display()
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
        }
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    }
    Ok(path)
}

/// This process's own log (the embedded broker's): `DIR/broker.log`, so
/// that nothing garbles the shell. rumqttd logs every client that leaves
/// without ceremony (a portal stopped, a probe) as an error, so its logs are
/// off unless RUST_LOG asks (RUST_LOG=rumqttd=info).
fn init_logging(data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join("broker.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::sync::Mutex::new(file)).init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    fn args(flags: &[&str]) -> UpArgs {
        Cli::try_parse_from(std::iter::once("up").chain(flags.iter().copied())).unwrap().up
    }

    #[test]
    fn broker_urls() {
        assert_eq!(broker_address("mqtt://127.0.0.1:1883").unwrap(), "127.0.0.1:1883");
        assert_eq!(broker_address("localhost:1884/").unwrap(), "localhost:1884");
        for bad in ["mqtt://", "mqtt://host", "mqtt://:1883", "host:port"] {
            assert!(broker_address(bad).is_err(), "{bad}");
        }
    }

    /// Flags that put everything on ports free a moment ago.
    fn free() -> UpArgs {
        let block = |n, offsets: &[u16]| ringkv_testkit::free_port_block(n, offsets).unwrap();
        let mut a = args(&[]);
        (a.ring.base_port, a.admin_port, a.customer_port) = (block(6, &[1000]), block(2, &[]), block(2, &[]));
        a.mqtt_port = block(1, &[]);
        a
    }

    #[test]
    fn overlapping_ports_name_the_flags() {
        // Replica 0's Raft port is BASE + 1000: customer portals there collide.
        let mut a = free();
        a.customer_port = a.ring.base_port + 1000;
        let e = check_ports(&a).unwrap_err().to_string();
        assert!(e.contains("--base-port or --customer-port"), "{e}");
        let mut a = free();
        a.admin_port = 65535;
        let e = check_ports(&a).unwrap_err().to_string();
        assert!(e.contains("out of range") && e.contains("--admin-port"), "{e}");
    }

    #[test]
    fn a_taken_port_names_its_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = free();
        a.mqtt_port = taken.local_addr().unwrap().port();
        let e = check_ports(&a).unwrap_err().to_string();
        assert!(e.contains("not free") && e.contains("--mqtt-port"), "{e}");
        assert!(check_ports(&free()).is_ok());
    }
}
