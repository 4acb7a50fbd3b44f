"""Starting and stopping the shop's real processes for the Python tests: a
one-replica ringkv server, a Mosquitto broker, admin portals (gRPC) and
customer portals (HTTP), each on a free loopback port with its own log.

A missing tool skips the test that needs it, except in CI (CI=true), where
that is a failure: CI must install everything the tests use.
"""

import importlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"

# How long the processes get to start (the ringkv replica must elect
# itself, a portal must reach it), and each call to answer.
START_SECS = 60
CALL_SECS = 10


def missing(reason: str):
    """A tool the test needs is not here: skip, or fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def ringkv_binary() -> Path:
    path = os.environ.get("RINGKV_BIN")
    if path:
        return Path(path)
    for profile in ("release", "debug"):
        candidate = ROOT / "target" / profile / "ringkv"
        if candidate.exists():
            return candidate
    pytest.fail("no ringkv binary: run `cargo build` first or set RINGKV_BIN")


def shop_binary() -> Path:
    path = os.environ.get("SHOP_BIN")
    if not path:
        pytest.skip("SHOP_BIN is not set (the path of the `shop` binary, e.g. target/debug/shop)")
    return Path(path)


def mosquitto() -> str:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    path = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if path:
        return path
    missing("mosquitto is not on PATH (apt-get install mosquitto); the shop's portals need an MQTT broker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, name: str, log: Path) -> None:
    """Waits until something accepts TCP connections on the port."""
    deadline = time.monotonic() + START_SECS
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not listen on port {port} within {START_SECS}s; see {log}")
            time.sleep(0.05)


def admin_stubs(out: Path):
    """Generates shop.v1.admin_pb2 and admin_pb2_grpc into `out` from the
    .proto file alone, and imports them."""
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO_DIR / "shop" / "v1" / "admin.proto"),
    ]
    assert protoc.main(args) == 0, "protoc failed on admin.proto"
    sys.path.insert(0, str(out))
    admin_pb2 = importlib.import_module("shop.v1.admin_pb2")
    admin_pb2_grpc = importlib.import_module("shop.v1.admin_pb2_grpc")
    return admin_pb2, admin_pb2_grpc


class Processes:
    """Started processes and their logs, stopped in reverse order."""

    def __init__(self, work: Path):
        self.work = work
        self.started = []

    def start(self, name: str, argv: list) -> tuple:
        log_path = self.work / f"{name}.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT)
        self.started.append((proc, log))
        return proc, log_path

    def stop(self) -> None:
        for proc, log in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            log.close()


class Shop:
    """A one-replica ringkv server and a broker, with portals added on
    demand. Call `stop()` when done (it stops everything started)."""

    def __init__(self, work: Path):
        self.shop_bin, ringkv_bin, broker_bin = shop_binary(), ringkv_binary(), mosquitto()
        self.work = work
        self.procs = Processes(work)
        self.portals = 0
        try:
            ringkv_port, mqtt_port = free_port(), free_port()
            (work / "ringkv").mkdir()
            ringkv, ringkv_log = self.procs.start(
                "ringkv",
                [ringkv_bin, "server", "--data-dir", work / "ringkv", "--listen", f"127.0.0.1:{ringkv_port}"],
            )
            broker, broker_log = self.procs.start("mosquitto", [broker_bin, "-p", mqtt_port])
            wait_for_port(ringkv_port, ringkv, "ringkv server", ringkv_log)
            wait_for_port(mqtt_port, broker, "mosquitto", broker_log)
        except BaseException:
            self.procs.stop()
            raise
        self.ringkv = f"127.0.0.1:{ringkv_port}"
        self.mqtt = f"mqtt://127.0.0.1:{mqtt_port}"

    def _portal(self, kind: str) -> tuple:
        self.portals += 1
        port = free_port()
        addr = f"127.0.0.1:{port}"
        proc, log = self.procs.start(
            f"{kind}-{self.portals}",
            [self.shop_bin, kind, "--listen", addr, "--ringkv", self.ringkv, "--mqtt", self.mqtt],
        )
        return addr, proc, log

    def admin_portal(self, pb) -> tuple:
        """Starts an admin portal; (stub, address, channel) once it answers
        from the database. `pb` is admin_stubs()'s pair."""
        import grpc

        admin_pb2, admin_pb2_grpc = pb
        addr, proc, log = self._portal("admin-portal")
        channel = grpc.insecure_channel(addr)
        stub = admin_pb2_grpc.AdminPortalStub(channel)
        # Ready when a call gets the portal's own answer from the database:
        # a list (empty or not), not UNAVAILABLE while the replica elects
        # itself or the portal is still starting.
        deadline = time.monotonic() + START_SECS
        while True:
            try:
                stub.ListProducts(admin_pb2.ListRequest(limit=1), timeout=2)
                return stub, addr, channel
            except grpc.RpcError as e:
                if proc.poll() is not None:
                    channel.close()
                    pytest.fail(f"admin portal exited with {proc.returncode}; see {log}")
                if time.monotonic() > deadline:
                    channel.close()
                    pytest.fail(f"admin portal not ready within {START_SECS}s ({e.code()}); see {log}")
                time.sleep(0.1)

    def customer_portal(self) -> str:
        """Starts a customer portal; its base URL (http://HOST:PORT) once it
        answers from the database."""
        import requests

        addr, proc, log = self._portal("customer-portal")
        url = f"http://{addr}"
        # Ready when an unknown customer is refused (401: the customer was
        # looked up in the database), not 503 while the replica elects
        # itself, nor a refused connection while the portal starts.
        deadline = time.monotonic() + START_SECS
        status = None
        while True:
            try:
                r = requests.get(
                    f"{url}/api/v1/products", headers={"Authorization": "Bearer no-such-customer"}, timeout=2
                )
                status = r.status_code
                if status == 401:
                    return url
            except requests.RequestException as e:
                status = type(e).__name__
            if proc.poll() is not None:
                pytest.fail(f"customer portal exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                pytest.fail(f"customer portal not ready within {START_SECS}s (last: {status}); see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.procs.stop()
