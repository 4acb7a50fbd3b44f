//! A userspace TCP proxy in front of a server, so a test can cut the
//! network between client and server (drop every connection and refuse new
//! ones) and heal it, without touching the server process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct Proxy {
    pub addr: SocketAddr,
    target: String,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target`.
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let proxy = Proxy { addr, target: target.to_owned(), tasks: Arc::default() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        self.tasks.lock().unwrap().spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tasks.lock().unwrap().spawn(async move {
                    let _ = inbound.set_nodelay(true);
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Cuts every connection and stops listening.
    pub fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Listens again on the same port.
    pub async fn heal(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind proxy port");
        self.serve(listener);
    }
}
