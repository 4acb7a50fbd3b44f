"""Turns state_size.sh's per-run files into its table and state_size.json.

Usage: state_table.py RESULTS_DIR SIZES OUT_JSON. SIZES is the script's
comma-separated list of preload sizes; RESULTS_DIR holds, for each size K
and system T: K-T.json (the script's figures) and K-T-set.json (ringkv
bench --json-file of the inserts). Metrics, per size:

  written_mib             bytes the server wrote to disk during the inserts
  written_per_value_byte  the same over the inserts' value bytes (ops x value size)
  data_dir_mib            du -sb of the data dir after the preload
  data_dir_per_raw_byte   the same over the preloaded keys' key + value bytes
  restart_to_read_ms      kill -9, restart, until a read of a preloaded key is served
  peak_rss_mib            the server's VmHWM over preload and inserts
  insert_ops_per_s        the inserts' throughput (for context)

ratio = ringkv / etcd: below 1 is better, except for ops/s.
"""
import json
import os
import sys

import markdown

SYSTEMS = ("etcd", "ringkv")


def figures(results, keys, system):
    run = json.load(open(os.path.join(results, f"{keys}-{system}.json")))
    inserts = json.load(open(os.path.join(results, f"{keys}-{system}-set.json")))
    if inserts["errors"]:
        print(f"warning: {keys} keys: {system} had {inserts['errors']} errors: {inserts['first_error']}",
              file=sys.stderr)
    # The bench stops a few operations past --ops (those in flight), and all
    # of them were written: count what it reports.
    value_bytes = inserts["ops"] * run["value_size"]
    out = {
        "written_mib": run["write_bytes"] / 2**20,
        "written_per_value_byte": run["write_bytes"] / max(value_bytes, 1),
        "data_dir_mib": run["data_dir_bytes"] / 2**20,
    }
    if keys:
        out["data_dir_per_raw_byte"] = run["data_dir_bytes"] / (keys * (run["key_size"] + run["value_size"]))
    out["restart_to_read_ms"] = run["restart_to_read_ms"]
    out["peak_rss_mib"] = run["peak_rss_kb"] / 1024
    out["insert_ops_per_s"] = inserts["ops_per_s"]
    return out


def main():
    results, sizes, out = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3]
    rows = []
    for keys in sizes:
        per = {t: figures(results, keys, t) for t in SYSTEMS}
        for metric in per["etcd"]:
            rows.append({"keys": keys, "metric": metric, "etcd": per["etcd"][metric],
                         "ringkv": per["ringkv"][metric]})
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    print_table(rows)


def print_table(rows):
    head = ("keys", "metric", "etcd", "ringkv", "ratio")
    lines = []
    for r in rows:
        ratio = r["ringkv"] / r["etcd"] if r["etcd"] else float("inf")
        fmt = "{:.2f}" if r["metric"].endswith("_byte") else "{:.0f}"
        lines.append((f"{r['keys']:,}", r["metric"], fmt.format(r["etcd"]), fmt.format(r["ringkv"]),
                      f"{ratio:.2f}"))
    markdown.print_table(head, lines, "ratio = ringkv / etcd (lower is better, except insert_ops_per_s)")


if __name__ == "__main__":
    main()
