"""The widget when its chat waited past the tenant's wait limit (issue 18): the expiry step (called here as the
every-minute sweep calls it) makes the chat a ticket; the visitor is told so, offered to leave their email, leaves it,
and the ticket has it. Real headless Chromium against the real local stack."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from support import realtime
from support.config import get_settings
from support.services import chat_expiry
from tests.browser.conftest import Desk, assert_accessible, wait_until
from tests.browser.test_widget import focused_id, host_attribute, notice, open_widget, start_chat, tuned_shop

Shot = Callable[[WebDriver, str], Path]


def test_a_chat_that_waits_too_long_becomes_a_ticket_and_the_visitor_leaves_an_email(
    desk: Desk, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    answer = desk.admin.put("/api/support/settings/routing", json={"chatWaitLimitSeconds": 60})
    assert answer.status_code == 200, answer.text
    root = open_widget(visitor_browser, tuned_shop(desk, {}))
    start_chat(visitor_browser, root, "Late")
    assert host_attribute(visitor_browser, "data-status") == "waiting"  # no agent at this desk

    get_settings.cache_clear()  # the stack's management API, where the visitor's connection is
    realtime.reset()
    report = chat_expiry.expire_waiting_chats(datetime.now(UTC) + timedelta(seconds=61))
    assert len(report.ticketed) >= 1 and not report.failed

    form = root.find_element(By.ID, "ticketed")
    wait_until(visitor_browser, lambda d: form.is_displayed())
    assert "your chat is now ticket #" in notice(root)
    assert focused_id(visitor_browser) == "t-email"
    assert host_attribute(visitor_browser, "data-status") == "closed"
    assert_accessible(visitor_browser)
    screenshot(visitor_browser, "widget-chat-ticketed")

    root.find_element(By.ID, "t-email").send_keys("late@customers.example")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(visitor_browser, lambda d: "we will answer ticket" in notice(root))
    assert not form.is_displayed()
    sessions = desk.admin.get("/api/support/chat/sessions").json()["data"]
    [session] = [s for s in sessions if s["id"] in {str(i) for i in report.ticketed}]
    ticket = desk.admin.get(f"/api/support/tickets/{session['ticketId']}").json()["data"]
    assert (ticket["channel"], ticket["customerEmail"]) == ("chat", "late@customers.example")
