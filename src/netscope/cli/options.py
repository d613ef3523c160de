"""Checked option types: every number is parsed with its allowed range, so nonsense such as
``--batch-size 0`` or ``--lr nan`` stops at the command line with the range in the message
(and in ``--help``) instead of failing deep inside a library or running silently."""

from __future__ import annotations

import argparse
import math


def shown(value: float) -> str:
    """A bound as a person writes it: whole numbers in full (4294967295, not 4.29497e+09),
    others in their shortest form."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _range_text(lo: float | None, hi: float | None, cast: type) -> str:
    noun = "a whole number" if cast is int else "a number"
    if lo is not None and hi is not None:
        return f"{noun} from {shown(lo)} to {shown(hi)}"
    if lo is not None:
        return f"{noun} >= {shown(lo)}"
    if hi is not None:
        return f"{noun} <= {shown(hi)}"
    return f"a finite {noun.split()[-1]}"


class Number:
    """An argparse ``type`` for an int or a finite float within [lo, hi]."""

    def __init__(self, cast: type = int, lo: float | None = None, hi: float | None = None,
                 above: bool = False, below: bool = False) -> None:
        self.cast, self.lo, self.hi, self.above, self.below = cast, lo, hi, above, below
        self.__name__ = cast.__name__  # argparse names the type in some messages

    @property
    def text(self) -> str:
        if self.above or self.below:  # open bounds: "> 0", "< 1"
            noun = "a whole number" if self.cast is int else "a number"
            parts = []
            if self.lo is not None:
                parts.append(f"{'>' if self.above else '>='} {shown(self.lo)}")
            if self.hi is not None:
                parts.append(f"{'<' if self.below else '<='} {shown(self.hi)}")
            return f"{noun} {' and '.join(parts)}"
        return _range_text(self.lo, self.hi, self.cast)

    def __call__(self, text: str):
        try:
            value = self.cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}")
        low_ok = self.lo is None or (value > self.lo if self.above else value >= self.lo)
        high_ok = self.hi is None or (value < self.hi if self.below else value <= self.hi)
        if not low_ok or not high_ok:
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}")
        return value


class NumberList:
    """Comma-separated numbers, each checked like :class:`Number`; optionally a fixed count."""

    def __init__(self, item: Number, count: int | None = None) -> None:
        self.item, self.count = item, count
        self.__name__ = "list"

    @property
    def text(self) -> str:
        many = f"{self.count} " if self.count else ""
        return f"{many}comma-separated values, each {self.item.text}"

    def __call__(self, text: str) -> tuple:
        parts = text.split(",")
        if self.count and len(parts) != self.count:
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}")
        try:
            return tuple(self.item(p) for p in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}") from None


def number(parser, *flags: str, cast: type = int, lo: float | None = None,
           hi: float | None = None, above: bool = False, below: bool = False, help: str = "",
           check: Number | None = None, **kw) -> None:
    """``parser.add_argument`` for a checked number (``check``, or one made from cast, lo,
    hi, above); the allowed range joins the help."""
    check = check or Number(cast, lo, hi, above, below)
    parser.add_argument(*flags, type=check, help=f"{help} ({check.text})".lstrip(), **kw)


def numbers(parser, *flags: str, item: Number, count: int | None = None, help: str = "",
            **kw) -> None:
    check = NumberList(item, count)
    parser.add_argument(*flags, type=check, help=f"{help} ({check.text})".lstrip(), **kw)



def dataset_options(p) -> None:
    """What every whole-folder command takes: batches, decoding workers, shards, table."""
    number(p, "--batch-size", lo=1, hi=4096, default=16, help="images per batch")
    number(p, "--workers", lo=0, hi=256, help="decoding processes (default: the CPUs beside "
           "this one, at most 4; 0: decode in this process)")
    number(p, "--shard-size", lo=1, hi=10**7, default=1024, help="images per shard file")
    p.add_argument("--table", choices=["auto", "parquet", "csv"], default="auto",
                   help="table format (auto: Parquet when pyarrow is installed)")
