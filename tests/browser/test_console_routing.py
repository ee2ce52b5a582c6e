"""The console's routing settings page (issue 18) in real headless Chromium against the real local stack: the admin
reads the defaults, turns automatic ticket assignment on with a limit and a rule, saves, and the API has exactly
that; a bad limit is refused with the API's field named on the page and nothing saved; an agent has no such page.
axe-core on the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from tests.browser.conftest import Desk, assert_accessible, wait_until
from tests.browser.console_fixtures import console_url, go, sign_in

__all__ = ["console_url"]  # the fixture, used by name

Shot = Callable[[WebDriver, str], Path]
SETTINGS = "/api/support/settings/routing"


def test_an_admin_sets_routing_rules_and_limits(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    driver = agent_browser
    sign_in(driver, console_url, desk)  # the admin
    go(driver, "routing")
    save = wait_until(driver, lambda d: d.find_element(By.ID, "save-routing"))
    assert not driver.find_element(By.ID, "auto-tickets").is_selected()
    assert driver.find_element(By.ID, "auto-chats").is_selected()
    assert driver.find_element(By.ID, "ticket-limit").get_attribute("value") == "10"
    assert driver.find_element(By.ID, "wait-limit").get_attribute("value") == "600"
    assert_accessible(driver)

    driver.find_element(By.CSS_SELECTOR, "label[for=auto-tickets]").click()
    limit = driver.find_element(By.ID, "ticket-limit")
    limit.clear()
    limit.send_keys("0")
    save.click()
    error = wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#routing-errors li"))
    assert "ticketLimitPerAgent" in error.text
    assert desk.admin.get(SETTINGS).json()["data"]["autoAssignTickets"] is False  # nothing saved

    limit.clear()
    limit.send_keys("3")
    driver.find_element(By.ID, "add-rule").click()
    rule = driver.find_elements(By.CSS_SELECTOR, "[data-rule]")[-1]
    Select(rule.find_element(By.CSS_SELECTOR, "select[data-field=kind]")).select_by_value("channel")
    Select(rule.find_element(By.CSS_SELECTOR, "select[data-field=channel]")).select_by_value("chat")
    rule.find_element(By.CSS_SELECTOR, "[data-field=requiredSkills]").send_keys("chat, german")
    driver.find_element(By.CSS_SELECTOR, "label[for=wait-limit-on]").click()  # chats wait as long as visitors do
    save.click()

    def saved() -> dict[str, object]:
        return dict(desk.admin.get(SETTINGS).json()["data"])

    wait_until(driver, lambda d: saved()["autoAssignTickets"] is True)
    assert saved() == {
        "autoAssignTickets": True,
        "autoAssignChats": True,
        "ticketLimitPerAgent": 3,
        "rules": [
            {
                "category": None,
                "channel": "chat",
                "customField": None,
                "value": None,
                "requiredSkills": ["chat", "german"],
            }
        ],
        "chatWaitLimitSeconds": None,
        "reassignTicketsWhenAway": False,
    }
    assert_accessible(driver)
    screenshot(driver, "console-routing")


def test_an_agent_has_no_routing_page(desk: Desk, console_url: str, agent_browser: WebDriver) -> None:
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    link = agent_browser.find_element(By.CSS_SELECTOR, "#views a[data-view='routing']")
    assert not link.is_displayed()
    agent_browser.get(f"{console_url}#/routing")
    wait_until(agent_browser, lambda d: "Only an admin" in d.find_element(By.ID, "main").text)
    assert not agent_browser.find_elements(By.ID, "save-routing")
