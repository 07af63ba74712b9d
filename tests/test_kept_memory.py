"""Freed tensor memory is reused by the next step inside kept_memory (no page fault per new page), and glibc's
defaults are back afterwards."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

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


def measured_in_a_fresh_process() -> dict[str, int]:
    """The measurements of the tests below, made in a new process: what a freed tensor gives back depends on what
    the heap already holds, which in the test process depends on every test run before."""
    given_back = {"outside": given_back_when_freed()}
    with K.kept_memory():
        given_back["inside"] = given_back_when_freed()
        holding = resident()
    given_back["on exit"], given_back["depth on exit"] = holding - resident(), K._depth
    with K.kept_memory():
        with K.kept_memory():
            pass
        given_back["depth inside"] = K._depth
        given_back["nested inside"] = given_back_when_freed()
        holding = resident()
    given_back["nested on exit"], given_back["depth after"] = holding - resident(), K._depth
    return given_back


@pytest.fixture(scope="module")
def given_back() -> dict[str, int]:
    script = "import json, test_kept_memory as t; print(json.dumps(t.measured_in_a_fresh_process()))"
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return json.loads(done.stdout.splitlines()[-1])


def test_outside_a_freed_tensor_goes_back_to_the_system(given_back):  # what gives the next tests their meaning
    assert given_back["outside"] > SIZE // 2


def test_inside_freed_memory_stays_and_on_exit_it_is_given_back(given_back):
    assert given_back["inside"] < SIZE // 2
    assert given_back["depth on exit"] == 0
    assert given_back["on exit"] > SIZE // 2  # the heap was trimmed


def test_nested_uses_keep_memory_until_the_outer_one_ends(given_back):
    assert given_back["depth inside"] == 1
    assert given_back["nested inside"] < SIZE // 2
    assert given_back["nested on exit"] > SIZE // 2 and given_back["depth after"] == 0


def test_the_synthesis_loop_keeps_memory_while_it_runs(tiny_model):
    seen = []

    def value(e: O.Evaluation) -> torch.Tensor:
        seen.append(K._depth)
        return e.activation("conv").mean((1, 2, 3))

    optimise(tiny_model, O.Objective(value, ("conv",), "mean", reads_output=False), P.pixels(16, 2), steps=2,
             progress=False)
    assert seen == [1, 1] and K._depth == 0
