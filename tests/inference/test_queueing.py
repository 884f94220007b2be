"""Job tasks sent once their rows are committed: every job's message, in order, the first at once
and the rest in Redis pipelines of growing size; nothing for a transaction that rolled back."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import transaction
from kombu.transport import redis as kombu_redis

from inference import queueing


@pytest.fixture
def broker_queue() -> Iterator[tuple[str, redis.Redis]]:
    """A queue of its own on the test broker (Redis), removed afterwards."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the production broker")
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    name = f"test-queueing-{uuid.uuid4().hex[:8]}"
    yield name, client
    # The queue and the bindings kombu declared for it (an exchange of the queue's name).
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    client.close()


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of messages in each publish pipeline flushed during the test."""
    sizes: list[int] = []
    flush = kombu_redis.PublishBatch.flush

    def counting_flush(self: Any) -> None:
        sizes.append(self._buffered)
        flush(self)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", counting_flush)
    return sizes


def _job_ids_in_delivery_order(client: redis.Redis, queue: str) -> list[int]:
    """The job ids of the queue's run_job messages in the order a worker takes them (kombu pushes
    on the left, workers pop on the right)."""
    ids = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == "inference.run_job"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.append(args[0])
    return ids


def test_every_job_is_sent_in_order_the_first_alone_and_the_next_three_in_one_pipeline(
    broker_queue: tuple[str, redis.Redis], flushed: list[int],
) -> None:
    queue, client = broker_queue
    queueing.send_jobs([(101, queue), (102, queue), (103, queue), (104, queue)])
    assert _job_ids_in_delivery_order(client, queue) == [101, 102, 103, 104]
    assert flushed == [3]  # the three after the first, in one round trip


def test_many_jobs_go_out_in_pipelines_that_grow_fourfold_so_the_first_few_do_not_wait_for_the_rest(
    broker_queue: tuple[str, redis.Redis], flushed: list[int],
) -> None:
    queue, client = broker_queue
    jobs = list(range(1, 71))
    queueing.send_jobs([(job_id, queue) for job_id in jobs])
    assert _job_ids_in_delivery_order(client, queue) == jobs
    assert flushed == [3, 12, 48, 6]  # after the first alone: 2–4, 5–16, 17–64, 65–70


@pytest.mark.parametrize(("n", "first", "spans"), [
    (0, 1, []), (1, 1, [(0, 1)]), (70, 1, [(0, 1), (1, 4), (4, 16), (16, 64), (64, 70)]),
    (5, 4, [(0, 4), (4, 5)]), (300, 4, [(0, 4), (4, 16), (16, 64), (64, 256), (256, 300)]),
])
def test_growing_spans_cover_every_item_once_in_parts_ending_at_powers_of_four(
    n: int, first: int, spans: list[tuple[int, int]],
) -> None:
    assert queueing.growing_spans(n, first) == spans


def test_a_single_job_is_sent_without_a_batch(
    broker_queue: tuple[str, redis.Redis], monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue, client = broker_queue
    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", lambda self: pytest.fail("no batch for one job"))
    queueing.send_jobs([(7, queue)])
    assert _job_ids_in_delivery_order(client, queue) == [7]


@pytest.mark.django_db(transaction=True)
def test_jobs_are_sent_only_once_their_transaction_commits(broker_queue: tuple[str, redis.Redis]) -> None:
    queue, client = broker_queue
    with transaction.atomic():
        queueing.send_jobs_on_commit([(1, queue), (2, queue)])
        assert client.llen(queue) == 0  # not before the rows exist for the worker to claim
    assert _job_ids_in_delivery_order(client, queue) == [1, 2]

    with pytest.raises(RuntimeError), transaction.atomic():
        queueing.send_jobs_on_commit([(3, queue)])
        raise RuntimeError("the rows were never committed")
    assert _job_ids_in_delivery_order(client, queue) == [1, 2]
