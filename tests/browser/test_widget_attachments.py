"""The widget's attach button and the console's file links (issue 20): a visitor picks a file, the widget asks for an
upload URL, the browser POSTs the file straight to S3 (moto in server mode behind the POST policy check, as `make run`
serves it), and the message that names it reaches the agent with the file, which the agent and the visitor both read
back; the console lists a reply's file with a link that asks for its download URL."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser.conftest import Desk, wait_until
from tests.browser.console_fixtures import console_url, go, new_ticket, ok, sign_in
from tests.browser.test_widget import available_agent, host_attribute, open_widget, session_id_of, start_chat

__all__ = ["console_url"]  # the fixture, used by name


def test_a_visitor_attaches_a_file_that_goes_to_s3_and_reaches_the_agent(
    desk: Desk, visitor_browser: WebDriver, tmp_path: Path
) -> None:
    driver = visitor_browser
    _agent_id, agent = available_agent(desk, "Grace")
    root = open_widget(driver, desk.shop_url)
    start_chat(driver, root, "Lin")
    agent.expect("chat.assigned")
    wait_until(driver, lambda d: host_attribute(d, "data-status") == "active")
    assert root.find_element(By.ID, "attach").get_attribute("aria-label") == "Attach a file"

    # The visitor picks a file: uploaded to S3 by the browser, then sent as a message naming it
    photo = tmp_path / "broken-mug.png"
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    photo.write_bytes(content)
    root.find_element(By.ID, "file").send_keys(str(photo))
    got = agent.expect("message.new", where=lambda e: e["data"]["senderType"] == "customer")["data"]
    (attached,) = got["attachments"]
    assert (attached["fileName"], attached["contentType"], attached["sizeBytes"]) == (
        "broken-mug.png",
        "image/png",
        len(content),
    )
    assert got["message"] == "broken-mug.png"  # no text typed: the file's name is the message
    uploads = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.includes('/desk-attachments-local'))"
    )
    assert uploads, "the browser itself posted the file to S3"

    # The agent reads it back through a presigned GET; the stored message carries it
    download = desk.admin.get(f"/api/support/attachments/{attached['id']}")
    assert download.status_code == 200, download.text
    assert httpx.get(download.json()["data"]["url"]).content == content
    stored = desk.messages(session_id_of(driver))
    assert [m["attachments"] for m in stored if m["senderType"] == "customer"] == [got["attachments"]]

    # The widget shows the file as a link; a click asks the visitor's download route for a fresh URL
    link = wait_until(driver, lambda d: root.find_elements(By.CSS_SELECTOR, ".msg.customer a.file"))[0]
    assert link.text.startswith("broken-mug.png (")
    link.click()
    wait_until(
        driver,
        lambda d: d.execute_script(
            "return performance.getEntriesByType('resource').some((e) => e.name.endsWith('/download-url'))"
        ),
    )
    assert root.find_element(By.ID, "notice").text == ""  # no error told


def test_the_console_shows_a_replys_file_with_a_link_that_asks_for_its_download_url(
    desk: Desk, console_url: str, agent_browser: WebDriver
) -> None:
    # Given a ticket whose reply carries a file uploaded to S3 (through the API, as any client would)
    ticket = new_ticket(desk, "Invoice copy")
    content = b"%PDF-1.7\n" + b"x" * 3000
    upload = ok(
        desk.admin.post(
            "/api/support/attachments/upload-url",
            json={
                "ticketId": ticket["id"],
                "fileName": "invoice.pdf",
                "contentType": "application/pdf",
                "sizeBytes": len(content),
            },
        )
    )
    stored = httpx.post(upload["url"], data=upload["fields"], files={"file": ("invoice.pdf", content)})
    assert stored.status_code == 204, stored.text
    reply = {
        "senderType": "agent",
        "senderName": "Grace",
        "message": "Here it is",
        "attachmentIds": [upload["attachmentId"]],
    }
    ok(desk.admin.post(f"/api/support/tickets/{ticket['id']}/conversations", json=reply))
    # When an agent opens the ticket in the console
    sign_in(agent_browser, console_url, desk)
    go(agent_browser, "tickets")
    wait_until(agent_browser, lambda d: d.find_elements(By.LINK_TEXT, "Invoice copy"))[0].click()
    link = wait_until(agent_browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#ticket-thread a.file"))[0]
    # Then the file is listed under the reply, and a click asks the API for its presigned URL
    assert link.text == "invoice.pdf (3 KB)"
    link.click()
    wait_until(
        agent_browser,
        lambda d: d.execute_script(
            "return performance.getEntriesByType('resource').some((e) => e.name.includes(arguments[0]))",
            f"/api/support/attachments/{upload['attachmentId']}",
        ),
    )
