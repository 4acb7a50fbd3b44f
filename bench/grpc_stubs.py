"""What the Python benchmarks share: the `ringkv.v1` stubs generated from
proto/ at run time (as tests/python does) and the wire form of an integer
key."""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stubs(out: Path):
    """kv_pb2 and kv_pb2_grpc, generated into `out` and importable."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}",
            str(ROOT / "proto" / "ringkv" / "v1" / "kv.proto")]
    assert protoc.main(args) == 0, "protoc failed on kv.proto"
    sys.path.insert(0, str(out))
    return importlib.import_module("ringkv.v1.kv_pb2"), importlib.import_module("ringkv.v1.kv_pb2_grpc")


def key(n: int) -> bytes:
    """An integer key as the wire carries it: minimal big-endian two's complement."""
    bits = n.bit_length() if n >= 0 else (~n).bit_length()
    return n.to_bytes(bits // 8 + 1, "big", signed=True)
