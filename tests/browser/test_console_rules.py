"""The console's automation rules page (issue 18) in real headless Chromium against the real local stack: the admin
sees the tenant's rules in order (the auto-close defaults), creates one (an invalid one first: the API's message is
shown), sees it act on a new ticket, edits it, disables it and deletes it; an agent has no such page. axe-core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from tests.browser.conftest import Desk, assert_accessible, wait_until
from tests.browser.console_fixtures import console_url, go, sign_in

__all__ = ["console_url"]  # the fixture, used by name

Shot = Callable[[WebDriver, str], Path]


def _ok(answer: Any) -> Any:
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["data"]


def _names(driver: WebDriver) -> list[str]:
    found = driver.execute_script(
        "return [...document.querySelectorAll('#rules tbody tr td[data-field=name]')].map((e) => e.textContent)"
    )
    return [str(name) for name in found]


def _type(driver: WebDriver, selector: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, selector)
    field.clear()
    field.send_keys(text)


def test_an_admin_lists_creates_edits_disables_and_deletes_rules(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    # Given a desk (its defaults: the auto-close rules), the admin opens the rules
    sign_in(agent_browser, console_url, desk)
    go(agent_browser, "rules")
    wait_until(agent_browser, lambda d: _names(d) == ["Auto-close resolved tickets", "Auto-close idle chats"])
    row = agent_browser.find_element(By.CSS_SELECTOR, "#rules tbody tr")
    assert (
        row.find_element(By.CSS_SELECTOR, "td[data-field=event]").text == "ticket in status (status resolved, hours 72)"
    )
    assert row.find_element(By.CSS_SELECTOR, "td[data-field=actions]").text == "set status: closed"
    assert_accessible(agent_browser)

    # When they create a rule with a field no event has, the API's message is shown and nothing is created
    agent_browser.find_element(By.ID, "new-rule").click()
    _type(agent_browser, "#rule-name", "VIP first")
    agent_browser.find_element(By.ID, "add-condition").click()
    _type(agent_browser, "#rule-conditions li:last-child input[data-part=field]", "mood")
    _type(agent_browser, "#rule-conditions li:last-child input[data-part=value]", "vip")
    Select(agent_browser.find_element(By.CSS_SELECTOR, "#rule-actions li select[data-part=type]")).select_by_value(
        "set_priority"
    )
    _type(agent_browser, "#rule-actions li input[data-part=value]", "urgent")
    agent_browser.find_element(By.CSS_SELECTOR, "#rule-form button[type=submit]").click()
    error = wait_until(agent_browser, lambda d: d.find_element(By.ID, "rule-error").text)
    assert "unknown field 'mood'" in error
    assert len(_ok(desk.admin.get("/api/support/automations"))) == 2
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-rules-error")

    # and with the field corrected, the rule is created, last
    _type(agent_browser, "#rule-conditions li:last-child input[data-part=field]", "category")
    agent_browser.find_element(By.CSS_SELECTOR, "#rule-form button[type=submit]").click()
    wait_until(agent_browser, lambda d: _names(d)[-1:] == ["VIP first"])
    [vip] = [r for r in _ok(desk.admin.get("/api/support/automations")) if r["name"] == "VIP first"]
    assert (vip["event"], vip["conditions"], vip["actions"], vip["enabled"]) == (
        "ticket_created",
        {"all": [{"field": "category", "operator": "equals", "value": "vip"}]},
        [{"type": "set_priority", "value": "urgent"}],
        True,
    )
    # and it acts on the desk's next VIP ticket (after the commit: the automations function, invoked asynchronously)
    body = {"customerName": "Ada", "customerEmail": "ada@customers.example", "subject": "Hello", "category": "vip"}
    ticket = _ok(desk.admin.post("/api/support/tickets", json=body))
    wait_until(
        agent_browser,
        lambda d: _ok(desk.admin.get(f"/api/support/tickets/{ticket['id']}"))["priority"] == "urgent",
    )
    screenshot(agent_browser, "console-rules")

    # When they edit it (its name), the list shows the new name
    vip_row = f"#rules tr[data-rule='{vip['id']}']"
    agent_browser.find_element(By.CSS_SELECTOR, f"{vip_row} button[data-action=edit]").click()
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "rule-name").get_attribute("value") == "VIP first")
    _type(agent_browser, "#rule-name", "VIPs are urgent")
    agent_browser.find_element(By.CSS_SELECTOR, "#rule-form button[type=submit]").click()
    wait_until(agent_browser, lambda d: "VIPs are urgent" in _names(d))

    # and disable it: the API says so
    agent_browser.find_element(By.CSS_SELECTOR, f"{vip_row} input[data-field=enabled]").click()
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "notice").text == "VIPs are urgent disabled")
    assert _ok(desk.admin.get(f"/api/support/automations/{vip['id']}"))["enabled"] is False

    # and delete it (a second click confirms)
    wait_until(
        agent_browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{vip_row} button[data-action=delete]")
    ).click()
    agent_browser.find_element(By.CSS_SELECTOR, f"{vip_row} button[data-action=delete]").click()
    wait_until(agent_browser, lambda d: _names(d) == ["Auto-close resolved tickets", "Auto-close idle chats"])
    assert desk.admin.get(f"/api/support/automations/{vip['id']}").status_code == 404


def test_an_agent_has_no_rules_page(desk: Desk, console_url: str, agent_browser: WebDriver) -> None:
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    link = agent_browser.find_element(By.CSS_SELECTOR, "#views a[data-view='rules']")
    assert not link.is_displayed()
    agent_browser.get(f"{console_url}#/rules")
    wait_until(agent_browser, lambda d: "Only an admin" in d.find_element(By.ID, "rule-list").text)
