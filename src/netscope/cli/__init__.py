"""Command line: parses arguments, calls the library, prints. Nothing else lives here.

Every way a command can end is one line on stderr and an exit code: 2 for bad input
(argument, file, data), 130 when interrupted (Ctrl-C), 143 when terminated (SIGTERM), 3
for a numerical failure. A Python traceback means a bug in netscope.
"""

from __future__ import annotations

import argparse
import signal
import sys

from netscope.cli import data, live, multitask, vision
from netscope.cli.options import number
from netscope.errors import NetscopeError, first_line


class DefaultsShown(argparse.HelpFormatter):
    """--help with each option's default, where it has one worth saying."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or "default" in text.lower() or default is None \
                or default is False or default is argparse.SUPPRESS \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line that says where to look, not the usage;
    --help shows defaults."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsShown)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (temporary folders, the live
    page, recordings) runs before the process exits."""


def _leaves(parser: argparse.ArgumentParser):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaves(child)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="netscope",
        description="Multi-task learning on grouped tabular data, and seeing inside "
                    "convolutional networks (activations, gradient ascent, saliency, "
                    "CAM/Grad-CAM, live mode).")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (multitask, data, vision, live):
        group.add(sub)
    for leaf in _leaves(parser):
        number(leaf, "--threads", lo=1, hi=1024,
               help="PyTorch CPU threads (default: $NETSCOPE_THREADS, else the CPUs not busy "
               "with other processes)")
    return parser


def _terminate(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    from netscope.perf import tune_malloc

    args = build_parser().parse_args(argv)
    tune_malloc()
    previous = signal.getsignal(signal.SIGTERM)
    in_main_thread = _main_thread()  # signal handlers can only be set there
    if in_main_thread:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The process entry point (`netscope`, `python -m netscope`): ``main``, plus what a
    library call cannot own. An interrupt that lands outside a command (while it starts, or
    just after it finished) is one line too, and a command that finished keeps its exit
    code; once done, the process exits without being interrupted again."""
    code = None
    try:
        code = main()
        _ignore_signals()
    except KeyboardInterrupt as exc:
        if code is None:
            word, code = ("terminated", 143) if isinstance(exc, Terminated) else \
                ("interrupted", 130)
            _fail(word, code, prefix="netscope: ")
        _ignore_signals()
    _forget_interrupt()
    sys.exit(code)


def _forget_interrupt() -> None:
    """Keep the exit code: CPython remembers a KeyboardInterrupt that left any string
    ``exec`` (dataclasses and torch build code that way while a lazy import runs) even when
    it was caught later, and under ``python -m`` then exits by SIGINT (status -2) instead
    of ``sys.exit``'s code. The flag is cleared at the start of every string evaluation."""
    exec("None", {})  # noqa: S102 - a constant string, run for its side effect on that flag


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _run(args) -> int:
    try:
        if args.command in ("multitask", "vision", "live"):
            from netscope.perf import set_threads

            set_threads(args.threads)
        return args.func(args)
    except NetscopeError as exc:
        return _fail(str(exc), 2)
    except FloatingPointError as exc:
        return _fail(str(exc), 3)
    except Terminated:
        return _fail("terminated", 143, prefix="netscope: ")
    except KeyboardInterrupt:
        return _fail("interrupted", 130, prefix="netscope: ")
    except MemoryError:
        return _fail("out of memory; use smaller images, batches or models.", 2)
    except RuntimeError as exc:
        if "allocate" not in str(exc):  # PyTorch's allocator failing is not a bug of ours
            raise
        return _fail(f"out of memory ({first_line(exc)}); use smaller images, batches, "
                     f"layers or models.", 2)
    except OSError as exc:  # a disk that filled up, a folder that vanished mid-run
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}.", 2)


MESSAGE_MOST = 2000  # a safety net: values in messages are cut where they are quoted


def _fail(message: str, code: int, prefix: str = "netscope: error: ") -> int:
    """One line on stderr, whatever a library put into the message (line breaks, pages)."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    if len(line) > MESSAGE_MOST:
        line = f"{line[:MESSAGE_MOST]}... (cut; {len(line):,} characters in all)"
    print(f"{prefix}{line}", file=sys.stderr, flush=True)
    return code
