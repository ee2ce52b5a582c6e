"""SQS on this machine, and Lambda's SQS event source mapping played by a small poller (`make run`, the tests, the
bench).

The queues live in the same moto server as local SES and S3 (local.ses), the functions reach them through
`AWS_ENDPOINT_URL_SQS` (boto3 reads it), exactly as they reach SQS in AWS. What Lambda's event source mapping does
is done here by `Poller`, generic over (queue -> handler), so any later feature's queue plugs in the same way:

* receive up to `batch_size` messages (long polling), and invoke the handler with Lambda's event shape
  (`{"Records": [{"messageId", "receiptHandle", "body", "attributes", "eventSource": "aws:sqs", ...}]}`);
* delete the messages the invocation processed: all of them when it returns, or all but those it names in
  `batchItemFailures` (ReportBatchItemFailures); none when it raises (they come back after the visibility timeout);
* redrive a message received `max_receive_count` times and still failing to the dead-letter queue, as the queue's
  RedrivePolicy does in AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.ses import REGION, moto_client

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SQS"
WEBHOOK_QUEUE = "desk-webhook-deliveries-local"  # the template's WebhookDeliveryQueue, locally
WEBHOOK_DEAD_LETTERS = "desk-webhook-dead-letters-local"
VISIBILITY_TIMEOUT = 30  # locally: a failed message comes back soon
MAX_RECEIVE_COUNT = 5

type Handler = Callable[[dict[str, Any], Any], Any]


def client(endpoint: str) -> Any:
    return moto_client("sqs", endpoint)


def configure_environment(endpoint: str) -> None:
    os.environ[ENDPOINT_VARIABLE] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


@dataclass(frozen=True)
class Queue:
    url: str
    dead_letter_url: str | None
    max_receive_count: int


def create_queue(
    endpoint: str,
    name: str,
    *,
    dead_letters: str | None = None,
    max_receive_count: int = MAX_RECEIVE_COUNT,
    visibility_timeout: int = VISIBILITY_TIMEOUT,
) -> Queue:
    """The queue (and its dead-letter queue), created if missing. moto is given no RedrivePolicy: the poller redrives
    (so one place decides, whatever moto's version does)."""
    sqs = client(endpoint)
    dead_url = sqs.create_queue(QueueName=dead_letters)["QueueUrl"] if dead_letters else None
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})["QueueUrl"]
    return Queue(url=url, dead_letter_url=dead_url, max_receive_count=max_receive_count)


def create_webhook_queue(endpoint: str) -> Queue:
    return create_queue(endpoint, WEBHOOK_QUEUE, dead_letters=WEBHOOK_DEAD_LETTERS)


def _context(function_name: str) -> Any:
    from local.gateway import LambdaContext

    return LambdaContext(function_name=function_name, memory_limit_in_mb=512, timeout_seconds=60)


def _record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@dataclass
class Poller:
    """Lambda's event source mapping for one queue and one handler."""

    endpoint: str
    queue: Queue
    handler: Handler
    batch_size: int = 10
    wait_seconds: int = 1
    function_name: str = "WebhookDeliveryFunction"  # the name its Lambda context carries
    context: Any = None
    _client: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def poll_once(self, *, wait_seconds: int | None = None) -> int:
        """One receive and one invocation: the number of messages received."""
        if self._client is None:
            self._client = client(self.endpoint)
        sqs = self._client
        answer = sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        arn = f"arn:aws:sqs:{REGION}:123456789012:{self.queue.url.rsplit('/', 1)[-1]}"
        event = {"Records": [_record(m, arn) for m in messages]}
        try:
            result = self.handler(event, self.context or _context(self.function_name))
        except Exception as exc:  # the whole batch comes back after the visibility timeout
            print(f"local SQS poller: the handler failed: {exc!r}", flush=True)
            failed = {m["MessageId"] for m in messages}
        else:
            items = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
            failed = {item["itemIdentifier"] for item in items}
        done = [m for m in messages if m["MessageId"] not in failed]
        for message in messages:
            received = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if message["MessageId"] in failed and received >= self.queue.max_receive_count:
                if self.queue.dead_letter_url:
                    sqs.send_message(QueueUrl=self.queue.dead_letter_url, MessageBody=message["Body"])
                done.append(message)
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
            )
        return len(messages)

    def drain(self, *, rounds: int = 100) -> int:
        """Poll until the queue answers nothing (tests): the messages handled."""
        total = 0
        for _ in range(rounds):
            got = self.poll_once(wait_seconds=0)
            if got == 0:
                break
            total += got
        return total

    def start(self, *, concurrency: int = 1) -> None:
        """Poll in `concurrency` background threads until `stop`. A handler that keeps one database connection per
        process (ours do, as one Lambda execution environment runs one invocation at a time) needs concurrency 1:
        run several processes for more (the bench does)."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.poll_once()
                except Exception as exc:  # moto stopping, a handler's bug: said, and polled again
                    if self._stop.is_set():
                        return
                    print(f"local SQS poller: {exc!r}", flush=True)
                    self._stop.wait(1)

        for _ in range(concurrency):
            thread = threading.Thread(target=loop, name="local-sqs-poller", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            with contextlib.suppress(RuntimeError):
                thread.join(timeout=5)


def dead_letters(endpoint: str, queue: Queue) -> list[dict[str, Any]]:
    """The bodies in the queue's dead-letter queue (tests), read without deleting them for long."""
    if queue.dead_letter_url is None:
        return []
    answer = client(endpoint).receive_message(QueueUrl=queue.dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def main(argv: list[str] | None = None) -> int:
    """`python -m local.sqs --queue-url URL [--dead-letter-url URL] --function LogicalId [--concurrency N]`: the event
    source mapping of one queue to one function of template.yaml, until interrupted (make run starts it)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m local.sqs")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--dead-letter-url", default=None)
    parser.add_argument("--function", required=True, help="the function's logical id in template.yaml")
    parser.add_argument("--concurrency", type=int, default=1, help="batches handled at once (threads: one each)")
    parser.add_argument("--max-receive-count", type=int, default=MAX_RECEIVE_COUNT)
    parser.add_argument("--batch-size", type=int, default=4, help="messages per invocation (the template's BatchSize)")
    args = parser.parse_args(argv)
    from local.gateway.execution_environments import _readable_powertools_logs
    from local.template import lambda_function, load_module, load_template

    function = lambda_function(load_template(), args.function)
    attribute = function.handler.rpartition(".")[2]
    handler = getattr(load_module(function.code_uri, function.handler), attribute)
    _readable_powertools_logs(args.function)
    endpoint = os.environ[ENDPOINT_VARIABLE]
    queue = Queue(url=args.queue_url, dead_letter_url=args.dead_letter_url, max_receive_count=args.max_receive_count)
    poller = Poller(endpoint, queue, handler, batch_size=args.batch_size, wait_seconds=5, function_name=args.function)
    poller.start(concurrency=args.concurrency)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        poller.stop()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
