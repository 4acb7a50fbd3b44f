//! Generates the gRPC code from `proto/` with protox, a pure-Rust protobuf
//! compiler, so a fresh machine needs no `protoc` to build.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["ringkv/v1/kv.proto", "ringkv/v1/raft.proto", "ringkv/v1/admin.proto", "project/kvs.proto"];
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure().bytes(".ringkv.v1").compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    Ok(())
}
