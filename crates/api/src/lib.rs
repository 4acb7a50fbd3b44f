//! The ringkv wire contract and the key codec.
//!
//! `pb` is generated from `proto/ringkv/v1/*.proto` at build time; `key`
//! converts between big integers and their wire form. Both server and client
//! depend on this crate so that the contract is defined exactly once.

pub mod headers;
pub mod key;

/// Generated protobuf messages and gRPC stubs of package `ringkv.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ringkv.v1");
}

/// The `project.KeyValueStore` compatibility service (proto/project/kvs.proto).
pub mod project {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("project");
}

pub use key::{decode_key, encode_key, KeyError, MAX_KEY_BYTES};
