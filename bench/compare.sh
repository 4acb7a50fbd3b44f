#!/usr/bin/env bash
# ringkv against etcd on this machine, same workloads, same run.
#
#   bench/compare.sh [--quick] [--duration SECONDS]
#
# Installs Debian's etcd-server (and etcd-client, for etcdctl) if missing,
# builds ringkv in release mode, starts a 3-member etcd cluster and a
# 3-replica ringkv group on loopback with their data under one temporary
# directory (the same disk), runs each workload against etcd and then
# ringkv with the same `ringkv bench` client code, stops everything it
# started, prints `workload | metric | etcd | ringkv | ratio` and writes
# bench/results/latest.json. --quick: about 5 s per workload (default 30 s).
# etcd runs with its defaults (see docs/benchmarks.md); only its URLs are set.
# RINGKV_BIN=path: use that ringkv binary instead of building one (to
# compare builds); KEEP=1 keeps the data and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=30
WARMUP=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) DURATION=5; WARMUP=1 ;;
        --duration) DURATION=$2; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 1 ;;
    esac
    shift
done

. "$ROOT/bench/lib.sh"
need_etcd
need_ringkv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-compare.XXXXXX")
ETCD_PIDS=()
UP_PID=
cleanup() {
    for pid in "${ETCD_PIDS[@]}" $UP_PID; do kill "$pid" 2>/dev/null || true; done
    for pid in "${ETCD_PIDS[@]}" $UP_PID; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: etcd clients 23790-2, peers 23800-2; ringkv clients 27070-2 (Raft 28070-2).
ETCD_ADDRS=127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792
RINGKV_ADDRS=127.0.0.1:27070,127.0.0.1:27071,127.0.0.1:27072
CLUSTER=e0=http://127.0.0.1:23800,e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802

echo "== starting etcd (3 members) and ringkv (3 replicas) under $WORK" >&2
mkdir -p "$WORK/etcd" "$WORK/results"
for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
        --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token ringkv-compare \
        >"$WORK/etcd/e$i.log" 2>&1 &
    ETCD_PIDS+=($!)
done
"$RINGKV" up --positions 1 --replicas 3 --no-shell --base-port 27070 --data-dir "$WORK/ringkv" >"$WORK/up.log" 2>&1 &
UP_PID=$!

wait_for() { # what, command...
    local what=$1; shift
    for _ in $(seq 1 120); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "$what did not come up; logs in $WORK (KEEP=1 keeps them)" >&2
    exit 1
}
wait_for etcd etcdctl --endpoints "$ETCD_ADDRS" endpoint health
wait_for ringkv test -s "$WORK/ringkv/cluster.json"
wait_for ringkv "$RINGKV" --addr "$RINGKV_ADDRS" get 0

# Pids of the servers, for memory figures.
RINGKV_PIDS=$(python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1]))["processes"]))' "$WORK/ringkv/cluster.json")
cpu_ticks() { # user + system CPU time of the pids, in clock ticks
    local sum=0 t
    for pid in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}
HZ=$(getconf CLK_TCK)
peak_rss_mib() { # the largest VmHWM (peak resident set) among the pids, in MiB
    local max=0 kb
    for pid in "$@"; do
        kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${kb:-0}" -gt "$max" ] && max=$kb
    done
    python3 -c "print(round($max / 1024, 1))"
}

# name | bench flags
WORKLOADS=(
    "write, 1 client|--workload set --clients 1"
    "write, 256 clients|--workload set --clients 256"
    "linearizable read, 256 clients|--workload get --clients 256 --keys 10000"
    "serializable read, 256 clients|--workload get-serializable --clients 256 --keys 10000 --no-preload"
    "50/50 read/testAndSet, 64 clients, 10000 keys|--workload mixed --read-ratio 0.5 --clients 64 --keys 10000 --no-preload"
)
echo "== $(uptime)" >&2
n=0
for w in "${WORKLOADS[@]}"; do
    name=${w%%|*}
    flags=${w#*|}
    for target in etcd ringkv; do
        addrs=$ETCD_ADDRS; pids="${ETCD_PIDS[*]}"
        [ "$target" = ringkv ] && addrs=$RINGKV_ADDRS && pids=$RINGKV_PIDS
        # shellcheck disable=SC2086
        cpu_before=$(cpu_ticks $pids)
        echo "== $name: $target" >&2
        # shellcheck disable=SC2086
        "$RINGKV" bench --target "$target" --addr "$addrs" $flags --key-size 8 --value-size 256 \
            --duration "$DURATION" --warmup "$WARMUP" --json-file "$WORK/results/$n-$target.json" \
            --svg "$WORK/results/$n-$target.svg" | sed 's/^/   /' >&2
        # Server CPU (all 3 processes) over the run (preload, warm-up, measured time).
        # shellcheck disable=SC2086
        echo "$(( $(cpu_ticks $pids) - cpu_before )) $HZ $WARMUP" >"$WORK/results/$n-$target.cpu"
        if [ "$name" = "write, 256 clients" ]; then
            if [ "$target" = etcd ]; then
                peak_rss_mib "${ETCD_PIDS[@]}" >"$WORK/results/$n-etcd.rss"
            else
                # shellcheck disable=SC2086
                peak_rss_mib $RINGKV_PIDS >"$WORK/results/$n-ringkv.rss"
            fi
        fi
    done
    echo "$name" >"$WORK/results/$n.name"
    n=$((n + 1))
done
echo "== $(uptime)" >&2

mkdir -p "$ROOT/bench/results"
cp "$WORK"/results/*.svg "$ROOT/bench/results/" 2>/dev/null || true
python3 "$ROOT/bench/table.py" "$WORK/results" "$n" "$ROOT/bench/results/latest.json"
