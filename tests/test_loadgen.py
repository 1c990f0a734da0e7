"""The load benchmark's CPU placement (``--pin``): wrk and the server on separate CPUs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks import load
from benchmarks.loadgen import pinned


def test_a_pinned_child_runs_only_on_the_cpus_given():
    last = frozenset(sorted(os.sched_getaffinity(0))[-1:])
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
        preexec_fn=pinned(last), capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(sorted(last))
    assert pinned(None) is None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin needs 2 CPUs")
def test_pin_splits_the_cpus_between_wrk_and_the_server():
    pin = load.build_parser().parse_args(["--pin"])
    wrk, server = load.wrk_cpus(pin), load.server_cpus(pin)
    assert len(wrk) == 1 and server and not wrk & server
    assert wrk | server == os.sched_getaffinity(0)
    assert "pinned" in load.placement(pin)
    free = load.build_parser().parse_args([])
    assert load.wrk_cpus(free) is None and load.server_cpus(free) is None
