"""frozen_setup keeps the objects alive on entry out of GC scans for the block only."""
from __future__ import annotations

import gc

import pytest

from clover_rl.heap import frozen_setup


def test_objects_are_frozen_in_the_block_and_collectable_after() -> None:
    with frozen_setup():
        assert gc.get_freeze_count() > 1000  # the test session's objects
    assert gc.get_freeze_count() == 0


def test_an_error_in_the_block_unfreezes_too() -> None:
    with pytest.raises(RuntimeError), frozen_setup():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
