"""The harness itself: the gateway's static pages, the demo merchant page on its own origin, CORS from that origin
to the widget session route, and independent browsers, in real headless Chromium over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from selenium.webdriver.chrome.webdriver import WebDriver
from starlette.applications import Starlette

from local.gateway import running_gateway
from local.gateway.static import MERCHANT_DIR, render_merchant_page, static_routes
from tests.browser.conftest import BrowserStack, Desk, assert_accessible, wait_until

SESSION_FETCH = """const [api, key, done] = arguments;
fetch(api + '/api/support/widget/session', {method: 'POST', headers: {'content-type': 'application/json'},
  body: JSON.stringify({widgetKey: key})})
  .then(async (r) => done({status: r.status, body: await r.json()}), (e) => done({error: String(e)}));"""


def test_the_gateway_serves_the_widget_and_console_folders_revalidated(tmp_path: Path) -> None:
    widget, console = tmp_path / "widget", tmp_path / "console"
    widget.mkdir()
    console.mkdir()
    (widget / "widget.js").write_text("console.log('hi');\n")
    (console / "index.html").write_text("<!doctype html><title>Console</title>\n")
    (tmp_path / "secret.txt").write_text("not served\n")
    with running_gateway(Starlette(routes=static_routes(widget, console))) as base:
        script = httpx.get(f"{base}/widget/widget.js")
        assert script.status_code == 200 and script.text == "console.log('hi');\n"
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["cache-control"] == "no-cache"
        assert script.headers["x-content-type-options"] == "nosniff"
        again = httpx.get(f"{base}/widget/widget.js", headers={"if-none-match": script.headers["etag"]})
        assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
        page = httpx.get(f"{base}/console/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert httpx.get(f"{base}/console").status_code in (307, 308)  # to /console/
        assert httpx.get(f"{base}/widget/../secret.txt").status_code == 404
        assert httpx.get(f"{base}/widget/%2e%2e/secret.txt").status_code == 404
        assert httpx.get(f"{base}/widget/missing.js").status_code == 404
    # A folder that is not there (the console before it exists) is not mounted at all
    assert [r.path for r in static_routes(widget, tmp_path / "absent")] == ["/widget"]


def test_the_merchant_page_is_templated_with_escaped_values() -> None:
    page = render_merchant_page(
        (MERCHANT_DIR / "index.html").read_text(),
        widget_script_url="http://127.0.0.1:3000/widget/widget.js",
        widget_key='wk_"><script>',
        api_url="http://127.0.0.1:3000",
        ws_url="ws://127.0.0.1:3001",
    )
    assert '<script src="http://127.0.0.1:3000/widget/widget.js" data-widget-key="wk_&quot;&gt;&lt;script&gt;"' in page
    assert 'data-ws-url="ws://127.0.0.1:3001" async></script>' in page
    assert "{{" not in page
    assert page.count("<script") == 1  # the one tag a merchant adds


def test_the_merchant_page_on_its_own_origin_reaches_the_session_route(
    desk: Desk, browser_stack: BrowserStack, visitor_browser: WebDriver, screenshot: Callable[[WebDriver, str], Path]
) -> None:
    visitor_browser.get(desk.shop_url)
    tag = wait_until(visitor_browser, lambda d: d.execute_script("return document.querySelector('script[src]')"))
    assert tag.get_attribute("src") == f"{browser_stack.http_url}/widget/widget.js"
    assert tag.get_attribute("data-widget-key") == desk.widget_key
    assert visitor_browser.execute_script("return location.origin") == desk.shop_origin
    assert desk.shop_origin != browser_stack.http_url  # another origin: every call to the API is cross-origin

    # CORS lets the page read the answer, and the Origin the browser sends is the one the key allows
    allowed = visitor_browser.execute_async_script(SESSION_FETCH, browser_stack.http_url, desk.widget_key)
    assert allowed["status"] == 201, allowed
    assert allowed["body"]["data"]["resumeToken"] and allowed["body"]["data"]["connectToken"]
    other_key = desk.new_widget_key(["https://elsewhere.example"])
    refused = visitor_browser.execute_async_script(SESSION_FETCH, browser_stack.http_url, other_key)
    assert refused["status"] == 403, refused
    assert refused["body"]["error"]["code"] == "forbidden"

    assert_accessible(visitor_browser)
    assert screenshot(visitor_browser, "harness-merchant-page").stat().st_size > 1000


def test_two_browsers_keep_their_storage_apart(desk: Desk, browsers: Callable[[], WebDriver]) -> None:
    first, second = browsers(), browsers()
    for driver in (first, second):
        driver.get(desk.shop_url)
    first.execute_script("localStorage.setItem('probe', 'first')")
    assert first.execute_script("return localStorage.getItem('probe')") == "first"
    assert second.execute_script("return localStorage.getItem('probe')") is None
    first.refresh()
    assert first.execute_script("return localStorage.getItem('probe')") == "first"  # kept across loads
