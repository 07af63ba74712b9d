"""Freed tensor memory is reused by the next step inside kept_memory (no page fault per new page), and glibc's
defaults are back afterwards."""

from __future__ import annotations

import resource

import pytest
import torch

from convscope import kept_memory as K
from convscope.synthesis import objectives as O
from convscope.synthesis import params as P
from convscope.synthesis.loop import optimise

pytestmark = pytest.mark.skipif(K._libc() is None, reason="glibc's mallopt is needed")
VALUES = 16 * 1024 * 1024  # 64 MB of float32: above glibc's largest mmap threshold (32 MB)
SIZE = 4 * VALUES


def resident() -> int:
    """The process's resident memory in bytes (transparent huge pages or not)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def given_back_when_freed() -> int:
    """Bytes the process stops holding when a 64 MB tensor it has just written is freed."""
    tensor = torch.ones(VALUES)
    holding = resident()
    del tensor
    return holding - resident()


def test_outside_a_freed_tensor_goes_back_to_the_system():  # what makes the next tests' assertions mean something
    assert given_back_when_freed() > SIZE // 2


def test_inside_freed_memory_stays_and_on_exit_it_is_given_back():
    with K.kept_memory():
        assert given_back_when_freed() < SIZE // 2
        holding = resident()
    assert K._depth == 0
    assert holding - resident() > SIZE // 2  # the heap was trimmed


def test_nested_uses_keep_memory_until_the_outer_one_ends():
    with K.kept_memory():
        with K.kept_memory():
            pass
        assert K._depth == 1
        assert given_back_when_freed() < SIZE // 2
        holding = resident()
    assert K._depth == 0
    assert holding - resident() > SIZE // 2


def test_the_synthesis_loop_keeps_memory_while_it_runs(tiny_model):
    seen = []

    def value(e: O.Evaluation) -> torch.Tensor:
        seen.append(K._depth)
        return e.activation("conv").mean((1, 2, 3))

    optimise(tiny_model, O.Objective(value, ("conv",), "mean", reads_output=False), P.pixels(16, 2), steps=2,
             progress=False)
    assert seen == [1, 1] and K._depth == 0
