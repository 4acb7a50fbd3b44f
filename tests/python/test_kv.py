"""Drives every operation to every outcome (docs/design.md §2) from Python,
using only stubs generated from proto/ringkv/v1/kv.proto."""

import grpc
import pytest

import ringkv_keys as keys


def status_name(pb, reply):
    kv_pb2, _ = pb
    return kv_pb2.Status.Name(reply.status)


def test_set(pb, server):
    kv, _ = pb
    k = keys.encode(12345678901234567890123)
    r = server.Set(kv.SetRequest(key=k, timestamp=10, data=b"a"))
    assert status_name(pb, r) == "STATUS_SUCCESS" and not r.HasField("value")
    r = server.Set(kv.SetRequest(key=k, timestamp=11, data=b"b"))
    assert status_name(pb, r) == "STATUS_ERROR"
    assert (r.value.version, r.value.timestamp, r.value.data) == (1, 10, b"a")


def test_get(pb, server):
    kv, _ = pb
    k = keys.encode(-5)
    r = server.Get(kv.GetRequest(key=k))
    assert status_name(pb, r) == "STATUS_ERROR" and not r.HasField("value")
    server.Set(kv.SetRequest(key=k, timestamp=3, data=b"x"))
    r = server.Get(kv.GetRequest(key=k))
    assert status_name(pb, r) == "STATUS_SUCCESS"
    assert (r.value.version, r.value.timestamp, r.value.data) == (1, 3, b"x")


def test_del(pb, server):
    kv, _ = pb
    k = keys.encode(0)
    r = server.Del(kv.DelRequest(key=k))
    assert status_name(pb, r) == "STATUS_ERROR" and not r.HasField("value")
    server.Set(kv.SetRequest(key=k, timestamp=4, data=b"gone"))
    r = server.Del(kv.DelRequest(key=k))
    assert status_name(pb, r) == "STATUS_SUCCESS" and r.value.data == b"gone"
    assert status_name(pb, server.Get(kv.GetRequest(key=k))) == "STATUS_ERROR"


def test_del_version(pb, server):
    kv, _ = pb
    k = keys.encode(128)
    r = server.DelVersion(kv.DelVersionRequest(key=k, version=1))
    assert status_name(pb, r) == "STATUS_ERROR_NE" and not r.HasField("value")
    server.Set(kv.SetRequest(key=k, timestamp=5, data=b"v1"))
    r = server.DelVersion(kv.DelVersionRequest(key=k, version=2))
    assert status_name(pb, r) == "STATUS_ERROR_WV" and r.value.version == 1
    r = server.DelVersion(kv.DelVersionRequest(key=k, version=1))
    assert status_name(pb, r) == "STATUS_SUCCESS" and r.value.data == b"v1"


def test_test_and_set(pb, server):
    kv, _ = pb
    k = keys.encode(-128)
    r = server.TestAndSet(kv.TestAndSetRequest(key=k, timestamp=1, data=b"n", version=1))
    assert status_name(pb, r) == "STATUS_ERROR_NE" and not r.HasField("value")
    server.Set(kv.SetRequest(key=k, timestamp=1, data=b"one"))
    r = server.TestAndSet(kv.TestAndSetRequest(key=k, timestamp=2, data=b"two", version=7))
    assert status_name(pb, r) == "STATUS_ERROR_WV" and r.value.data == b"one"
    r = server.TestAndSet(kv.TestAndSetRequest(key=k, timestamp=2, data=b"two", version=1))
    assert status_name(pb, r) == "STATUS_SUCCESS"
    assert (r.value.version, r.value.data) == (1, b"one")
    r = server.Get(kv.GetRequest(key=k))
    assert (r.value.version, r.value.timestamp, r.value.data) == (2, 2, b"two")


def test_put_get_at_history_trim(pb, server):
    kv, _ = pb
    k = keys.encode(2**70 + 3)
    r = server.Put(kv.PutRequest(key=k, timestamp=1, data=b"a"))
    assert status_name(pb, r) == "STATUS_SUCCESS" and not r.HasField("value")
    r = server.Put(kv.PutRequest(key=k, timestamp=2, data=b"b"))
    assert status_name(pb, r) == "STATUS_SUCCESS" and (r.value.version, r.value.data) == (1, b"a")
    r = server.GetAt(kv.GetAtRequest(key=k, version=1))
    assert status_name(pb, r) == "STATUS_SUCCESS" and (r.value.timestamp, r.value.data) == (1, b"a")
    r = server.GetAt(kv.GetAtRequest(key=k, version=9))
    assert status_name(pb, r) == "STATUS_ERROR_WV" and r.value.version == 2
    r = server.GetAt(kv.GetAtRequest(key=keys.encode(-999), version=1))
    assert status_name(pb, r) == "STATUS_ERROR_NE" and not r.HasField("value")
    h = server.History(kv.HistoryRequest(key=k))
    assert status_name(pb, h) == "STATUS_SUCCESS"
    assert [(v.version, v.data) for v in h.values] == [(2, b"b"), (1, b"a")]
    r = server.Trim(kv.TrimRequest(key=k, keep=1))
    assert status_name(pb, r) == "STATUS_SUCCESS" and r.value.version == 2
    h = server.History(kv.HistoryRequest(key=k))
    assert [v.version for v in h.values] == [2]
    h = server.History(kv.HistoryRequest(key=keys.encode(-999)))
    assert status_name(pb, h) == "STATUS_ERROR" and len(h.values) == 0
    with pytest.raises(grpc.RpcError) as e:
        server.Trim(kv.TrimRequest(key=k, keep=0))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", [b"", b"\x00\x01", b"\xff\x80"])
def test_bad_keys_are_invalid_argument(pb, server, bad):
    kv, _ = pb
    with pytest.raises(grpc.RpcError) as err:
        server.Get(kv.GetRequest(key=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "key" in err.value.details()


def test_key_encoding_matches_java():
    assert keys.encode(0) == b"\x00"
    assert keys.encode(-128) == b"\x80"
    assert keys.encode(128) == b"\x00\x80"
    assert keys.encode(-129) == b"\xff\x7f"
