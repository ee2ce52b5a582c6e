"""The widget's attach button (issue 20): a visitor picks a file, the widget asks for an upload URL, the browser POSTs
the file straight to S3 (moto in server mode behind the POST policy check, as `make run` serves it), and the message
that names it reaches the agent with the file, which the agent and the visitor both read back."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser.conftest import Desk, wait_until
from tests.browser.test_widget import available_agent, host_attribute, open_widget, session_id_of, start_chat


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
