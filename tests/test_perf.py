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
