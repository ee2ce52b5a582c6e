"""The console's parts of the channels (issue 17) in real headless Chromium against the real local stack: the contact
beside a ticket and a chat with the customer's other conversations, "New ticket" for a phone call (the call logged
with it), "Make a ticket" from a chat (its reference shown), and the suggested responses beside the ticket's and the
chat's reply boxes (a click fills the box). axe-core on each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from tests.browser.conftest import Desk, assert_accessible, wait_until
from tests.browser.console_fixtures import console_url, go, new_canned_response, new_ticket, ok, sign_in, texts

__all__ = ["console_url"]  # the fixture, used by name

Shot = Callable[[WebDriver, str], Path]


def test_the_contact_beside_a_ticket_and_a_chat_lists_the_customers_other_conversations(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    # Given a customer with two tickets and a chat (one contact, by their email), and someone else's ticket
    first = new_ticket(desk, "Broken mug")
    second = new_ticket(desk, "Refund for the mug")
    new_ticket(desk, "Someone else's order", email="lin@customers.example")
    grace = desk.add_agent("Grace Hopper", status="available")
    visitor = desk.connect_visitor()
    session = visitor.ask("startChat", "chat.started", visitorName="Ada", visitorEmail="ada@customers.example")["data"]
    assert ok(desk.admin.get(f"/api/support/tickets/{first['id']}"))["contactId"] == session["contactId"]

    # When the agent opens the second ticket
    sign_in(agent_browser, console_url, desk, grace)
    agent_browser.get(f"{console_url}#/tickets/{second['id']}")
    items = ".contact-panel .contact-conversations li[data-id]"
    wait_until(agent_browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, items)) == 2)

    # Then the panel shows the customer and their other conversations newest first, each a link, not this one
    panel = agent_browser.find_element(By.CSS_SELECTOR, "#ticket-detail .contact-panel")
    assert panel.get_attribute("data-contact") == session["contactId"]
    assert "ada@customers.example" in panel.find_element(By.CSS_SELECTOR, "dd[data-field=emails]").text
    kinds = [
        (e.get_attribute("data-kind"), e.get_attribute("data-id")) for e in panel.find_elements(By.CSS_SELECTOR, items)
    ]
    assert kinds == [("chat", session["id"]), ("ticket", first["id"])]
    links = [a.get_attribute("href") for a in panel.find_elements(By.CSS_SELECTOR, f"{items} a")]
    assert links == [f"{console_url}#/chats/{session['id']}", f"{console_url}#/tickets/{first['id']}"]
    assert "Someone else" not in panel.text
    assert "null" not in panel.text and "undefined" not in panel.text
    # and the ticket shows its reference and channel, in the view and in the list
    assert texts(agent_browser, "dd[data-field=reference]") == [second["reference"]]
    assert texts(agent_browser, "dd[data-field=channel]") == ["API"]
    row = f"#ticket-list tr[data-ticket='{second['id']}']"
    assert texts(agent_browser, f"{row} .reference") == [second["reference"]]
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-ticket-contact")

    # Following the link to the other ticket opens it, with the second in its list
    panel.find_element(By.PARTIAL_LINK_TEXT, "Broken mug").click()
    wait_until(agent_browser, lambda d: texts(d, "#ticket-heading") == ["Broken mug"])
    wait_until(
        agent_browser,
        lambda d: (
            [e.get_attribute("data-id") for e in d.find_elements(By.CSS_SELECTOR, items)]
            == [session["id"], second["id"]]
        ),
    )

    # The chat's link opens the chat (the agent's, assigned at once); beside it the same customer, with both tickets
    panel = agent_browser.find_element(By.CSS_SELECTOR, "#ticket-detail .contact-panel")
    panel.find_element(By.CSS_SELECTOR, f"li[data-id='{session['id']}'] a").click()
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "main").get_attribute("data-view") == "chats")
    wait_until(
        agent_browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f".chat-panel[data-session='{session['id']}']").is_displayed(),
    )
    chat_items = f".chat-panel[data-session='{session['id']}'] .contact-panel li[data-id]"
    wait_until(
        agent_browser,
        lambda d: (
            [e.get_attribute("data-id") for e in d.find_elements(By.CSS_SELECTOR, chat_items)]
            == [second["id"], first["id"]]
        ),
    )
    assert_accessible(agent_browser)


def test_new_ticket_for_a_phone_call_creates_a_phone_ticket_with_its_call(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    go(agent_browser, "tickets")
    agent_browser.find_element(By.ID, "new-ticket").click()
    wait_until(agent_browser, lambda d: d.switch_to.active_element.get_attribute("id") == "new-ticket-heading")

    def fill(field: str, text: str) -> None:
        agent_browser.find_element(By.ID, field).send_keys(text)

    fill("new-name", "Noor Khan")
    fill("new-email", "noor@customers.example")
    fill("new-phone", "+44 20 7946 0018")
    fill("new-subject", "Cannot sign in")
    fill("new-description", "Called about the password reset mail.")
    assert (
        Select(agent_browser.find_element(By.ID, "new-channel")).first_selected_option.get_attribute("value") == "phone"
    )
    agent_browser.find_element(By.CSS_SELECTOR, "label[for=new-call-outbound]").click()
    minutes = agent_browser.find_element(By.ID, "new-call-minutes")
    minutes.clear()
    minutes.send_keys("3")
    seconds = agent_browser.find_element(By.ID, "new-call-seconds")
    seconds.clear()
    seconds.send_keys("5")
    fill("new-call-notes", "Sent a new reset link.")
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-new-ticket")
    agent_browser.find_element(By.CSS_SELECTOR, "form.new-ticket button[type=submit]").click()

    # The ticket opens: phone, with its reference, and the call in its thread
    wait_until(agent_browser, lambda d: texts(d, "#ticket-heading") == ["Cannot sign in"])
    made = ok(desk.admin.get("/api/support/tickets", params={"channel": "phone"}))
    assert [t["subject"] for t in made] == ["Cannot sign in"]
    ticket = made[0]
    assert (ticket["customerName"], ticket["customerEmail"], ticket["customerPhone"]) == (
        "Noor Khan",
        "noor@customers.example",
        "+44 20 7946 0018",
    )
    assert texts(agent_browser, "dd[data-field=reference]") == [ticket["reference"]]
    assert texts(agent_browser, "dd[data-field=channel]") == ["phone"]
    thread = ok(desk.admin.get(f"/api/support/tickets/{ticket['id']}/conversations"))
    assert [(c["kind"], c["message"], c["call"]) for c in thread] == [
        (
            "call",
            "Sent a new reset link.",
            {"direction": "outbound", "callerNumber": "+44 20 7946 0018", "durationSeconds": 185, "agentId": grace},
        )
    ]
    wait_until(agent_browser, lambda d: any("outbound, 3:05" in t for t in texts(d, "#ticket-thread .badge.call")))
    row = f"#ticket-list tr[data-ticket='{ticket['id']}']"
    wait_until(agent_browser, lambda d: texts(d, f"{row} .channel") == ["phone"])


def test_make_a_ticket_from_a_chat_shows_its_reference(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)
    visitor = desk.connect_visitor()
    session = visitor.ask("startChat", "chat.started", visitorName="Lin")["data"]  # no email given
    said = "My parcel never arrived"
    visitor.ask("sendMessage", "message.new", sessionId=session["id"], message=said, clientMessageId="l-1")
    panel = f".chat-panel[data-session='{session['id']}']"
    wait_until(agent_browser, lambda d: texts(d, f"{panel} .messages .text") == [said])

    # The visitor gave no email: the form asks for it
    form = agent_browser.find_element(By.CSS_SELECTOR, f"{panel} form.make-ticket")
    form.find_element(By.CSS_SELECTOR, "input[type=email]").send_keys("lin@customers.example")
    assert_accessible(agent_browser)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    link = wait_until(
        agent_browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{panel} .chat-ticket a.ticket-reference")
    )
    made = ok(desk.admin.get(f"/api/support/chat/sessions/{session['id']}"))["ticketId"]
    ticket = ok(desk.admin.get(f"/api/support/tickets/{made}"))
    wait_until(agent_browser, lambda d: link.text == ticket["reference"])
    assert (ticket["channel"], ticket["subject"], ticket["customerEmail"], ticket["assignedAgentId"]) == (
        "chat",
        said,
        "lin@customers.example",
        grace,
    )
    thread = ok(desk.admin.get(f"/api/support/tickets/{made}/conversations"))
    assert [(c["senderType"], c["message"]) for c in thread] == [("customer", said)]
    # and beside the chat the customer's list now holds it
    contact_items = f"{panel} .contact-panel li[data-kind=ticket]"
    wait_until(
        agent_browser,
        lambda d: [e.get_attribute("data-id") for e in d.find_elements(By.CSS_SELECTOR, contact_items)] == [made],
    )
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-chat-ticket")

    # The link opens the ticket
    link.click()
    wait_until(agent_browser, lambda d: texts(d, "#ticket-heading") == [said])
    assert texts(agent_browser, "dd[data-field=channel]") == ["chat"]


def test_a_suggested_response_fills_the_reply_box_of_a_ticket_and_of_a_chat(
    desk: Desk, console_url: str, agent_browser: WebDriver, screenshot: Shot
) -> None:
    refund = new_canned_response(desk, "Refund policy", "Refunds reach your card within 5 days.", "refund")
    new_canned_response(desk, "Shipping times", "Orders ship within 2 days.", "ship")
    ticket = new_ticket(desk, "Where is my refund?")
    grace = desk.add_agent("Grace Hopper", status="available")
    sign_in(agent_browser, console_url, desk, grace)

    # A ticket: the suggestion with the word that matched; a click puts its text in the reply box
    agent_browser.get(f"{console_url}#/tickets/{ticket['id']}")
    choice = f"#ticket-detail .suggestion[data-response='{refund['id']}']"
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, choice))
    assert texts(agent_browser, "#ticket-detail .suggestion strong") == ["Refund policy"]
    assert texts(agent_browser, "#ticket-detail .suggestions .matched") == ["Matched: refund"]
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-ticket-suggestions")
    reply = agent_browser.find_element(By.ID, "ticket-reply")
    reply.send_keys("Hello Ada. ")
    agent_browser.find_element(By.CSS_SELECTOR, choice).click()
    assert reply.get_attribute("value") == "Hello Ada. Refunds reach your card within 5 days."

    def uses() -> int:
        found = ok(desk.admin.get("/api/support/canned-responses", params={"search": "Refund policy"}))
        return int(next(r["usageCount"] for r in found if r["id"] == refund["id"]))

    wait_until(agent_browser, lambda d: uses() == 1)

    # A chat: the visitor's words bring the suggestion (it follows their new messages)
    go(agent_browser, "chats")
    visitor = desk.connect_visitor()
    session = visitor.ask("startChat", "chat.started", visitorName="Lin")["data"]
    panel = f".chat-panel[data-session='{session['id']}']"
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"{panel} .suggestions"))
    visitor.ask(
        "sendMessage", "message.new", sessionId=session["id"], message="I want my money refunded", clientMessageId="r-1"
    )
    chat_choice = f"{panel} .suggestion[data-response='{refund['id']}']"
    wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, chat_choice))
    assert texts(agent_browser, f"{panel} .suggestions .matched") == ["Matched: refunded"]
    agent_browser.find_element(By.CSS_SELECTOR, chat_choice).click()
    chat_reply = agent_browser.find_element(By.CSS_SELECTOR, f"{panel} textarea[name=message]")
    assert chat_reply.get_attribute("value") == "Refunds reach your card within 5 days."
    wait_until(agent_browser, lambda d: uses() == 2)
    assert_accessible(agent_browser)
    screenshot(agent_browser, "console-chat-suggestions")
