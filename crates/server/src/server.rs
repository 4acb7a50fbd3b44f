//! A server process: start the node, serve gRPC until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use futures::FutureExt;
use ringkv_api::pb::admin_server::AdminServer;
use ringkv_api::pb::key_value_server::KeyValueServer;
use ringkv_api::pb::raft_server::RaftServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::metrics;
use crate::node::Node;
use crate::raft::network::MAX_RAFT_MESSAGE;
use crate::service::admin::AdminService;
use crate::service::compat::{self, CompatService};
use crate::service::dispatch::Dispatch;
use crate::service::kv::KvService;
use crate::service::raft::RaftService;
use crate::service::route::Router;

/// Room for a request's other fields on top of the largest value.
const MESSAGE_OVERHEAD: usize = 64 * 1024;

/// Runs a server until `shutdown` completes: recovers first, then listens.
/// Nothing is served to clients before the state is whole.
pub async fn run(mut config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    config.resolve();
    config.validate()?;
    crate::broken::check().map_err(anyhow::Error::msg)?;
    let (ring, groups) = config.topology()?;
    let listen = config.listen;
    tracing::info!(data_dir = %config.data_dir.display(), %listen, node_id = config.node_id, position = config.position, positions = ring.len(), "starting");
    // Peers must reach our Raft port while we recover and elect, so a
    // separate Raft listener is bound first; it serves once Raft exists.
    let raft_listener = match config.raft_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    // Metrics first of all, so that /healthz says "recovering" meanwhile.
    let replica = metrics::Replica::new(config.node_id, config.position, config.election_timeout_max_ms);
    if let Some(addr) = config.metrics_listen {
        let bound = metrics::serve(addr, replica.clone()).await?;
        tracing::info!(addr = ?bound, "serving /metrics and /healthz");
    }
    let node = Node::start(config.clone(), |raft| {
        replica.set_raft(raft.clone());
        if let Some(l) = raft_listener {
            tokio::spawn(serve_raft(l, RaftService::new(raft)));
        }
    })
    .await?;
    let listener = bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving clients");
    replica.set_node(node.clone());

    // Twice the value limit: a value over the limit by less than that gets
    // our clear INVALID_ARGUMENT rather than the transport's size error.
    let max_message = config.max_value_bytes.saturating_mul(2).saturating_add(MESSAGE_OVERHEAD);
    let max_hops = config.ring.as_ref().map_or(1, |r| r.max_hops);
    let router = Arc::new(Router::new(ring, config.position, groups, max_hops, node.clone()));
    let dispatch = Dispatch::new(node.clone(), router.clone(), max_message);
    let compat = compat::server(CompatService::new(dispatch.clone()), max_message);
    let kv = KeyValueServer::new(KvService::new(dispatch))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let admin = AdminServer::new(AdminService::new(node.clone(), router));
    let mut builder =
        tonic::transport::Server::builder().tcp_nodelay(true).initial_connection_window_size(CONNECTION_WINDOW);
    let router = builder.add_service(kv).add_service(compat).add_service(admin);
    let router = match config.raft_listen {
        None => router.add_service(raft_server(RaftService::new(node.raft().clone()))),
        Some(_) => router,
    };
    // Stop on the caller's signal, or when Raft stopped on its own: a
    // replica whose Raft is gone would answer UNAVAILABLE forever.
    let fatal = Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let (node, fatal) = (node.clone(), fatal.clone());
        async move {
            tokio::select! {
                () = shutdown => {}
                reason = node.fatal() => {
                    tracing::error!("raft stopped: {reason}; exiting (a restart recovers this replica from disk)");
                    *fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                }
            }
        }
    };
    let served = router.serve_with_incoming_shutdown(incoming(listener), stop).await;
    tracing::info!("stopping");
    node.shutdown().await;
    if let Some(reason) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("raft stopped: {reason}; restart this replica: it recovers from its data dir");
    }
    served.context("gRPC server failed")
}

/// The HTTP/2 connection window the server grants each client. h2 (since
/// 0.4.16) charges every received DATA frame under 256 bytes against a
/// budget of half this window and closes the connection (GOAWAY
/// ENHANCE_YOUR_CALM, "too_many_data_frames") once unread ones spend it.
/// grpcio sends each streamed message in a frame of its own, so a
/// `PutAll` of a few thousand tiny pairs that the server answers slower
/// than they arrive spent hyper's default (1 MiB, a 512 KiB budget). A
/// stream's unread bytes stay bounded by the stream window (1 MiB): at
/// 32 MiB of budget, such a stream of 20-byte messages needs a third of
/// it. Memory is bounded by the stream windows in use, not by this.
const CONNECTION_WINDOW: u32 = 64 << 20;

/// Accepted connections, with Nagle off: a request/response protocol must
/// not wait for delayed ACKs (the builder's tcp_nodelay does not reach a
/// listener we bound ourselves).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

fn raft_server(svc: RaftService) -> RaftServer<RaftService> {
    RaftServer::new(svc).max_decoding_message_size(MAX_RAFT_MESSAGE).max_encoding_message_size(MAX_RAFT_MESSAGE)
}

/// Serves Raft RPCs on their own listener until the process ends.
async fn serve_raft(listener: TcpListener, svc: RaftService) {
    let served = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(raft_server(svc))
        .serve_with_incoming(incoming(listener))
        .map(|r| r.context("raft listener failed"))
        .await;
    if let Err(e) = served {
        tracing::error!("{e:#}");
    }
}
