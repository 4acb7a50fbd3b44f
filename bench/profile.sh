#!/usr/bin/env bash
# Instructions per operation (issue 14): a meter that does not depend on
# what else the machine is running.
#
#   bench/profile.sh [--quick] [--only set-256]
#
# Builds ringkv in release mode (debug line tables come from Cargo.toml's
# release profile), asks `ringkv up` for the command line of each replica of
# a 3-replica group, then starts those three `ringkv server` processes
# itself under `valgrind --tool=callgrind`, with long Raft timeouts so that
# the slowed group keeps its leader. For each of set and get at 1 and 256
# clients: a warm-up run (native client), then a measured run of a fixed
# number of operations by a `ringkv bench` that also runs under callgrind.
# The servers' counters are zeroed (callgrind_control -z) before the
# measured run and dumped (-d) after it; what an idle server executes in
# that time (heartbeats, timers; measured once beforehand) is subtracted.
# The client's count is the measured run minus a run of (almost) no
# operations, divided by the difference in operations. Prints
# `workload | clients | ops | leader | follower | client` in instructions
# per operation and writes bench/results/profile.json, with the top
# functions by self cost (callgrind_annotate's default view) of each
# process for each run.
# (perf stat -e instructions would be quicker, but this VM has no hardware
# counters.) On a shared machine wrap it in `flock /tmp/heavy.lock`.
# --quick: a tenth of the operations. --only NAME: that run alone (set-1,
# set-256, get-1, get-256). RINGKV_BIN=path: that binary instead of a build;
# KEEP=1 keeps the callgrind files and logs; OUT=file: the JSON elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCALE=1
ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) SCALE=10 ;;
        --only) ONLY=$2; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 1 ;;
    esac
    shift
done

. "$ROOT/bench/lib.sh"
need_ringkv
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

OUT=${OUT:-$ROOT/bench/results/profile.json}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-profile.XXXXXX")
BASE_PORT=61070  # above the ephemeral range, clear of the tests' ports
ADDRS=(127.0.0.1:61070 127.0.0.1:61071 127.0.0.1:61072)
# name | workload | clients | measured operations
RUNS="set-1 set 1 2000
set-256 set 256 20000
get-1 get 1 2000
get-256 get 256 20000"
# Keys preloaded for the get runs.
KEYS=2000
# Raft timing under valgrind (about 50 x slower than native).
RAFT_ARGS=(--heartbeat-ms 500 --election-timeout-min-ms 8000 --election-timeout-max-ms 12000)
TOP=25

PIDS=()
UP_PID=
cleanup() {
    for pid in $UP_PID "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in $UP_PID "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The replicas' command lines, as `ringkv up` starts them.
echo "== asking ringkv up for the replicas' command lines" >&2
"$RINGKV" up --no-shell --no-metrics --positions 1 --replicas 3 --base-port $BASE_PORT \
    --data-dir "$WORK/up" >"$WORK/up.log" 2>&1 </dev/null &
UP_PID=$!
for _ in $(seq 600); do [ -s "$WORK/up/cluster.json" ] && break; sleep 0.1; done
[ -s "$WORK/up/cluster.json" ] || { cat "$WORK/up.log" >&2; exit 1; }
kill -TERM $UP_PID; wait $UP_PID || true; UP_PID=
python3 - "$WORK/up/cluster.json" "$WORK" <<'EOF'
import json, shutil, sys
procs = sorted(json.load(open(sys.argv[1]))["processes"], key=lambda p: p["replica"])
# LMDB's default 64 GiB map is more address space than valgrind gives.
ring = sys.argv[1].replace("cluster.json", "ring.toml")
text = open(ring).read()
open(ring, "w").write("lmdb_map_bytes = 1073741824\n" + text)
for p in procs:
    shutil.rmtree(p["data_dir"])  # start afresh, under valgrind
    with open(f"{sys.argv[2]}/argv.{p['replica']}", "wb") as f:
        f.write(b"\0".join(a.encode() for a in p["argv"]) + b"\0")
EOF

# 2. The group under callgrind.
echo "== starting 3 replicas under callgrind in $WORK" >&2
mkdir -p "$WORK/cg"
for r in 0 1 2; do
    mapfile -d '' argv <"$WORK/argv.$r"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg/r$r.out" \
        "${argv[@]}" "${RAFT_ARGS[@]}" >"$WORK/r$r.log" 2>&1 &
    PIDS+=($!)
done

# The replica index (its node id) that leads, or nothing.
leader() {
    "$RINGKV" --json --addr "$(IFS=,; echo "${ADDRS[*]}")" status 2>/dev/null | python3 -c '
import json, sys
def walk(x):
    if isinstance(x, dict):
        if str(x.get("role", "")).lower() == "leader":
            print(x["node_id"]); sys.exit()
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
walk(json.load(sys.stdin))' 2>/dev/null || true
}
LEADER=
for _ in $(seq 180); do
    LEADER=$(leader)
    [ -n "$LEADER" ] && break
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { tail -n 20 "$WORK"/r*.log >&2; exit 1; }; done
    sleep 1
done
[ -n "$LEADER" ] || { tail -n 20 "$WORK"/r*.log >&2; echo "no leader after 180 s" >&2; exit 1; }
echo "== replica $LEADER leads" >&2
ROLES=()
for r in 0 1 2; do
    if [ "$r" = "$LEADER" ]; then ROLES+=(leader); else ROLES+=(follower); fi
done

# Dumps replica r's counters; prints the new file's name.
dump() {
    local r=$1 before
    before=$(ls "$WORK/cg" | grep -c "^r$r.out" || true)
    callgrind_control -d "${PIDS[$r]}" >/dev/null 2>&1
    for _ in $(seq 300); do
        [ "$(ls "$WORK/cg" | grep -c "^r$r.out")" -gt "$before" ] && break
        sleep 0.1
    done
    ls -t "$WORK/cg"/r$r.out* | head -1
}
zero() { for r in 0 1 2; do callgrind_control -z "${PIDS[$r]}" >/dev/null 2>&1; done; }
# Total instructions (Ir) in a callgrind file.
total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
now() { date +%s.%N; }

bench() { "$RINGKV" --addr "${ADDRS[$LEADER]}" bench --key-size 8 --value-size 256 --keys $KEYS "$@"; }

# 3. Idle cost per second (heartbeats, timers), to subtract.
echo "== idle rate (10 s)" >&2
sleep 2
zero
t0=$(now)
sleep 10
t1=$(now)
IDLE=()
for r in 0 1 2; do
    f=$(dump $r)
    IDLE+=("$(python3 -c "print($(total "$f") / ($t1 - $t0))")")
done
echo "   idle instructions/s: ${IDLE[*]}" >&2

mkdir -p "$WORK/json"
preloaded=
echo "$RUNS" | while read -r name workload clients ops; do
    [ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
    ops=$((ops / SCALE))
    conns=$((clients < 16 ? clients : 16))
    if [ "$workload" = get ] && [ -z "$preloaded" ]; then
        echo "== preloading $KEYS keys" >&2
        bench --workload get --clients 16 --ops 1 --warmup 0 --json-file "$WORK/json/preload.json" >/dev/null
        preloaded=1
    fi
    echo "== $name: warm-up ($((ops / 5)) operations)" >&2
    bench --workload "$workload" --clients "$clients" --ops $((ops / 5)) --warmup 0 --no-preload \
        --json-file "$WORK/json/$name.warm.json" >/dev/null
    echo "== $name: client baseline (1 operation)" >&2
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg/$name.client0.out" \
        "$RINGKV" --addr "${ADDRS[$LEADER]}" bench --key-size 8 --value-size 256 --keys $KEYS \
        --workload "$workload" --clients "$clients" --connections $conns --ops 1 --warmup 0 --no-preload \
        --json-file "$WORK/json/$name.base.json" >/dev/null 2>"$WORK/$name.client0.log"
    echo "== $name: measured ($ops operations)" >&2
    zero
    t0=$(now)
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg/$name.client.out" \
        "$RINGKV" --addr "${ADDRS[$LEADER]}" bench --key-size 8 --value-size 256 --keys $KEYS \
        --workload "$workload" --clients "$clients" --connections $conns --ops $ops --warmup 0 --no-preload \
        --json-file "$WORK/json/$name.json" >/dev/null 2>"$WORK/$name.client.log"
    t1=$(now)
    files=()
    for r in 0 1 2; do
        f=$(dump $r)
        cp "$f" "$WORK/cg/$name.r$r.out"
        files+=("$WORK/cg/$name.r$r.out")
    done
    python3 - "$WORK" "$name" "$workload" "$clients" "$t0" "$t1" "$TOP" "${ROLES[*]}" "${IDLE[*]}" "${files[@]}" <<'EOF'
import json, re, subprocess, sys
work, name, workload, clients, t0, t1, top, roles, idle = sys.argv[1:10]
files = sys.argv[10:]
roles, idle, seconds = roles.split(), [float(x) for x in idle.split()], float(t1) - float(t0)

def total(path):
    for line in open(path):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no total in {path}")

def self_costs(path):
    """Self cost (Ir) per file:function, as callgrind_annotate computes it,
    read from the file itself: callgrind_annotate 3.19 counts the frames
    that were on a thread's stack when the counters were zeroed (thread
    start, the tokio worker loop: `calls=0` lines) as if the whole run were
    their own cost. The cost line after each calls= line is a call's
    inclusive cost and is skipped."""
    names = {"fl": {}, "fn": {}}
    fl = fn = None
    costs, skip = {}, False
    for line in open(path, errors="replace"):
        if line[0].isdigit() or line[0] in "+-*":
            if skip:
                skip = False
            elif fn is not None and len(line.split()) >= 2:
                key = f"{fl}:{fn}"
                costs[key] = costs.get(key, 0) + int(line.split()[1])
            continue
        m = re.match(r"(c?)(fl|fi|fe|fn)=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m:
            called, kind, ident, name = m.groups()
            table = names["fn" if kind == "fn" else "fl"]
            if name is not None:
                table[ident] = name
            if called or kind in ("fi", "fe"):
                continue
            if kind == "fn":
                fn = table.get(ident, ident)
            else:
                fl = table.get(ident, ident)
        elif line.startswith("calls="):
            skip = True
    return costs

def annotate(path):
    costs = self_costs(path)
    whole = sum(costs.values())
    best = sorted(costs.items(), key=lambda kv: -kv[1])[: int(top)]
    return [{"ir": ir, "percent": round(100 * ir / whole, 2), "function": f} for f, ir in best]

run = json.load(open(f"{work}/json/{name}.json"))
base = json.load(open(f"{work}/json/{name}.base.json"))
ops = run["ops"]
if run["errors"]:
    raise SystemExit(f"{name}: {run['errors']} errors: {run['first_error']}")
result = {"name": name, "workload": workload, "clients": int(clients), "ops": ops,
          "seconds": round(seconds, 1), "processes": []}
for r, path in enumerate(files):
    ir = total(path)
    idle_ir = idle[r] * seconds
    result["processes"].append({"process": roles[r], "replica": r, "instructions": ir,
                                "idle_instructions": round(idle_ir),
                                "per_op": round((ir - idle_ir) / ops), "top": annotate(path)})
cpath = f"{work}/cg/{name}.client.out"
c, c0 = total(cpath), total(f"{work}/cg/{name}.client0.out")
result["processes"].append({"process": "client", "instructions": c, "baseline_instructions": c0,
                            "baseline_ops": base["ops"],
                            "per_op": round((c - c0) / (ops - base["ops"])), "top": annotate(cpath)})
json.dump(result, open(f"{work}/json/{name}.profile.json", "w"), indent=1)
per = {p["process"] + (str(p.get("replica", "")) if p["process"] == "follower" else ""): p["per_op"]
       for p in result["processes"]}
print(f"   {name}: {ops} ops in {seconds:.0f} s; instructions/op {per}", file=sys.stderr)
EOF
done

# 4. The table and the JSON.
python3 - "$WORK" "$OUT" "$LEADER" <<'EOF'
import glob, json, subprocess, sys
work, out, leader = sys.argv[1:4]
runs = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/json/*.profile.json"))]
order = ["set-1", "set-256", "get-1", "get-256"]
runs.sort(key=lambda r: order.index(r["name"]))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print("| workload | clients | ops | leader | follower | follower | client | servers |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for r in runs:
    p = r["processes"]
    lead = [x["per_op"] for x in p if x["process"] == "leader"]
    fol = [x["per_op"] for x in p if x["process"] == "follower"]
    cl = [x["per_op"] for x in p if x["process"] == "client"]
    cells = lead + fol + cl + [sum(lead + fol)]
    print(f"| {r['workload']} | {r['clients']} | {r['ops']} | " + " | ".join(f"{c:,}" for c in cells) + " |")
json.dump({"commit": commit, "leader_replica": int(leader), "unit": "instructions per operation (callgrind Ir)",
           "runs": runs}, open(out, "w"), indent=1)
print(f"written {out}", file=sys.stderr)
EOF
