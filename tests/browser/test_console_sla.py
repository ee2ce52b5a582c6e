"""The console's SLA parts (issue 18) in real headless Chromium against the real local stack: the SLA policy page
(business hours, holidays, targets; a refused policy shows the API's reasons, an accepted one is what the API then
answers; an agent reads it without a save button), and the SLA state and due times in the ticket list (with its
filter) and in the ticket itself. axe-core on each."""

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


def _replace(driver: WebDriver, element_id: str, text: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_an_admin_edits_the_sla_policy_and_an_agent_reads_it(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    sign_in(agent_browser, console_url, desk)
    go(agent_browser, "settings")
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "sla-form"))
    assert agent_browser.find_element(By.ID, "sla-time-zone").get_attribute("value") == "UTC"
    assert agent_browser.find_element(By.ID, "sla-urgent-firstResponseMinutes").get_attribute("value") == "60"

    # a zone nobody has and overlapping hours: the API's reasons are shown, nothing is stored
    _replace(agent_browser, "sla-time-zone", "Mars/Olympus_Mons")
    agent_browser.find_element(By.CSS_SELECTOR, "#sla-form button[type=submit]").click()
    wait_until(agent_browser, lambda d: "timeZone" in d.find_element(By.ID, "sla-errors").text)
    _replace(agent_browser, "sla-time-zone", "Europe/Berlin")
    _replace(agent_browser, "sla-hours-monday", "09:00-13:00, 12:00-17:00")
    agent_browser.find_element(By.CSS_SELECTOR, "#sla-form button[type=submit]").click()
    wait_until(agent_browser, lambda d: "businessHours.monday" in d.find_element(By.ID, "sla-errors").text)
    assert _ok(desk.admin.get("/api/support/settings/sla"))["timeZone"] == "UTC"

    # a good one: office hours on weekdays, closed at the weekend, a holiday, faster urgent replies
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday"):
        _replace(agent_browser, f"sla-hours-{day}", "09:00-12:30, 13:30-17:00")
    for day in ("saturday", "sunday"):
        agent_browser.find_element(By.ID, f"sla-hours-{day}").clear()
    _replace(agent_browser, "sla-holidays", "2026-12-25\n2026-12-26")
    _replace(agent_browser, "sla-urgent-firstResponseMinutes", "30")
    agent_browser.find_element(By.CSS_SELECTOR, "#sla-form button[type=submit]").click()
    wait_until(agent_browser, lambda d: _ok(desk.admin.get("/api/support/settings/sla"))["timeZone"] == "Europe/Berlin")
    policy = _ok(desk.admin.get("/api/support/settings/sla"))
    assert policy["businessHours"]["monday"] == [
        {"start": "09:00", "end": "12:30"},
        {"start": "13:30", "end": "17:00"},
    ]
    assert policy["businessHours"]["sunday"] == []
    assert policy["holidays"] == ["2026-12-25", "2026-12-26"]
    assert policy["targets"]["urgent"]["firstResponseMinutes"] == 30
    assert policy["pauseStatuses"] == ["waiting_customer"]
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-sla-policy")


def test_an_agent_sees_the_policy_read_only(desk: Desk, console_url: str, agent_browser: WebDriver) -> None:
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    go(agent_browser, "settings")
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "sla-form"))
    assert agent_browser.find_elements(By.CSS_SELECTOR, "#sla-form button[type=submit]") == []
    assert agent_browser.find_element(By.ID, "sla-time-zone").get_attribute("disabled") is not None
    assert_accessible(agent_browser)


def test_the_ticket_list_and_the_ticket_show_the_sla_state_and_due_times(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    body = {
        "customerName": "Ada",
        "customerEmail": "ada@customers.example",
        "subject": "Urgent order",
        "priority": "urgent",
    }
    ticket = _ok(desk.admin.post("/api/support/tickets", json=body))
    done = _ok(desk.admin.post("/api/support/tickets", json={**body, "subject": "Done order"}))
    _ok(desk.admin.patch(f"/api/support/tickets/{done['id']}", json={"status": "resolved"}))
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    go(agent_browser, "tickets")
    row = f"#ticket-list tr[data-ticket='{ticket['id']}']"
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, row))
    badge = agent_browser.find_element(By.CSS_SELECTOR, f"{row} .sla .badge")
    assert badge.get_attribute("data-sla") == "ok" and badge.text == "ok"
    assert "reply by" in agent_browser.find_element(By.CSS_SELECTOR, f"{row} .due").text
    done_row = f"#ticket-list tr[data-ticket='{done['id']}'] .sla .badge"
    assert agent_browser.find_element(By.CSS_SELECTOR, done_row).get_attribute("data-sla") == "met"
    nothing_due = "\N{EN DASH}"  # what the list shows when nothing is due
    assert agent_browser.find_element(By.CSS_SELECTOR, f"#ticket-list tr[data-ticket='{done['id']}'] .due").text == (
        nothing_due
    )

    # the SLA filter asks the API for that state only
    Select(agent_browser.find_element(By.ID, "filter-sla")).select_by_value("met")
    agent_browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_until(agent_browser, lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    assert agent_browser.find_elements(By.CSS_SELECTOR, done_row)
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-ticket-list-sla")

    agent_browser.get(f"{console_url}#/tickets/{ticket['id']}")
    field = "#ticket-detail dd[data-field=firstResponseDueAt]"
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, field))
    assert agent_browser.find_element(By.CSS_SELECTOR, field).text not in ("", "no target")
    assert agent_browser.find_element(By.CSS_SELECTOR, "#ticket-detail dd[data-field=slaState] .badge").text == "ok"
    assert "null" not in agent_browser.find_element(By.ID, "ticket-detail").text
    assert_accessible(agent_browser)
