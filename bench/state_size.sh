#!/usr/bin/env bash
# What the state's size costs: a standalone ringkv server against a
# single-member etcd on this machine, same client, same run (issue 17).
#
#   bench/state_size.sh [--sizes 0,1000000,5000000] [--writes 200000]
#
# For each preload size (keys 0..N-1, 8-byte keys, 256-byte values, written
# by `ringkv bench`'s preload), each system starts on a fresh data dir, is
# preloaded, then takes --writes fresh inserts (`--workload set`, 64 clients,
# 256-byte values), is killed with SIGKILL and restarted on the same dir.
# Measured: bytes the server process wrote to disk during the inserts
# (/proc/PID/io write_bytes) per byte of values, the data dir (du -sb) after
# the preload, SIGKILL -> first read served (ms from the restart command to
# the first successful read of a preloaded key) and the server's peak RSS
# (VmHWM). Prints `keys | metric | etcd | ringkv | ratio` and writes
# bench/results/state_size.json. Installs Debian's etcd-server/etcd-client if
# missing; builds ringkv in release mode (RINGKV_BIN=path: use that binary);
# everything lives under one mktemp dir, removed at the end (KEEP=1 keeps it).
# etcd runs with its defaults except --quota-backend-bytes (8 GiB: 5M keys
# do not fit in its default 2 GiB). Preloading 5M keys takes minutes per
# system; progress goes to stderr. `--sizes 0,100000` is a quick try
# (about 4 minutes); --writes N changes the number of inserts.
# What the figures hold: etcd's data dir counts its preallocated 64 MB WAL
# segments (about 120 MiB when empty); its restart includes its election
# timeout (1 s by default, randomised up to 2 s) before it serves a read;
# both restarts include one client start per poll (curl for etcd, the
# `ringkv get` CLI for ringkv, a few ms each).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SIZES=0,1000000,5000000
WRITES=200000
CLIENTS=64
KEY_SIZE=8
VALUE_SIZE=256
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift ;;
        --writes) WRITES=$2; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 1 ;;
    esac
    shift
done

. "$ROOT/bench/lib.sh"
need_etcd
need_ringkv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-state-size.XXXXXX")
mkdir -p "$WORK/results"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports apart from compare.sh's, so the two scripts do not collide.
ETCD_ADDR=127.0.0.1:24790
ETCD_PEER=http://127.0.0.1:24800
RINGKV_ADDR=127.0.0.1:27170

# --- the two servers: start one on DIR; SERVER_PID is the server process
# itself (both run as a single process: `ringkv server`, not the `ringkv up`
# supervisor, so /proc/PID is the process that does the writing).

start_etcd() { # dir
    # --initial-* only matter on the first start; on a restart etcd reads
    # its membership from the data dir.
    etcd --name e0 --data-dir "$1" \
        --listen-client-urls "http://$ETCD_ADDR" --advertise-client-urls "http://$ETCD_ADDR" \
        --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
        --initial-cluster "e0=$ETCD_PEER" --initial-cluster-state new \
        --quota-backend-bytes $((8 << 30)) >>"$1.log" 2>&1 &
    SERVER_PID=$!
}

start_ringkv() { # dir
    "$RINGKV" server --data-dir "$1" --listen "$RINGKV_ADDR" >>"$1.log" 2>&1 &
    SERVER_PID=$!
}

# One read of preloaded key 0 (with 0 keys: of key 0, absent; an answer
# saying so is a read served). Succeeds when the server answered it.
probe_etcd() { # keys
    local out
    # The JSON gateway, because key 0 ("@" and seven NUL bytes, base64
    # QAAAAAAAAAA=) cannot be passed to etcdctl on a command line.
    out=$(curl -sf --max-time 1 -X POST "http://$ETCD_ADDR/v3/kv/range" -d '{"key":"QAAAAAAAAAA="}') || return 1
    if [ "$1" -gt 0 ]; then [[ $out == *'"kvs"'* ]]; else [[ $out == *'"header"'* ]]; fi
}

probe_ringkv() { # keys
    local out
    # Key 0 of `ringkv bench` is the integer 0x4000000000000000.
    out=$("$RINGKV" --addr "$RINGKV_ADDR" --timeout 1 --json get 4611686018427387904 2>/dev/null) || return 1
    if [ "$1" -gt 0 ]; then [[ $out == *'"status":"SUCCESS"'* ]]; else [[ $out == *'"status":"ERROR"'* ]]; fi
}

# Polls probe_SYSTEM until it succeeds, at most 600 s; prints nothing.
wait_served() { # system keys
    local deadline=$((SECONDS + 600))
    until "probe_$1" "$2"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "$1 served no read within 600 s; logs in $WORK (KEEP=1 keeps them)" >&2
            exit 1
        fi
        sleep 0.01
    done
}

# --- figures from /proc

write_bytes() { # pid: bytes it caused to be written to storage so far
    awk '/^write_bytes:/ {print $2}' "/proc/$1/io"
}

peak_rss_kb() { # pid
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# Waits until the server has written nothing for 1 s (at most 60 s), so
# that work a run left behind (a snapshot being written, a batch being
# committed) is counted with that run and not with the next one.
quiesce() { # pid
    local before after
    for _ in $(seq 1 60); do
        before=$(write_bytes "$1")
        sleep 1
        after=$(write_bytes "$1")
        [ "$before" = "$after" ] && return 0
    done
    echo "   (still writing after 60 s; measuring anyway)" >&2
}

# --- the steps of one run

bench() { # system, then ringkv bench flags; its summary goes to stderr
    local system=$1 addr=$RINGKV_ADDR
    shift
    [ "$system" = etcd ] && addr=$ETCD_ADDR
    "$RINGKV" bench --target "$system" --addr "$addr" --key-size "$KEY_SIZE" --value-size "$VALUE_SIZE" \
        "$@" | sed 's/^/   /' >&2
}

# Writes keys 0..N-1: the bench's preload (of a read workload, followed by
# a single measured read). It shows no progress of its own, so the elapsed
# time and the data dir's size are printed every 30 s.
preload() { # system keys dir
    local started=$SECONDS pid
    bench "$1" --workload get --keys "$2" --clients 1 --warmup 0 --ops 1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq 1 30); do
            sleep 1
            kill -0 "$pid" 2>/dev/null || break
        done
        kill -0 "$pid" 2>/dev/null || break
        echo "   preloading $2 keys into $1: $((SECONDS - started)) s, data dir $(($(du -sb "$3" | cut -f1) >> 20)) MiB" >&2
    done
    wait "$pid"
}

# One system at one size; writes $WORK/results/KEYS-SYSTEM.json.
run_one() { # system keys
    local system=$1 keys=$2 dir=$WORK/$1-$2
    local t0 preload_s=0 du_bytes wb0 wb1 rss_kb restart_ms
    echo "== $(date +%T) $system, $keys keys (data in $dir)" >&2
    "start_$system" "$dir"
    wait_served "$system" 0

    if [ "$keys" -gt 0 ]; then
        t0=$(now_ms)
        preload "$system" "$keys" "$dir"
        preload_s=$(( ($(now_ms) - t0) / 1000 ))
    fi
    quiesce "$SERVER_PID"
    du_bytes=$(du -sb "$dir" | cut -f1)
    echo "   after the preload ($preload_s s): data dir $((du_bytes >> 20)) MiB" >&2

    # Fresh inserts; the bytes written include what the run left the server
    # to write after the client stopped (see quiesce).
    wb0=$(write_bytes "$SERVER_PID")
    bench "$system" --workload set --clients "$CLIENTS" --no-preload --warmup 0 --ops "$WRITES" \
        --json-file "$WORK/results/$keys-$system-set.json"
    quiesce "$SERVER_PID"
    wb1=$(write_bytes "$SERVER_PID")
    rss_kb=$(peak_rss_kb "$SERVER_PID")
    echo "   $(((wb1 - wb0) >> 20)) MiB written for $WRITES inserts; peak RSS $((rss_kb >> 10)) MiB" >&2

    # SIGKILL, then time the restart until a read is served.
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    t0=$(now_ms)
    "start_$system" "$dir"
    wait_served "$system" "$keys"
    restart_ms=$(($(now_ms) - t0))
    echo "   kill -9 -> first read served: $restart_ms ms" >&2

    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    printf '{"system": "%s", "keys": %d, "key_size": %d, "value_size": %d, "preload_s": %d, "data_dir_bytes": %d, "write_bytes": %d, "peak_rss_kb": %d, "restart_to_read_ms": %d}\n' \
        "$system" "$keys" "$KEY_SIZE" "$VALUE_SIZE" "$preload_s" "$du_bytes" "$((wb1 - wb0))" "$rss_kb" "$restart_ms" \
        >"$WORK/results/$keys-$system.json"
    [ -n "${KEEP:-}" ] || rm -rf "$dir"
}

echo "== $(uptime)" >&2
for keys in ${SIZES//,/ }; do
    for system in etcd ringkv; do
        run_one "$system" "$keys"
    done
done
echo "== $(uptime)" >&2

mkdir -p "$ROOT/bench/results"
python3 "$ROOT/bench/state_table.py" "$WORK/results" "$SIZES" "$ROOT/bench/results/state_size.json"
