"""Process-level speed settings."""

import pytest
import torch

from netscope import perf
from netscope.errors import NetscopeError


def test_tune_malloc_is_idempotent():
    import sys

    from netscope.perf import tune_malloc

    first = tune_malloc()
    assert tune_malloc() == first
    if sys.platform.startswith("linux"):
        assert first  # glibc here


def test_threads_follow_request_environment_and_load(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert perf.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("NETSCOPE_THREADS", "1")
        assert perf.set_threads() == 1
        monkeypatch.setenv("NETSCOPE_THREADS", "-2")
        with pytest.raises(NetscopeError, match="NETSCOPE_THREADS must be a whole number"):
            perf.set_threads()
        monkeypatch.delenv("NETSCOPE_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a cap set by someone else
        monkeypatch.setattr(perf, "usable_cpus", lambda: 8)
        monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
        monkeypatch.setattr(perf, "busy_cpus", lambda: 0.2)
        assert perf.auto_threads() == 8  # idle machine: every core
        monkeypatch.setattr(perf, "busy_cpus", lambda: 2.6)
        assert perf.auto_threads() == 5  # three cores busy elsewhere
        monkeypatch.setattr(perf, "busy_cpus", lambda: 30.0)
        assert perf.auto_threads() == 1  # overloaded: one thread, never zero
    finally:
        monkeypatch.undo()
        torch.set_num_threads(before)


LIBRARY_FIRST_USE = """
import os, sys, time
import torch
{before}
from netscope.vision import grad_cam
print(torch.get_num_threads())
"""


def _first_use(before: str, env: dict) -> int:
    import os
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NETSCOPE_THREADS")}
    full.update(env, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", LIBRARY_FIRST_USE.format(before=before)],
                          env=full, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_library_applies_the_thread_default_on_first_use_unless_chosen(monkeypatch):
    """A notebook's first ``from netscope.vision import ...`` picks the command line's
    threads (here: every core busy elsewhere, so one); a choice the user made before is
    kept: torch.set_num_threads, NETSCOPE_THREADS, OMP_NUM_THREADS."""
    busy = ("from netscope import perf\n"
            "perf.busy_cpus = lambda window=0.05: float(perf.usable_cpus())")
    assert _first_use(busy, {}) == 1
    cores = perf.usable_cpus()
    if cores >= 3:  # a number other than torch's default, chosen by the user
        assert _first_use(busy + "\ntorch.set_num_threads(3)", {}) == 3
    assert _first_use(busy, {"NETSCOPE_THREADS": "2"}) == 2
    assert _first_use(busy, {"OMP_NUM_THREADS": str(cores)}) == cores


def test_command_line_sets_threads_without_importing_torch():
    """The command line chooses the threads before torch is imported (so argument errors
    stay fast); torch takes them from the environment when it loads."""
    import subprocess
    import sys

    code = ("import sys; from netscope import perf; n = perf.set_threads(1); "
            "assert 'torch' not in sys.modules; import torch; print(torch.get_num_threads())")
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
