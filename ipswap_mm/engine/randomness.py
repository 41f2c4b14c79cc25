"""Per-iteration random generators: reproducible, different on every rank and iteration.

The swap draws from a generator seeded by (run seed, iteration, rank, stream) instead of
the global RNG, so a resumed run makes exactly the swaps the uninterrupted run made, and
nothing else that consumes global random numbers (dropout, data pipelines) shifts them.
"""
from __future__ import annotations

import zlib
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.logging import MessageHub


class IterationGenerator:
    """Make a (CPU) ``torch.Generator`` for the current training iteration.

    The run seed is ``torch.initial_seed()``, which MMEngine sets from
    ``randomness.seed`` (and restores on resume); the iteration comes from the
    ``MessageHub`` runtime info that MMEngine's ``RuntimeInfoHook`` updates. Outside a
    runner (no iteration recorded) a call counter is used instead.

    Args:
        stream: A name that separates independent random streams.
    """

    def __init__(self, stream: str) -> None:
        self.stream = zlib.crc32(stream.encode())
        self._calls = 0

    def _next_iteration(self) -> int:
        """The runner's current iteration; outside a runner, the number of earlier calls."""
        iteration: Optional[int] = MessageHub.get_current_instance().get_info('iter')
        if iteration is None:
            iteration = self._calls
        self._calls += 1
        return int(iteration)

    def __call__(self) -> torch.Generator:
        """A CPU generator: what it draws is the same whatever device the batch is on."""
        entropy = [torch.initial_seed(), self._next_iteration(), get_rank(), self.stream]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) & (2**63 - 1)
        return torch.Generator().manual_seed(seed)
