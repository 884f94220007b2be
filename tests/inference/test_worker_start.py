"""What a worker does once at start, before its first job."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from inference.tasks import _preload


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


@pytest.mark.django_db
def test_worker_start_moves_its_objects_out_of_full_collections(unfrozen: None) -> None:
    # A full collection that walks everything the worker imported held the interpreter lock for
    # 0.34 s in the middle of a batch of 64 drafts; after the preload those objects are frozen.
    # (No check that the count is 0 here: a test worker's own preload thread may freeze meanwhile.)
    _preload({"gpu"})  # no enabled model in this database: nothing loads, the heap still settles
    assert gc.get_freeze_count() > 10_000
