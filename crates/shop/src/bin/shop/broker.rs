//! The MQTT broker `shop up` embeds when it is given no `--mqtt URL`:
//! rumqttd, configured here in code (no file), with one MQTT 3.1.1 (v4)
//! listener on loopback, no TLS, no authentication, running on a thread of
//! its own inside `shop up`'s process. It keeps nothing on disk, like the
//! Mosquitto of the tests: the portals' caches only need invalidations to
//! reach whoever is connected now.
//!
//! rumqttd cannot be stopped from outside; it ends with the process.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration: a v4 listener on `listen`, limits for a local shop
/// (a few dozen clients, small invalidation messages).
fn config(listen: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        // A client must send CONNECT within this long of opening the socket.
        connection_timeout_ms: 5_000,
        // Invalidations are a few dozen bytes; this leaves room.
        max_payload_size: 256 * 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings { name: "shop-v4".into(), listen, tls: None, next_connection_delay_ms: 1, connections };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 10 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("shop".to_owned(), server)])),
        ..Config::default()
    }
}

/// Starts the broker on `127.0.0.1:port` and waits until it accepts
/// connections. A port already taken is an error naming `flag`.
pub fn start(port: u16, flag: &str) -> anyhow::Result<SocketAddr> {
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    // rumqttd only logs a listener that cannot bind: look first, for a clear
    // message (the port could still be taken in between; the wait below
    // then fails).
    drop(TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("port {port} for the MQTT broker is not free ({e}): change {flag}, or use the broker there with --mqtt mqtt://127.0.0.1:{port}"))?);
    let mut broker = Broker::new(config(listen));
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("the MQTT broker stopped: {e}");
            }
        })
        .context("cannot start the MQTT broker's thread")?;
    let deadline = Instant::now() + START_TIMEOUT;
    while !accepts(listen) {
        if Instant::now() >= deadline {
            bail!("the MQTT broker did not accept connections on {listen} within {} s", START_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(listen)
}

/// Whether the broker at `addr` accepts an MQTT 3.1.1 session: CONNECT
/// (clean session, client id `shop-up-probe`), CONNACK 0 expected, then
/// PINGREQ, PINGRESP, DISCONNECT. A real session rather than a bare TCP connect, which the
/// broker would log as an aborted connection.
pub fn accepts(addr: SocketAddr) -> bool {
    const CONNECT: &[u8] = b"\x10\x19\x00\x04MQTT\x04\x02\x00\x0a\x00\x0dshop-up-probe";
    const PINGREQ: &[u8] = b"\xc0\x00";
    const DISCONNECT: &[u8] = b"\xe0\x00";
    let probe = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(CONNECT)?;
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack)?;
        if connack != [0x20, 0x02, 0x00, 0x00] {
            return Ok(false);
        }
        // A ping answered before leaving: the broker has then registered the
        // session (a DISCONNECT right after CONNACK races with that, and the
        // broker logs an error about a connection already gone).
        s.write_all(PINGREQ)?;
        let mut pingresp = [0u8; 2];
        s.read_exact(&mut pingresp)?;
        s.write_all(DISCONNECT)?;
        Ok(pingresp == [0xd0, 0x00])
    };
    probe().unwrap_or(false)
}
