"""The browser tests' harness: headless Debian Chromium (driven by Selenium through Debian's chromedriver) against
the real local stack, with a demo merchant page on an origin of its own.

- `browser_stack`: the local HTTP API (with the template's CORS configuration, and the pages of
  `local.gateway.static` at /widget/ and /console/) and the WebSocket API with its management API, on free ports,
  on the session's test database (tests/conftest.py's `db`, a data folder of the tests' own). It lives for this
  package only, so it never runs beside tests/e2e's stack (whose environment it sets the same way).
- `desk`: a fresh tenant with its admin client, a merchant page on a free port and a widget key allowing that
  origin (`desk.shop_url`), helpers to add agents and connect them with the project's WebSocket client.
- `browsers`: a factory of independent Chromium instances (one profile each: the visitor's and the agent's
  storage never mix); `visitor_browser` and `agent_browser` are two of them.
- `screenshot(driver, name)`: a PNG under tests/browser/artifacts/ (git-ignored), listed at the end of the run.
- `assert_accessible(driver)`: injects axe-core (tests/browser/node_modules, `npm ci` by `make browser-deps`)
  and fails on any serious or critical violation.

Nothing downloads a browser: the driver's path is given to Selenium (so Selenium Manager never runs) and
SE_OFFLINE is set. A missing Chromium, chromedriver or axe-core fails the tests with how to install them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from websockets.sync.client import connect

from local.database import DatabaseUrls
from local.gateway import WebSocketEndpoints, create_app, running_gateway, running_template_websocket_api
from local.gateway.static import merchant_app, static_routes
from local.template import REPO, cors_configuration, http_routes
from local.token import mint_token
from tests.e2e.local_run import free_port, stack_environment
from tests.e2e.test_live_chat import ChatClient

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
AXE_JS = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO / "tests" / "browser" / "artifacts"
WAIT = 20.0  # seconds: a worker's first invocation imports its handler
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI has no user namespace sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)

_screenshots: list[Path] = []


def _missing_prerequisites() -> list[str]:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian's chromium)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append(f"{CHROMEDRIVER} (Debian's chromium-driver)")
    if not AXE_JS.is_file():
        missing.append(f"{AXE_JS.relative_to(REPO)} (axe-core: npm ci in tests/browser)")
    return missing


@dataclass(frozen=True)
class BrowserStack:
    http_url: str  # http://127.0.0.1:<port>: the HTTP API, /widget/ and /console/
    chat: WebSocketEndpoints  # the WebSocket API and its management API


@contextmanager
def _local_s3() -> Iterator[None]:
    """S3 as `make run` serves it (local.s3: moto in server mode behind the POST policy check), with the attachments'
    bucket, before any handler starts: the widget uploads files to it for real."""
    from local import s3, ses

    server = ses.start()
    names = ("AWS_ENDPOINT_URL_S3", "INBOUND_EMAIL_BUCKET", "ATTACHMENTS_BUCKET")
    previous = {name: os.environ.get(name) for name in names}
    try:
        s3.configure_environment(server.endpoint)
        s3.create_bucket(server.endpoint)
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture(scope="package")
def browser_stack(db: DatabaseUrls) -> Iterator[BrowserStack]:
    """As tests/e2e's `stack_ports`, `gateway_url` and `chat_gateway` (the same settings, set before any handler
    starts), plus CORS and the static pages, as `make run` serves them."""
    if missing := _missing_prerequisites():
        pytest.fail(
            "The browser tests need " + ", ".join(missing) + ". Run `make browser-deps` (as root on Debian it "
            "installs them: apt-get install -y chromium chromium-driver, then npm ci in tests/browser).",
            pytrace=False,
        )
    http_port, ws_port = free_port(), free_port()
    with stack_environment(http_port, ws_port), _local_s3():
        app = create_app(http_routes(), cors=cors_configuration(), extra_routes=static_routes())
        with running_gateway(app, port=http_port) as base, running_template_websocket_api(ws_port) as chat:
            assert chat is not None, "functions/websocket/ and functions/ws_authorizer/ are in the repository"
            yield BrowserStack(base, chat)


@dataclass
class Desk:
    """A tenant of its own: an admin client, a widget key allowing its merchant page's origin, agents."""

    stack: BrowserStack
    stack_exit: ExitStack
    tenant: UUID = field(default_factory=uuid4)
    admin: httpx.Client = field(init=False)
    shop_port: int = field(default_factory=free_port)
    widget_key: str = field(init=False)

    def __post_init__(self) -> None:
        token = mint_token(str(self.tenant), "admin")
        self.admin = httpx.Client(base_url=self.stack.http_url, headers={"Authorization": f"Bearer {token}"})
        self.admin.timeout = httpx.Timeout(WAIT)
        self.widget_key = self.new_widget_key([self.shop_origin, f"http://localhost:{self.shop_port}"])
        self.shop_url = self.serve_shop(self.widget_key, self.shop_port)

    @property
    def shop_origin(self) -> str:
        return f"http://127.0.0.1:{self.shop_port}"

    def new_widget_key(self, origins: list[str]) -> str:
        reply = self.admin.post("/api/support/widgets", json={"name": "Demo shop", "allowedOrigins": origins})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["data"]["widgetKey"])

    def serve_shop(self, widget_key: str, port: int | None = None, attributes: dict[str, str] | None = None) -> str:
        """A merchant page carrying `widget_key` (and `data-*` `attributes`) on 127.0.0.1:`port` (a free one by
        default); its URL."""
        app = merchant_app(
            widget_key=widget_key,
            api_url=self.stack.http_url,
            ws_url=self.stack.chat.websocket_url,
            attributes=attributes,
        )
        return self.stack_exit.enter_context(running_gateway(app, port=port or free_port())) + "/"

    def add_agent(self, name: str, *, capacity: int = 2, status: str = "offline") -> str:
        body = {"agentName": name, "agentEmail": f"{uuid4()}@desk.example", "maxConcurrentChats": capacity}
        reply = self.admin.post("/api/support/agents", json={**body, "status": status})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["data"]["id"])

    def connect_agent(self, agent_id: str) -> ChatClient:
        """The agent's WebSocket connection, with the project's client (as `python -m local.chat agent`)."""
        token = mint_token(str(self.tenant), "agent", agent_id=agent_id)
        ws = self.stack_exit.enter_context(
            connect(f"{self.stack.chat.websocket_url}/?token={token}", ping_interval=None, open_timeout=WAIT)
        )
        return ChatClient(ws)

    def connect_visitor(self) -> ChatClient:
        """A visitor of the merchant page, over the WebSocket as the widget connects (no browser): the visitor's
        own messages come only this way (staff post only as agents)."""
        reply = httpx.post(
            f"{self.stack.http_url}/api/support/widget/session",
            json={"widgetKey": self.widget_key},
            headers={"Origin": self.shop_origin},
        )
        assert reply.status_code == 201, reply.text
        url = f"{self.stack.chat.websocket_url}/?visitorToken={reply.json()['data']['connectToken']}"
        ws = self.stack_exit.enter_context(
            connect(url, additional_headers={"Origin": self.shop_origin}, ping_interval=None, open_timeout=WAIT)
        )
        return ChatClient(ws)

    def session(self, session_id: str) -> dict[str, Any]:
        reply = self.admin.get(f"/api/support/chat/sessions/{session_id}")
        assert reply.status_code == 200, reply.text
        return dict(reply.json()["data"])

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        reply = self.admin.get(f"/api/support/chat/sessions/{session_id}/messages", params={"limit": 100})
        assert reply.status_code == 200, reply.text
        return list(reply.json()["data"])


@pytest.fixture
def desk(browser_stack: BrowserStack) -> Iterator[Desk]:
    with ExitStack() as stack:
        made = Desk(browser_stack, stack)
        stack.callback(made.admin.close)
        yield made


def new_browser(profile: Path) -> WebDriver:
    """Headless Chromium with a fresh profile in `profile`; nothing it does reaches beyond this machine."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, were it ever asked, downloads nothing
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(WAIT)
    return driver


@pytest.fixture
def browsers() -> Iterator[Callable[[], WebDriver]]:
    """A factory of independent browsers (each its own process and profile), all quit afterwards."""
    opened: list[tuple[WebDriver, Path]] = []

    def open_browser() -> WebDriver:
        profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        driver = new_browser(profile)
        opened.append((driver, profile))
        return driver

    yield open_browser
    for driver, profile in opened:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def visitor_browser(browsers: Callable[[], WebDriver]) -> WebDriver:
    return browsers()


@pytest.fixture
def agent_browser(browsers: Callable[[], WebDriver]) -> WebDriver:
    return browsers()


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
    """What `condition` returns once truthy (it is called again until then); fails with the page's console log."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except Exception as exc:
        raise AssertionError(f"the page never got there ({exc!r}); its console said: {console_log(driver)}") from exc


def console_log(driver: WebDriver) -> list[str]:
    try:
        return [entry["message"] for entry in driver.get_log("browser")]
    except Exception:  # a browser that is gone has no log to give
        return []


def save_screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot for {name}"
    _screenshots.append(path)
    return path


@pytest.fixture
def screenshot() -> Callable[[WebDriver, str], Path]:
    return save_screenshot


def axe_violations(driver: WebDriver, context: str | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on the page (or within the CSS selector `context`), shadow roots included."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE_JS.read_text(encoding="utf-8"))
    raw = driver.execute_async_script(
        """const [context, done] = arguments;
        window.axe.run(context || document, {resultTypes: ['violations']})
          .then((r) => done(JSON.stringify(r.violations)), (e) => done(JSON.stringify({error: String(e)})));""",
        context,
    )
    result = json.loads(raw)
    assert isinstance(result, list), f"axe-core failed: {result}"
    return result


def assert_accessible(driver: WebDriver, context: str | None = None) -> None:
    serious = [v for v in axe_violations(driver, context) if v.get("impact") in ("serious", "critical")]
    assert not serious, "axe-core: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}" for v in serious
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screenshots:
        terminalreporter.write_sep("-", f"browser screenshots ({len(_screenshots)}) in {ARTIFACTS}")
        for path in sorted(set(_screenshots)):
            terminalreporter.write_line(str(path.relative_to(REPO)))


def settle(seconds: float) -> None:
    """A pause where the test shows that nothing more happens (no event, no duplicate)."""
    time.sleep(seconds)
