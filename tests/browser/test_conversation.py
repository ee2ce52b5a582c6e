"""A whole conversation in real browsers: a visitor (one Chromium, on the demo merchant page with the widget) and
agents (others, each in the console) against the real local stack. The queue, a claim, typing both ways, read
receipts both ways, a forced reconnect of the visitor and one of the agent with nothing lost or doubled, a
transfer to a second agent (who sees the whole conversation), the end and the visitor's rating; what the pages
show is checked against what the API stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from local.database import DatabaseUrls
from tests.browser.conftest import Desk, assert_accessible, settle, wait_until
from tests.browser.console_fixtures import console_url, sign_in
from tests.browser.test_widget import (
    drop,
    host_attribute,
    line,
    open_widget,
    session_id_of,
    set_offline,
    start_chat,
    texts,
    type_message,
    visitor_connections,
)

__all__ = ["console_url"]  # the fixture, used by name

Shot = Callable[[WebDriver, str], Path]


def console_messages(driver: WebDriver, session_id: str) -> list[dict[str, Any]]:
    """The conversation as the console's tab shows it: sender, text, receipt state, stored id."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """const panel = document.querySelector(`.chat-panel[data-session="${arguments[0]}"]`);
        if (!panel) return [];
        return [...panel.querySelectorAll('.messages .message')].map((li) => ({
          sender: li.dataset.sender, text: li.querySelector('.text').textContent,
          state: li.dataset.state || null, id: li.dataset.id || null}));""",
        session_id,
    )
    return rows


def console_texts(driver: WebDriver, session_id: str) -> list[str]:
    return [row["text"] for row in console_messages(driver, session_id)]


def console_state(driver: WebDriver, session_id: str, text: str) -> str | None:
    rows = [row for row in console_messages(driver, session_id) if row["text"] == text]
    return rows[-1]["state"] if rows else None


def panel_text(driver: WebDriver, session_id: str, selector: str) -> str:
    return str(
        driver.execute_script(
            """const panel = document.querySelector(`.chat-panel[data-session="${arguments[0]}"]`);
            const found = panel && panel.querySelector(arguments[1]);
            return found ? found.textContent : '';""",
            session_id,
            selector,
        )
    )


def reply_box(driver: WebDriver, session_id: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f".chat-panel[data-session='{session_id}'] textarea")


def say(driver: WebDriver, session_id: str, text: str) -> None:
    box = reply_box(driver, session_id)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def console_connection_ids(db: DatabaseUrls, tenant: object, agent_id: str) -> list[str]:
    import psycopg

    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT connection_id FROM ws_connections WHERE user_id = %s AND agent_id = %s", (tenant, agent_id)
        ).fetchall()
    return [row[0] for row in rows]


def test_a_visitor_and_agents_hold_a_conversation_end_to_end(
    desk: Desk,
    db: DatabaseUrls,
    console_url: str,
    browsers: Callable[[], WebDriver],
    screenshot: Shot,
) -> None:
    # Given two agents, neither available (so the chat waits), each signed in to the console in a browser
    grace = desk.add_agent("Grace Hopper", capacity=2, status="offline")
    alan = desk.add_agent("Alan Turing", capacity=2, status="busy")
    visitor, console, second = browsers(), browsers(), browsers()
    sign_in(console, console_url, desk, grace)
    sign_in(second, console_url, desk, alan)
    # Alan's console hears of the queue only through the staff broadcast (queue.updated): its own periodic reload of
    # the waiting chats over HTTP is blocked
    second.execute_cdp_cmd("Network.enable", {})
    second.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*status=waiting*"]})

    # The visitor starts a chat on the shop: it waits in the queue, and Grace's console lists it with its wait
    root = open_widget(visitor, desk.shop_url)
    start_chat(visitor, root, "Lin")
    wait_until(visitor, lambda d: host_attribute(d, "data-status") == "waiting")
    session_id = session_id_of(visitor)
    queued = wait_until(
        console, lambda d: d.find_elements(By.CSS_SELECTOR, f"#queue-list li[data-session='{session_id}']")
    )
    assert "Lin" in queued[0].text and "waiting" in queued[0].text
    wait_until(console, lambda d: "s" in d.find_element(By.CSS_SELECTOR, "[data-waiting-since]").text)
    screenshot(console, "console-queue")
    on_alans = f"#queue-list li[data-session='{session_id}']"
    wait_until(second, lambda d: d.find_elements(By.CSS_SELECTOR, on_alans))

    # Grace claims it: her tab opens, the API has her as the agent, the widget names her at once
    queued[0].find_element(By.CSS_SELECTOR, "button").click()
    wait_until(console, lambda d: d.find_elements(By.CSS_SELECTOR, f".chat-panel[data-session='{session_id}']"))
    assert desk.session(session_id)["assignedAgentId"] == grace
    assert desk.session(session_id)["status"] == "active"
    wait_until(visitor, lambda d: root.find_element(By.ID, "who").text == "You are chatting with Grace Hopper")
    wait_until(console, lambda d: not d.find_elements(By.CSS_SELECTOR, f"#queue-list li[data-session='{session_id}']"))
    # and Alan's queue loses the chat Grace claimed
    wait_until(second, lambda d: not d.find_elements(By.CSS_SELECTOR, on_alans))

    # The visitor types: Grace sees the indicator, then the message; her open tab marks it read, the widget shows it
    root.find_element(By.ID, "text").send_keys("Hello, where is my")
    wait_until(console, lambda d: panel_text(d, session_id, ".typing") == "Lin is typing…")
    type_message(root, " order?")
    wait_until(console, lambda d: console_texts(d, session_id) == ["Hello, where is my order?"])
    assert panel_text(console, session_id, ".typing") == ""
    wait_until(visitor, lambda d: (line(d, "Hello, where is my order?") or {}).get("state") == "read")

    # Grace types: the widget shows the agent typing; her reply arrives, the widget reads it, her console says Read
    reply_box(console, session_id).send_keys("Let me ")
    wait_until(visitor, lambda d: root.find_element(By.ID, "typing").text == "Grace Hopper is typing…")
    say(console, session_id, "check: it left this morning.")
    wait_until(visitor, lambda d: "Let me check: it left this morning." in texts(d, "agent"))
    assert root.find_element(By.ID, "who").text == "You are chatting with Grace Hopper"  # still her
    wait_until(console, lambda d: console_state(d, session_id, "Let me check: it left this morning.") == "read")
    assert_accessible(console)
    screenshot(console, "console-conversation")

    # A forced reconnect of the visitor: the gateway drops its connection while Grace writes
    visitor_id = desk.session(session_id)["visitorId"]
    (before,) = visitor_connections(db, desk.tenant, visitor_id)
    drop(desk.stack, before)
    say(console, session_id, "Are you still there?")
    wait_until(console, lambda d: console_state(d, session_id, "Are you still there?") in ("delivered", "read"))
    wait_until(visitor, lambda d: "Are you still there?" in texts(d, "agent"))
    wait_until(visitor, lambda d: [c for c in visitor_connections(db, desk.tenant, visitor_id) if c != before])
    type_message(root, "Yes, still here.")
    wait_until(console, lambda d: "Yes, still here." in console_texts(d, session_id))

    # And one of Grace's console: while it is away the visitor writes; the console's sync brings it, once
    (grace_before,) = console_connection_ids(db, desk.tenant, grace)
    drop(desk.stack, grace_before)
    type_message(root, "Can I change the address?")
    wait_until(console, lambda d: "Can I change the address?" in console_texts(d, session_id))
    wait_until(console, lambda d: d.find_element(By.ID, "connection").text == "live")

    # Grace's network goes: what she writes waits as "sending", and is sent once when it is back
    (grace_again,) = console_connection_ids(db, desk.tenant, grace)
    set_offline(console, True)
    drop(desk.stack, grace_again)
    wait_until(console, lambda d: d.find_element(By.ID, "connection").text != "live")
    say(console, session_id, "Yes: which one?")
    settle(1.0)
    assert console_state(console, session_id, "Yes: which one?") == "sending"
    set_offline(console, False)
    wait_until(console, lambda d: console_state(d, session_id, "Yes: which one?") in ("delivered", "read"))
    wait_until(visitor, lambda d: "Yes: which one?" in texts(d, "agent"))
    settle(1.0)
    expected = [
        "Hello, where is my order?",
        "Let me check: it left this morning.",
        "Are you still there?",
        "Yes, still here.",
        "Can I change the address?",
        "Yes: which one?",
    ]
    stored = [m["message"] for m in desk.messages(session_id)]
    assert [m for m in stored if m in expected] == expected  # each stored once
    assert console_texts(console, session_id) == expected  # nothing lost or doubled on the agent's side
    assert sorted(texts(visitor, "agent") + texts(visitor, "customer")) == sorted(expected)  # nor the visitor's

    # Grace transfers the chat to Alan, whose load the choice shows; Alan's console opens it with the history
    select = console.find_element(By.ID, f"transfer-{session_id}")
    select.click()  # the console reads every agent's current load as the list opens
    wait_until(
        console,
        lambda d: any(
            "Alan Turing" in text and "0 of 2 chats" in text
            for text in d.execute_script("return [...arguments[0].options].map((o) => o.textContent)", select)
        ),
    )
    Select(select).select_by_value(alan)
    console.find_element(By.CSS_SELECTOR, f".chat-panel[data-session='{session_id}'] .transfer button").click()
    wait_until(console, lambda d: not d.find_elements(By.CSS_SELECTOR, f".chat-panel[data-session='{session_id}']"))
    wait_until(second, lambda d: console_texts(d, session_id) == expected)
    session = desk.session(session_id)
    assert (session["assignedAgentId"], session["transferredFromAgentId"]) == (alan, grace)
    wait_until(visitor, lambda d: "You were transferred to Alan Turing" in texts(d, "system"))
    assert root.find_element(By.ID, "who").text == "You are chatting with Alan Turing"
    say(second, session_id, "Alan here: yes, send me the new address.")
    wait_until(visitor, lambda d: "Alan here: yes, send me the new address." in texts(d, "agent"))
    assert root.find_element(By.ID, "who").text == "You are chatting with Alan Turing"
    stored_reply = desk.messages(session_id)[-1]
    assert (stored_reply["senderName"], stored_reply["senderType"]) == ("Alan Turing", "agent")

    # Alan ends the chat; the visitor rates it; Alan's console shows the rating, the API has both
    second.find_element(By.CSS_SELECTOR, f".chat-panel[data-session='{session_id}'] button.danger").click()
    wait_until(visitor, lambda d: host_attribute(d, "data-status") == "closed")
    wait_until(second, lambda d: "has ended" in panel_text(d, session_id, ".ended"))
    root.find_element(By.CSS_SELECTOR, "input[name=rating][value='5']").find_element(By.XPATH, "..").click()
    root.find_element(By.ID, "comment").send_keys("Two kind people")
    root.find_element(By.CSS_SELECTOR, "#rate button[type=submit]").click()
    wait_until(second, lambda d: "rated it 5 of 5" in panel_text(d, session_id, ".ended"))
    assert "Two kind people" in panel_text(second, session_id, ".ended")
    session = desk.session(session_id)
    assert (session["status"], session["rating"], session["feedback"]) == ("closed", 5, "Two kind people")
    agents = {a["id"]: a["currentChats"] for a in desk.admin.get("/api/support/agents").json()["data"]}
    assert agents == {grace: 0, alan: 0}
    screenshot(second, "console-chat-ended")
    screenshot(visitor, "widget-with-console-rated")
