"""Turns compare.sh's per-run JSON files into its table and latest.json.

Usage: table.py RESULTS_DIR N OUT_JSON. RESULTS_DIR holds, for each workload
i < N: i.name, i-etcd.json, i-ringkv.json (ringkv bench --json-file) and,
for the memory run, i-etcd.rss and i-ringkv.rss (peak RSS in MiB).
ratio = ringkv / etcd: above 1 is better for ops/s, below 1 for the others.
"""
import json
import os
import sys


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
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    print_table(rows)


def print_table(rows):
    head = ("workload", "metric", "etcd", "ringkv", "ratio")
    lines = [head]
    for r in rows:
        ratio = r["ringkv"] / r["etcd"] if r["etcd"] else float("inf")
        fmt = "{:.0f}" if r["metric"] == "ops_per_s" else "{:.2f}"
        lines.append((r["workload"], r["metric"], fmt.format(r["etcd"]), fmt.format(r["ringkv"]), f"{ratio:.2f}"))
    widths = [max(len(l[c]) for l in lines) for c in range(len(head))]
    for j, l in enumerate(lines):
        print("| " + " | ".join(v.ljust(widths[c]) for c, v in enumerate(l)) + " |")
        if j == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("ratio = ringkv / etcd (ops_per_s: higher is better; latency and memory: lower is better)")


if __name__ == "__main__":
    main()
