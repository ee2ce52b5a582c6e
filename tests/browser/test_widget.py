"""The chat widget (web/widget/widget.js) in real headless Chromium, on a merchant page of its own origin, against
the real local stack: the visitor is the browser; the agent is the project's WebSocket client (as
`python -m local.chat agent`), and what the widget shows is checked against what the API stored."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.shadowroot import ShadowRoot

from local.database import DatabaseUrls
from tests.browser.conftest import BrowserStack, Desk, assert_accessible, console_log, wait_until
from tests.e2e.local_run import free_port
from tests.e2e.test_live_chat import ChatClient

pytestmark = pytest.mark.e2e

Shot = Callable[[WebDriver, str], Path]


# --- Reading and driving the widget ------------------------------------------------------------------------


def widget(driver: WebDriver) -> ShadowRoot:
    host = wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "support-chat-widget"))[0]
    return host.shadow_root


def host_attribute(driver: WebDriver, name: str) -> str | None:
    return driver.execute_script(f"return document.querySelector('support-chat-widget').getAttribute('{name}')")


def open_widget(driver: WebDriver, url: str) -> ShadowRoot:
    driver.get(url)
    root = widget(driver)
    root.find_element(By.ID, "launcher").click()
    wait_until(driver, lambda d: root.find_element(By.ID, "panel").is_displayed())
    return root


def start_chat(driver: WebDriver, root: ShadowRoot, name: str) -> None:
    root.find_element(By.ID, "name").send_keys(name)
    root.find_element(By.CSS_SELECTOR, "#start button[type=submit]").click()
    wait_until(driver, lambda d: host_attribute(d, "data-status") in ("waiting", "active"))


def type_message(root: ShadowRoot, text: str) -> None:
    box = root.find_element(By.ID, "text")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def shown(driver: WebDriver) -> list[dict[str, Any]]:
    """The conversation as the widget shows it: each line's sender, text, state and ids."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """const log = document.querySelector('support-chat-widget').shadowRoot.getElementById('log');
        return [...log.children].map((li) => ({
          kind: li.className.split(' ')[1], state: li.dataset.state || null, id: li.dataset.id || null,
          text: li.querySelector('p').lastChild.textContent, meta: (li.querySelector('.meta') || {}).textContent}));"""
    )
    return rows


def texts(driver: WebDriver, kind: str) -> list[str]:
    return [row["text"] for row in shown(driver) if row["kind"] == kind]


def line(driver: WebDriver, text: str) -> dict[str, Any] | None:
    matches = [row for row in shown(driver) if row["text"] == text]
    return matches[-1] if matches else None


def notice(root: ShadowRoot) -> str:
    element = root.find_element(By.ID, "notice")
    return element.text if element.is_displayed() else ""


def visitor_connections(db: DatabaseUrls, tenant: object, visitor_id: str) -> list[str]:
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT connection_id FROM ws_connections WHERE user_id = %s AND visitor_id = %s ORDER BY connected_at",
            (tenant, visitor_id),
        ).fetchall()
    return [row[0] for row in rows]


def drop(stack: BrowserStack, connection_id: str) -> None:
    """What API Gateway does to a connection it closes: its management API's DELETE."""
    reply = httpx.delete(f"{stack.chat.management_endpoint}/@connections/{connection_id}")
    assert reply.status_code == 204, reply.text


def available_agent(desk: Desk, name: str, capacity: int = 2) -> tuple[str, ChatClient]:
    agent_id = desk.add_agent(name, capacity=capacity)
    agent = desk.connect_agent(agent_id)
    assert agent.ask("setStatus", "agent.status", status="available")["data"]["status"] == "available"
    return agent_id, agent


def python_visitor(desk: Desk) -> ChatClient:
    """A visitor of the same shop without a browser (to fill an agent's capacity)."""
    return desk.connect_visitor()


def session_id_of(driver: WebDriver) -> str:
    """The chat the widget keeps in this origin's storage (one widget key per page)."""
    stored = driver.execute_script(
        "return Object.keys(localStorage).filter((k) => k.startsWith('support-widget:')).map((k) => localStorage[k])"
    )
    assert len(stored) == 1, stored
    return str(json.loads(stored[0])["sessionId"])


def set_offline(driver: WebDriver, offline: bool) -> None:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


# --- The tests -----------------------------------------------------------------------------------------------


def test_a_visitor_chats_with_an_agent_through_a_queue_a_dropped_connection_and_an_offline_spell(
    desk: Desk, db: DatabaseUrls, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    driver = visitor_browser
    agent_id, agent = available_agent(desk, "Grace", capacity=1)
    other = python_visitor(desk)  # fills Grace's one seat, so the browser's chat has to queue
    first = other.ask("startChat", "chat.started", visitorName="Early bird")["data"]
    assert first["assignedAgentId"] == agent_id
    agent.expect("chat.assigned")

    # The widget on the shop: a launcher; the panel opens with the start form
    root = open_widget(driver, desk.shop_url)
    screenshot(driver, "widget-start")
    start_chat(driver, root, "Lin")
    wait_until(driver, lambda d: notice(root) == "You are next in the queue")
    assert host_attribute(driver, "data-status") == "waiting"
    assert root.find_element(By.ID, "who").text == "Waiting for an agent"
    screenshot(driver, "widget-queued")
    session_id = session_id_of(driver)

    # Grace's first chat ends: the waiting chat is hers, and the widget names her at once (she has written nothing)
    agent.ask("endChat", "chat.ended", sessionId=first["id"])
    assert agent.expect("chat.assigned", where=lambda e: e["data"]["id"] == session_id)["data"]["visitorName"] == "Lin"
    wait_until(driver, lambda d: host_attribute(d, "data-status") == "active")
    assert notice(root) == ""  # no queue position any more
    assert "Grace has joined the chat" in texts(driver, "system")
    assert root.find_element(By.ID, "who").text == "You are chatting with Grace"
    assert not texts(driver, "agent")  # named from the assignment, not from a message of hers

    # The visitor writes: sending, then delivered, and the agent has it
    type_message(root, "Hello, where is my order?")
    got = agent.expect("message.new")["data"]
    assert (got["message"], got["senderType"], got["senderName"]) == ("Hello, where is my order?", "customer", "Lin")
    wait_until(driver, lambda d: (line(d, "Hello, where is my order?") or {}).get("state") == "delivered")
    assert line(driver, "Hello, where is my order?")["id"] == got["id"]

    # The agent types, then replies: the indicator shows, then the reply with the agent's name
    agent.send("typing", sessionId=session_id, isTyping=True)
    wait_until(driver, lambda d: root.find_element(By.ID, "typing").text == "Grace is typing…")
    screenshot(driver, "widget-agent-typing")
    reply = agent.ask(
        "sendMessage", "message.new", sessionId=session_id, message="It left this morning.", clientMessageId="a-1"
    )["data"]
    wait_until(driver, lambda d: "It left this morning." in texts(d, "agent"))
    assert not root.find_element(By.ID, "typing").is_displayed()  # the message ends the typing
    assert root.find_element(By.ID, "who").text == "You are chatting with Grace"
    assert line(driver, "It left this morning.")["meta"].startswith("Grace · ")

    # Read receipts both ways: the open widget marks the reply read; the agent's receipt shows on the visitor's line
    read = agent.expect("message.read")["data"]
    assert read["upToMessageId"] == reply["id"]
    agent.ask("markRead", "message.read", sessionId=session_id, upToMessageId=got["id"])
    wait_until(driver, lambda d: (line(d, "Hello, where is my order?") or {}).get("state") == "read")
    assert line(driver, "Hello, where is my order?")["meta"].endswith("· Read")
    screenshot(driver, "widget-conversation")

    # A forced reconnect: the gateway drops the visitor's connection while the agent writes
    visitor_id = desk.session(session_id)["visitorId"]
    (before,) = visitor_connections(db, desk.tenant, visitor_id)
    drop(desk.stack, before)
    agent.ask("sendMessage", "message.new", sessionId=session_id, message="Are you still there?", clientMessageId="a-2")
    wait_until(driver, lambda d: "Are you still there?" in texts(d, "agent"))  # through the sync after reconnect
    (after,) = wait_until(
        driver, lambda d: [c for c in visitor_connections(db, desk.tenant, visitor_id) if c != before]
    )
    assert host_attribute(driver, "data-connection") == "open"
    assert texts(driver, "agent") == ["It left this morning.", "Are you still there?"]  # nothing missed or doubled

    # Offline: the network goes, the connection with it; what the visitor types waits, then is sent once
    set_offline(driver, True)
    drop(desk.stack, after)
    wait_until(driver, lambda d: host_attribute(d, "data-connection") in ("offline", "connecting"))
    type_message(root, "Yes, sorry, my train went into a tunnel.")
    time.sleep(1.0)
    assert line(driver, "Yes, sorry, my train went into a tunnel.")["state"] == "sending"
    assert "reconnecting" in notice(root)
    screenshot(driver, "widget-offline")
    set_offline(driver, False)
    offline = agent.expect("message.new", where=lambda e: e["data"]["senderType"] == "customer")["data"]
    assert offline["message"] == "Yes, sorry, my train went into a tunnel."
    wait_until(
        driver, lambda d: (line(d, "Yes, sorry, my train went into a tunnel.") or {}).get("state") == "delivered"
    )
    time.sleep(1.0)
    stored = [(m["senderType"], m["message"]) for m in desk.messages(session_id)]
    assert stored.count(("customer", "Yes, sorry, my train went into a tunnel.")) == 1
    assert [row["text"] for row in shown(driver) if row["kind"] != "system"] == [
        "Hello, where is my order?",
        "It left this morning.",
        "Are you still there?",
        "Yes, sorry, my train went into a tunnel.",
    ]
    assert not [e for e in agent.quiet(0.5) if e["type"] == "message.new"]  # it reached the agent once

    # The visitor ends the chat and rates it 4 with a comment; the API has both
    root.find_element(By.ID, "end").click()
    wait_until(driver, lambda d: host_attribute(d, "data-status") == "closed")
    assert agent.expect("chat.ended")["data"]["id"] == session_id
    screenshot(driver, "widget-rating")
    root.find_element(By.CSS_SELECTOR, "input[name=rating][value='4']").find_element(By.XPATH, "..").click()
    root.find_element(By.ID, "comment").send_keys("Quick and kind")
    root.find_element(By.CSS_SELECTOR, "#rate button[type=submit]").click()
    wait_until(driver, lambda d: root.find_element(By.ID, "thanks").is_displayed())
    assert agent.expect("chat.rated")["data"]["rating"] == 4
    stored_session = desk.session(session_id)
    assert (stored_session["status"], stored_session["rating"], stored_session["feedback"]) == (
        "closed",
        4,
        "Quick and kind",
    )
    screenshot(driver, "widget-rated")

    # Rated, the chat is done: the widget lets its connection go, and the next visit starts a new chat
    wait_until(driver, lambda d: not visitor_connections(db, desk.tenant, visitor_id))
    driver.refresh()
    root = widget(driver)
    root.find_element(By.ID, "launcher").click()
    wait_until(driver, lambda d: root.find_element(By.ID, "name").is_displayed())
    assert shown(driver) == []
    assert not [entry for entry in console_log(driver) if "SEVERE" in entry and "widget.js" in entry]


def test_a_returning_visitor_sees_their_conversation_and_another_browser_does_not(
    desk: Desk, browsers: Callable[[], WebDriver], screenshot: Shot
) -> None:
    driver = browsers()
    _, agent = available_agent(desk, "Ada")
    root = open_widget(driver, desk.shop_url)
    start_chat(driver, root, "Sam")
    session_id = session_id_of(driver)
    agent.expect("chat.assigned")
    type_message(root, "Do you ship to Norway?")
    agent.expect("message.new")
    agent.ask("sendMessage", "message.new", sessionId=session_id, message="We do, in 3 days.", clientMessageId="a-1")
    wait_until(driver, lambda d: "We do, in 3 days." in texts(d, "agent"))

    # The same browser later (same storage): the conversation is there, once, and the chat goes on
    driver.get("about:blank")
    driver.get(desk.shop_url)
    root = widget(driver)
    root.find_element(By.ID, "launcher").click()
    wait_until(driver, lambda d: "We do, in 3 days." in texts(d, "agent"))
    assert texts(driver, "customer") == ["Do you ship to Norway?"]
    assert texts(driver, "agent") == ["We do, in 3 days."]
    assert root.find_element(By.ID, "who").text == "You are chatting with Ada"
    type_message(root, "Great, thanks!")
    again = agent.expect("message.new")["data"]
    assert (again["sessionId"], again["message"]) == (session_id, "Great, thanks!")
    screenshot(driver, "widget-returning-visitor")

    # Another browser is another visitor: no conversation, the start form
    stranger = browsers()
    other = open_widget(stranger, desk.shop_url)
    assert shown(stranger) == []
    assert other.find_element(By.ID, "name").is_displayed()


def test_a_transfer_and_messages_that_arrive_while_the_panel_is_closed(
    desk: Desk, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    driver = visitor_browser
    ada_id, ada = available_agent(desk, "Ada")
    root = open_widget(driver, desk.shop_url)
    start_chat(driver, root, "Mo")
    session_id = session_id_of(driver)
    assert ada.expect("chat.assigned")["data"]["assignedAgentId"] == ada_id
    # named as soon as she is assigned, before she writes anything
    wait_until(driver, lambda d: root.find_element(By.ID, "who").text == "You are chatting with Ada")
    assert "Ada has joined the chat" in texts(driver, "system")
    assert not texts(driver, "agent")
    ada.ask("sendMessage", "message.new", sessionId=session_id, message="Ada here.", clientMessageId="a-1")
    wait_until(driver, lambda d: "Ada here." in texts(d, "agent"))

    # Ada hands the chat to Bob: the widget says so and names Bob at once, before he writes
    bob_id, bob = available_agent(desk, "Bob")
    ada.ask("transfer", "chat.transferred", sessionId=session_id, toAgentId=bob_id)
    wait_until(driver, lambda d: "You were transferred to Bob" in texts(d, "system"))
    assert root.find_element(By.ID, "who").text == "You are chatting with Bob"
    bob.expect("chat.transferred")

    # With the panel closed, Bob's message counts on the launcher and is announced; opening it reads it
    root.find_element(By.ID, "close").click()
    bobs = bob.ask("sendMessage", "message.new", sessionId=session_id, message="Bob now, hello!", clientMessageId="b-1")
    wait_until(driver, lambda d: root.find_element(By.ID, "launcher").text == "Chat (1 new)")
    wait_until(
        driver, lambda d: root.find_element(By.ID, "status").get_attribute("textContent") == "New message from Bob"
    )
    reads_of_bobs = [
        e for e in bob.quiet(0.8) if e["type"] == "message.read" and e["data"]["upToMessageId"] == bobs["data"]["id"]
    ]
    assert not reads_of_bobs  # unseen is unread
    screenshot(driver, "widget-unread")
    root.find_element(By.ID, "launcher").click()
    bob.expect("message.read", where=lambda e: e["data"]["upToMessageId"] == bobs["data"]["id"])
    assert root.find_element(By.ID, "launcher").text == "Close chat"
    assert root.find_element(By.ID, "who").text == "You are chatting with Bob"
    assert desk.session(session_id)["assignedAgentId"] == bob_id


# Loses the first chat.started the page would receive (the widget never sees it) and closes that connection, as
# a drop right after the server started the chat does; records the clientStartId of every startChat sent.
LOSE_THE_FIRST_CHAT_STARTED = """
(() => {
  const Real = window.WebSocket;
  window.startsSent = [];
  window.startedLost = 0;
  window.WebSocket = class extends Real {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (window.startedLost === 0 && JSON.parse(e.data).type === "chat.started") {
          window.startedLost = 1;
          e.stopImmediatePropagation(); // before the widget's own onmessage
          this.close();
        }
      });
    }
    send(data) {
      const sent = JSON.parse(data);
      if (sent.action === "startChat") window.startsSent.push(sent.clientStartId || null);
      super.send(data);
    }
  };
})();
"""


def test_a_start_whose_answer_is_lost_is_resent_and_makes_one_chat(
    desk: Desk, db: DatabaseUrls, visitor_browser: WebDriver
) -> None:
    driver = visitor_browser
    _, agent = available_agent(desk, "Grace")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LOSE_THE_FIRST_CHAT_STARTED})
    root = open_widget(driver, desk.shop_url)
    root.find_element(By.ID, "name").send_keys("Lin")
    root.find_element(By.CSS_SELECTOR, "#start button[type=submit]").click()

    # The widget reconnects and starts again with the same id: the server answers the chat it already started
    wait_until(driver, lambda d: host_attribute(d, "data-status") == "active")
    assert driver.execute_script("return window.startedLost") == 1
    starts = driver.execute_script("return window.startsSent")
    assert len(starts) == 2 and starts[0] and starts[0] == starts[1], starts
    session_id = session_id_of(driver)
    assert agent.expect("chat.assigned")["data"]["id"] == session_id
    assert not [e for e in agent.quiet(0.8) if e["type"] == "chat.assigned"]  # one chat, assigned once
    visitor_id = desk.session(session_id)["visitorId"]
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT count(*) FROM live_chat_sessions WHERE user_id = %s AND visitor_id = %s", (desk.tenant, visitor_id)
        ).fetchone()
    assert row is not None and row[0] == 1
    assert root.find_element(By.ID, "who").text == "You are chatting with Grace"


def test_a_page_whose_origin_the_key_does_not_allow_is_refused_at_load_and_the_widget_says_so(
    desk: Desk, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    """Checked when the page loads: the visitor opens the panel and reads the refusal, with no name to type and
    no Start to press first (it used to appear only then)."""
    key = desk.new_widget_key(["https://another-shop.example"])
    visitor_browser.get(desk.serve_shop(key))

    wait_until(visitor_browser, lambda d: host_attribute(d, "data-connection") == "refused")
    root = widget(visitor_browser)
    root.find_element(By.ID, "launcher").click()
    wait_until(visitor_browser, lambda d: root.find_element(By.ID, "panel").is_displayed())

    assert notice(root) == "Chat is not available on this site: the widget key does not allow this page's address."
    assert not root.find_element(By.ID, "compose").is_displayed()
    assert not root.find_element(By.ID, "start").is_displayed()
    screenshot(visitor_browser, "widget-refused")


def test_keyboard_alone_opens_chats_sends_ends_rates_and_closes(desk: Desk, visitor_browser: WebDriver) -> None:
    driver = visitor_browser
    _, agent = available_agent(desk, "Kim")
    driver.get(desk.shop_url)
    widget(driver)
    keys = ActionChains(driver)

    def focused() -> str:
        """`w:<id>` for the element focused inside the widget, else the page element's tag."""
        return str(
            driver.execute_script(
                "const a = document.activeElement; if (!a || !a.shadowRoot) return a ? a.tagName.toLowerCase() : '';"
                "const f = a.shadowRoot.activeElement; return 'w:' + (f ? f.id || f.name || f.type : '')"
            )
        )

    for _ in range(20):  # Tab through the shop's links and buttons to the launcher
        if focused() == "w:launcher":
            break
        keys.send_keys(Keys.TAB).perform()
    assert focused() == "w:launcher"
    keys.send_keys(Keys.ENTER).perform()
    wait_until(driver, lambda d: focused() == "w:name")  # the panel opens on its first field
    keys.send_keys("Robin", Keys.ENTER).perform()
    wait_until(driver, lambda d: focused() == "w:text")
    agent.expect("chat.assigned")
    keys.send_keys("Typed without a mouse", Keys.ENTER).perform()
    assert agent.expect("message.new")["data"]["message"] == "Typed without a mouse"
    keys.send_keys(Keys.TAB).perform()  # the attach button ("Attach a file") comes first
    assert focused() == "w:attach"
    keys.send_keys(Keys.TAB, Keys.TAB).perform()  # past Send to "End chat"
    assert focused() == "w:end"
    keys.send_keys(Keys.ENTER).perform()
    wait_until(driver, lambda d: focused() == "w:rating")  # the end moves focus to the rating
    # The rating is a radio group: arrow keys choose, Tab moves on to the comment and the button
    keys.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.TAB, "Smooth", Keys.TAB, Keys.ENTER).perform()
    rated = agent.expect("chat.rated")["data"]
    assert (rated["rating"], rated["feedback"]) == (3, "Smooth")
    wait_until(driver, lambda d: focused() == "w:submit")  # "Start a new chat"
    keys.send_keys(Keys.ESCAPE).perform()
    wait_until(driver, lambda d: focused() == "w:launcher")  # Escape closes, focus back on the launcher
    assert not widget(driver).find_element(By.ID, "panel").is_displayed()


def test_axe_finds_no_serious_violation_in_any_state_of_the_widget(
    desk: Desk, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    driver = visitor_browser
    _, agent = available_agent(desk, "Noor")
    root = open_widget(driver, desk.shop_url)
    assert_accessible(driver)
    start_chat(driver, root, "Ari")
    agent.expect("chat.assigned")
    type_message(root, "Is the stove allowed on a plane?")
    session_id = session_id_of(driver)
    agent.ask("sendMessage", "message.new", sessionId=session_id, message="Not with gas in it.", clientMessageId="a")
    wait_until(driver, lambda d: "Not with gas in it." in texts(d, "agent"))
    assert_accessible(driver)
    agent.ask("endChat", "chat.ended", sessionId=session_id)
    wait_until(driver, lambda d: root.find_element(By.ID, "rate").is_displayed())
    assert_accessible(driver)
    # and in the dark, as a visitor who prefers it sees it
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    assert_accessible(driver)
    screenshot(driver, "widget-dark")


def test_the_visitors_preferences_colour_scheme_and_motion_are_followed_and_the_page_styles_stay_out(
    desk: Desk, visitor_browser: WebDriver
) -> None:
    driver = visitor_browser
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {
            "features": [
                {"name": "prefers-color-scheme", "value": "dark"},
                {"name": "prefers-reduced-motion", "value": "reduce"},
            ]
        },
    )
    root = open_widget(driver, desk.shop_url)
    style = "return getComputedStyle(arguments[0])[arguments[1]]"
    panel, launcher = root.find_element(By.ID, "panel"), root.find_element(By.ID, "launcher")
    assert driver.execute_script(style, panel, "backgroundColor") == "rgb(22, 27, 34)"
    assert driver.execute_script(style, panel, "animationName") == "none"
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {
            "features": [
                {"name": "prefers-color-scheme", "value": "light"},
                {"name": "prefers-reduced-motion", "value": "no-preference"},
            ]
        },
    )
    assert driver.execute_script(style, panel, "backgroundColor") == "rgb(255, 255, 255)"
    assert driver.execute_script(style, panel, "animationName") == "rise"
    # The shop styles every button yellow with a dashed red border, and spaces letters: none of it reaches in
    shop_button = driver.find_element(By.CSS_SELECTOR, "main button")
    assert driver.execute_script(style, shop_button, "backgroundColor") == "rgb(255, 255, 0)"
    assert driver.execute_script(style, launcher, "backgroundColor") == "rgb(11, 92, 173)"
    assert driver.execute_script(style, launcher, "borderTopStyle") == "none"
    assert driver.execute_script(style, launcher, "letterSpacing") == "normal"


def tuned_shop(desk: Desk, attributes: dict[str, str]) -> str:
    """A shop page on a port of its own whose script tag carries `attributes`, with a key allowing its origin."""
    port = free_port()
    return desk.serve_shop(desk.new_widget_key([f"http://127.0.0.1:{port}"]), port, attributes)


def test_it_pings_within_the_idle_timeout_and_renews_its_connection_before_the_limit(
    desk: Desk, db: DatabaseUrls, visitor_browser: WebDriver
) -> None:
    """With the timings shortened by the script tag (ping after 1 s of silence, a new connection every 6 s): the
    connection stays active while the visitor is idle, and is replaced without losing or doubling a message."""
    driver = visitor_browser
    _, agent = available_agent(desk, "Ola")
    root = open_widget(driver, tuned_shop(desk, {"ping-seconds": "1", "max-connection-seconds": "6"}))
    start_chat(driver, root, "Idle")
    agent.expect("chat.assigned")
    session_id = session_id_of(driver)
    visitor_id = desk.session(session_id)["visitorId"]
    (first,) = wait_until(driver, lambda d: visitor_connections(db, desk.tenant, visitor_id))

    def last_active(connection_id: str) -> str:
        reply = httpx.get(f"{desk.stack.chat.management_endpoint}/@connections/{connection_id}")
        assert reply.status_code == 200, reply.text
        return str(reply.json()["lastActiveAt"])

    seen = last_active(first)
    time.sleep(2.5)  # the visitor does nothing; the widget pings
    assert last_active(first) > seen
    sent = []
    for n in range(10):  # messages keep coming while the connection is renewed
        sent.append(f"tick {n}")
        agent.ask("sendMessage", "message.new", sessionId=session_id, message=sent[-1], clientMessageId=f"t{n}")
        time.sleep(0.5)
    wait_until(driver, lambda d: first not in visitor_connections(db, desk.tenant, visitor_id))
    wait_until(driver, lambda d: texts(d, "agent") == sent)
    time.sleep(0.5)
    assert texts(driver, "agent") == sent  # each once, in order
    assert host_attribute(driver, "data-connection") == "open"


def test_with_no_agent_free_in_time_the_widget_says_the_desk_is_offline(
    desk: Desk, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    root = open_widget(visitor_browser, tuned_shop(desk, {"max-wait": "1"}))
    start_chat(visitor_browser, root, "Late")
    wait_until(visitor_browser, lambda d: "the desk is offline" in notice(root))
    assert host_attribute(visitor_browser, "data-status") == "waiting"
    screenshot(visitor_browser, "widget-desk-offline")
    # and it offers the web form, which knows the visitor's name already
    offer = root.find_element(By.ID, "offer")
    wait_until(visitor_browser, lambda d: offer.is_displayed())
    offer.click()
    wait_until(visitor_browser, lambda d: host_attribute(d, "data-view") == "mail")
    assert root.find_element(By.ID, "m-name").get_attribute("value") == "Late"
    assert focused_id(visitor_browser) == "m-email"  # the first field left to fill in


def test_with_the_queue_full_the_widget_says_the_desk_is_busy_and_offers_the_web_form(
    desk: Desk, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    # Given a queue of one, taken by another visitor
    form = "https://shop.example/contact"
    reply = desk.admin.put("/api/support/settings/chat", json={"queueCap": 1, "webFormUrl": form})
    assert reply.status_code == 200, reply.text
    assert python_visitor(desk).ask("startChat", "chat.started")["data"]["status"] == "waiting"
    # When this visitor starts a chat
    root = open_widget(visitor_browser, desk.shop_url)
    root.find_element(By.ID, "name").send_keys("Busy")
    root.find_element(By.CSS_SELECTOR, "#start button[type=submit]").click()
    # Then the widget says the desk is busy, names the web form, and offers to start again; nothing was started
    wait_until(visitor_browser, lambda d: "queue is full" in notice(root))
    assert notice(root).endswith(form)
    wait_until(visitor_browser, lambda d: root.find_element(By.ID, "start").is_displayed())
    assert not root.find_element(By.ID, "compose").is_displayed()
    screenshot(visitor_browser, "widget-desk-busy")
    # and the widget's own form is one step away, focused for the keyboard
    assert focused_id(visitor_browser) == "leave"


def focused_id(driver: WebDriver) -> str:
    """The id of the element focused inside the widget ('' when the focus is elsewhere)."""
    return str(
        driver.execute_script(
            "const a = document.activeElement; const f = a && a.shadowRoot && a.shadowRoot.activeElement;"
            "return f ? f.id : ''"
        )
    )


def web_form_tickets(desk: Desk) -> list[dict[str, Any]]:
    reply = desk.admin.get("/api/support/tickets", params={"channel": "web_form"})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["data"])


def test_a_visitor_leaves_a_message_with_the_form_and_sees_its_reference(
    desk: Desk, db: DatabaseUrls, visitor_browser: WebDriver, screenshot: Shot
) -> None:
    """No agent needed: the "Leave a message" link is always on the start screen. The form is labelled, refuses
    what the desk refuses with the field named and focused, and on success shows the ticket's reference."""
    driver = visitor_browser
    root = open_widget(driver, desk.shop_url)
    root.find_element(By.ID, "leave").click()
    wait_until(driver, lambda d: host_attribute(d, "data-view") == "mail")
    assert focused_id(driver) == "m-name"
    assert not root.find_element(By.ID, "log").is_displayed()
    assert not root.find_element(By.ID, "m-website").is_displayed()  # the honeypot: never shown to a person
    assert_accessible(driver)

    root.find_element(By.ID, "m-name").send_keys("Robin Reed")
    root.find_element(By.ID, "m-email").send_keys("robin@example.com")
    root.find_element(By.ID, "m-subject").send_keys("Gift wrapping")
    root.find_element(By.ID, "m-message").send_keys("   ")  # only spaces: the browser lets it through, the desk not
    root.find_element(By.ID, "m-send").click()
    error = root.find_element(By.ID, "m-error")
    wait_until(driver, lambda d: error.is_displayed())
    assert error.text.startswith("Message:")
    assert root.find_element(By.ID, "m-message").get_attribute("aria-invalid") == "true"
    assert focused_id(driver) == "m-message"
    assert web_form_tickets(desk) == []
    screenshot(driver, "widget-form-error")

    message = root.find_element(By.ID, "m-message")
    message.clear()
    message.send_keys("Can you wrap the teapot as a gift?\nIt is for my aunt.")
    root.find_element(By.ID, "m-send").click()
    wait_until(driver, lambda d: host_attribute(d, "data-view") == "sent")

    (ticket,) = web_form_tickets(desk)
    sent = root.find_element(By.ID, "sent-text")
    assert ticket["reference"] == "#1001"
    assert ticket["reference"] in sent.text and "robin@example.com" in sent.text
    assert focused_id(driver) == "sent-text"  # read out at once
    assert (ticket["channel"], ticket["customerName"], ticket["customerEmail"], ticket["subject"]) == (
        "web_form",
        "Robin Reed",
        "robin@example.com",
        "Gift wrapping",
    )
    assert ticket["description"] == "Can you wrap the teapot as a gift?\nIt is for my aunt."
    assert_accessible(driver)
    screenshot(driver, "widget-form-sent")
    # Back to the chat: the start screen again
    root.find_element(By.ID, "sent-back").click()
    wait_until(driver, lambda d: host_attribute(d, "data-view") == "chat")
    assert focused_id(driver) == "name"


def test_the_widget_is_at_most_30_kb_gzipped_and_asks_no_third_party(
    desk: Desk, browser_stack: BrowserStack, visitor_browser: WebDriver
) -> None:
    served = httpx.get(f"{browser_stack.http_url}/widget/widget.js")
    assert served.status_code == 200
    size = len(gzip.compress(served.content, compresslevel=9))
    assert size <= 30 * 1024, f"widget.js is {size} bytes gzipped"
    root = open_widget(visitor_browser, desk.shop_url)
    start_chat(visitor_browser, root, "Counting")
    origins = visitor_browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => new URL(e.name).origin)"
    )
    assert set(origins) <= {browser_stack.http_url, desk.shop_origin}, origins
    assert browser_stack.http_url in origins  # widget.js and the session route
