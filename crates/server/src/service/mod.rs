//! The gRPC services a server offers. `kv` is the public `KeyValue` API
//! (routed along the ring by `route`, forwarded by `forward`);
//! `status` maps every internal error to a gRPC status, in one place.

pub mod admin;
pub mod batch;
pub mod compat;
pub mod dispatch;
pub mod forward;
pub mod kv;
pub mod raft;
pub mod range;
pub mod route;
pub mod status;
