"""The shell examples of the README's tour and of docs/api.md, run as written, top to bottom in one bash, against
`python -m local.run` on a data folder of the test's own: every `curl` answers without an error (they use
`--fail-with-body`, so an error answer fails the script), and each id the examples capture feeds the next ones.
The README and the API reference stay true."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.local_run import REPO, LocalRun, developer_env, json_documents, scratch_data_dir

README = REPO / "README.md"
# The pages whose `sh` examples call the local API, in the order they run (the README's tour first).
PAGES = [README, REPO / "docs" / "api.md"]


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from scratch_data_dir(request.node.name)


def _curl_blocks(page: Path) -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    return [block for block in blocks if "curl" in block]


def _shell_examples() -> list[str]:
    return [block for page in PAGES for block in _curl_blocks(page)]


def test_every_page_with_curl_examples_is_run() -> None:
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    assert [page for page in pages if _curl_blocks(page)] == PAGES


def test_the_readme_has_the_examples_this_test_runs() -> None:
    script = "\n".join(_shell_examples())
    for variable in ("TICKET", "AGENT", "SESSION", "MESSAGE", "RESPONSE"):
        assert re.search(rf"^{variable}=\$\(curl ", script, re.M), f"{variable} is never captured"
    assert "curl -s " not in script  # -s alone hides a wrong port or URL
    assert "127.0.0.1:3000" not in script.replace("BASE=${BASE:-http://127.0.0.1:3000}", "")
    assert not re.search(r"\d{4}-\d{2}-\d{2}", script), "a fixed day ages: compute it (see the analytics examples)"


# Not the day the examples were written, nor today: the demo history is loaded as if this day were today, and the
# examples are told it is (TO), as a reader's shell on that day would compute it.
ANOTHER_DAY = datetime.now(UTC).date() - timedelta(days=400)


def test_every_readme_example_answers(data_dir: Path) -> None:
    run = LocalRun(data_dir, env={"SUPPORT_DEMO_TODAY": ANOTHER_DAY.isoformat()}).wait_ready()
    try:
        script = "set -euo pipefail\n" + "\n".join(_shell_examples())
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO,
            env=developer_env(data_dir, run.port) | {"BASE": run.base, "TO": ANOTHER_DAY.isoformat()},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        # In order: the steps before left the demo desk as the WebSocket section finds it, its chat waiting for
        # Alan (an example that made another agent available would have given it to her).
        chats = run.get("/chat/sessions").json()["data"]
        assert [c["status"] for c in chats if c["visitorId"] == "visitor-1003"] == ["waiting"]
    finally:
        assert run.stop() == 0, run.output

    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "401 GET /api/support/tickets: no token" in run.output  # make run logs the reason of a 401
    answers = json_documents(result.stdout)
    assert answers.count({"message": "Unauthorized"}) == 1  # the example without a token
    envelopes = [a for a in answers if a != {"message": "Unauthorized"}]
    # Every curl whose answer is not captured prints one envelope.
    printed = len(re.findall(r"^curl ", "\n".join(_shell_examples()), re.M)) - 1
    assert len(envelopes) == printed
    assert all(a["success"] is True for a in envelopes), result.stdout
    assert re.search(r'^www-authenticate: Bearer .*error="invalid_token"', result.stdout, re.M | re.I)
    # The two-word searches found what the README says they find.
    searches = [a["data"] for a in envelopes if isinstance(a["data"], list)]
    assert any(any(t.get("subject") == "Refund for order 1042" for t in page) for page in searches)
    assert any(len([r for r in page if r.get("responseTitle") == "Refund timeline"]) == 2 for page in searches)
    # The analytics examples find the demo's two weeks, on a day other than the one they were written on.
    rows = next(page for page in searches if page and "analyticsDate" in page[0])
    assert [row["analyticsDate"] for row in rows] == [
        (ANOTHER_DAY - timedelta(days=back)).isoformat() for back in range(13, 0, -1)
    ]
    summaries = [a["data"] for a in envelopes if isinstance(a["data"], dict) and "rolledUpDays" in a["data"]]
    assert [(s["from"], s["to"], s["rolledUpDays"]) for s in summaries] == [
        ((ANOTHER_DAY - timedelta(days=13)).isoformat(), ANOTHER_DAY.isoformat(), 13)
    ] * 2
