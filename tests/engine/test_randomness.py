import torch
from mmengine.logging import MessageHub

from ipswap_mm.core.patch_swap import PatchSwap
from ipswap_mm.engine import randomness
from ipswap_mm.engine.randomness import IterationGenerator


def cells(iteration, rank, seed, monkeypatch):
    torch.manual_seed(seed)
    MessageHub.get_current_instance().update_info('iter', iteration)
    monkeypatch.setattr(randomness, 'get_rank', lambda: rank)
    generator = IterationGenerator('SegPatchSwap')()
    return PatchSwap(4, swap_prob=1.0, swap_ratio=0.5).sample_cells(4, 32, 32, generator)


def test_swaps_depend_on_seed_iteration_and_rank_only(monkeypatch):
    reference = cells(7, 0, 1, monkeypatch)
    torch.rand(100)  # other consumers of the global RNG do not shift the swaps
    assert torch.equal(cells(7, 0, 1, monkeypatch), reference)
    assert not torch.equal(cells(8, 0, 1, monkeypatch), reference)
    assert not torch.equal(cells(7, 1, 1, monkeypatch), reference)
    assert not torch.equal(cells(7, 0, 2, monkeypatch), reference)


def test_streams_are_independent(monkeypatch):
    torch.manual_seed(0)
    MessageHub.get_current_instance().update_info('iter', 3)
    first = torch.rand(8, generator=IterationGenerator('SegPatchSwap')())
    second = torch.rand(8, generator=IterationGenerator('DetPatchSwap')())
    assert not torch.equal(first, second)


def test_outside_a_runner_every_call_draws_anew():
    MessageHub.get_instance('test_outside_a_runner')  # current, with no runner's iteration
    generator = IterationGenerator('SegPatchSwap')
    assert not torch.equal(torch.rand(8, generator=generator()), torch.rand(8, generator=generator()))
