//! A smoke run of `ringkv bench` against a server it starts: the tool keeps
//! working (every workload completes operations without errors, writes its
//! JSON and SVG). No timing is asserted: benchmarks are not tests.

mod common;

use common::{ringkv, Server};
use num_bigint::BigInt;

fn bench(server: &Server, dir: &std::path::Path, name: &str, flags: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("{name}.json"));
    let svg = dir.join(format!("{name}.svg"));
    let addrs = server.addrs();
    let mut args = vec!["bench", "--addr", &addrs, "--warmup", "0.2", "--keys", "200"];
    args.extend(flags);
    let (json_s, svg_s) = (json.display().to_string(), svg.display().to_string());
    args.extend(["--json-file", &json_s, "--svg", &svg_s]);
    let (code, out, err) = ringkv(&args);
    assert_eq!(code, 0, "{name}: stdout {out}\nstderr {err}");
    assert!(out.contains("ops/s") && out.contains("p99.9"), "{name}: {out}");
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["errors"], 0, "{name}: {result}");
    assert!(result["ops"].as_u64().unwrap() > 0, "{name}: {result}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("<polyline"), "{name}: {plot}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_against_a_live_server() {
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let set = bench(&server, dir.path(), "set", &["--workload", "set", "--clients", "4", "--ops", "200"]);
    assert!(set["ops"].as_u64().unwrap() >= 200);
    bench(
        &server,
        dir.path(),
        "mixed",
        &["--workload", "mixed", "--clients", "8", "--duration", "1", "--distribution", "zipfian"],
    );
    for w in ["get", "get-serializable", "tas"] {
        bench(&server, dir.path(), w, &["--workload", w, "--clients", "8", "--duration", "0.5", "--no-preload"]);
    }
    // The preloaded keys are the 8-byte integers 0x40 << 56 | i, version > 1
    // after the testAndSet runs touched them.
    let key = BigInt::from((0x40u64 << 56) | 7);
    let v = server.client().get(&key).await.unwrap().value.expect("preloaded key 7");
    assert_eq!(v.data.len(), 256);
}

#[test]
fn etcd_target_against_a_non_etcd_port_fails_cleanly() {
    let port = ringkv_testkit::free_port().unwrap().to_string();
    let addr = format!("127.0.0.1:{port}");
    let (code, _, err) =
        ringkv(&["bench", "--target", "etcd", "--addr", &addr, "--workload", "get", "--duration", "0.5"]);
    assert_ne!(code, 0);
    assert!(err.contains("preloading"), "{err}");
}
