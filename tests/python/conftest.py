"""Fixtures for the cross-language client test.

The stubs are generated from proto/ at test time with grpc_tools, so the test
proves that a Python program can use ringkv from the .proto file alone. The
server is the real `ringkv` binary on a free loopback port.
"""

import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"


def _binary() -> Path:
    path = os.environ.get("RINGKV_BIN")
    if path:
        return Path(path)
    for profile in ("release", "debug"):
        candidate = ROOT / "target" / profile / "ringkv"
        if candidate.exists():
            return candidate
    pytest.fail("no ringkv binary: run `cargo build` first or set RINGKV_BIN")


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated modules ringkv.v1.kv_pb2 and kv_pb2_grpc."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("gen")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO_DIR / "ringkv" / "v1" / "kv.proto"),
    ]
    assert protoc.main(args) == 0, "protoc failed on kv.proto"
    sys.path.insert(0, str(out))
    kv_pb2 = importlib.import_module("ringkv.v1.kv_pb2")
    kv_pb2_grpc = importlib.import_module("ringkv.v1.kv_pb2_grpc")
    return kv_pb2, kv_pb2_grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(pb):
    """A running server; yields its stub and stops it afterwards."""
    kv_pb2, kv_pb2_grpc = pb
    data_dir = tempfile.mkdtemp(prefix="ringkv-py-")
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    log = open(Path(data_dir) / "server.log", "wb")
    proc = subprocess.Popen(
        [str(_binary()), "server", "--data-dir", data_dir, "--listen", addr],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    channel = grpc.insecure_channel(addr)
    stub = kv_pb2_grpc.KeyValueStub(channel)
    deadline = time.monotonic() + 30
    while True:
        try:
            stub.Get(kv_pb2.GetRequest(key=b"\x00"), timeout=1)
            break
        except grpc.RpcError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start; see {data_dir}/server.log")
            time.sleep(0.05)
    yield stub
    channel.close()
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
