#!/usr/bin/env python3
"""PutMany of N keys vs N single Puts, and a range over many keys with the
called server's memory, against a ring that `ringkv up` starts (same run).

    python3 bench/batch_range.py [--bin target/release/ringkv] [--keys 100000]

Prints ops/s of both ways to write and their ratio, then the time to
stream the range and the peak RSS (VmHWM) of the server that gathered it,
before and after, so that "bounded memory" is a measured claim.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from grpc_stubs import ROOT, key, stubs


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main():
    import grpc

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "ringkv"))
    ap.add_argument("--positions", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=100_000)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ringkv-batch-"))
    kv, kv_grpc = stubs(work / "gen")
    base = random.randrange(14000, 26000)
    log = open(work / "up.log", "wb")
    up = subprocess.Popen([args.bin, "up", "--positions", str(args.positions), "--replicas", str(args.replicas),
                           "--base-port", str(base), "--data-dir", str(work / "data"), "--no-shell"],
                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{base}", options=[("grpc.max_receive_message_length", 1 << 26)])
        s = kv_grpc.KeyValueStub(channel)
        deadline = time.monotonic() + 120
        while True:
            try:
                s.Get(kv.GetRequest(key=b"\x00"), timeout=2)
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline and up.poll() is None, f"ring did not start: {work}/up.log"
                time.sleep(0.2)

        n = args.batch
        t = time.monotonic()
        for i in range(n):
            s.Put(kv.PutRequest(key=key(i), timestamp=1, data=b"x" * 100))
        single = n / (time.monotonic() - t)
        t = time.monotonic()
        replies = list(s.PutMany(iter([kv.PutRequest(key=key(n + i), timestamp=1, data=b"x" * 100) for i in range(n)])))
        batched = n / (time.monotonic() - t)
        assert len(replies) == n
        print(f"{n} single Puts: {single:,.0f} ops/s; PutMany of {n}: {batched:,.0f} ops/s; ratio {batched / single:.1f}x")

        total = args.keys
        for start in range(2 * n, total, 5000):
            batch = [kv.PutRequest(key=key(i), timestamp=1, data=b"y" * 100) for i in range(start, min(start + 5000, total))]
            list(s.PutMany(iter(batch)))
        procs = json.loads((work / "data" / "cluster.json").read_text())["processes"]
        called = next(p["pid"] for p in procs if p["address"].endswith(f":{base}"))
        before = hwm_kib(called)
        t = time.monotonic()
        count, last = 0, None
        for pair in s.Range(kv.RangeRequest(**{"from": key(0), "to": key(total)})):
            k = int.from_bytes(pair.key, "big", signed=True)
            assert last is None or k > last, "out of order"
            last, count = k, count + 1
        took = time.monotonic() - t
        after = hwm_kib(called)
        assert count == total, f"{count} of {total} keys"
        print(f"Range over {total:,} keys on {args.positions}x{args.replicas}: {took:.2f} s ({total / took:,.0f} keys/s), "
              f"in order; peak RSS of the gathering server {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)


if __name__ == "__main__":
    main()
