#!/usr/bin/env python3
"""Failover time: kill -9 a group's leader under writers and measure the
gap from the kill to the next acknowledged write, over many kills.

    python3 bench/failover.py [--bin target/release/ringkv] [--kills 10]

Starts `ringkv up --positions 1 --replicas 3` and two writers of fresh
keys, each back to back with one write in flight (`--clients` picks):

    raw   a raw gRPC client (grpcio): `Set` with a 1 s deadline, sent
          again at once on any error, through a replica that is not the
          leader, which forwards to it
    rust  the Rust client library, as `ringkv probe` runs it: given all
          three replicas, ring-aware (it aims at the leader its answers
          name), its own retries and backoff

Each round kills the leader, waits for each writer's first acknowledged
write sent after the kill (a write in flight at the kill may still be
answered by the dying leader), then restarts the killed replica from its
command line in cluster.json and lets it catch up. Per kill it prints each
writer's gap and where the time went, from the survivors' server.log lines
(their clocks are the machine's):

    detect  kill -> a survivor stands for election (heartbeats stop, then
            its election timer fires, or a refused candidate prompts it)
    elect   -> a survivor becomes leader
    commit  -> the raw writer's next acknowledged write

and at the end each writer's median and worst gap and the load average.
With --quiet-bench SECONDS it first runs `ringkv bench` (256 clients) that
long with no fault and reports the elections meanwhile: timeouts short
enough for a fast failover must not also unseat a busy leader.
"""
import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from grpc_stubs import ROOT, key, stubs


def metrics(metrics_addr: str) -> str:
    """The replica's /metrics text ("" when it does not answer)."""
    try:
        return urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=1).read().decode()
    except OSError:
        return ""


def role(metrics_addr: str) -> str:
    """The replica's Raft role from its /metrics, or "down"."""
    text = metrics(metrics_addr)
    if not text:
        return "down"
    m = re.search(r'^ringkv_raft_role\{role="(\w+)"\} 1$', text, re.M)
    return m.group(1) if m else "unknown"


def elections(procs) -> tuple:
    """(elections stood, summed over the replicas; the highest term)."""
    stood, term = 0, 0
    for p in procs:
        text = metrics(p["metrics_address"])
        e = re.search(r"^ringkv_raft_elections_started_total(?:\{[^}]*\})? (\S+)$", text, re.M)
        t = re.search(r"^ringkv_raft_term(?:\{[^}]*\})? (\S+)$", text, re.M)
        stood += int(float(e.group(1))) if e else 0
        term = max(term, int(float(t.group(1))) if t else 0)
    return stood, term


def quiet_bench(bin, procs, seconds: float, clients: int):
    """`ringkv bench` (set) against every replica with no fault: prints its
    throughput and the elections meanwhile (there should be none)."""
    before = elections(procs)
    out = subprocess.run([bin, "--addr", ",".join(p["address"] for p in procs), "bench", "--clients", str(clients),
                          "--duration", str(seconds)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    after = elections(procs)
    lines = [line for line in out.stdout.splitlines() if "ops/s" in line or "latency" in line]
    load = os.getloadavg()
    print(f"no-fault bench, {clients} clients, {seconds:.0f} s: {' · '.join(lines) or out.stderr.strip()}")
    print(f"  elections meanwhile: {after[0] - before[0]} (term {before[1]} -> {after[1]}); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def first_after(logs, since: float, needle: str):
    """The earliest time after `since` (epoch seconds) at which a line
    containing `needle` was logged in any of `logs`."""
    best = None
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            m = LOG_TIME.match(line)
            if not m or needle not in line:
                continue
            t = datetime.fromisoformat(m.group(1)[:26] + "+00:00").timestamp()
            if t > since and (best is None or t < best):
                best = t
    return best


class Acks:
    """The wall times (sent, acknowledged) of a writer's writes."""

    def __init__(self):
        self.acks = []
        self.lock = threading.Lock()

    def record(self, sent: float, acked: float):
        with self.lock:
            self.acks.append((sent, acked))

    def first_ack_after(self, t: float, within: float):
        """The first acknowledgement of a write sent after `t`: one sent
        before a kill may still be answered by the old leader."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                later = [a for (sent, a) in self.acks[-2000:] if sent > t]
            if later:
                return later[0]
            time.sleep(0.005)
        return None


class RawWriter(Acks, threading.Thread):
    """Writes fresh keys back to back through one replica with grpcio."""

    def __init__(self, kv, kv_grpc, addr):
        Acks.__init__(self)
        threading.Thread.__init__(self, daemon=True)
        import grpc

        self.grpc = grpc
        self.kv = kv
        self.stub = kv_grpc.KeyValueStub(grpc.insecure_channel(addr))
        self.stop = False

    def run(self):
        n = random.randrange(1 << 40, 1 << 50) << 12
        while not self.stop:
            n += 1
            sent = time.time()
            try:
                self.stub.Set(self.kv.SetRequest(key=key(n), timestamp=1, data=b"x" * 64), timeout=1)
                self.record(sent, time.time())
            except self.grpc.RpcError:
                pass


class RustWriter(Acks, threading.Thread):
    """`ringkv probe` (the Rust client library) against every replica:
    reads its `ack SENT_US ACKED_US ...` lines."""

    def __init__(self, bin, addrs, log):
        Acks.__init__(self)
        threading.Thread.__init__(self, daemon=True)
        self.proc = subprocess.Popen([bin, "--addr", ",".join(addrs), "probe"], stdout=subprocess.PIPE,
                                     stderr=open(log, "wb"), stdin=subprocess.DEVNULL, start_new_session=True)

    def run(self):
        for line in self.proc.stdout:
            f = line.split()
            if f and f[0] == b"ack":
                self.record(int(f[1]) / 1e6, int(f[2]) / 1e6)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "ringkv"))
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--clients", default="raw,rust", help="the writers, comma-separated: raw, rust")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after a restart before the next kill")
    ap.add_argument("--quiet-bench", type=float, default=0, metavar="SECONDS",
                    help="first run `ringkv bench` this long with no fault and count the elections")
    ap.add_argument("--bench-clients", type=int, default=256)
    ap.add_argument("--server-arg", action="append", default=[],
                    help="passed to every server (e.g. --server-arg=--election-timeout-max-ms=200)")
    args = ap.parse_args()
    clients = args.clients.split(",")
    assert clients and set(clients) <= {"raw", "rust"}, f"unknown --clients {args.clients}"

    work = Path(tempfile.mkdtemp(prefix="ringkv-failover-"))
    kv, kv_grpc = stubs(work / "gen")
    base = random.randrange(14000, 26000)
    up = subprocess.Popen([args.bin, "up", "--positions", "1", "--replicas", "3", "--base-port", str(base),
                           "--data-dir", str(work / "data"), "--no-shell"]
                          + [f"--server-arg={a}" for a in args.server_arg],
                          stdout=open(work / "up.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          start_new_session=True)
    restarted = {}
    writers = {}
    try:
        listing = work / "data" / "cluster.json"
        deadline = time.monotonic() + 120
        while not listing.exists():
            assert time.monotonic() < deadline and up.poll() is None, f"ring did not start: {work}/up.log"
            time.sleep(0.2)
        procs = json.loads(listing.read_text())["processes"]
        logs = [Path(p["data_dir"]) / "server.log" for p in procs]

        def leader():
            while True:
                for i, p in enumerate(procs):
                    if role(p["metrics_address"]) == "leader":
                        return i
                time.sleep(0.05)

        leader()
        if args.quiet_bench > 0:
            quiet_bench(args.bin, procs, args.quiet_bench, args.bench_clients)
        if "rust" in clients:
            writers["rust"] = RustWriter(args.bin, [p["address"] for p in procs], work / "probe.log")
            writers["rust"].start()
        gaps = {c: [] for c in clients}
        ms = lambda a, b: f"{(b - a) * 1000:4.0f}" if a and b else "   ?"
        for round in range(args.kills):
            lead = leader()
            if "raw" in clients:
                # Write through a replica that survives the kill.
                via = (lead + 1) % len(procs)
                raw = writers.get("raw")
                if raw is None or raw.via != via:
                    if raw:
                        raw.stop = True
                    raw = writers["raw"] = RawWriter(kv, kv_grpc, procs[via]["address"])
                    raw.via = via
                    raw.start()
            for c, w in writers.items():
                assert w.first_ack_after(time.time(), 10), f"{c}: no write acknowledged before the kill"
            pid = restarted[lead].pid if lead in restarted else procs[lead]["pid"]
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)
            acks = {}
            for c, w in writers.items():
                acks[c] = w.first_ack_after(killed_at, 10)
                assert acks[c], f"{c}: no write acknowledged within 10 s of killing replica {lead}"
                gaps[c].append((acks[c] - killed_at) * 1000)
            survivors = [log for i, log in enumerate(logs) if i != lead]
            stood = first_after(survivors, killed_at, "standing for election")
            won = first_after(survivors, killed_at, "became leader")
            shown = " · ".join(f"{c} {gaps[c][-1]:4.0f} ms" for c in clients)
            print(f"kill {round + 1:2}: replica {lead} · {shown} = detect {ms(killed_at, stood)} "
                  f"+ elect {ms(stood, won)} + commit {ms(won, min(acks.values()))} ms", flush=True)
            # Back up from its own data dir, appending to its log.
            p = procs[lead]
            restarted[lead] = subprocess.Popen(p["argv"], stdout=open(logs[lead], "ab"), stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
            time.sleep(args.settle)
        load = os.getloadavg()
        for c in clients:
            g = gaps[c]
            print(f"{c}: {len(g)} kills: median {statistics.median(g):.0f} ms, worst {max(g):.0f} ms, "
                  f"best {min(g):.0f} ms")
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; servers: {' '.join(args.server_arg) or 'defaults'}")
    finally:
        for w in writers.values():
            if isinstance(w, RustWriter):
                w.close()
            else:
                w.stop = True
        for p in restarted.values():
            p.kill()
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)


if __name__ == "__main__":
    main()
