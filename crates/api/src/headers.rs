//! gRPC metadata names that are part of the wire contract (kv.proto's
//! comments describe them): defined here once, for server and client.

/// Request metadata: ring hops taken so far. Reply header: hops taken from
/// the answering node on (0 when it served the request itself).
pub const HOPS: &str = "ringkv-hops";

/// Reply header: the client address of the leader of the group that
/// answered, as the answering replica knows it.
pub const LEADER: &str = "ringkv-leader";
