"""A ticket's history in the console (issue 19) in real headless Chromium against the real local stack: an admin opens
a ticket and sees its audit trail, newest first (who changed what and when; texts and personal values named, never
shown); an agent's ticket view has no history. axe-core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser.conftest import Desk, assert_accessible, wait_until
from tests.browser.console_fixtures import console_url, go, new_ticket, ok, sign_in, texts

__all__ = ["console_url"]  # the fixture, used by name

Shot = Callable[[WebDriver, str], Path]


def test_an_admin_sees_a_tickets_history_and_an_agent_does_not(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    # Given a ticket the admin made and then changed
    grace = desk.add_agent("Grace Hopper")  # offline: routing leaves the ticket alone
    ticket = new_ticket(desk, "Mug handle cracked", description="The handle came off at breakfast.")
    ok(desk.admin.patch(f"/api/support/tickets/{ticket['id']}", json={"priority": "urgent", "status": "in_progress"}))
    # When the admin opens it and its history
    sign_in(agent_browser, console_url, desk)
    go(agent_browser, "tickets")
    wait_until(agent_browser, lambda d: d.find_element(By.LINK_TEXT, "Mug handle cracked")).click()
    wait_until(agent_browser, lambda d: texts(d, "#ticket-heading") == ["Mug handle cracked"])
    agent_browser.find_element(By.CSS_SELECTOR, "#ticket-history summary").click()
    wait_until(agent_browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ticket-history-list > li")) == 2)
    # Then the change first, with what it changed, then the creation; no text or personal value is shown
    actions = [
        li.get_attribute("data-action")
        for li in agent_browser.find_elements(By.CSS_SELECTOR, "#ticket-history-list > li")
    ]
    assert actions == ["update", "insert"]
    changes = texts(agent_browser, "#ticket-history-list > li[data-action=update] li")
    assert "priority: medium → urgent" in changes and "status: open → in_progress" in changes
    history = agent_browser.find_element(By.ID, "ticket-history").text
    assert "changed by an admin" in history and "created by an admin" in history
    assert "breakfast" not in history and "ada@customers.example" not in history
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-ticket-history")

    # An agent's view of the same ticket has no history (the audit trail is the admins')
    agent_browser.find_element(By.ID, "sign-out").click()
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "token-input"))
    sign_in(agent_browser, console_url, desk, grace)
    go(agent_browser, "tickets")
    wait_until(agent_browser, lambda d: d.find_element(By.LINK_TEXT, "Mug handle cracked")).click()
    wait_until(agent_browser, lambda d: texts(d, "#ticket-heading") == ["Mug handle cracked"])
    assert agent_browser.find_elements(By.ID, "ticket-history") == []
