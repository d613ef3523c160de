"""Helpers shared by the command groups: progress lines."""

from __future__ import annotations

import sys
import time


def progress_printer(quiet: bool):
    start = time.perf_counter()

    def report(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return report
