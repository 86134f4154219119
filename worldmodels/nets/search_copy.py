"""What a planner calling a network many times in small batches needs: a CPU copy of that network (small calls
are faster on the CPU than round trips to an accelerator) and a set number of torch threads (more threads only
add overhead to small calls)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class CpuCopy:
    """A CPU copy of a network, made again whenever the caller's version number (e.g. its update count) moves."""

    def __init__(self):
        self.net: nn.Module | None = None
        self.version = -1

    def __call__(self, net: nn.Module, version: int) -> nn.Module:
        """The network itself when it already lives on the CPU, else its copy as of ``version``."""
        if next(net.parameters()).device.type == "cpu":
            return net
        if self.net is None or self.version != version:
            self.net, self.version = copy.deepcopy(net).cpu(), version
        return self.net


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
