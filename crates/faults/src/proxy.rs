//! A userspace TCP proxy for one directed peer link (replica i dialling
//! replica j's Raft port), so that partitions need no root and no netem:
//! every connection i opens to j goes through it, requests and answers.
//!
//! `Pass` copies bytes both ways. `Blackhole` stops delivering: each
//! direction keeps at most the chunk it already read and stops reading, so
//! the sender's TCP backs up as if packets were dropped and new connections
//! are accepted but carry nothing, like a SYN that gets through to a host
//! that then goes silent. Nothing read is thrown away (that would corrupt
//! the HTTP/2 stream, which real packet loss never does: TCP resends).
//! Healing either resumes the stalled connections (delayed delivery, as
//! TCP after a partition) or cuts them (as a TCP timeout would), so that
//! the peer reconnects.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::FaultsError;

/// What a link does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Blackhole,
}

/// One directed link's proxy. Dropping it stops it.
pub struct LinkProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<LinkProxy, FaultsError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(FaultsError::io("cannot bind a proxy port"))?;
        let addr = listener.local_addr().map_err(FaultsError::io("proxy address"))?;
        let (mode, rx) = watch::channel(Mode::Pass);
        let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, target, rx, conns.clone()));
        Ok(LinkProxy { addr, mode, conns, accept })
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Stops delivering (see the module doc).
    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    /// Delivers again; `cut` first closes every connection open now.
    pub fn heal(&self, cut: bool) {
        if cut {
            self.conns.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
        }
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<Mode>,
    conns: Arc<Mutex<JoinSet<()>>>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
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

/// Copies one direction, holding each chunk until the link passes.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mode.wait_for(|m| *m == Mode::Pass).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An echo server, and a client through the proxy.
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
}
