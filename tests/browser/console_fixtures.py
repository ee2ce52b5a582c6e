"""The agent console's fixtures beside the harness (tests/browser/conftest.py): the console's pages with the
local sign-in, signing in the way a person does (pick the tenant, then the agent or the admin), and the desk's data
made through its API (tickets, canned responses) for a test to find in the console."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from starlette.applications import Starlette

from local.gateway import running_gateway
from local.gateway.dev_auth import dev_auth_routes
from local.gateway.static import static_routes
from tests.browser.conftest import BrowserStack, Desk, free_port, wait_until


@pytest.fixture(scope="module")
def console_url(browser_stack: BrowserStack) -> Iterator[str]:
    """web/console/ with the local sign-in, on an origin of its own beside the stack's HTTP API (whose URL its
    /_local/config names): the console as hosted apart from the API, through the template's CORS settings."""
    port = free_port()
    app = Starlette(routes=[*static_routes(), *dev_auth_routes(port, api_base_url=browser_stack.http_url)])
    with running_gateway(app, port=port) as base:
        yield f"{base}/console/"


def sign_in(driver: WebDriver, console_url: str, desk: Desk, agent_id: str | None = None) -> None:
    """Open the console and sign in as `agent_id` of the desk's tenant, or as its admin; wait for the views."""
    driver.get(console_url)
    tenant_field = wait_until(driver, lambda d: d.find_element(By.ID, "local-tenant"))
    tenant_field.send_keys(str(desk.tenant))
    driver.find_element(By.CSS_SELECTOR, "#local-tenant ~ button[type=submit]").click()
    tenant = str(desk.tenant)
    selector = (
        f"button[data-agent='{agent_id}'][data-tenant='{tenant}']"
        if agent_id
        else f"button[data-role='admin'][data-tenant='{tenant}']"
    )
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector)).click()
    wait_until(driver, lambda d: d.find_element(By.ID, "views").is_displayed())
    wait_until(driver, lambda d: d.find_element(By.ID, "connection").text == "live")


def go(driver: WebDriver, view: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#views a[data-view='{view}']").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "main").get_attribute("data-view") == view)


def ok(answer: Any) -> Any:
    """The data of a successful API answer (200 or 201)."""
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["data"]


def new_ticket(desk: Desk, subject: str, email: str = "ada@customers.example", **fields: Any) -> dict[str, Any]:
    body = {"customerName": "Ada Lovelace", "customerEmail": email, "subject": subject, **fields}
    return dict(ok(desk.admin.post("/api/support/tickets", json=body)))


def new_canned_response(desk: Desk, title: str, content: str, shortcut: str) -> Any:
    body = {"responseTitle": title, "responseContent": content, "shortcutKey": shortcut}
    return ok(desk.admin.post("/api/support/canned-responses", json=body))


def texts(driver: WebDriver, selector: str) -> list[str]:
    """The text of every element `selector` finds, read in one script (the view may re-render meanwhile)."""
    found = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)", selector
    )
    return [str(text) for text in found]
