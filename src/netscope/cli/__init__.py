"""Command line: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import argparse
import sys

from netscope.cli import data, live, multitask, vision
from netscope.errors import NetscopeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netscope",
        description="Multi-task learning on grouped tabular data, and seeing inside "
                    "convolutional networks (activations, gradient ascent, saliency, "
                    "CAM/Grad-CAM, live mode).")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (multitask, data, vision, live):
        group.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from netscope.perf import tune_malloc

    args = build_parser().parse_args(argv)
    tune_malloc()
    try:
        return args.func(args)
    except NetscopeError as exc:
        print(f"netscope: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"netscope: error: {exc}", file=sys.stderr)
        return 3

