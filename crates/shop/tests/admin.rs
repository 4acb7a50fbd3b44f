//! Every admin portal RPC driven to each of its outcomes, from a table,
//! against real processes (a ringkv server, Mosquitto, a portal); bad
//! input answered with a clear error and nothing changed; the database
//! down answered UNAVAILABLE, and served again once it is back.

mod common;

use std::time::Duration;

use common::{customer, fresh, product, Admin, Spec};
use ringkv_client::ClientOptions;
use shop::model::{Customer, Versioned};
use shop::pb::{self, CustomerId, ListRequest, ProductId};
use tonic::Code;

/// One RPC with its arguments.
#[derive(Debug, Clone)]
enum Call {
    CreateCustomer(pb::Customer),
    UpdateCustomer(pb::Customer),
    GetCustomer(&'static str),
    DeleteCustomer(&'static str),
    ListCustomers(&'static str, u32),
    CreateProduct(pb::Product),
    UpdateProduct(pb::Product),
    GetProduct(&'static str),
    DeleteProduct(&'static str),
    ListProducts(&'static str, u32),
}

/// What an answer is reduced to for comparison: ids with their versions
/// and fields, as text.
async fn call(admin: &mut Admin, call: &Call) -> Result<Vec<String>, tonic::Status> {
    let c = |c: pb::Customer| format!("{} v{} {:?} {}", c.cid, c.version, c.name, c.email);
    let p = |p: pb::Product| format!("{} v{} {:?} q{} ${}", p.pid, p.version, p.description, p.quantity, p.price);
    let list = |after: &str, limit: u32| ListRequest { after: after.into(), limit };
    Ok(match call.clone() {
        Call::CreateCustomer(m) => vec![c(admin.create_customer(m).await?.into_inner())],
        Call::UpdateCustomer(m) => vec![c(admin.update_customer(m).await?.into_inner())],
        Call::GetCustomer(id) => vec![c(admin.get_customer(CustomerId { cid: id.into() }).await?.into_inner())],
        Call::DeleteCustomer(id) => vec![c(admin.delete_customer(CustomerId { cid: id.into() }).await?.into_inner())],
        Call::ListCustomers(a, l) => {
            admin.list_customers(list(a, l)).await?.into_inner().customers.into_iter().map(c).collect()
        }
        Call::CreateProduct(m) => vec![p(admin.create_product(m).await?.into_inner())],
        Call::UpdateProduct(m) => vec![p(admin.update_product(m).await?.into_inner())],
        Call::GetProduct(id) => vec![p(admin.get_product(ProductId { pid: id.into() }).await?.into_inner())],
        Call::DeleteProduct(id) => vec![p(admin.delete_product(ProductId { pid: id.into() }).await?.into_inner())],
        Call::ListProducts(a, l) => {
            admin.list_products(list(a, l)).await?.into_inner().products.into_iter().map(p).collect()
        }
    })
}

fn versioned(mut c: pb::Customer, version: i64) -> pb::Customer {
    c.version = version;
    c
}

fn versioned_p(mut p: pb::Product, version: i64) -> pb::Product {
    p.version = version;
    p
}

/// Everything the portal holds, read from the database.
async fn everything(admin: &mut Admin) -> (Vec<pb::Customer>, Vec<pb::Product>) {
    let all = || ListRequest { after: String::new(), limit: 1000 };
    let c = admin.list_customers(all()).await.unwrap().into_inner().customers;
    let p = admin.list_products(all()).await.unwrap().into_inner().products;
    (c, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_to_every_outcome() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let mut admin = shop.portal(0);
    let ada = customer("c1", "Ada", "ada@example.org");
    let mug = product("p1", "Blue mug", 10, 4.5);
    let long = "x".repeat(129);
    let long: &'static str = Box::leak(long.into_boxed_str());
    // (call, expected code, expected answer when OK; what was checked is
    // in the row's comment when not obvious)
    let table: Vec<(Call, Code, &[&str])> = vec![
        (Call::CreateCustomer(ada.clone()), Code::Ok, &["c1 v1 \"Ada\" ada@example.org"]),
        (Call::CreateCustomer(customer("c1", "Eve", "eve@example.org")), Code::AlreadyExists, &[]),
        (Call::GetCustomer("c1"), Code::Ok, &["c1 v1 \"Ada\" ada@example.org"]),
        (Call::GetCustomer("nobody"), Code::NotFound, &[]),
        (
            Call::UpdateCustomer(customer("c1", "Ada L", "ada@example.org")),
            Code::Ok,
            &["c1 v2 \"Ada L\" ada@example.org"],
        ),
        // A stale version: ABORTED, unchanged.
        (Call::UpdateCustomer(versioned(customer("c1", "Old", "o@example.org"), 1)), Code::Aborted, &[]),
        (
            Call::UpdateCustomer(versioned(customer("c1", "Ada K", "k@example.org"), 2)),
            Code::Ok,
            &["c1 v3 \"Ada K\" k@example.org"],
        ),
        (Call::UpdateCustomer(customer("nobody", "N", "n@example.org")), Code::NotFound, &[]),
        (Call::UpdateCustomer(customer("c1", "Ada", "not-an-email")), Code::InvalidArgument, &[]),
        (Call::UpdateCustomer(versioned(customer("c1", "Ada", "a@example.org"), -1)), Code::InvalidArgument, &[]),
        (Call::CreateCustomer(customer("", "N", "n@example.org")), Code::InvalidArgument, &[]),
        (Call::CreateCustomer(customer(long, "N", "n@example.org")), Code::InvalidArgument, &[]),
        (Call::CreateCustomer(customer("c\u{0}2", "N", "n@example.org")), Code::InvalidArgument, &[]),
        (Call::CreateCustomer(customer("c2", "", "n@example.org")), Code::InvalidArgument, &[]),
        (Call::CreateCustomer(customer("c2", "N", "no-at-sign")), Code::InvalidArgument, &[]),
        (Call::GetCustomer(""), Code::InvalidArgument, &[]),
        (Call::DeleteCustomer(long), Code::InvalidArgument, &[]),
        (Call::ListCustomers("", 0), Code::Ok, &["c1 v3 \"Ada K\" k@example.org"]),
        (Call::ListCustomers("c1", 10), Code::Ok, &[]),
        (Call::ListCustomers("", 5000), Code::InvalidArgument, &[]),
        (Call::DeleteCustomer("nobody"), Code::NotFound, &[]),
        (Call::DeleteCustomer("c1"), Code::Ok, &["c1 v3 \"Ada K\" k@example.org"]),
        (Call::GetCustomer("c1"), Code::NotFound, &[]),
        (Call::DeleteCustomer("c1"), Code::NotFound, &[]),
        (Call::UpdateCustomer(customer("c1", "Ada", "ada@example.org")), Code::NotFound, &[]),
        // A deleted id can be created again; versions start over.
        (Call::CreateCustomer(ada.clone()), Code::Ok, &["c1 v1 \"Ada\" ada@example.org"]),
        (Call::CreateProduct(mug.clone()), Code::Ok, &["p1 v1 \"Blue mug\" q10 $4.5"]),
        (Call::CreateProduct(product("p1", "Red mug", 1, 1.0)), Code::AlreadyExists, &[]),
        (Call::CreateProduct(product("p2", "", 0, 0.0)), Code::Ok, &["p2 v1 \"\" q0 $0"]),
        (Call::CreateProduct(product("p3", "x", -1, 1.0)), Code::InvalidArgument, &[]),
        (Call::CreateProduct(product("p3", "x", 1, -1.0)), Code::InvalidArgument, &[]),
        (Call::CreateProduct(product("p3", "x", 1, f64::NAN)), Code::InvalidArgument, &[]),
        (Call::CreateProduct(product("p3", "x", 1, f64::INFINITY)), Code::InvalidArgument, &[]),
        (Call::CreateProduct(product("p3", "x", 1, 1.005)), Code::InvalidArgument, &[]),
        (Call::CreateProduct(product("p3", &"d".repeat(4097), 1, 1.0)), Code::InvalidArgument, &[]),
        (Call::CreateProduct(product(long, "x", 1, 1.0)), Code::InvalidArgument, &[]),
        (Call::GetProduct("p1"), Code::Ok, &["p1 v1 \"Blue mug\" q10 $4.5"]),
        (Call::GetProduct("p3"), Code::NotFound, &[]),
        (Call::UpdateProduct(product("p1", "Blue mug", 9, 4.99)), Code::Ok, &["p1 v2 \"Blue mug\" q9 $4.99"]),
        (Call::UpdateProduct(versioned_p(product("p1", "Blue mug", 0, 4.99), 1)), Code::Aborted, &[]),
        (
            Call::UpdateProduct(versioned_p(product("p1", "Blue mug", 8, 4.99), 2)),
            Code::Ok,
            &["p1 v3 \"Blue mug\" q8 $4.99"],
        ),
        (Call::UpdateProduct(product("p1", "Blue mug", -8, 4.99)), Code::InvalidArgument, &[]),
        (Call::UpdateProduct(product("p9", "x", 1, 1.0)), Code::NotFound, &[]),
        (Call::ListProducts("", 1), Code::Ok, &["p1 v3 \"Blue mug\" q8 $4.99"]),
        (Call::ListProducts("p1", 1), Code::Ok, &["p2 v1 \"\" q0 $0"]),
        (Call::ListProducts("p2", 0), Code::Ok, &[]),
        (Call::ListProducts("", 1001), Code::InvalidArgument, &[]),
        (Call::DeleteProduct("p2"), Code::Ok, &["p2 v1 \"\" q0 $0"]),
        (Call::DeleteProduct("p2"), Code::NotFound, &[]),
        (Call::GetProduct("p2"), Code::NotFound, &[]),
        (Call::ListProducts("", 0), Code::Ok, &["p1 v3 \"Blue mug\" q8 $4.99"]),
    ];
    for (i, (c, code, want)) in table.iter().enumerate() {
        let before = everything(&mut admin).await;
        let got = call(&mut admin, c).await;
        let row = format!("row {i}: {c:?}");
        match got {
            Ok(items) => {
                assert_eq!(*code, Code::Ok, "{row}: answered {items:?}");
                assert_eq!(items, *want, "{row}");
            }
            Err(status) => {
                assert_eq!(status.code(), *code, "{row}: {status:?}");
                assert!(!status.message().is_empty(), "{row}: an error says why");
                assert_eq!(everything(&mut admin).await, before, "{row}: a refused call changed nothing");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_customer_with_open_orders_is_refused() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let mut admin = shop.portal(0);
    admin.create_customer(customer("c1", "Ada", "ada@example.org")).await.unwrap();
    // An order placed (part 2's saga counts it in the customer's document).
    let db = shop.ring.client(ClientOptions::default()).unwrap();
    let store = shop::store::Store::new(db);
    store.update::<Customer, _>("c1", None, |c| Ok(Customer { open_orders: 1, ..c.clone() })).await.unwrap();
    let refused = admin.delete_customer(CustomerId { cid: "c1".into() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("1 open order"), "{}", refused.message());
    let still: Option<Versioned<Customer>> = store.read("c1").await.unwrap();
    assert_eq!(still.map(|c| c.version), Some(2));
    store.update::<Customer, _>("c1", None, |c| Ok(Customer { open_orders: 0, ..c.clone() })).await.unwrap();
    admin.delete_customer(CustomerId { cid: "c1".into() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let Some(shop) = common::start(Spec::new(1, 1)).await else { return };
    let mut admin = shop.portal(0);
    admin.create_product(product("p1", "Blue mug", 10, 4.5)).await.unwrap();
    let before = everything(&mut admin).await;
    // A string field that is not UTF-8, sent as raw bytes.
    let status =
        raw::call(&shop.portals[0].addr, "/shop.v1.AdminPortal/CreateProduct", &[0x0a, 0x02, 0xff, 0xfe]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("UTF-8"), "{}", status.message());
    // Bytes that are no protobuf message at all.
    let status = raw::call(&shop.portals[0].addr, "/shop.v1.AdminPortal/GetProduct", &[0xff; 7]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // A request far above any valid document: refused before decoding.
    let huge = product("p2", &"d".repeat(1 << 20), 1, 1.0);
    let status = admin.create_product(huge).await.unwrap_err();
    assert!(matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted), "{status:?}");
    // Absurd numbers.
    for p in [product("p2", "x", i64::MAX, 1.0), product("p2", "x", 1, 1e300), product("p2", "x", i64::MIN, -0.0)] {
        let status = admin.create_product(p).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let status = admin.list_products(ListRequest { after: String::new(), limit: u32::MAX }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(everything(&mut admin).await, before, "nothing changed");
    // And it keeps serving.
    let p = admin.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap().into_inner();
    assert_eq!(p.quantity, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_is_unavailable_and_service_resumes() {
    let Some(mut shop) = common::start(Spec::new(1, 1).portal_args(&["--db-timeout", "1"])).await else { return };
    let mut admin = shop.portal(0);
    admin.create_product(product("p1", "Blue mug", 10, 4.5)).await.unwrap();
    shop.ring.kill9_all();
    for status in [
        admin.get_product(fresh(ProductId { pid: "p1".into() })).await.unwrap_err(),
        admin.create_product(product("p2", "x", 1, 1.0)).await.unwrap_err(),
        admin.list_products(ListRequest { after: String::new(), limit: 0 }).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    shop.ring.restart(0, 0).unwrap();
    let p = ringkv_testkit::wait::value("the portal to serve again", Duration::from_secs(30), || {
        let mut admin = admin.clone();
        async move { admin.get_product(fresh(ProductId { pid: "p1".into() })).await.ok() }
    })
    .await
    .unwrap();
    assert_eq!(p.into_inner().quantity, 10);
}

/// Sending bytes the typed client would never build.
mod raw {
    use bytes::{Buf, BufMut, Bytes};
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::Status;

    pub async fn call(addr: &str, path: &'static str, body: &[u8]) -> Status {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        match grpc.unary(tonic::Request::new(Bytes::copy_from_slice(body)), path, RawCodec).await {
            Ok(r) => panic!("accepted: {:?}", r.into_inner()),
            Err(s) => s,
        }
    }

    #[derive(Default)]
    struct RawCodec;

    impl Codec for RawCodec {
        type Encode = Bytes;
        type Decode = Bytes;
        type Encoder = RawCodec;
        type Decoder = RawCodec;
        fn encoder(&mut self) -> RawCodec {
            RawCodec
        }
        fn decoder(&mut self) -> RawCodec {
            RawCodec
        }
    }

    impl Encoder for RawCodec {
        type Item = Bytes;
        type Error = Status;
        fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put(item);
            Ok(())
        }
    }

    impl Decoder for RawCodec {
        type Item = Bytes;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
            Ok(Some(src.copy_to_bytes(src.remaining())))
        }
    }
}
