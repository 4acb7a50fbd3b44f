"""Turns compare.sh's per-run JSON files into its table and latest.json.

Usage: table.py RESULTS_DIR N OUT_JSON. RESULTS_DIR holds, for each workload
i < N: i.name, i-etcd.json, i-ringkv.json (ringkv bench --json-file) and,
for the memory run, i-etcd.rss and i-ringkv.rss (peak RSS in MiB), and
i-T.cpu ("TICKS HZ": the servers' CPU time during the run). The CPU figure
(server CPU microseconds per operation, all 3 processes) is printed, not
written to latest.json, whose metrics are fixed by the issue.
ratio = ringkv / etcd: above 1 is better for ops/s, below 1 for the others.
"""
import json
import os
import sys

import markdown


def main():
    results, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = []
    for i in range(n):
        name = open(os.path.join(results, f"{i}.name")).read().strip()
        runs = {t: json.load(open(os.path.join(results, f"{i}-{t}.json"))) for t in ("etcd", "ringkv")}
        for metric in ("ops_per_s", "p50_ms", "p99_ms"):
            rows.append({"workload": name, "metric": metric,
                         "etcd": runs["etcd"][metric], "ringkv": runs["ringkv"][metric]})
        for t in ("etcd", "ringkv"):
            if runs[t]["errors"]:
                print(f"warning: {name}: {t} had {runs[t]['errors']} errors: {runs[t]['first_error']}",
                      file=sys.stderr)
        rss = {t: os.path.join(results, f"{i}-{t}.rss") for t in ("etcd", "ringkv")}
        if all(os.path.exists(p) for p in rss.values()):
            rows.append({"workload": name, "metric": "rss_mib",
                         "etcd": float(open(rss["etcd"]).read()), "ringkv": float(open(rss["ringkv"]).read())})
        cpu = {t: os.path.join(results, f"{i}-{t}.cpu") for t in ("etcd", "ringkv")}
        if all(os.path.exists(p) for p in cpu.values()):
            per_op = {}
            for t in cpu:
                ticks, hz, warmup = open(cpu[t]).read().split()
                # The servers' CPU time over the run per operation, the ops of
                # the warm-up estimated at the measured rate (a preload, in the
                # first read run, is counted as CPU but not as ops: rough).
                ops = runs[t]["ops_per_s"] * (runs[t]["seconds"] + float(warmup))
                per_op[t] = int(ticks) / int(hz) * 1e6 / max(ops, 1)
            rows.append({"workload": name, "metric": "server_cpu_us_per_op", "etcd": per_op["etcd"],
                         "ringkv": per_op["ringkv"], "extra": True})
    with open(out, "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "extra"} for r in rows if not r.get("extra")], f, indent=1)
        f.write("\n")
    print_table(rows)


def print_table(rows):
    head = ("workload", "metric", "etcd", "ringkv", "ratio")
    lines = []
    for r in rows:
        ratio = r["ringkv"] / r["etcd"] if r["etcd"] else float("inf")
        fmt = "{:.0f}" if r["metric"] in ("ops_per_s", "server_cpu_us_per_op") else "{:.2f}"
        lines.append((r["workload"], r["metric"], fmt.format(r["etcd"]), fmt.format(r["ringkv"]), f"{ratio:.2f}"))
    markdown.print_table(head, lines, "ratio = ringkv / etcd (ops_per_s: higher is better; latency and memory: lower is better)")


if __name__ == "__main__":
    main()
