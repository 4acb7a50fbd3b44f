"""Drives the shop's admin portal from Python, using only stubs generated
from proto/shop/v1/admin.proto, against real processes on free loopback
ports: a one-replica ringkv server, a Mosquitto broker and one
`shop admin-portal`. Every outcome in the proto's header comment is
reached (FAILED_PRECONDITION needs orders, which the admin API cannot make).

The end of the module runs the `shop` command itself (one-shot and shell)
against the same portal, for its output and exit codes.

Needs SHOP_BIN (the `shop` binary; skipped without it), RINGKV_BIN (or a
built target/*/ringkv) and `mosquitto` on PATH (skipped without it, except
in CI, where that is a failure).
"""

import json
import math
import subprocess
import tempfile
from pathlib import Path

import grpc
import pytest

from shop_processes import CALL_SECS, Shop, admin_stubs, free_port, shop_binary


@pytest.fixture(scope="module")
def shop_pb(tmp_path_factory):
    """The generated modules shop.v1.admin_pb2 and admin_pb2_grpc."""
    return admin_stubs(tmp_path_factory.mktemp("shop-gen"))


@pytest.fixture(scope="module")
def portal(shop_pb):
    """A running admin portal over a one-replica ringkv and a broker; yields
    (stub, address) and stops everything afterwards."""
    system = Shop(Path(tempfile.mkdtemp(prefix="shop-py-")))
    channel = None
    try:
        stub, addr, channel = system.admin_portal(shop_pb)
        yield stub, addr
    finally:
        if channel is not None:
            channel.close()
        system.stop()


def code_of(call, *args):
    """The status code of a call that must fail, and its message."""
    with pytest.raises(grpc.RpcError) as err:
        call(*args, timeout=CALL_SECS)
    return err.value.code(), err.value.details() or ""


# Customers


def test_customer_create_get_update_delete(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    c = stub.CreateCustomer(pb.Customer(cid="crud-c1", name="Ada Lovelace", email="ada@example.org"), timeout=CALL_SECS)
    assert (c.cid, c.name, c.email, c.version) == ("crud-c1", "Ada Lovelace", "ada@example.org", 1)
    g = stub.GetCustomer(pb.CustomerId(cid="crud-c1"), timeout=CALL_SECS)
    assert g == c
    u = stub.UpdateCustomer(
        pb.Customer(cid="crud-c1", name="Ada", email="ada@lovelace.org", version=1), timeout=CALL_SECS
    )
    assert (u.cid, u.name, u.email, u.version) == ("crud-c1", "Ada", "ada@lovelace.org", 2)
    # Version 0 in an update means "any version".
    u = stub.UpdateCustomer(pb.Customer(cid="crud-c1", name="Ada L.", email="ada@lovelace.org"), timeout=CALL_SECS)
    assert (u.name, u.version) == ("Ada L.", 3)
    assert stub.GetCustomer(pb.CustomerId(cid="crud-c1"), timeout=CALL_SECS) == u
    d = stub.DeleteCustomer(pb.CustomerId(cid="crud-c1"), timeout=CALL_SECS)
    assert d == u, "delete returns what it removed"
    code, _ = code_of(stub.GetCustomer, pb.CustomerId(cid="crud-c1"))
    assert code == grpc.StatusCode.NOT_FOUND


def test_customer_already_exists(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    stub.CreateCustomer(pb.Customer(cid="dup-c1", name="First", email="first@example.org"), timeout=CALL_SECS)
    code, _ = code_of(stub.CreateCustomer, pb.Customer(cid="dup-c1", name="Second", email="second@example.org"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    c = stub.GetCustomer(pb.CustomerId(cid="dup-c1"), timeout=CALL_SECS)
    assert (c.name, c.version) == ("First", 1), "the second create changed nothing"


def test_customer_not_found(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    missing = pb.CustomerId(cid="missing-c1")
    assert code_of(stub.GetCustomer, missing)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.DeleteCustomer, missing)[0] == grpc.StatusCode.NOT_FOUND
    update = pb.Customer(cid="missing-c1", name="Nobody", email="nobody@example.org")
    assert code_of(stub.UpdateCustomer, update)[0] == grpc.StatusCode.NOT_FOUND
    update.version = 3
    assert code_of(stub.UpdateCustomer, update)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.GetCustomer, missing)[0] == grpc.StatusCode.NOT_FOUND, "an update does not create"


@pytest.mark.parametrize(
    "cid,name,email,field",
    [
        ("", "Empty id", "e@example.org", "cid"),
        ("x" * 129, "Long id", "e@example.org", "cid"),
        ("bad-email-c1", "No at sign", "no-at-sign", "email"),
        ("bad-name-c1", "", "e@example.org", "name"),
    ],
    ids=["empty-cid", "129-byte-cid", "email-without-at", "empty-name"],
)
def test_customer_invalid_argument(shop_pb, portal, cid, name, email, field):
    pb, _ = shop_pb
    stub, _ = portal
    code, message = code_of(stub.CreateCustomer, pb.Customer(cid=cid, name=name, email=email))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in message.lower(), f"the message says which field: {message!r}"
    if 1 <= len(cid.encode()) <= 128:
        assert code_of(stub.GetCustomer, pb.CustomerId(cid=cid))[0] == grpc.StatusCode.NOT_FOUND, "nothing stored"


def test_customer_update_invalid_argument_changes_nothing(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    stub.CreateCustomer(pb.Customer(cid="inv-upd-c1", name="Ada", email="ada@example.org"), timeout=CALL_SECS)
    code, _ = code_of(stub.UpdateCustomer, pb.Customer(cid="inv-upd-c1", name="Ada", email="no-at-sign", version=1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    c = stub.GetCustomer(pb.CustomerId(cid="inv-upd-c1"), timeout=CALL_SECS)
    assert (c.email, c.version) == ("ada@example.org", 1)


def test_customer_stale_version_is_aborted(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    c = stub.CreateCustomer(pb.Customer(cid="stale-c1", name="V1", email="v1@example.org"), timeout=CALL_SECS)
    assert c.version == 1
    v2 = pb.Customer(cid="stale-c1", name="V2", email="v2@example.org", version=1)
    u = stub.UpdateCustomer(v2, timeout=CALL_SECS)
    assert u.version == 2
    stale = pb.Customer(cid="stale-c1", name="V3", email="v3@example.org", version=1)
    code, message = code_of(stub.UpdateCustomer, stale)
    assert code == grpc.StatusCode.ABORTED
    assert "2" in message, f"the message gives the current version: {message!r}"
    c = stub.GetCustomer(pb.CustomerId(cid="stale-c1"), timeout=CALL_SECS)
    assert (c.name, c.email, c.version) == ("V2", "v2@example.org", 2), "the stale update changed nothing"


# Products


def test_product_create_get_update_delete(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    p = stub.CreateProduct(pb.Product(pid="crud-p1", description="Blue mug", quantity=10, price=4.5), timeout=CALL_SECS)
    assert (p.pid, p.description, p.quantity, p.price, p.version) == ("crud-p1", "Blue mug", 10, 4.5, 1)
    assert stub.GetProduct(pb.ProductId(pid="crud-p1"), timeout=CALL_SECS) == p
    u = stub.UpdateProduct(
        pb.Product(pid="crud-p1", description="Red mug", quantity=12, price=4.99, version=1), timeout=CALL_SECS
    )
    assert (u.pid, u.description, u.quantity, u.version) == ("crud-p1", "Red mug", 12, 2)
    assert u.price == pytest.approx(4.99, abs=1e-9)
    # Free and out of stock are valid; so are the largest values.
    u = stub.UpdateProduct(pb.Product(pid="crud-p1", description="", quantity=0, price=0), timeout=CALL_SECS)
    assert (u.description, u.quantity, u.price, u.version) == ("", 0, 0.0, 3)
    u = stub.UpdateProduct(pb.Product(pid="crud-p1", description="d", quantity=10**12, price=1e10), timeout=CALL_SECS)
    assert (u.quantity, u.price, u.version) == (10**12, 1e10, 4)
    d = stub.DeleteProduct(pb.ProductId(pid="crud-p1"), timeout=CALL_SECS)
    assert d == u, "delete returns what it removed"
    assert code_of(stub.GetProduct, pb.ProductId(pid="crud-p1"))[0] == grpc.StatusCode.NOT_FOUND


def test_product_already_exists(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    stub.CreateProduct(pb.Product(pid="dup-p1", description="First", quantity=1, price=1), timeout=CALL_SECS)
    code, _ = code_of(stub.CreateProduct, pb.Product(pid="dup-p1", description="Second", quantity=2, price=2))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    p = stub.GetProduct(pb.ProductId(pid="dup-p1"), timeout=CALL_SECS)
    assert (p.description, p.version) == ("First", 1)


def test_product_not_found(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    missing = pb.ProductId(pid="missing-p9")
    assert code_of(stub.GetProduct, missing)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.DeleteProduct, missing)[0] == grpc.StatusCode.NOT_FOUND
    update = pb.Product(pid="missing-p9", description="x", quantity=1, price=1)
    assert code_of(stub.UpdateProduct, update)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.GetProduct, missing)[0] == grpc.StatusCode.NOT_FOUND, "an update does not create"


@pytest.mark.parametrize(
    "pid,quantity,price,field",
    [
        ("", 1, 1.0, "pid"),
        ("p" * 129, 1, 1.0, "pid"),
        ("neg-qty-p1", -1, 1.0, "quantity"),
        ("big-qty-p1", 10**12 + 1, 1.0, "quantity"),
        ("neg-price-p1", 1, -0.01, "price"),
        ("nan-price-p1", 1, math.nan, "price"),
        ("inf-price-p1", 1, math.inf, "price"),
        ("three-decimals-p1", 1, 1.005, "price"),
        ("big-price-p1", 1, 1e10 + 1, "price"),
    ],
    ids=[
        "empty-pid",
        "129-byte-pid",
        "negative-quantity",
        "quantity-over-1e12",
        "negative-price",
        "nan-price",
        "infinite-price",
        "price-with-3-decimals",
        "price-over-1e10",
    ],
)
def test_product_invalid_argument(shop_pb, portal, pid, quantity, price, field):
    pb, _ = shop_pb
    stub, _ = portal
    code, message = code_of(stub.CreateProduct, pb.Product(pid=pid, description="d", quantity=quantity, price=price))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in message.lower(), f"the message says which field: {message!r}"
    if 1 <= len(pid.encode()) <= 128:
        assert code_of(stub.GetProduct, pb.ProductId(pid=pid))[0] == grpc.StatusCode.NOT_FOUND, "nothing stored"


def test_product_get_of_a_bad_pid_is_invalid_argument(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    assert code_of(stub.GetProduct, pb.ProductId(pid=""))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stub.GetProduct, pb.ProductId(pid="p" * 129))[0] == grpc.StatusCode.INVALID_ARGUMENT
    # 128 bytes is the longest id, and multi-byte characters count as bytes.
    assert code_of(stub.GetProduct, pb.ProductId(pid="p" * 128))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.GetProduct, pb.ProductId(pid="é" * 65))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_product_stale_version_is_aborted(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    p = stub.CreateProduct(pb.Product(pid="stale-p1", description="v1", quantity=1, price=1), timeout=CALL_SECS)
    assert p.version == 1
    v2 = pb.Product(pid="stale-p1", description="v2", quantity=2, price=2, version=1)
    u = stub.UpdateProduct(v2, timeout=CALL_SECS)
    assert u.version == 2
    stale = pb.Product(pid="stale-p1", description="v3", quantity=3, price=3, version=1)
    code, message = code_of(stub.UpdateProduct, stale)
    assert code == grpc.StatusCode.ABORTED
    assert "2" in message, f"the message gives the current version: {message!r}"
    p = stub.GetProduct(pb.ProductId(pid="stale-p1"), timeout=CALL_SECS)
    assert (p.description, p.quantity, p.price, p.version) == ("v2", 2, 2.0, 2), "the stale update changed nothing"


# Lists


def _pids(page, prefix):
    return [p.pid for p in page.products if p.pid.startswith(prefix)]


def _cids(page, prefix):
    return [c.cid for c in page.customers if c.cid.startswith(prefix)]


def test_product_list_pages_with_after(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    # Other tests' products sort elsewhere; "pg-" < "pg-00" < … < "pg-06".
    want = [f"pg-{i:02}" for i in range(7)]
    for pid in reversed(want):
        stub.CreateProduct(pb.Product(pid=pid, description=pid, quantity=1, price=1), timeout=CALL_SECS)
    page = stub.ListProducts(pb.ListRequest(after="pg-", limit=3), timeout=CALL_SECS)
    assert len(page.products) == 3
    assert _pids(page, "pg-") == want[:3]
    page = stub.ListProducts(pb.ListRequest(after=want[2], limit=3), timeout=CALL_SECS)
    assert _pids(page, "pg-") == want[3:6]
    page = stub.ListProducts(pb.ListRequest(after=want[5], limit=3), timeout=CALL_SECS)
    assert _pids(page, "pg-") == want[6:], "the last page, then other tests' products or nothing"
    assert page.products[0].description == "pg-06" and page.products[0].version == 1
    # Every list is in ascending order of pid, bytewise.
    everything = stub.ListProducts(pb.ListRequest(limit=1000), timeout=CALL_SECS)
    pids = [p.pid for p in everything.products]
    assert pids == sorted(pids, key=lambda s: s.encode()) and set(want) <= set(pids)


def test_customer_list_pages_with_after(shop_pb, portal):
    pb, _ = shop_pb
    stub, _ = portal
    want = [f"pg-{i:02}" for i in range(5)]
    for cid in want:
        stub.CreateCustomer(pb.Customer(cid=cid, name=cid, email=f"{cid}@example.org"), timeout=CALL_SECS)
    page = stub.ListCustomers(pb.ListRequest(after="pg-", limit=2), timeout=CALL_SECS)
    assert [c.cid for c in page.customers] == want[:2]
    assert page.customers[1].email == "pg-01@example.org"
    page = stub.ListCustomers(pb.ListRequest(after=want[1], limit=2), timeout=CALL_SECS)
    assert [c.cid for c in page.customers] == want[2:4]
    page = stub.ListCustomers(pb.ListRequest(after=want[3], limit=2), timeout=CALL_SECS)
    assert _cids(page, "pg-") == want[4:]
    # limit 0 means 100: more than this module creates, so all are there.
    page = stub.ListCustomers(pb.ListRequest(after="pg-"), timeout=CALL_SECS)
    assert _cids(page, "pg-") == want


@pytest.mark.parametrize("limit", [1001, 5000])
def test_list_limit_over_1000_is_invalid_argument(shop_pb, portal, limit):
    pb, _ = shop_pb
    stub, _ = portal
    code, message = code_of(stub.ListProducts, pb.ListRequest(limit=limit))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit" in message.lower(), message
    code, message = code_of(stub.ListCustomers, pb.ListRequest(limit=limit))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit" in message.lower(), message


# The `shop` command against the same portal.


def shop(addr, *args, stdin=None):
    """Runs `shop --portal ADDR ARGS…`; returns (exit code, stdout, stderr)."""
    argv = [str(shop_binary()), "--portal", addr, "--timeout", str(CALL_SECS), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_cli_products(portal):
    _, addr = portal
    rc, out, err = shop(addr, "--json", "admin", "product", "create", "cli-p1",
                        "--description", "Blue mug", "--quantity", "10", "--price", "4.50")
    assert (rc, err) == (0, "")
    assert json.loads(out) == {"pid": "cli-p1", "description": "Blue mug", "quantity": 10, "price": 4.5, "version": 1}
    rc, out, _ = shop(addr, "admin", "product", "update", "cli-p1", "--quantity", "12")
    assert rc == 0
    assert out.splitlines() == ["product cli-p1  version 2", '  description "Blue mug"  quantity 12  price 4.50']
    rc, _, err = shop(addr, "admin", "product", "update", "cli-p1", "--price", "1", "--version", "1")
    assert rc == 1 and err.startswith("shop: product cli-p1: ") and "ABORTED" in err, err
    rc, out, _ = shop(addr, "--json", "admin", "product", "list", "--all")
    assert rc == 0 and "cli-p1" in [p["pid"] for p in json.loads(out)]
    rc, out, _ = shop(addr, "admin", "product", "delete", "cli-p1")
    assert rc == 0 and out.startswith("deleted product cli-p1  version 2\n")
    rc, out, err = shop(addr, "admin", "product", "get", "cli-p1")
    assert (rc, out) == (1, "") and err.startswith("shop: product cli-p1: not found (NOT_FOUND)"), err
    rc, _, err = shop(addr, "admin", "product", "create", "cli-p2", "--description", "d", "--quantity", "1",
                      "--price", "1.005")
    assert rc == 1 and "INVALID_ARGUMENT" in err and len(err.splitlines()) == 1, err
    rc, _, err = shop(addr, "admin", "product", "create", "cli-p2", "--description", "d", "--quantity", "1",
                      "--price", "abc")
    assert rc == 1 and "not a price" in err, err


def test_cli_customers_and_shell(portal):
    _, addr = portal
    rc, _, err = shop(addr, "admin", "customer", "create", "cli-c1", "--name", "Ada", "--email", "ada@example.org")
    assert (rc, err) == (0, "")
    script = "customer update cli-c1 --email ada@lovelace.org\ncustomer get cli-c1\n"
    rc, out, err = shop(addr, "--json", "shell", stdin=script)
    assert (rc, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1] == {"cid": "cli-c1", "name": "Ada", "email": "ada@lovelace.org", "version": 2}
    rc, out, err = shop(addr, "shell", stdin="customer get nobody-c9\ncustomer get cli-c1\n")
    assert rc == 1, "the exit code of the last failing line"
    assert "customer cli-c1  version 2" in out and "not found" in err


def test_cli_unreachable_portal_is_exit_code_2():
    rc, _, err = shop(f"127.0.0.1:{free_port()}", "admin", "customer", "get", "c1")
    assert rc == 2 and "cannot reach the admin portal" in err, err
