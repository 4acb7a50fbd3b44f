//! Generates the etcd KV client from `proto/etcd/kv.proto` with protox (no
//! `protoc` needed), as `ringkv-api` does for ringkv's own protos.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    let file = "etcd/kv.proto";
    let fds = protox::compile([file], [&root])?;
    tonic_prost_build::configure().build_server(false).bytes(".etcdserverpb").compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.join(file).display());
    Ok(())
}
