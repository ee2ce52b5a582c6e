"""The agent console in real headless Chromium against the real local stack: sign-in, the dashboard drawn from the
data the test made (every figure as the API gives it), tickets (filter, open, reply, note, status, priority,
assignment), canned responses by shortcut and by the picker (each use counted), the presence switch; axe-core on
every view, and a screenshot of each. The hosted sign-in (authorization code with PKCE):
tests/browser/test_console_hosted_sign_in.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from tests.browser.conftest import Desk, assert_accessible, wait_until
from tests.browser.console_fixtures import console_url, go, new_canned_response, new_ticket, ok, sign_in, texts

__all__ = ["console_url"]  # the fixture, used by name

Shot = Callable[[WebDriver, str], Path]


def _number(text: str | None) -> float | None:
    return None if text in (None, "null") else float(str(text))


def test_the_sign_in_offers_the_desk_and_a_pasted_token(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    grace = desk.add_agent("Grace Hopper")
    agent_browser.get(console_url)
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "local-tenant"))
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-sign-in")

    sign_in(agent_browser, console_url, desk, grace)

    assert agent_browser.find_element(By.ID, "who-name").text == "Grace Hopper (agent)"
    agent_browser.find_element(By.ID, "sign-out").click()
    area = wait_until(agent_browser, lambda d: d.find_element(By.ID, "token-input"))
    area.send_keys("not.a.token")
    agent_browser.find_element(By.CSS_SELECTOR, "#token-input ~ button[type=submit]").click()
    notice = wait_until(agent_browser, lambda d: d.find_element(By.ID, "notice").text)
    assert "not a usable token" in notice
    assert not agent_browser.find_element(By.ID, "views").is_displayed()


def test_the_dashboard_shows_every_figure_of_the_api_and_charts_the_data(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    # Given a desk with agents in three states, tickets of every priority, statuses and categories, feedback.
    grace = desk.add_agent("Grace Hopper", status="available")
    desk.add_agent("Alan Turing", status="away")
    desk.add_agent("Katherine Johnson", status="busy")
    made = [
        new_ticket(desk, "Broken mug", priority="high", category="shipping"),
        new_ticket(desk, "Refund please", priority="urgent", category="billing"),
        new_ticket(desk, "Login fails", priority="low"),
        new_ticket(desk, "Address change", priority="medium", category="shipping"),
    ]
    ok(desk.admin.post(f"/api/support/tickets/{made[0]['id']}/assign", json={"agentId": grace}))
    ok(
        desk.admin.post(
            f"/api/support/tickets/{made[0]['id']}/conversations",
            json={"senderType": "agent", "senderName": "Grace", "message": "On its way"},
        )
    )
    ok(desk.admin.patch(f"/api/support/tickets/{made[0]['id']}", json={"status": "resolved"}))
    ok(desk.admin.post(f"/api/support/tickets/{made[0]['id']}/feedback", json={"rating": 4, "agentRating": 5}))
    ok(desk.admin.post(f"/api/support/tickets/{made[1]['id']}/close"))
    ok(desk.admin.post(f"/api/support/tickets/{made[1]['id']}/feedback", json={"rating": 5}))
    ok(desk.admin.patch(f"/api/support/tickets/{made[2]['id']}", json={"status": "waiting_customer"}))
    ok(desk.admin.post("/api/support/chat/sessions", json={"visitorId": "v-1", "visitorName": "Lin"}))
    api = ok(desk.admin.get("/api/support/dashboard"))

    # When the admin opens the dashboard
    sign_in(agent_browser, console_url, desk)
    go(agent_browser, "dashboard")
    figures = wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#dashboard-figures [data-figure]"))

    # Then every figure shown is the API's, and the charts are drawn from the same answer.
    shown = {f.get_attribute("data-figure"): f for f in figures}
    scalar = {k: v for k, v in api.items() if not isinstance(v, (list, dict))}
    assert set(shown) == set(scalar)
    for key, value in scalar.items():
        assert _number(shown[key].get_attribute("data-value")) == value, key
    for key in ("totalTickets", "openTickets", "resolvedTickets", "ticketsCreatedToday", "totalAgents"):
        assert shown[key].find_element(By.TAG_NAME, "dd").text == str(api[key]), key
    assert (api["totalTickets"], api["resolvedTickets"], api["availableAgents"], api["totalChats"]) == (4, 2, 1, 1)
    assert shown["customerSatisfactionScore"].find_element(By.TAG_NAME, "dd").text == "4.50"

    def marks(chart: str, tag: str = "rect") -> dict[str, float]:
        found = agent_browser.find_elements(By.CSS_SELECTOR, f"#{chart} {tag}[data-key]")
        return {str(m.get_attribute("data-key")): float(str(m.get_attribute("data-value"))) for m in found}

    assert marks("chart-volume") == {d["date"]: d["count"] for d in api["ticketVolumeTrendLastWeek"]}
    assert marks("chart-satisfaction", "circle") == {
        d["date"]: d["score"] for d in api["satisfactionTrendLastWeek"] if d["score"] is not None
    }
    assert marks("chart-status") == api["ticketsByStatus"]
    assert marks("chart-priority") == api["ticketsByPriority"]
    assert marks("chart-category") == api["ticketsByCategory"] == {"shipping": 2, "billing": 1, "uncategorized": 1}
    assert marks("chart-availability") == api["agentAvailability"]
    # The bars' lengths follow the data: shipping's is twice billing's.
    width = {
        str(r.get_attribute("data-key")): float(str(r.get_attribute("width")))
        for r in agent_browser.find_elements(By.CSS_SELECTOR, "#chart-category rect[data-key]")
    }
    assert abs(width["shipping"] - 2 * width["billing"]) < 0.01
    assert [
        li.get_attribute("data-ticket") for li in agent_browser.find_elements(By.CSS_SELECTOR, "#recent-tickets li")
    ] == [t["id"] for t in api["recentTickets"]]
    assert [
        r.get_attribute("data-agent") for r in agent_browser.find_elements(By.CSS_SELECTOR, "#top-agents tbody tr")
    ] == [a["id"] for a in api["topAgents"]]
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-dashboard")
    # Everything the page loaded came from the console's server or the API: no remote asset, no third party.
    loaded = agent_browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    origins = {"/".join(str(url).split("/")[:3]) for url in loaded}
    assert origins <= {console_url.split("/console/")[0], desk.stack.http_url}, origins
    assert any("/api/support/dashboard" in str(url) for url in loaded)


def _row_subjects(driver: WebDriver) -> list[str]:
    return texts(driver, "#ticket-list tbody .ticket-link")


def test_tickets_filter_open_reply_note_and_change_status_priority_and_agent(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    grace = desk.add_agent("Grace Hopper", status="available")
    new_ticket(desk, "Broken mug", priority="high")
    new_ticket(desk, "Refund for order 1042", priority="low", category="billing")
    wanted = new_ticket(desk, "Mug handle cracked", priority="high", category="shipping")
    sign_in(agent_browser, console_url, desk, grace)
    go(agent_browser, "tickets")
    wait_until(agent_browser, lambda d: len(_row_subjects(d)) == 3)

    # Filter by priority, then search within it.
    Select(agent_browser.find_element(By.ID, "filter-priority")).select_by_value("high")
    agent_browser.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()
    wait_until(agent_browser, lambda d: sorted(_row_subjects(d)) == ["Broken mug", "Mug handle cracked"])
    search = agent_browser.find_element(By.ID, "filter-search")
    search.send_keys("handle", Keys.ENTER)
    wait_until(agent_browser, lambda d: _row_subjects(d) == ["Mug handle cracked"])

    # Open it: its thread, then a reply, an internal note, a status and priority change, an assignment.
    agent_browser.find_element(By.LINK_TEXT, "Mug handle cracked").click()
    wait_until(agent_browser, lambda d: texts(d, "#ticket-heading") == ["Mug handle cracked"])
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "ticket-reply"))

    def write(text: str, internal: bool) -> None:
        agent_browser.find_element(By.ID, "ticket-reply").send_keys(text)
        box = agent_browser.find_element(By.ID, "ticket-internal")
        if box.is_selected() != internal:
            box.click()
        agent_browser.find_element(By.CSS_SELECTOR, "form.reply button[type=submit]").click()
        wait_until(
            agent_browser,
            lambda d: text in texts(d, "#ticket-thread .entry .text"),
        )

    write("A new mug is on its way.", internal=False)
    write("Customer is a regular; ship express.", internal=True)
    Select(agent_browser.find_element(By.ID, "ticket-status")).select_by_value("waiting_customer")
    Select(agent_browser.find_element(By.ID, "ticket-priority")).select_by_value("urgent")
    agent_browser.find_element(By.CSS_SELECTOR, "form[aria-label='Status and priority'] button").click()
    wait_until(agent_browser, lambda d: texts(d, "dd[data-field=priority]") == ["urgent"])
    ticket = ok(desk.admin.get(f"/api/support/tickets/{wanted['id']}"))
    assert (ticket["status"], ticket["priority"]) == ("waiting_customer", "urgent")
    Select(agent_browser.find_element(By.ID, "ticket-assign")).select_by_value(grace)
    agent_browser.find_element(By.CSS_SELECTOR, "form[aria-label='Assignment'] button").click()
    wait_until(
        agent_browser,
        lambda d: texts(d, "dd[data-field=assignedAgentId]") == ["Grace Hopper"],
    )

    ticket = ok(desk.admin.get(f"/api/support/tickets/{wanted['id']}"))
    assert (ticket["assignedAgentId"], ticket["status"]) == (grace, "in_progress")  # assigning starts the work
    assert ticket["firstResponseTime"] is not None  # the public reply counted as the first response
    thread = ok(desk.admin.get(f"/api/support/tickets/{wanted['id']}/conversations"))
    assert [(c["message"], c["isInternal"], c["senderName"], c["senderType"]) for c in thread] == [
        ("A new mug is on its way.", False, "Grace Hopper", "agent"),
        ("Customer is a regular; ship express.", True, "Grace Hopper", "agent"),
    ]
    notes = texts(agent_browser, "#ticket-thread .entry[data-internal=true] .text")
    assert notes == ["Customer is a regular; ship express."]
    assert "null" not in agent_browser.find_element(By.ID, "ticket-detail").text  # absent fields stay absent

    # Clearing the filters lists every ticket again, the changed one with its new priority.
    agent_browser.find_element(By.CSS_SELECTOR, ".filters button[type=reset]").click()
    wait_until(agent_browser, lambda d: len(_row_subjects(d)) == 3)
    row = agent_browser.find_element(By.CSS_SELECTOR, f"#ticket-list tr[data-ticket='{wanted['id']}']")
    assert (row.get_attribute("data-priority"), row.get_attribute("data-status")) == ("urgent", "in_progress")
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-tickets")


def _open_chat(desk: Desk, driver: WebDriver, visitor: str) -> tuple[str, WebElement]:
    """A chat the desk's available agent gets at once (started over HTTP); its panel in the console."""
    session = ok(
        desk.admin.post("/api/support/chat/sessions", json={"visitorId": f"v-{visitor}", "visitorName": visitor})
    )
    panel = wait_until(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, f".chat-panel[data-session='{session['id']}']")
    )
    return str(session["id"]), panel


def test_canned_responses_by_shortcut_and_by_the_picker_count_a_use_each(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    refund = new_canned_response(desk, "Refund timeline", "Refunds take 5 to 7 days.", "refund")
    track = new_canned_response(desk, "Tracking link", "Follow the link in your email.", "track")
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    session_id, panel = _open_chat(desk, agent_browser, "Lin")
    reply = panel.find_element(By.CSS_SELECTOR, "textarea")

    # Typing "/refund" and a space expands it and counts a use; an unknown shortcut stays as typed.
    reply.send_keys("Hello! /refund ")
    wait_until(agent_browser, lambda d: reply.get_attribute("value") == "Hello! Refunds take 5 to 7 days.")
    reply.send_keys(" /nosuch ")
    assert reply.get_attribute("value") == "Hello! Refunds take 5 to 7 days. /nosuch "

    def uses(response: dict[str, Any]) -> int:
        found = ok(desk.admin.get(f"/api/support/canned-responses/by-shortcut/{response['shortcutKey']}"))
        return int(found["usageCount"])

    wait_until(agent_browser, lambda d: uses(refund) == 1)

    # The picker: search, choose; inserted at the caret and counted.
    reply.clear()
    panel.find_element(By.XPATH, ".//button[text()='Canned responses']").click()
    search = wait_until(
        agent_browser, lambda d: panel.find_element(By.CSS_SELECTOR, ".canned-picker input[type=search]")
    )
    search.send_keys("track")
    wait_until(agent_browser, lambda d: texts(d, ".canned-choice .shortcut") == ["/track"])
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-canned-picker")
    panel.find_element(By.CSS_SELECTOR, ".canned-choice[data-shortcut=track]").click()
    wait_until(agent_browser, lambda d: reply.get_attribute("value") == "Follow the link in your email.")
    wait_until(agent_browser, lambda d: uses(track) == 1)
    assert uses(refund) == 1

    # Sent, it is the chat's message.
    reply.send_keys(Keys.ENTER)
    wait_until(
        agent_browser,
        lambda d: [m["message"] for m in desk.messages(session_id)][-1:] == ["Follow the link in your email."],
    )

    # Another view and back: the chat's tab and its conversation are still there.
    go(agent_browser, "tickets")
    go(agent_browser, "chats")
    selector = f".chat-panel[data-session='{session_id}'] .messages .text"
    wait_until(agent_browser, lambda d: texts(d, selector) == ["Follow the link in your email."])


def test_the_presence_switch_sets_the_agents_status(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    grace = desk.add_agent("Grace Hopper", status="offline")
    sign_in(agent_browser, console_url, desk, grace)
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "presence-offline").is_selected())

    def status() -> str:
        return str(ok(desk.admin.get(f"/api/support/agents/{grace}"))["status"])

    for wanted in ("available", "away", "busy", "offline"):
        agent_browser.find_element(By.CSS_SELECTOR, f"label[for=presence-{wanted}]").click()
        wait_until(agent_browser, lambda d, wanted=wanted: status() == wanted)

    # A change made elsewhere (the admin, over HTTP) shows in the switch: the console hears agent.status.
    ok(desk.admin.patch(f"/api/support/agents/{grace}/status", json={"status": "away"}))
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "presence-away").is_selected())
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-chats")


def test_an_admin_joins_a_chat_of_the_desk_and_follows_it(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    desk.add_agent("Grace Hopper", status="available")
    visitor = desk.connect_visitor()
    session = visitor.ask("startChat", "chat.started", visitorName="Noor")["data"]
    said = "Is the shop open on Sunday?"
    visitor.ask("sendMessage", "message.new", sessionId=session["id"], message=said, clientMessageId="n-1")
    sign_in(agent_browser, console_url, desk)

    # The desk's list names each chat's agent (once the console has read the agents).
    item = f"#desk-list li[data-session='{session['id']}']"
    wait_until(agent_browser, lambda d: any("with Grace Hopper" in t for t in texts(d, item)))
    join = agent_browser.find_element(By.CSS_SELECTOR, f"{item} button")
    join.click()

    selector = f".chat-panel[data-session='{session['id']}'] .messages .text"
    wait_until(agent_browser, lambda d: texts(d, selector) == ["Is the shop open on Sunday?"])
    # Joined, the admin's connection hears the session's new messages as they come.
    visitor.ask("sendMessage", "message.new", sessionId=session["id"], message="Or Monday?", clientMessageId="n-2")
    wait_until(agent_browser, lambda d: texts(d, selector) == ["Is the shop open on Sunday?", "Or Monday?"])
    assert_accessible(agent_browser)


def test_when_the_api_is_down_the_console_says_so_in_words_keeps_saying_it_and_recovers(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    """The API stops answering (every request to it fails, as with make run stopped): no bare "Failed to fetch",
    a banner that stays while it lasts (the notices fade after 8 s), and the view back once the API answers."""
    new_ticket(desk, "Still here after the outage")
    sign_in(agent_browser, console_url, desk)
    go(agent_browser, "tickets")
    wait_until(agent_browser, lambda d: "Still here after the outage" in d.find_element(By.ID, "main").text)
    agent_browser.execute_cdp_cmd("Network.enable", {})
    agent_browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [f"{desk.stack.http_url}/api/*"]})
    try:
        go(agent_browser, "dashboard")
        banner = wait_until(
            agent_browser,
            lambda d: d.find_element(By.ID, "offline") if d.find_element(By.ID, "offline").is_displayed() else None,
        )
        said = banner.text + " " + agent_browser.find_element(By.ID, "main").text
        said += " " + agent_browser.find_element(By.ID, "notice").text
        assert "Failed to fetch" not in said
        assert f"The support API at {desk.stack.http_url} does not answer" in banner.text
        assert banner.get_attribute("role") == "alert"
        assert_accessible(agent_browser)
        screenshot(agent_browser, "console-api-down")
        agent_browser.execute_script("document.getElementById('notice').hidden = true")  # as after its 8 s
        time.sleep(4)  # a probe or more, still failing
        assert agent_browser.find_element(By.ID, "offline").is_displayed()
    finally:
        agent_browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})

    wait_until(agent_browser, lambda d: not d.find_element(By.ID, "offline").is_displayed())
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main .figures"))
    assert "answers again" in agent_browser.find_element(By.ID, "notice").text


_IN_VIEW = """const r = document.querySelector(arguments[0]).getBoundingClientRect();
const width = document.documentElement.clientWidth;
return r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= width;"""
# What sticks out past the window's right edge: the page's own sideways scroll, and every element cut off or pushed
# beyond it (not counting what scrolls inside a box of its own that fits).
_SIDEWAYS = """const out = [], width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > width) out.push(`the page: ${document.documentElement.scrollWidth}px`);
for (const e of document.querySelectorAll("body *")) {
  const r = e.getBoundingClientRect();
  if (r.width === 0 || r.right <= width + 0.5 || e.closest("[hidden]")) continue;
  let box = e.parentElement, inside = false;
  for (; box && box !== document.body; box = box.parentElement) {
    if (getComputedStyle(box).overflowX !== "visible" && box.getBoundingClientRect().right <= width + 0.5) {
      inside = true;
      break;
    }
  }
  if (!inside) out.push(`${e.tagName.toLowerCase()}.${e.className}#${e.id}: right ${Math.round(r.right)}px`);
}
return out;"""


@pytest.mark.parametrize(("width", "height"), [(1280, 760), (420, 820)])
def test_a_chat_tab_keeps_its_reply_box_and_picker_in_view_and_no_page_scrolls_sideways(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot, width: int, height: int
) -> None:
    """A laptop's 1280x760 and a phone's 420 px: with a long conversation, the reply box, its Send and the canned
    picker are on screen without scrolling the page; the chats, a ticket and the dashboard never scroll sideways."""
    agent_browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    new_canned_response(desk, "Greeting", "Hi there!", "hi")
    ticket = new_ticket(
        desk,
        "A subject long enough to wrap on a phone, with an address: ada.lovelace-the-countess@customers.example",
        description="Order A-1042-" + "x" * 80,
    )
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    # The visitor's side over the WebSocket, as the widget sends it (staff post only as agents)
    visitor = desk.connect_visitor()
    session_id = visitor.ask("startChat", "chat.started", visitorName="Lin")["data"]["id"]
    panel = wait_until(
        agent_browser, lambda d: d.find_element(By.CSS_SELECTOR, f".chat-panel[data-session='{session_id}']")
    )
    for n in range(20):
        said = f"Message {n} of a long conversation."
        visitor.ask("sendMessage", "message.new", sessionId=session_id, message=said, clientMessageId=f"lin-{n}")
    selector = f".chat-panel[data-session='{session_id}']"
    wait_until(agent_browser, lambda d: len(texts(d, f"{selector} .messages .text")) == 20)

    agent_browser.execute_script("window.scrollTo(0, 0)")
    assert agent_browser.execute_script(_IN_VIEW, f"{selector} textarea")
    assert agent_browser.execute_script(_IN_VIEW, f"{selector} button[type=submit]:not(.secondary)")
    panel.find_element(By.XPATH, ".//button[text()='Canned responses']").click()
    wait_until(agent_browser, lambda d: texts(d, f"{selector} .canned-choice .shortcut") == ["/hi"])
    agent_browser.execute_script("window.scrollTo(0, 0)")
    assert agent_browser.execute_script(_IN_VIEW, f"{selector} .canned-picker input[type=search]")
    assert agent_browser.execute_script(_IN_VIEW, f"{selector} .canned-choice")
    assert agent_browser.execute_script(_IN_VIEW, f"{selector} textarea")
    assert agent_browser.execute_script(_SIDEWAYS) == []
    screenshot(agent_browser, f"console-chat-{width}x{height}")

    agent_browser.get(f"{console_url}#/tickets/{ticket['id']}")
    wait_until(agent_browser, lambda d: "A-1042" in d.find_element(By.ID, "main").text)
    assert agent_browser.execute_script(_SIDEWAYS) == []
    screenshot(agent_browser, f"console-ticket-{width}x{height}")
    go(agent_browser, "dashboard")
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main .figures"))
    assert agent_browser.execute_script(_SIDEWAYS) == []
