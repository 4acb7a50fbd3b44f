//! `ringkv bench`: the load generator of the `ringkv-bench` crate, against
//! ringkv (default) or etcd (`--target etcd`). This file only prints.

pub use ringkv_bench::BenchArgs;

pub async fn run(args: BenchArgs, addrs: &[String], json: bool) -> anyhow::Result<()> {
    let result = ringkv_bench::run(&args, addrs).await?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!("{}", result.text());
    }
    if result.ops == 0 {
        anyhow::bail!("no operation completed ({} errors)", result.errors);
    }
    Ok(())
}
