"""The storefront in a real browser: Debian's chromium, headless, driven by
Selenium WebDriver through Debian's chromedriver, against real processes
(ringkv, Mosquitto, an admin portal to create the data, a customer portal
serving the pages).

A customer signs in, opens an order, adds two products, sees the right
total and the catalogue's stock go down, asks for more than the stock and
sees the refusal in the page, cancels, and sees the stock back. Every step
leaves a screenshot in target/screenshots/ (its path is printed).

Needs chromium and chromedriver (apt-get install chromium chromium-driver)
and the selenium package, besides what test_shop_admin.py needs; skipped
without them, except in CI (CI=true), where that is a failure.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from shop_processes import CALL_SECS, ROOT, Shop, admin_stubs, missing

SCREENSHOTS = ROOT / "target" / "screenshots"
CHROMEDRIVER = "/usr/bin/chromedriver"
# How long the browser waits for an element (a page load is a few ms).
WAIT_SECS = 10

CID = "carol-cust"
MUG = ("sf-mug", "Blue mug", 10, 4.5)
TEA = ("sf-tea", "Green tea", 3, 12.25)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    missing("chromium is not installed (apt-get install chromium chromium-driver)")


def _chromedriver() -> str:
    path = CHROMEDRIVER if os.access(CHROMEDRIVER, os.X_OK) else shutil.which("chromedriver")
    if not path:
        missing("chromedriver is not installed (apt-get install chromium-driver)")
    return path


@pytest.fixture(scope="module")
def storefront(tmp_path_factory):
    """A customer portal's URL, with a customer and two products."""
    chromium, chromedriver = _chromium(), _chromedriver()
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing("the selenium package is not installed (pip install -r tests/python/requirements.txt)")
    pb = admin_stubs(tmp_path_factory.mktemp("shop-gen"))
    admin_pb2 = pb[0]
    system = Shop(Path(tempfile.mkdtemp(prefix="shop-storefront-py-")))
    channel = None
    try:
        stub, _, channel = system.admin_portal(pb)
        stub.CreateCustomer(admin_pb2.Customer(cid=CID, name="Carol", email="carol@example.org"), timeout=CALL_SECS)
        for pid, description, quantity, price in (MUG, TEA):
            stub.CreateProduct(
                admin_pb2.Product(pid=pid, description=description, quantity=quantity, price=price),
                timeout=CALL_SECS,
            )
        yield system.customer_portal(), chromium, chromedriver
    finally:
        if channel is not None:
            channel.close()
        system.stop()


@pytest.fixture()
def browser(storefront):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, chromium, chromedriver = storefront
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    # The driver's path given: Selenium Manager never runs (it would try
    # to download one).
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.implicitly_wait(WAIT_SECS)
    try:
        yield driver
    finally:
        driver.quit()


class Steps:
    """Screenshots, numbered in the order taken."""

    def __init__(self, driver, test):
        self.driver = driver
        self.test = test
        self.n = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> None:
        self.n += 1
        path = SCREENSHOTS / f"{self.test}-{self.n:02}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        print(f"screenshot: {path.relative_to(ROOT)}")


def _cents(text: str) -> int:
    units, cents = text.strip().split(".")
    return int(units) * 100 + int(cents)


def test_buy_and_cancel_in_the_browser(storefront, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, _, _ = storefront
    d = browser
    steps = Steps(d, "storefront")
    css = lambda sel: d.find_element(By.CSS_SELECTOR, sel)  # noqa: E731

    def absent(sel) -> bool:
        # Asked only once something of the new page was found: no waiting.
        d.implicitly_wait(0)
        try:
            return not d.find_elements(By.CSS_SELECTOR, sel)
        finally:
            d.implicitly_wait(WAIT_SECS)

    def stock(pid) -> int:
        d.get(url + "/")
        return int(css(f"#product-{pid} .stock").text)

    def add(pid, quantity):
        Select(css("#add-pid")).select_by_value(pid)
        box = css("#add-quantity")
        box.clear()
        box.send_keys(str(quantity))
        css("#add-button").click()

    # Not signed in: the sign-in form.
    d.get(url + "/")
    assert d.find_elements(By.CSS_SELECTOR, "#cid") and absent("#products")
    steps.shot("sign-in")

    # An unknown customer is refused in the page.
    css("#cid").send_keys("nobody-cust")
    css("#sign-in").click()
    assert "not a customer" in css("#error").text
    steps.shot("sign-in-refused")

    # Signed in: the catalogue, with prices and stock.
    box = css("#cid")
    box.clear()
    box.send_keys(CID)
    css("#sign-in").click()
    assert "Carol" in css("#who").text
    for pid, _, quantity, price in (MUG, TEA):
        row = f"#product-{pid}"
        assert (css(f"{row} .price").text, int(css(f"{row} .stock").text)) == (f"{price:.2f}", quantity)
    steps.shot("catalogue")

    # A new order.
    d.get(url + "/orders")
    css("#new-order").click()
    assert css("#state").text == "open" and d.current_url.startswith(url + "/orders/")
    order_url = d.current_url
    assert css("#total").text == "0.00"
    steps.shot("new-order")

    # Two products in it; the total shown is the sum of the lines.
    add(MUG[0], 2)
    assert d.find_elements(By.CSS_SELECTOR, f"#line-{MUG[0]}")
    add(TEA[0], 3)
    assert d.find_elements(By.CSS_SELECTOR, f"#line-{TEA[0]}")
    subtotals = [
        _cents(css(f"#line-{pid} td:last-child").text) for pid in (MUG[0], TEA[0])
    ]
    assert subtotals == [2 * 450, 3 * 1225]
    assert _cents(css("#total").text) == sum(subtotals) == 4575
    assert css("#total").text == "45.75"
    steps.shot("two-products")

    # More than the stock: refused in the page, the order unchanged.
    add(MUG[0], 100)
    error = css("#error").text
    assert "8 in stock" in error, error
    assert css(f"#line-{MUG[0]} input[name=quantity]").get_attribute("value") == "2"
    assert css("#total").text == "45.75"
    steps.shot("more-than-stock-refused")

    # The catalogue's stock went down.
    assert (stock(MUG[0]), stock(TEA[0])) == (8, 0)
    steps.shot("stock-down")

    # The order in the list.
    d.get(url + "/orders")
    oid = order_url.rsplit("/", 1)[1]
    assert css(f"#order-{oid} .total").text == "45.75"
    steps.shot("orders")

    # Cancel: the note, the state, no more forms.
    d.get(order_url)
    css("#cancel").click()
    assert "cancelled" in css("#note").text
    assert css("#state").text == "cancelled"
    assert absent("#add") and absent("#cancel")
    steps.shot("cancelled")

    # Every unit back in the catalogue.
    assert (stock(MUG[0]), stock(TEA[0])) == (10, 3)
    steps.shot("stock-back")

    # Signing out shows the sign-in form again.
    d.find_element(By.XPATH, "//nav//button[normalize-space()='Sign out']").click()
    assert d.find_elements(By.CSS_SELECTOR, "#cid") and absent("#products")
    steps.shot("signed-out")
