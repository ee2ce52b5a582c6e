"""Run handlers from a `sam build` folder, and from nothing else: started as `python -I -S` (no site-packages, no
current folder, no PYTHONPATH), it puts only the built function's folder and the built layer's `python/` on
sys.path, as the Lambda runtime does, then feeds each sample event to the handler and prints one JSON line per
event: {"function", "event", "statusCode", "body", "modules"} ("modules": where psycopg, pydantic_core and
support were imported from, so the test can check that none came from the source tree).

Usage: python -I -S run_built_handlers.py BUILD_DIR FUNCTION_ID EVENT_FILE [EVENT_FILE ...]
This file imports nothing of the project's: it is only read from the source tree.
"""

import json
import os
import sys
import time
import uuid
from pathlib import Path


class Context:
    function_name = ""
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/built"
    log_stream_name = "built"
    identity = None
    client_context = None

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self._deadline = time.monotonic() + 10

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def main() -> None:
    build_dir, function_id, *events = sys.argv[1:]
    build = Path(build_dir)
    sys.path[:0] = [str(build / function_id), str(build / "SupportLayer" / "python")]
    runtime = os.environ.get("LAMBDA_RUNTIME_PACKAGES")
    if runtime:  # what the Lambda runtime itself offers after the function and its layers: boto3 and its own
        sys.path.append(runtime)
    import app  # the built function's handler module

    for event_file in events:
        result = app.lambda_handler(json.loads(Path(event_file).read_text()), Context(function_id))
        modules = {
            name: getattr(sys.modules.get(name), "__file__", None) for name in ("psycopg", "pydantic_core", "support")
        }
        print(
            json.dumps(
                {
                    "function": function_id,
                    "event": event_file,
                    "statusCode": result.get("statusCode"),
                    "body": result.get("body"),
                    "modules": modules,
                }
            )
        )


main()
