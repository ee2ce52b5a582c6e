"""`make invoke FUNCTION=<logical id> EVENT=<file>`: one function of template.yaml, run in-process with an event
file against the database `make run` uses, its result printed as JSON (what `sam local invoke -e` does, without
Docker).

The function gets what it would get in Lambda and under `make run`: its template environment (plain values; the
others' too, as the gateway gives them), the local endpoints and keys of `make run` (local.run), and a Lambda
context with its template timeout and memory. Its database: `make run`'s (the embedded PostgreSQL of
`.local/pg-run`, or `--data-dir` / SUPPORT_DATA_DIR; joined if `make run` is serving it, else started for the
invocation), or the server DATABASE_URL names; connected as the role the function's template configuration
names: the analytics job's for a function whose DB_SECRET_ARN is that role's secret (AnalyticsDbSecret), the
runtime role `support_app` for the others. The handler's logs go to stderr, the result alone to stdout; a function
error prints Lambda's `{"errorType", "errorMessage"}` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

from local.run import (
    DATA_DIR_VARIABLE,
    DEFAULT_DATA_DIR,
    DEFAULT_PORT,
    _apply_function_environment,
    _apply_local_endpoints,
)
from local.template import LambdaFunction, TemplateError, function_environment, function_properties, load_template
from local.template import lambda_function as template_function

ANALYTICS_JOB_SECRET_ID = "AnalyticsDbSecret"  # noqa: S105 - the logical id of the job role's secret in template.yaml


def _uses_job_role(logical_id: str) -> bool:
    """Whether the template gives the function the analytics job's credentials (the AnalyticsDbSecret secret)."""
    variables = function_properties(load_template(), logical_id).get("Environment", {}).get("Variables", {})
    return bool(variables.get("DB_SECRET_ARN") == {"Ref": ANALYTICS_JOB_SECRET_ID})


def prepare(logical_id: str) -> LambdaFunction:
    """The template's function, and the process environment set up for it (before the layer is imported)."""
    function = template_function(load_template(), logical_id)
    for name, value in function_environment().get(logical_id, {}).items():
        if name not in ("DATABASE_URL", "DB_SECRET_ARN"):
            os.environ[name] = value  # its own values first; the other functions' fill in what it lacks
    _apply_function_environment()
    _apply_local_endpoints(int(os.environ.get("PORT") or DEFAULT_PORT), int(os.environ.get("WS_PORT") or 3001))
    return function


@contextmanager
def function_database(logical_id: str, data_dir: Path) -> Iterator[str]:
    """make run's database, migrated, with DATABASE_URL set to the function's role for the duration."""
    from local.database import connected_as, database

    with database("support", purpose="run", data_dir=data_dir, quiet=True) as urls:
        url = urls.analytics_job if _uses_job_role(logical_id) else urls.app
        with connected_as(url):
            yield url


def invoke(function: LambdaFunction, event: Any) -> Any:
    """One invocation in this process, in the gateway's in-process execution environment; raises FunctionError.
    The handler's stdout (its log lines, the metrics' EMF) goes to stderr, as `sam local invoke` shows them."""
    from local.gateway.execution_environments import InProcessEnvironments
    from local.template import load_handler

    with redirect_stdout(sys.stderr):
        environments = InProcessEnvironments()
        environments.add(function, lambda: load_handler(function.code_uri, function.handler))
        try:
            return environments.invoke(function.logical_id, event)
        finally:
            environments.close()


def data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR),
        help=f"make run's data folder (default ${DATA_DIR_VARIABLE}, else .local/pg-run); DATABASE_URL wins",
    )


def result_on_stdout(run: Callable[[argparse.Namespace, TextIO], int], args: argparse.Namespace) -> int:
    """`run(args, out)` with the result alone on stdout (`out`); everything else (the layer's log lines, EMF
    metrics) goes to stderr, as the layer's logger writes wherever stdout is when it is created."""
    out = sys.stdout
    with redirect_stdout(sys.stderr):
        return run(args, out)


def print_error(exc: Exception, out: TextIO) -> None:
    from local.gateway.execution_environments import FunctionError

    if isinstance(exc, FunctionError):
        error = {"errorType": exc.error_type, "errorMessage": exc.error_message}
    else:
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    print(json.dumps(error, indent=2), file=out)


def invoke_on_database(
    function: LambdaFunction,
    event: Any,
    data_dir: Path,
    out: TextIO,
    *,
    command: str,
    around: AbstractContextManager[object] | None = None,
    before_error: Callable[[], object] | None = None,
) -> tuple[bool, Any]:
    """`invoke` on make run's database (function_database), inside `around` (a progress report, say): (True, its
    result), or (False, None) once the failure is said: the function's error on `out` (print_error), a database
    that did not start on stderr as `make <command>`'s. `before_error` runs first (closing a progress bar)."""
    from local.database import EmbeddedPostgresError
    from local.gateway.execution_environments import FunctionError

    try:
        with function_database(function.logical_id, data_dir), around or nullcontext():
            return True, invoke(function, event)
    except FunctionError as exc:
        if before_error is not None:
            before_error()
        print_error(exc, out)
    except EmbeddedPostgresError as exc:
        if before_error is not None:
            before_error()
        print(f"make {command}: the database did not start: {exc}", file=sys.stderr)
    return False, None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.invoke", description=__doc__.splitlines()[0])
    parser.add_argument("function", help="the function's logical id in template.yaml, e.g. AnalyticsFunction")
    parser.add_argument("event", type=Path, help="a JSON event file, e.g. events/analytics/backfill.json")
    data_dir_argument(parser)
    return result_on_stdout(_run, parser.parse_args(argv))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"make invoke: cannot read the event {args.event}: {exc}", file=sys.stderr)
        return 2
    try:
        function = prepare(args.function)
    except (TemplateError, KeyError) as exc:
        names = sorted(function_environment())
        print(f"make invoke: {exc}; the template's functions: {', '.join(names)}", file=sys.stderr)
        return 2
    invoked, result = invoke_on_database(function, event, args.data_dir.expanduser().resolve(), out, command="invoke")
    if not invoked:
        return 1
    print(json.dumps(result, indent=2), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
