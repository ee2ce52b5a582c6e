"""Lambda's execution environments, locally: the HTTP API's handlers in worker processes, a pool per
function, over real HTTP. The stub function's module writes its process id to a file when it is imported,
so the tests can see which process imported it and how often."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.gateway import FunctionError, create_app, running_gateway
from local.template import REPO, HttpRoute

pytestmark = pytest.mark.e2e

STUB = """
import json
import os
import time

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="stub")  # at import, as the layer's
metrics = Metrics(namespace="Stub", service="stub")


@metrics.log_metrics
def count(event, context):
    metrics.add_metric(name="Counted", unit="Count", value=1)
    return {{"counted": True}}

with open({imports!r}, "a") as out:
    out.write(f"{{os.getpid()}}\\n")


def lambda_handler(event, context):
    route = event["rawPath"]
    if route == "/slow":
        started = time.time()
        time.sleep(0.5)
        return {{"pid": os.getpid(), "start": started, "end": time.time()}}
    if route == "/boom":
        raise ZeroDivisionError("a bug in the worker")
    if route == "/die":
        os._exit(3)
    if route == "/metric":
        return count(event, context)
    if route == "/log":
        logger.append_keys(correlation_id="c-1")
        logger.info("handled", extra={{"route": route}})
        try:
            1 / 0
        except ZeroDivisionError:
            logger.exception("a handled failure")
        return {{"logged": True}}
    if route == "/not-json":
        return {{"statusCode": 200, "body": object()}}
    return {{
        "pid": os.getpid(),
        "marker": os.environ.get("GATEWAY_TEST_MARKER"),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
    }}
"""


def stub_routes(folder: Path) -> tuple[list[HttpRoute], Path]:
    imports = folder / "imports.txt"
    imports.write_text("")
    (folder / "app.py").write_text(STUB.format(imports=str(imports)))
    routes = [
        HttpRoute("GET", path, "StubFunction", str(folder), "app.lambda_handler", 6, 256, True)
        for path in ("/slow", "/boom", "/die", "/context", "/not-json", "/log", "/metric")
    ]
    return routes, imports


@pytest.fixture
def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    monkeypatch.setenv("GATEWAY_TEST_MARKER", "inherited")  # before the workers start
    routes, imports = stub_routes(tmp_path)
    with running_gateway(create_app(routes, concurrency=2)) as base_url:
        yield base_url, imports


def get(base_url: str, path: str) -> httpx.Response:
    return httpx.get(f"{base_url}{path}", timeout=20)


def concurrently(base_url: str, path: str, count: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{} for _ in range(count)]

    def call(index: int) -> None:
        reply = get(base_url, path)
        assert reply.status_code == 200
        results[index] = reply.json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def imports_by(imports: Path) -> list[int]:
    return [int(line) for line in imports.read_text().split()]


def test_two_slow_invocations_of_one_function_overlap_in_two_processes(workers: tuple[str, Path]) -> None:
    base_url, imports = workers
    # The first concurrent pair makes the second worker (a cold start, as in Lambda: it may finish late)
    warm_up = concurrently(base_url, "/slow", 2)
    first, second = concurrently(base_url, "/slow", 2)
    # two execution environments at once: two processes, both busy at the same time
    assert first["pid"] != second["pid"]
    assert os.getpid() not in (first["pid"], second["pid"])
    assert first["start"] < second["end"] and second["start"] < first["end"]
    # reused, not re-made: as many imports as workers, each worker imported its module once
    pids = imports_by(imports)
    assert len(pids) == len(set(pids)) == 2
    assert {first["pid"], second["pid"], *(r["pid"] for r in warm_up)} == set(pids)


def test_a_pool_of_one_serialises_invocations(tmp_path: Path) -> None:
    routes, imports = stub_routes(tmp_path)
    with running_gateway(create_app(routes, concurrency=1)) as base_url:
        first, second = sorted(concurrently(base_url, "/slow", 2), key=lambda r: float(r["start"]))
    assert first["pid"] == second["pid"]
    assert second["start"] >= first["end"]
    assert imports_by(imports) == [first["pid"]]


def test_a_function_named_in_local_lambda_warm_starts_all_its_workers_with_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given LOCAL_LAMBDA_WARM naming the function (as provisioned concurrency would), a pool of 3
    monkeypatch.setenv("LOCAL_LAMBDA_WARM", "OtherFunction=1, StubFunction")
    routes, imports = stub_routes(tmp_path)
    with running_gateway(create_app(routes, concurrency=3)) as base_url:
        # Then all three imported before any invocation, and three at once need no cold start
        assert len(set(imports_by(imports))) == 3
        results = concurrently(base_url, "/slow", 3)
        assert {r["pid"] for r in results} == set(imports_by(imports))
    # and a count caps it: "StubFunction=2" starts two
    monkeypatch.setenv("LOCAL_LAMBDA_WARM", "StubFunction=2")
    (tmp_path / "second").mkdir()
    routes, imports = stub_routes(tmp_path / "second")
    with running_gateway(create_app(routes, concurrency=3)):
        assert len(set(imports_by(imports))) == 2


def test_workers_inherit_the_environment_and_get_a_lambda_context(workers: tuple[str, Path]) -> None:
    base_url, _ = workers
    one, two = get(base_url, "/context").json(), get(base_url, "/context").json()
    assert one["marker"] == "inherited"
    assert one["function_name"] == "StubFunction"
    assert one["memory"] == 256
    assert 0 < one["remaining"] <= 6000
    assert one["arn"].endswith(":function:StubFunction")
    assert one["request_id"] != two["request_id"]


def test_a_handler_that_raises_in_a_worker_is_500_and_logged(
    workers: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    base_url, _ = workers
    with caplog.at_level(logging.ERROR, logger="local.gateway"):
        reply = get(base_url, "/boom")
        unmarshallable = get(base_url, "/not-json")
    assert reply.status_code == 500
    assert reply.json() == {"message": "Internal Server Error"}
    assert "ZeroDivisionError: a bug in the worker" in caplog.text  # the worker's traceback
    assert unmarshallable.status_code == 500
    assert "Unable to marshal response" in caplog.text
    assert get(base_url, "/context").status_code == 200  # the worker lives on


SERVE_ONE_LOG_REQUEST = """
import sys

import httpx

from local.gateway import create_app, running_gateway
from local.template import HttpRoute

if __name__ == "__main__":
    routes = [
        HttpRoute("GET", path, "StubFunction", sys.argv[1], "app.lambda_handler", 6, 256, True)
        for path in ("/log", "/metric")
    ]
    with running_gateway(create_app(routes, concurrency=1)) as base, httpx.Client(base_url=base, timeout=20) as http:
        assert http.get("/log").json() == {"logged": True}
        for _ in range(101):  # past Powertools' 100 values of a metric, where it would print them
            assert http.get("/metric").json() == {"counted": True}
"""


def test_a_workers_powertools_logs_are_lines_a_developer_reads(tmp_path: Path) -> None:
    """Not CloudWatch's JSON documents: a line per record with its extra keys, an error with its traceback; and
    with metrics switched off as `make run` has them, no metrics ever. The gateway runs in a process of its own,
    whose output (its workers') the test reads whole."""
    stub_routes(tmp_path)
    script = tmp_path / "serve.py"
    script.write_text(SERVE_ONE_LOG_REQUEST)

    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO), "POWERTOOLS_METRICS_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "INFO:     StubFunction: handled route=/log" in lines, done.stdout
    failure = lines.index("ERROR:     StubFunction: a handled failure")
    assert lines[failure + 1] == "Traceback (most recent call last):"
    assert "ZeroDivisionError: division by zero" in lines[failure + 2 :]
    assert not [line for line in lines if line.startswith("{")]  # no JSON logs, no EMF documents


def test_a_worker_that_dies_fails_its_invocation_and_is_replaced(workers: tuple[str, Path]) -> None:
    base_url, imports = workers
    before = get(base_url, "/context").json()["pid"]
    died = get(base_url, "/die")
    assert died.status_code == 500
    # the one warm worker took the invocation and died; a new one imported the module once, and serves
    after = {get(base_url, "/context").json()["pid"] for _ in range(3)}
    (replacement,) = after
    assert replacement != before
    assert imports_by(imports) == [before, replacement]


def test_a_module_that_fails_to_import_stops_the_gateway_at_start(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("raise ImportError('a missing dependency')\n")
    route = HttpRoute("GET", "/x", "BrokenFunction", str(tmp_path), "app.lambda_handler", public=True)
    with pytest.raises(FunctionError, match="a missing dependency"):
        create_app([route])


def test_in_process_mode_runs_the_handler_in_this_process(tmp_path: Path) -> None:
    routes, imports = stub_routes(tmp_path)
    with running_gateway(create_app(routes, in_process=True)) as base_url:
        reply = get(base_url, "/context").json()
    assert reply["pid"] == os.getpid()
    assert imports_by(imports) == [os.getpid()]
    assert json.dumps(reply)
