"""GC tuning: a higher young-generation threshold, and periodic freezing of warmed objects."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from multicloud_collector import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_tune_raises_only_the_young_threshold(restore_gc: None) -> None:
    _, g1, g2 = gc.get_threshold()
    gctune.tune()
    assert gc.get_threshold() == (gctune.GEN0_THRESHOLD, g1, g2)


async def test_freeze_moves_survivors_to_the_permanent_generation_until_stopped(restore_gc: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    keep = [object() for _ in range(1000)]
    stop = asyncio.Event()
    task = asyncio.create_task(gctune.freeze_periodically(stop, first_after=0.01, every=0.01))
    async with asyncio.timeout(10):
        while gc.get_freeze_count() < len(keep):  # noqa: ASYNC110 - polling gc state, no event exists
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert task.done() and task.exception() is None
