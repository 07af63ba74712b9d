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


def faults_of_new_tensors(times: int, warm: int = 4) -> int:
    """Minor page faults while making and freeing a 64 MB tensor ``times`` times (after ``warm`` others)."""
    for _ in range(warm):
        torch.ones(VALUES)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(VALUES)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


PAGES = 4 * VALUES // resource.getpagesize()  # of one tensor


def test_inside_freed_pages_are_reused_and_on_exit_they_are_given_back():
    with K.kept_memory():
        assert faults_of_new_tensors(4) < PAGES  # glibc's defaults: about 4 × PAGES
    assert K._depth == 0
    assert faults_of_new_tensors(1, warm=0) > PAGES // 2  # the heap was trimmed: the pages are the system's again


def test_nested_uses_keep_memory_until_the_outer_one_ends():
    with K.kept_memory():
        with K.kept_memory():
            pass
        assert K._depth == 1
        assert faults_of_new_tensors(4) < PAGES
    assert K._depth == 0


def test_the_synthesis_loop_keeps_memory_while_it_runs(tiny_model):
    seen = []

    def value(e: O.Evaluation) -> torch.Tensor:
        seen.append(K._depth)
        return e.activation("conv").mean((1, 2, 3))

    optimise(tiny_model, O.Objective(value, ("conv",), "mean", reads_output=False), P.pixels(16, 2), steps=2,
             progress=False)
    assert seen == [1, 1] and K._depth == 0
