//! Every operation driven to every outcome it has (docs/design.md §2), row by row
//! from `crates/server/testdata/outcomes.table`, through a real server; and
//! bad input answered with a clear error while the server keeps serving.

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use num_bigint::BigInt;
use ringkv_api::pb;
use ringkv_client::{ClientError, Outcome};
use ringkv_testkit::outcomes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_outcome_table() {
    let server = Server::start(&[]).await;
    let client = server.client();
    for (i, row) in outcomes::rows().iter().enumerate() {
        // A fresh key per row; big and negative ones too.
        let key = BigInt::from(-1_000_000_007i64) * BigInt::from(i as u64 + 1).pow(5);
        outcomes::check_row(row, &key, &client, &client).await;
    }
}

fn invalid_argument(r: Result<tonic::Response<pb::Reply>, tonic::Status>) -> String {
    let status = r.expect_err("bad input was accepted");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status.message().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_refused_with_a_reason() {
    let server = Server::start(&[]).await;
    let mut raw = server.client().raw();
    let too_long = vec![0x7f; ringkv_api::MAX_KEY_BYTES + 1];
    for bad in [&b""[..], b"\x00\x05", b"\xff\xff", b"\x00\x00", &too_long] {
        let key = Bytes::copy_from_slice(bad);
        let msg = invalid_argument(raw.get(pb::GetRequest { key: key.clone(), ..Default::default() }).await);
        assert!(msg.contains("key"), "{msg}");
        let set =
            pb::SetRequest { key: key.clone(), timestamp: 1, data: Bytes::from_static(b"x"), ..Default::default() };
        invalid_argument(raw.set(set).await);
        invalid_argument(raw.del(pb::DelRequest { key: key.clone(), ..Default::default() }).await);
        invalid_argument(
            raw.del_version(pb::DelVersionRequest { key: key.clone(), version: 1, ..Default::default() }).await,
        );
        let tas = pb::TestAndSetRequest {
            key: key.clone(),
            timestamp: 1,
            data: Bytes::new(),
            version: 1,
            ..Default::default()
        };
        invalid_argument(raw.test_and_set(tas).await);
        invalid_argument(raw.put(pb::PutRequest { key: key.clone(), ..Default::default() }).await);
        invalid_argument(raw.get_at(pb::GetAtRequest { key: key.clone(), ..Default::default() }).await);
        invalid_argument(raw.trim(pb::TrimRequest { key: key.clone(), keep: 1, ..Default::default() }).await);
        let history = raw.history(pb::HistoryRequest { key, ..Default::default() }).await;
        assert_eq!(history.expect_err("bad key accepted").code(), tonic::Code::InvalidArgument);
    }
    // Nothing was written by the refused requests.
    let ok = server.client().get(&BigInt::from(0)).await.expect("server still serves");
    assert_eq!(ok.outcome, Outcome::Error);
    // The longest key is a key like any other, kept whole.
    let longest = BigInt::from_signed_bytes_be(&too_long[1..]);
    let client = server.client();
    assert_eq!(client.set(&longest, 1, "long").await.unwrap().outcome, Outcome::Success);
    assert_eq!(client.get(&longest).await.unwrap().value.unwrap().data.as_ref(), b"long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_the_limit_is_refused_never_truncated() {
    let server = Server::start(&["--max-value-bytes", "1000"]).await;
    let client = server.client();
    let key = BigInt::from(7);
    let err = client.set(&key, 1, vec![b'x'; 1001]).await.expect_err("accepted data over the limit");
    assert!(matches!(err, ClientError::InvalidArgument(ref m) if m.contains("1001") && m.contains("1000")), "{err}");
    assert_eq!(client.get(&key).await.unwrap().outcome, Outcome::Error, "refused set must not write");
    // Exactly at the limit is accepted and kept whole.
    let full = vec![b'y'; 1000];
    assert_eq!(client.set(&key, 1, full.clone()).await.unwrap().outcome, Outcome::Success);
    let err = client.test_and_set(&key, 2, vec![b'z'; 5000], 1).await.expect_err("tas over the limit");
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    let got = client.get(&key).await.unwrap().value.unwrap();
    assert_eq!((got.version, got.data.as_ref()), (1, &full[..]));
}

/// A key keeps its newest `max_versions` versions, readable one by one
/// and as a history, newest first; trim and del drop them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_the_newest_max_versions() {
    let server = Server::start(&["--max-versions", "4"]).await;
    let client = server.client();
    let key = BigInt::from(-77);
    let absent = client.history(&key, 0).await.unwrap();
    assert_eq!((absent.outcome, absent.versions.len()), (Outcome::Error, 0));
    assert_eq!(client.set(&key, 1, "v1").await.unwrap().outcome, Outcome::Success);
    for v in 2..=6i64 {
        let replaced = client.put(&key, v, format!("v{v}")).await.unwrap();
        assert_eq!((replaced.outcome, replaced.value.unwrap().version), (Outcome::Success, v - 1));
    }
    let versions = |h: &ringkv_client::History| h.versions.iter().map(|v| v.version).collect::<Vec<_>>();
    let h = client.history(&key, 0).await.unwrap();
    assert_eq!((h.outcome, versions(&h)), (Outcome::Success, vec![6, 5, 4, 3]), "the newest 4, newest first");
    assert!(h.versions.iter().all(|v| v.data == format!("v{}", v.version) && v.timestamp == v.version));
    assert_eq!(versions(&client.history(&key, 2).await.unwrap()), vec![6, 5]);
    let dropped = client.get_at(&key, 2).await.unwrap();
    assert_eq!((dropped.outcome, dropped.value.unwrap().version), (Outcome::ErrorWv, 6), "version 2 was dropped");
    assert_eq!(client.get_at(&key, 4).await.unwrap().value.unwrap().data.as_ref(), b"v4");
    let trimmed = client.trim(&key, 2).await.unwrap();
    assert_eq!((trimmed.outcome, trimmed.value.unwrap().version), (Outcome::Success, 6));
    assert_eq!(versions(&client.history(&key, 0).await.unwrap()), vec![6, 5]);
    assert_eq!(client.test_and_set(&key, 7, "v7", 6).await.unwrap().outcome, Outcome::Success);
    assert_eq!(versions(&client.history(&key, 0).await.unwrap()), vec![7, 6, 5]);
    let err = client.trim(&key, 0).await.expect_err("trim to nothing");
    assert!(matches!(err, ClientError::InvalidArgument(ref m) if m.contains("del")), "{err}");
    assert_eq!(client.del(&key).await.unwrap().outcome, Outcome::Success);
    assert_eq!(client.history(&key, 0).await.unwrap().outcome, Outcome::Error, "del removes every version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_accepts_four_mebibytes() {
    let server = Server::start(&[]).await;
    let client = server.client();
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let key = BigInt::from(4);
    assert_eq!(client.set(&key, 1, data.clone()).await.unwrap().outcome, Outcome::Success);
    assert_eq!(client.get(&key).await.unwrap().value.unwrap().data.as_ref(), &data[..]);
    let err = client.set(&BigInt::from(5), 1, vec![0u8; 4 * 1024 * 1024 + 1]).await.expect_err("over 4 MiB");
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_dropped_connections_do_not_hurt() {
    let server = Server::start(&[]).await;
    let client = server.client();
    let key = BigInt::from(99);
    client.set(&key, 1, "kept").await.unwrap();

    // Not HTTP/2 at all.
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage \x01\x02").unwrap();
    drop(s);
    // Random bytes.
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    let junk: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let _ = s.write_all(&junk);
    drop(s);
    // A valid HTTP/2 preface, then the connection dropped mid-request.
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    drop(s);
    // A real request whose client gives up before the answer.
    let impatient = ringkv_client::Client::new(
        &server.addr,
        ringkv_client::ClientOptions { timeout: Duration::from_micros(1), ..Default::default() },
    )
    .unwrap();
    let _ = impatient.set(&BigInt::from(100), 1, vec![1u8; 1 << 20]).await;

    let got = client.get(&key).await.expect("server keeps serving");
    assert_eq!(got.value.unwrap().data.as_ref(), b"kept");
    assert_eq!(client.set(&BigInt::from(101), 1, "after").await.unwrap().outcome, Outcome::Success);
}

/// Ranges come back in numeric order, whole across pages and (on a ring)
/// across groups; a timestamp reads an older state; batches answer each
/// key in order; del_range removes exactly the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_batches() {
    let server = Server::start(&[]).await;
    let client = server.client();
    // More keys than a page (256), negative and positive.
    let keys: Vec<BigInt> = (-300..300).map(|k| BigInt::from(k * 7)).collect();
    let items = keys.iter().map(|k| (k.clone(), 10, Bytes::from(k.to_string()))).collect();
    let put = client.put_many(items).await.unwrap();
    assert_eq!(put.len(), keys.len());
    assert!(put.iter().all(|r| r.outcome == Outcome::Success && r.value.is_none()));
    let all = client.range(&BigInt::from(-5000), &BigInt::from(5000), 0, None).await.unwrap();
    let got: Vec<BigInt> = all.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(got, keys, "every key once, in numeric order");
    assert!(all.iter().all(|(k, v)| v.data == k.to_string() && v.version == 1));
    let some = client.range(&BigInt::from(-21), &BigInt::from(14), 0, None).await.unwrap();
    let some: Vec<i64> = some.iter().map(|(k, _)| i64::try_from(k).unwrap()).collect();
    assert_eq!(some, vec![-21, -14, -7, 0, 7, 14], "bounds inclusive");
    assert_eq!(client.range(&BigInt::from(0), &BigInt::from(5000), 5, None).await.unwrap().len(), 5, "a limit");
    assert!(client.range(&BigInt::from(9), &BigInt::from(-9), 0, None).await.unwrap().is_empty(), "to < from");
    // A newer version of 0; reading at timestamp 10 still sees the first.
    client.put(&BigInt::from(0), 20, "new").await.unwrap();
    let now = client.range(&BigInt::from(0), &BigInt::from(0), 0, None).await.unwrap();
    assert_eq!(now[0].1.data.as_ref(), b"new");
    let then = client.range(&BigInt::from(0), &BigInt::from(0), 0, Some(10)).await.unwrap();
    assert_eq!((then[0].1.version, then[0].1.data.as_ref()), (1, &b"0"[..]));
    assert!(client.range(&BigInt::from(0), &BigInt::from(0), 0, Some(9)).await.unwrap().is_empty());

    let probe = [BigInt::from(7), BigInt::from(8), BigInt::from(-2100)];
    let got = client.get_many(&probe).await.unwrap();
    let outcomes: Vec<Outcome> = got.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Success, Outcome::Error, Outcome::Success], "one answer per key, in order");
    let removed = client.del_range(&BigInt::from(-70), &BigInt::from(70)).await.unwrap();
    assert_eq!(removed.len(), 21);
    assert!(client.range(&BigInt::from(-70), &BigInt::from(70), 0, None).await.unwrap().is_empty());
    assert_eq!(client.range(&BigInt::from(-5000), &BigInt::from(5000), 0, None).await.unwrap().len(), 600 - 21);
    let dels = client.del_many(&[BigInt::from(77), BigInt::from(77)]).await.unwrap();
    assert_eq!((dels[0].outcome, dels[1].outcome), (Outcome::Success, Outcome::Error));
    // Requests of a batch on one key apply in request order, even where
    // each is forwarded: every put replaced the one before it.
    let same: Vec<_> = (0..40).map(|i| (BigInt::from(5555), 30, Bytes::from(i.to_string()))).collect();
    let answers = client.put_many(same).await.unwrap();
    for (i, a) in answers.iter().enumerate() {
        let replaced = a.value.as_ref().map(|v| String::from_utf8_lossy(&v.data).into_owned());
        assert_eq!(replaced, (i > 0).then(|| (i - 1).to_string()), "put {i} of one key");
    }
}
