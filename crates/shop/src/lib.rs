//! The reference shop on ringkv.
//!
//! Layers, each importing only the ones above it in this list:
//!
//! - [`model`]: the documents (customers, products) and their checks;
//! - [`keys`]: the key schema, every document's place in ringkv;
//! - [`error`]: the shop's errors, one enum for every layer below the wire;
//! - [`store`]: documents in ringkv through `ringkv-client`: read, create,
//!   change by compare-and-set with bounded, jittered retries, and the
//!   index documents that make listing possible;
//! - [`cache`]: an instance's cache of recently read documents, which only
//!   newer versions replace;
//! - [`bus`]: invalidations over MQTT, published on every write and applied
//!   to the cache on arrival;
//! - [`catalog`]: the admin's operations, composed of the above;
//! - [`orders`]: the customers' orders, and the saga that moves stock
//!   between products and orders exactly once;
//! - [`instance`]: what a portal instance runs on (client, caches, bus);
//! - [`portal`]: the admin portal's gRPC service, and the one place shop
//!   errors become gRPC statuses;
//! - [`web`]: the customer portal: the HTTP/JSON API, the storefront's
//!   pages, and the one place shop errors become HTTP statuses;
//! - [`metrics`]: both portals' `/metrics` and `/healthz`.
//!
//! The schema and the error choices are written out in `docs/shop.md`.

pub mod bus;
pub mod cache;
pub mod catalog;
pub mod error;
pub mod instance;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod orders;
pub mod portal;
pub mod store;
pub mod web;

/// The admin portal's wire contract, generated from `proto/shop/v1/admin.proto`.
pub mod pb {
    tonic::include_proto!("shop.v1");
}

pub use error::ShopError;
