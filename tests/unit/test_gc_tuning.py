"""Services freeze their startup objects out of the cyclic collector and raise its young threshold."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from yiju.common.service import tune_gc
from yiju.common.settings import Settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_what_is_alive_and_sets_the_young_threshold(restore_gc: None) -> None:
    survivor = [object() for _ in range(100)]
    _, gen1, gen2 = gc.get_threshold()
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, gen1, gen2)
    assert gc.get_freeze_count() >= len(survivor)


def test_the_default_threshold_is_raised_from_cpythons() -> None:
    assert Settings().gc_gen0_threshold > 700
