"""One slot-assignment rule: the live pool plans the slices the replay backend assigns, including
which running (slice, variant) pairs a reconfiguration keeps."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.services import load_service
from clover_rl.serving.live.pool import WorkerPool
from clover_rl.serving.slots import slice_id, slot_assignment

GPU = get_gpu("a100-40gb")
SVC = load_service("efficientnet")
SEQUENCE = ["7g:b7", "4g:b1,3g:b3", "4g:b3,3g:b1", "3g:b7,2g:b1,2g:b1", "2g:b1,2g:b5,2g:b1,1g:b7",
            "1g:b1,1g:b3,1g:b5,1g:b7,1g:b1,1g:b3,1g:b5", "1g:b7,1g:b5,1g:b3,1g:b1,1g:b7,1g:b5,1g:b3"]


def cfg(label: str):
    return parse_configuration(label, GPU, SVC.variant_names)


def test_assignment_keeps_running_variants_and_fills_in_canonical_order():
    first = dict(((s.profile, s.start), v) for s, v in slot_assignment(cfg("4g:b1,3g:b3"), GPU))
    swapped = slot_assignment(cfg("4g:b3,3g:b1"), GPU, first)
    assert [v for _, v in swapped] == ["b3", "b1"]  # different profiles: nothing to keep
    seven = dict(((s.profile, s.start), v) for s, v in slot_assignment(cfg(SEQUENCE[5]), GPU))
    again = dict(((s.profile, s.start), v) for s, v in slot_assignment(cfg(SEQUENCE[6]), GPU, seven))
    kept = sum(seven[k] == again[k] for k in seven)
    assert kept == 6  # one b1 becomes a b7; the six others keep their model


@pytest.mark.parametrize("n_gpus", [1, 2])
def test_pool_plans_what_replay_assigns(n_gpus, monkeypatch):
    pool = WorkerPool(SVC, GPU, n_gpus)
    running: list[SimpleNamespace] = []
    monkeypatch.setattr(pool, "_workers", lambda: list(running))
    previous = None
    try:
        for label in SEQUENCE:
            plans = pool.plan(cfg(label))
            expect = slot_assignment(cfg(label), GPU, previous)
            assert [(p.slot_id, p.variant) for p in plans] == sorted(
                (slice_id(g, s), v) for g in range(n_gpus) for s, v in expect)
            running = [SimpleNamespace(plan=p, retiring=False) for p in plans]
            previous = {(s.profile, s.start): v for s, v in expect}
    finally:
        monkeypatch.undo()
        pool.close()


def _rule(config, previous):  # type: ignore[no-untyped-def]
    """The assignment rule written out plainly (what the planned, cached version must give)."""
    remaining: dict[str, list[str]] = {}
    for p, v in config.pairs:
        remaining.setdefault(p, []).append(v)
    chosen = {}
    for s in config.partition(GPU).slices:
        old = (previous or {}).get((s.profile, s.start))
        if old is not None and old in remaining[s.profile]:
            remaining[s.profile].remove(old)
            chosen[s.start] = old
    return tuple((s, chosen[s.start] if s.start in chosen else remaining[s.profile].pop(0))
                 for s in config.partition(GPU).slices)


def test_cached_assignment_plans_follow_the_rule_from_any_predecessor():
    import numpy as np

    from clover_rl.envs.actions import ActionCatalog

    configs = ActionCatalog(GPU, SVC).configs
    rng = np.random.default_rng(0)
    previous = None
    for i in rng.integers(0, len(configs), 400):
        c = configs[int(i)]
        got = slot_assignment(c, GPU, previous)
        assert got == _rule(c, previous)
        assert slot_assignment(c, GPU, previous) == got  # the second call reads the plan
        previous = {(s.profile, s.start): v for s, v in got}
