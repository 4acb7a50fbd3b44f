//! Generates the admin portal's gRPC code from `proto/shop/v1/admin.proto`
//! with protox (no `protoc` needed). Requests are decoded by the shop's own
//! codec (`portal::codec`), so a malformed request is INVALID_ARGUMENT.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["shop/v1/admin.proto"];
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure().codec_path("crate::portal::codec::StrictCodec").compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    Ok(())
}
