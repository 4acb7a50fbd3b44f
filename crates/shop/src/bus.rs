//! Invalidations over MQTT (rumqttc, QoS 1).
//!
//! Every write publishes `shop/v1/<kind>/<id>` (`keys::topic`) with the new
//! version as decimal text, or `deleted`. Every instance subscribes to
//! `shop/v1/#` and applies what arrives to its caches; since a cache entry
//! is replaced only by a newer version, its own echo, duplicates (QoS 1 is
//! at-least-once) and reordering are harmless.
//!
//! The connection is watched: when it is lost, the caches are flushed and
//! switched off (invalidations may be missed from then on), and every read
//! goes to the database; rumqttc reconnects, the subscription is renewed,
//! and caching resumes once the broker acknowledges it. An invalidation
//! published while this instance is cut off is lost (a clean session
//! keeps nothing); the caches' TTL bounds how long others may serve the
//! old version then.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

use crate::cache::{Caches, Change};
use crate::keys::{self, Kind, TOPIC_ROOT};
use crate::ShopError;

/// How often the broker is pinged; a dead broker is noticed within about
/// this long even when no connection is refused.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Pause before reconnecting, doubling up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);
/// Requests queued for the connection before `announce` drops one.
const QUEUE: usize = 4096;

/// Where the broker is: `mqtt://HOST:PORT`, `tcp://HOST:PORT` or
/// `HOST[:PORT]` (port 1883 when left out).
pub fn parse_url(url: &str) -> Result<(String, u16), ShopError> {
    let bad = |why: &str| ShopError::invalid(format!("MQTT URL {url:?}: {why}"));
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some((scheme, _)) => return Err(bad(&format!("scheme {scheme:?} is not supported (use mqtt://)"))),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("the port is not a number from 1 to 65535"))?),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') || port == 0 {
        return Err(bad("expected mqtt://HOST:PORT"));
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// The announcing side, and the state of the connection.
#[derive(Clone)]
pub struct Bus {
    client: AsyncClient,
    ready: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Bus {
    /// Connects to the broker at `url` in the background, applying what
    /// arrives to `caches`. Returns at once: the caches stay off until the
    /// subscription is acknowledged.
    pub fn start(url: &str, client_id: &str, caches: Arc<Caches>) -> Result<Bus, ShopError> {
        let (host, port) = parse_url(url)?;
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(KEEP_ALIVE).set_clean_session(true);
        let (client, mut events) = AsyncClient::new(opts, QUEUE);
        // An invalidation is one small packet: send it now, not after
        // Nagle's wait for more (40 ms with the peer's delayed ACK).
        let mut net = events.network_options();
        net.set_tcp_nodelay(true);
        events.set_network_options(net);
        let bus = Bus { client, ready: Arc::default(), dropped: Arc::default() };
        tokio::spawn(listen(events, bus.clone(), caches, url.to_owned()));
        Ok(bus)
    }

    /// Publishes a change of document `id` (QoS 1, not retained). Never
    /// waits: if the queue to the broker is full or the client is gone, the
    /// announcement is dropped and counted (the TTL bounds the harm).
    pub fn announce(&self, kind: Kind, id: &str, change: Change) {
        let payload = match change {
            Change::Version(v) => v.to_string(),
            Change::Deleted => "deleted".to_owned(),
        };
        match self.client.try_publish(keys::topic(kind, id), QoS::AtLeastOnce, false, payload) {
            Ok(()) => crate::metrics::get().invalidation_sent(),
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = kind.name(), id, "invalidation not sent: {e}");
            }
        }
    }

    /// Whether the subscription is up (caches are on).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Announcements dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Drives the connection: subscribes after every (re)connection, applies
/// invalidations, flushes the caches whenever the connection is lost.
async fn listen(mut events: EventLoop, bus: Bus, caches: Arc<Caches>, url: String) {
    let subscription = format!("{TOPIC_ROOT}/#");
    let mut retry = FIRST_RETRY;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                retry = FIRST_RETRY;
                if let Err(e) = bus.client.try_subscribe(subscription.as_str(), QoS::AtLeastOnce) {
                    tracing::warn!("cannot subscribe to {subscription}: {e}");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                caches.enable();
                bus.ready.store(true, Ordering::Release);
                crate::metrics::get().mqtt(true);
                tracing::info!("MQTT broker {url}: subscribed to {subscription}; caching on");
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match parse(&p.topic, &p.payload) {
                Some((kind, id, change)) => {
                    crate::metrics::get().invalidation_received();
                    caches.apply(kind, &id, change).await;
                }
                None => tracing::debug!(topic = p.topic, "ignored a message that is not an invalidation"),
            },
            Ok(_) => {}
            Err(e) => {
                caches.flush();
                crate::metrics::get().mqtt(false);
                if bus.ready.swap(false, Ordering::AcqRel) {
                    tracing::warn!(
                        "MQTT broker {url}: connection lost ({e}); cache flushed, serving from the database"
                    );
                } else {
                    tracing::debug!("MQTT broker {url}: {e}");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// The document and change an invalidation names.
fn parse(topic: &str, payload: &[u8]) -> Option<(Kind, String, Change)> {
    let (kind, id) = keys::parse_topic(topic)?;
    let change = match std::str::from_utf8(payload).ok()? {
        "deleted" => Change::Deleted,
        v => Change::Version(v.parse().ok()?),
    };
    Some((kind, id, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("mqtt://127.0.0.1:1884").unwrap(), ("127.0.0.1".into(), 1884));
        assert_eq!(parse_url("tcp://broker").unwrap(), ("broker".into(), 1883));
        assert_eq!(parse_url("localhost:9").unwrap(), ("localhost".into(), 9));
        for bad in ["http://x:1", "mqtt://:1", "mqtt://h:0", "mqtt://h:99999", "mqtt://h:x", ""] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalidations_parse() {
        let t = keys::topic(Kind::Product, "a/b");
        assert_eq!(parse(&t, b"7"), Some((Kind::Product, "a/b".into(), Change::Version(7))));
        assert_eq!(parse(&t, b"deleted"), Some((Kind::Product, "a/b".into(), Change::Deleted)));
        assert_eq!(parse(&t, b"seven"), None);
        assert_eq!(parse(&t, b"\xff"), None);
        assert_eq!(parse("other/topic", b"7"), None);
    }
}
