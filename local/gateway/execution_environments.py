"""Lambda's execution environments, locally: how the gateway invokes a function's handler.

In AWS each concurrent invocation of a function runs in its own execution environment: a process that
imported the handler's module once (the cold start) and then serves one invocation at a time, reused by
later invocations. `WorkerPools` does the same with worker processes (multiprocessing, spawn context): a
pool per function, up to `LOCAL_LAMBDA_CONCURRENCY` (default 4) workers, started on demand (one at start,
so a broken handler module stops the gateway at once; all of them for the functions LOCAL_LAMBDA_WARM names, as
provisioned concurrency would) and reused while alive. Events and results cross
the process boundary as JSON, as they cross Lambda's; the `LambdaContext` is rebuilt in the worker.
Workers inherit the environment the gateway had when it started them (DATABASE_URL, AWS settings...).
A worker that dies during an invocation fails that invocation (a function error) and is replaced by a new
one when next needed. When every worker of a function is busy, an invocation waits for one (Lambda would
throttle past its concurrency limit; locally waiting is kinder).

`InProcessEnvironments` runs handlers in the gateway's own process, one invocation at a time per function
(a lock), for tests that watch a handler's state from the test process.

A handler that runs past its template `Timeout` is logged, not stopped: the invocation would fail in AWS.

A worker prints its function's Powertools log records as a developer reads them, one short line each
(`INFO:     TicketsFunction: message key=value ...`, an error followed by its traceback), where Lambda would
send CloudWatch one JSON document each: the keys that JSON carries for searching (the request and
correlation ids, the function's settings) are left out, the handler's own code and log calls are unchanged.
With Powertools' metrics switched off (`make run` switches them off: no CloudWatch reads them locally), a
worker forgets each invocation's metrics, which Powertools would otherwise keep and print at the 100th value.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from local.gateway.aws import ACCOUNT_ID, REGION
from local.template import REPO, LambdaFunction, LambdaHandler, load_handler

logger = logging.getLogger("local.gateway")

DEFAULT_CONCURRENCY = 4
_START_TIMEOUT_SECONDS = 120.0


@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionError(Exception):
    """An invocation failed as Lambda reports it: `errorType` and `errorMessage` (the handler raised, its
    result was not JSON, or its worker died). `trace` is the worker's traceback text, when there is one."""

    def __init__(self, function: str, error_type: str, error_message: str, trace: str | None = None) -> None:
        super().__init__(f"{function}: {error_type}: {error_message}")
        self.function = function
        self.error_type = error_type
        self.error_message = error_message
        self.trace = trace

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.trace}" if self.trace else text


class ExecutionEnvironments(Protocol):
    def add(self, function: LambdaFunction, load: Callable[[], LambdaHandler]) -> None:
        """Make `function` invocable; its handler module is imported now (a broken one raises here)."""

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        """Run one invocation and return the handler's result, or raise `FunctionError`. Blocking."""

    def close(self) -> None:
        """Stop every worker."""


def _warn_if_over_timeout(function: LambdaFunction, elapsed: float) -> None:
    if elapsed > function.timeout_seconds:
        logger.warning(
            "%s took %.1f s, over its %d s timeout: in AWS this invocation would have failed",
            function.logical_id,
            elapsed,
            function.timeout_seconds,
        )


def _context(function: LambdaFunction, request_id: str | None = None) -> LambdaContext:
    context = LambdaContext(
        function_name=function.logical_id,
        memory_limit_in_mb=function.memory_size_mb,
        timeout_seconds=function.timeout_seconds,
    )
    if request_id:
        context.aws_request_id = request_id
    return context


class InProcessEnvironments:
    """One execution environment per function inside the gateway's process: one invocation at a time."""

    def __init__(self) -> None:
        self._functions: dict[str, tuple[LambdaFunction, LambdaHandler, threading.Lock]] = {}

    def add(self, function: LambdaFunction, load: Callable[[], LambdaHandler]) -> None:
        if function.logical_id not in self._functions:
            self._functions[function.logical_id] = (function, load(), threading.Lock())

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        function, handler, lock = self._functions[function_id]
        with lock:  # one invocation at a time per function, as in one execution environment
            started = time.monotonic()
            try:
                result = handler(event, _context(function))
            except Exception as exc:
                raise FunctionError(function_id, type(exc).__name__, str(exc)) from exc
            elapsed = time.monotonic() - started
        _warn_if_over_timeout(function, elapsed)
        return result

    def close(self) -> None:
        self._functions.clear()


# --- worker processes ------------------------------------------------------------------------------


def _worker_main(conn: Connection, function: LambdaFunction, repo: str) -> None:
    """A worker's life: import the handler once, then serve invocations one at a time until told to stop."""
    # Ctrl-C reaches the whole process group: the gateway stops its workers itself, without tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):  # the handler's log lines as they come, as in CloudWatch
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    try:
        handler = load_handler(function.code_uri, function.handler, Path(repo))
    except BaseException:
        conn.send(("import_error", traceback.format_exc()))
        return
    _readable_powertools_logs(function.logical_id)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        request_id, event_json = message
        try:
            result = handler(json.loads(event_json), _context(function, request_id))
        except Exception as exc:
            conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc()))
            continue
        finally:
            _forget_unpublished_metrics()
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as exc:
            conn.send(("error", "Runtime.MarshalError", f"Unable to marshal response: {exc}", None))
            continue
        conn.send(("ok", payload))


_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _readable_powertools_logs(function_id: str) -> None:
    """Give every Powertools logger of this worker (its handler is imported by now) the readable formatter."""
    from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter, LambdaPowertoolsFormatter

    class ReadableFormatter(LambdaPowertoolsFormatter):
        """Powertools' formatter (so that `append_keys` and the rest still work) that writes lines for people."""

        def format(self, record: logging.LogRecord) -> str:
            extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES)
            line = f"{record.levelname}:     {function_id}: {record.getMessage()} {extras}".rstrip()
            return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line

    for log in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(log, "handlers", ()):
            if isinstance(handler.formatter, BasePowertoolsFormatter):
                handler.setFormatter(ReadableFormatter())


def _forget_unpublished_metrics() -> None:
    """With Powertools' metrics switched off (`POWERTOOLS_METRICS_DISABLED`, as `make run` has them), Powertools
    keeps every invocation's metrics, and prints them all anyway at a metric's 100th value; they go nowhere
    locally, so each invocation starts without them, as after a flush."""
    if "aws_lambda_powertools.metrics" not in sys.modules:
        return
    from aws_lambda_powertools.metrics import Metrics
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        Metrics().clear_metrics()  # the metrics of every Metrics instance of the process: they share them


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=2)
        self.conn.close()


class _FunctionPool:
    def __init__(self, function: LambdaFunction, size: int, repo: Path) -> None:
        self.function = function
        self._size = size
        self._repo = repo
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def _begin(self) -> _Worker:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_worker_main,
            args=(child, self.function, str(self._repo)),
            name=f"lambda-{self.function.logical_id}",
            daemon=True,
        )
        process.start()
        child.close()  # so that the worker's exit reaches `parent` as EOF
        worker = _Worker(process, parent)
        with self._cond:
            self._workers.append(worker)
        return worker

    def _await_ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(_START_TIMEOUT_SECONDS):
            worker.stop()
            raise FunctionError(self.function.logical_id, "Runtime.InitTimeout", "the worker did not start")
        try:
            status, detail = worker.conn.recv()
        except (EOFError, OSError):
            worker.stop()
            raise FunctionError(self.function.logical_id, "Runtime.ExitError", "the worker exited at start") from None
        if status != "ready":
            worker.stop()
            raise FunctionError(self.function.logical_id, "Runtime.ImportModuleError", "import failed", str(detail))

    def start(self) -> _Worker:
        """The first worker, started now (so that a broken module shows at start); `finish_start` waits."""
        with self._cond:
            self._count += 1
        return self._begin()

    def finish_start(self, worker: _Worker) -> None:
        try:
            self._await_ready(worker)
        except BaseException:
            with self._cond:
                self._count -= 1
            raise
        self.release(worker, healthy=True)

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError(self.function.logical_id, "Runtime.Shutdown", "the gateway is stopping")
                while self._idle:
                    worker = self._idle.pop()  # the most recently used: warm, as Lambda reuses environments
                    if worker.alive():
                        return worker
                    self._count -= 1
                    worker.conn.close()
                if self._count < self._size:
                    self._count += 1
                    break
                self._cond.wait()
        try:  # a cold start, outside the lock
            worker = self._begin()
            self._await_ready(worker)
            return worker
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, worker: _Worker, *, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed and worker.alive():
                self._idle.append(worker)
            else:
                self._count -= 1
                if worker in self._workers:
                    self._workers.remove(worker)
                threading.Thread(target=worker.stop, daemon=True).start()
            self._cond.notify()

    def invoke(self, event: dict[str, Any]) -> Any:
        event_json = json.dumps(event)
        worker = self._acquire()
        healthy = False
        started = time.monotonic()
        try:
            try:
                worker.conn.send((str(uuid.uuid4()), event_json))
                reply = worker.conn.recv()
            except (EOFError, OSError):
                raise FunctionError(
                    self.function.logical_id,
                    "Runtime.ExitError",
                    f"the worker exited during the invocation (exit code {worker.process.exitcode})",
                ) from None
            healthy = True
        finally:
            self.release(worker, healthy=healthy)
        _warn_if_over_timeout(self.function, time.monotonic() - started)
        if reply[0] == "ok":
            return json.loads(reply[1])
        _, error_type, error_message, trace = reply
        raise FunctionError(self.function.logical_id, error_type, error_message, trace)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._workers, self._idle = list(self._workers), [], []
            self._cond.notify_all()
        for worker in workers:
            worker.stop()


class WorkerPools:
    """A pool of worker processes per function, `concurrency` workers at most each."""

    def __init__(self, concurrency: int | None = None, repo: Path = REPO) -> None:
        self.concurrency = concurrency or int(os.environ.get("LOCAL_LAMBDA_CONCURRENCY") or DEFAULT_CONCURRENCY)
        if self.concurrency < 1:
            raise ValueError("the concurrency of a function is at least 1")
        self._repo = repo
        self._pools: dict[str, _FunctionPool] = {}

    def add(self, function: LambdaFunction, load: Callable[[], LambdaHandler] | None = None) -> None:
        self.add_all([function])

    def add_all(self, functions: list[LambdaFunction]) -> None:
        """Start a first worker of each function at once (or as many as LOCAL_LAMBDA_WARM says), then wait for all
        of them to have imported."""
        warm = warm_workers()
        started: list[tuple[_FunctionPool, _Worker]] = []
        for function in functions:
            if function.logical_id in self._pools:
                continue
            pool = self._pools[function.logical_id] = _FunctionPool(function, self.concurrency, self._repo)
            for _ in range(min(self.concurrency, warm.get(function.logical_id, 1))):
                started.append((pool, pool.start()))
        failure: BaseException | None = None
        for pool, worker in started:
            try:
                pool.finish_start(worker)
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            self.close()
            raise failure

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        return self._pools[function_id].invoke(event)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


def execution_environments(
    functions: list[tuple[LambdaFunction, Callable[[], LambdaHandler]]],
    *,
    in_process: bool,
    concurrency: int | None = None,
) -> ExecutionEnvironments:
    """Environments for `functions`, each given with the loader the in-process mode imports it with."""
    if in_process:
        environments = InProcessEnvironments()
        for function, load in functions:
            environments.add(function, load)
        return environments
    pools = WorkerPools(concurrency)
    pools.add_all([function for function, _ in functions])
    return pools


def warm_workers() -> dict[str, int]:
    """LOCAL_LAMBDA_WARM, what provisioned concurrency is in AWS: functions whose workers all start with the gateway
    instead of on demand, `WebSocketFunction,BroadcastFunction` (as many as the concurrency) or
    `BroadcastFunction=2`. A benchmark of a desk in steady use sets it, so that no cold start (an import, about a
    second of CPU) lands in the middle of what it measures."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in os.environ.get("LOCAL_LAMBDA_WARM", "").split(","))):
        name, _, count = item.partition("=")
        counts[name.strip()] = int(count) if count.strip() else 1_000_000
    return counts


def in_process_default() -> bool:
    """`LOCAL_LAMBDA_IN_PROCESS=1` runs handlers in the gateway's process; the default is worker pools."""
    return os.environ.get("LOCAL_LAMBDA_IN_PROCESS", "") not in ("", "0", "false")
