"""local/sqs.py plays Lambda's SQS event source mapping against the real moto SQS: a batch in Lambda's event shape,
deleted when the handler returns, kept when it raises, partly kept by `batchItemFailures`, and moved to the
dead-letter queue once received `maxReceiveCount` times without success."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

from local import sqs as local_sqs
from local.ses import LocalSes


def _queue(moto: LocalSes, *, max_receive_count: int = 3) -> local_sqs.Queue:
    return local_sqs.create_queue(
        moto.endpoint,
        f"poller-{uuid4().hex}",
        dead_letters=f"poller-dead-{uuid4().hex}",
        max_receive_count=max_receive_count,
        visibility_timeout=0,  # a failed message is visible again at once
    )


def _send(moto: LocalSes, queue: local_sqs.Queue, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        local_sqs.client(moto.endpoint).send_message(QueueUrl=queue.url, MessageBody=json.dumps(body))


def test_a_batch_arrives_in_lambdas_shape_and_is_deleted_when_the_handler_returns(moto: LocalSes) -> None:
    queue = _queue(moto)
    _send(moto, queue, {"n": 1}, {"n": 2})
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(event["Records"])
        assert context.function_name == "WebhookDeliveryFunction"
        return {"batchItemFailures": []}

    poller = local_sqs.Poller(moto.endpoint, queue, handler, wait_seconds=0)
    assert poller.drain() == 2
    assert sorted(json.loads(r["body"])["n"] for r in seen) == [1, 2]
    assert {r["eventSource"] for r in seen} == {"aws:sqs"} and all(r["messageId"] for r in seen)
    assert poller.drain() == 0  # deleted


def test_only_the_reported_failures_come_back(moto: LocalSes) -> None:
    queue = _queue(moto)
    _send(moto, queue, {"n": 1}, {"n": 2})
    rounds: list[list[int]] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        numbers = [json.loads(r["body"])["n"] for r in event["Records"]]
        rounds.append(sorted(numbers))
        failed = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["n"] == 2]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    poller = local_sqs.Poller(moto.endpoint, queue, handler, wait_seconds=0)
    poller.poll_once(wait_seconds=0)
    poller.poll_once(wait_seconds=0)
    assert rounds[0] == [1, 2] and rounds[1] == [2]


def test_a_message_that_keeps_failing_moves_to_the_dead_letter_queue(moto: LocalSes) -> None:
    queue = _queue(moto, max_receive_count=3)
    _send(moto, queue, {"n": 7})

    def handler(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
        raise RuntimeError("the database is down")

    poller = local_sqs.Poller(moto.endpoint, queue, handler, wait_seconds=0)
    received = [poller.poll_once(wait_seconds=0) for _ in range(3)]
    assert received == [1, 1, 1]
    assert poller.poll_once(wait_seconds=0) == 0  # redriven after its third receive
    assert local_sqs.dead_letters(moto.endpoint, queue) == [{"n": 7}]
