//! Communication cut mid-test: the client sees a clear UNAVAILABLE while
//! the network is down, reconnects by itself once it is back, and the data
//! is whole. Also the same across a server restart.

mod common;

use std::time::Duration;

use common::{wait_for, Server};
use num_bigint::BigInt;
use ringkv_client::{Client, ClientError, ClientOptions, Outcome};
use ringkv_testkit::LinkProxy;

fn client_for(addr: &str) -> Client {
    let opts = ClientOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    Client::new(addr, opts).unwrap()
}

async fn write_range(client: &Client, range: std::ops::Range<u64>) {
    for i in range {
        let r = client.set(&BigInt::from(i), i as i64, format!("d{i}")).await.unwrap();
        assert_eq!(r.outcome, Outcome::Success);
    }
}

async fn check_range(client: &Client, range: std::ops::Range<u64>) {
    for i in range {
        let v = client.get(&BigInt::from(i)).await.unwrap().value.expect("present");
        assert_eq!((v.version, v.data.as_ref()), (1, format!("d{i}").as_bytes()), "key {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_gives_unavailable_then_reconnects() {
    let server = Server::start(&[]).await;
    let proxy = LinkProxy::start(server.addr.parse().unwrap()).await.unwrap();
    let client = client_for(&proxy.addr.to_string());
    write_range(&client, 0..100).await;

    proxy.refuse();
    for op in 0..3 {
        let err = match op {
            0 => client.set(&BigInt::from(1000), 1, "x").await.unwrap_err(),
            1 => client.del(&BigInt::from(1)).await.unwrap_err(),
            _ => client.get(&BigInt::from(1)).await.unwrap_err(),
        };
        assert!(matches!(err, ClientError::Unavailable(_)), "want UNAVAILABLE, got {err:?}");
        assert_eq!(err.code(), Some(tonic::Code::Unavailable));
    }

    proxy.heal(false);
    wait_for("the client to reconnect", Duration::from_secs(20), || {
        let c = client.clone();
        async move { c.get(&BigInt::from(0)).await.is_ok() }
    })
    .await;
    check_range(&client, 0..100).await;
    write_range(&client, 100..200).await;
    check_range(&client, 0..200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_gives_unavailable_then_reconnects() {
    let mut server = Server::start(&[]).await;
    let client = server.client();
    write_range(&client, 0..50).await;
    server.stop();
    let err = client.set(&BigInt::from(999), 1, "x").await.unwrap_err();
    assert!(err.is_unavailable(), "want UNAVAILABLE, got {err:?}");
    server.launch().await;
    // The same client object, no new connect call.
    check_range(&client, 0..50).await;
}
