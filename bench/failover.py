#!/usr/bin/env python3
"""Failover time: kill -9 a group's leader under a writer and measure the
gap from the kill to the next acknowledged write, over many kills.

    python3 bench/failover.py [--bin target/release/ringkv] [--kills 10]

Starts `ringkv up --positions 1 --replicas 3`; one raw gRPC client writes
fresh keys back to back (`Set`, 1 s deadline, retried at once on any
error) through a replica that is not the leader, which forwards to it.
Each round kills the leader, waits for the next acknowledged write, then
restarts the killed replica from its command line in cluster.json and lets
it catch up. Per kill it prints the gap and where it went, from the
survivors' server.log lines (their clocks are the machine's):

    detect  kill -> a survivor stands for election (heartbeats stop, then
            its election timer fires)
    elect   -> a survivor becomes leader
    commit  -> the writer's next acknowledged write

and at the end the median and worst gap and the load average.
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


def role(metrics_addr: str) -> str:
    """The replica's Raft role from its /metrics, or "down"."""
    try:
        text = urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=1).read().decode()
    except OSError:
        return "down"
    m = re.search(r'^ringkv_raft_role\{role="(\w+)"\} 1$', text, re.M)
    return m.group(1) if m else "unknown"


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


class Writer(threading.Thread):
    """Writes fresh keys back to back through one replica; records the
    wall time of every acknowledged write."""

    def __init__(self, kv, kv_grpc, addr):
        super().__init__(daemon=True)
        import grpc

        self.grpc = grpc
        self.kv = kv
        self.stub = kv_grpc.KeyValueStub(grpc.insecure_channel(addr))
        self.acks = []
        self.errors = 0
        self.stop = False
        self.lock = threading.Lock()

    def run(self):
        n = 1 << 40
        while not self.stop:
            n += 1
            sent = time.time()
            try:
                self.stub.Set(self.kv.SetRequest(key=key(n), timestamp=1, data=b"x" * 64), timeout=1)
                with self.lock:
                    self.acks.append((sent, time.time()))
            except self.grpc.RpcError:
                self.errors += 1

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "ringkv"))
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after a restart before the next kill")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="passed to every server (e.g. --server-arg=--election-timeout-max-ms=200)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ringkv-failover-"))
    kv, kv_grpc = stubs(work / "gen")
    base = random.randrange(14000, 26000)
    up = subprocess.Popen([args.bin, "up", "--positions", "1", "--replicas", "3", "--base-port", str(base),
                           "--data-dir", str(work / "data"), "--no-shell"]
                          + [f"--server-arg={a}" for a in args.server_arg],
                          stdout=open(work / "up.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          start_new_session=True)
    restarted = {}
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

        gaps = []
        writer = None
        for round in range(args.kills):
            lead = leader()
            # Write through a replica that survives the kill.
            via = (lead + 1) % len(procs)
            if writer is None or writer.via != via:
                if writer:
                    writer.stop = True
                writer = Writer(kv, kv_grpc, procs[via]["address"])
                writer.via = via
                writer.start()
            assert writer.first_ack_after(time.time(), 10), "no write acknowledged before the kill"
            pid = restarted[lead].pid if lead in restarted else procs[lead]["pid"]
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)
            ack = writer.first_ack_after(killed_at, 10)
            assert ack, f"no write acknowledged within 10 s of killing replica {lead}"
            survivors = [log for i, log in enumerate(logs) if i != lead]
            stood = first_after(survivors, killed_at, "standing for election")
            won = first_after(survivors, killed_at, "became leader")
            gap = (ack - killed_at) * 1000
            gaps.append(gap)
            ms = lambda a, b: f"{(b - a) * 1000:6.0f}" if a and b else "     ?"
            print(f"kill {round + 1:2}: replica {lead} · gap {gap:6.0f} ms = detect {ms(killed_at, stood)} "
                  f"+ elect {ms(stood, won)} + commit {ms(won, ack)} ms", flush=True)
            # Back up from its own data dir, appending to its log.
            p = procs[lead]
            restarted[lead] = subprocess.Popen(p["argv"], stdout=open(logs[lead], "ab"), stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
            time.sleep(args.settle)
        writer.stop = True
        load = os.getloadavg()
        print(f"{len(gaps)} kills: median {statistics.median(gaps):.0f} ms, worst {max(gaps):.0f} ms, "
              f"best {min(gaps):.0f} ms; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        for p in restarted.values():
            p.kill()
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)


if __name__ == "__main__":
    main()
