//! A userspace TCP proxy for one directed link (a client to a server, or
//! replica i dialling replica j's Raft port), so that network faults need
//! no root and no netem (this kernel has none): every connection through
//! it, requests and answers, obeys its mode.
//!
//! - `Pass` copies bytes both ways.
//! - `Delay(d)` delivers every chunk `d` after it was read, in order.
//! - `Blackhole` stops delivering: each direction keeps what it already
//!   read and stops reading, so the sender's TCP backs up as if packets
//!   were dropped; new connections are accepted but carry nothing, like a
//!   SYN that reaches a host that then goes silent. Nothing read is thrown
//!   away (that would corrupt an HTTP/2 stream, which real packet loss
//!   never does: TCP resends).
//! - `Refuse` closes every open connection and each new one at once: the
//!   peer sees a reset, as when the far side is down.
//!
//! `heal` returns to `Pass`, either resuming the stalled connections
//! (delayed delivery, as TCP after a partition) or cutting them (as a TCP
//! timeout would) so that the peer reconnects.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::TestkitError;

/// What a link does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Refuse,
}

/// Chunks read but not yet delivered, per direction of a connection.
const QUEUED_CHUNKS: usize = 64;
const CHUNK: usize = 64 * 1024;

/// One directed link's proxy. Dropping it stops it.
pub struct LinkProxy {
    /// Where to connect instead of the target.
    pub addr: SocketAddr,
    target: SocketAddr,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<LinkProxy, TestkitError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(TestkitError::io("cannot bind a proxy port"))?;
        let addr = listener.local_addr().map_err(TestkitError::io("cannot read the proxy's port"))?;
        let (mode, rx) = watch::channel(Mode::Pass);
        let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, target, rx, conns.clone()));
        Ok(LinkProxy { addr, target, mode, conns, accept })
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Switches mode; `Refuse` also closes every open connection.
    pub fn set_mode(&self, mode: Mode) {
        if mode == Mode::Refuse {
            self.cut_connections();
        }
        self.mode.send_replace(mode);
    }

    /// Stops delivering (see the module doc).
    pub fn blackhole(&self) {
        self.set_mode(Mode::Blackhole);
    }

    /// Resets every connection, open and new.
    pub fn refuse(&self) {
        self.set_mode(Mode::Refuse);
    }

    /// Delivers again; `cut` first closes every connection open now.
    pub fn heal(&self, cut: bool) {
        if cut {
            self.cut_connections();
        }
        self.mode.send_replace(Mode::Pass);
    }

    /// Closes every connection open now; new ones are served per the mode.
    pub fn cut_connections(&self) {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_connections();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<Mode>,
    conns: Arc<Mutex<JoinSet<()>>>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        if *mode.borrow() == Mode::Refuse {
            drop(inbound);
            continue;
        }
        let mode = mode.clone();
        let mut set = conns.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished connections so the set does not grow forever.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else { return };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            // Either direction ending ends the connection.
            tokio::select! {
                _ = pump(ri, wo, mode.clone()) => {}
                _ = pump(ro, wi, mode) => {}
            }
        });
    }
}

/// Copies one direction: a reader that stops while the link is
/// blackholed, and a writer that delivers each chunk when the mode says.
async fn pump(mut from: impl AsyncReadExt + Unpin, mut to: impl AsyncWriteExt + Unpin, mode: watch::Receiver<Mode>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let mut read_mode = mode.clone();
    let reader = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.truncate(n);
            let read_at = Instant::now();
            if read_mode.wait_for(|m| *m != Mode::Blackhole).await.is_err() || tx.send((read_at, buf)).await.is_err() {
                return;
            }
        }
    };
    let mut write_mode = mode;
    let writer = async move {
        while let Some((read_at, buf)) = rx.recv().await {
            let Ok(m) = write_mode.wait_for(|m| *m != Mode::Blackhole).await.map(|m| *m) else { return };
            match m {
                Mode::Delay(d) => tokio::time::sleep_until(read_at + d).await,
                Mode::Refuse => return,
                Mode::Pass | Mode::Blackhole => {}
            }
            if to.write_all(&buf).await.is_err() {
                return;
            }
        }
    };
    // The writer drains what the reader queued before the reader ended.
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An echo server.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 4];
        s.write_all(b"ping").await.unwrap();
        matches!(tokio::time::timeout(within, s.read_exact(&mut b)).await, Ok(Ok(_)))
    }

    #[tokio::test]
    async fn blackhole_stalls_and_heal_delivers_or_cuts() {
        let proxy = LinkProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(roundtrip(&mut s, Duration::from_secs(5)).await);
        proxy.blackhole();
        assert!(!roundtrip(&mut s, Duration::from_millis(300)).await, "a blackholed link delivered");
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(!roundtrip(&mut fresh, Duration::from_millis(300)).await, "a new connection got through");
        // Resumed: the stalled bytes arrive (late), nothing was lost.
        proxy.heal(false);
        for stalled in [&mut s, &mut fresh] {
            let mut b = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(5), stalled.read_exact(&mut b)).await.unwrap().unwrap();
            assert_eq!(&b, b"ping");
        }
        // Cut: open connections close; new ones work.
        proxy.blackhole();
        proxy.heal(true);
        let mut b = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)));
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(roundtrip(&mut again, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn delay_delivers_late_and_in_order() {
        let proxy = LinkProxy::start(echo().await).await.unwrap();
        proxy.set_mode(Mode::Delay(Duration::from_millis(150)));
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let started = std::time::Instant::now();
        s.write_all(b"one,").await.unwrap();
        s.write_all(b"two").await.unwrap();
        let mut b = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b)).await.unwrap().unwrap();
        assert_eq!(&b, b"one,two");
        // There and back: delayed in each direction.
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
        proxy.heal(false);
        assert!(roundtrip(&mut s, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn refuse_resets_open_and_new_connections() {
        let proxy = LinkProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(roundtrip(&mut s, Duration::from_secs(5)).await);
        proxy.refuse();
        let mut b = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "an open connection survived refuse");
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        let _ = fresh.write_all(b"ping").await;
        let closed = tokio::time::timeout(Duration::from_secs(5), fresh.read(&mut b)).await.unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "a new connection got through");
        proxy.heal(false);
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(roundtrip(&mut again, Duration::from_secs(5)).await);
    }
}
