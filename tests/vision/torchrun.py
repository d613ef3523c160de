"""Running a netscope command as two torchrun ranks (gloo, one thread each), for the tests
that compare a distributed run with one process."""

from __future__ import annotations

import os
import subprocess
import sys


def two_ranks(args: list[str]) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc-per-node 2 -m netscope ARGS``; asserts
    it succeeded and returns the process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "netscope", *args], env=env, capture_output=True, text=True, timeout=240,
        cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr[:3000] + "\n...\n" + proc.stderr[-1000:]
    return proc
