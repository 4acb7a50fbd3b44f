# What the benchmark scripts share; sourced, not run. Expects ROOT (the
# repository) to be set.

# Installs Debian's etcd-server and etcd-client when etcd or etcdctl is
# missing.
need_etcd() {
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
        echo "== installing etcd-server and etcd-client (apt-get)" >&2
        apt-get update -q
        apt-get install -y -q etcd-server etcd-client
    fi
}

# Sets RINGKV to $RINGKV_BIN, or to a release build of ringkv made now
# (in CARGO_TARGET_DIR when set).
need_ringkv() {
    if [ -n "${RINGKV_BIN:-}" ]; then
        RINGKV=$RINGKV_BIN
    else
        echo "== building ringkv (release)" >&2
        cargo build --release -q -p ringkv
        RINGKV=${CARGO_TARGET_DIR:-$ROOT/target}/release/ringkv
    fi
}
