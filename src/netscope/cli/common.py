"""Helpers shared by the command groups: progress lines and list-valued options."""

from __future__ import annotations

import argparse
import sys
import time


def progress_printer(quiet: bool):
    start = time.perf_counter()

    def report(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return report


def _numbers(text: str, kind: type, what: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what}, got {text!r}") from None


def floats(text: str) -> tuple[float, ...]:
    return _numbers(text, float, "numbers")


def ints(text: str) -> tuple[int, ...]:
    return _numbers(text, int, "integers")
