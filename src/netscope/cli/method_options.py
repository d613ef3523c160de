"""The options of the attribution methods (and metrics) a command offers, derived from the
registries' ``Setting``s: one flag per setting name (``--samples``, ``--baseline``...), with
its type, range, choices, default and the methods that read it, so a method's settings are
declared once. Flags default to "not given": a method then runs on its own default (or on the
command's stated override, such as `vision evaluate`'s 128 Score-CAM channels). A command
option of the same name keeps its name, and the method's setting becomes
``--method-NAME``; ``shared`` options (images per pass) set both.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from netscope.cli.options import Number, NumberList
from netscope.errors import NetscopeError
from netscope.vision.methods.registry import METHODS, Method, Setting


def settings_of(owners: Mapping[str, Sequence[Setting]]
                ) -> dict[str, list[tuple[str, Setting]]]:
    """Setting name -> [(owner, its Setting)] over ``owners`` (methods or metrics), on the
    command line only, in registry order."""
    found: dict[str, list[tuple[str, Setting]]] = {}
    for name, settings in owners.items():
        for s in settings:
            if s.on_command_line:
                found.setdefault(s.name, []).append((name, s))
    return found


def add_method_options(parser, methods: Sequence[str], *, shared: Iterable[str] = (),
                       overrides: dict[str, Any] | None = None, title: str | None = None
                       ) -> None:
    """One option per setting of ``methods`` (see the module docstring); ``overrides``: the
    command's own defaults for some settings, said in --help."""
    _add_options(parser, {n: METHODS[n].settings for n in methods}, "method", shared,
                 overrides, title or "method settings (default: each method's own)")


def add_metric_options(parser, metrics: Sequence[str]) -> None:
    """One option per setting of ``metrics`` (the metric table's)."""
    from netscope.vision.metrics.registry import METRICS

    _add_options(parser, {n: METRICS[n].settings for n in metrics}, "metric", (), None,
                 "metric settings (default: each metric's own)")


def _add_options(parser, owners: Mapping[str, Sequence[Setting]], kind: str,
                 shared: Iterable[str], overrides: dict[str, Any] | None, title: str) -> None:
    overrides = dict(overrides or {})
    taken = {a.dest for a in parser._actions}
    group = parser.add_argument_group(title)
    dests: dict[str, str] = {}
    for name, users in settings_of(owners).items():
        if name in shared:
            dests[name] = name
            continue
        dest = f"{kind}_{name}" if name in taken else name
        dests[dest] = name
        s = users[0][1]
        flag = "--" + dest.replace("_", "-")
        text = f"{s.help} ({_defaults(users, overrides.get(name), len(owners))})"
        if s.cast is bool:
            group.add_argument(flag, dest=dest, action="store_const", const=not s.default,
                               default=None, help=text)
        elif s.choices is not None:
            group.add_argument(flag, dest=dest, type=_choices(s) if s.many else None,
                               default=None, help=text,
                               **({} if s.many else {"choices": list(s.choices)}),
                               metavar=",".join(map(str, s.choices)) if s.many else None)
        elif s.cast in (int, float):
            check = Number(s.cast, s.lo, s.hi, above=s.above, below=s.below)
            parse = NumberList(check) if s.many else check
            group.add_argument(flag, dest=dest, type=parse, default=None,
                               help=f"{text} ({parse.text})")
        else:
            group.add_argument(flag, dest=dest, type=s.cast, default=None, help=text)
    parser.set_defaults(**{f"_{kind}_options": dests, f"_{kind}_overrides": overrides,
                           f"_{kind}_shared": tuple(shared)})


def _defaults(users: list[tuple[str, Setting]], override: Any, offered: int) -> str:
    """'default: 32', or 'default: 16 for smoothgrad; default: 8 for a, b'; the methods
    that read it when not all of the command's do."""
    if override is not None:
        return f"default here: {_shown(override, users[0][1])}" + _where(users, offered)
    if "default" in users[0][1].help:  # the help says it in words
        return _where(users, offered).lstrip("; ") or "every method"
    values = {_shown(s.default, s) for _, s in users}
    if len(values) == 1:
        return f"default: {values.pop()}" + _where(users, offered)
    groups: dict[str, list[str]] = {}
    for m, s in users:
        groups.setdefault(_shown(s.default, s), []).append(m)
    return "; ".join(f"default: {v} for {', '.join(ms)}" for v, ms in groups.items())


def _where(users: list[tuple[str, Setting]], offered: int) -> str:
    return "" if len(users) == offered else f"; {', '.join(m for m, _ in users)}"


def _shown(value: Any, s: Setting) -> str:
    if value is None:
        return "none" if s.off is None else f"{s.off}"
    if isinstance(value, tuple):
        return ",".join(_shown(v, s) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(s: Setting):
    def parse(text: str) -> tuple:
        items = tuple(t.strip() for t in text.split(","))
        bad = [t for t in items if t not in s.choices]
        if bad or not text.strip():
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values of {', '.join(map(str, s.choices))}, got "
                f"{text!r}")
        return items
    parse.__name__ = "list"
    return parse


def given_settings(args, shared: bool = True, kind: str = "method") -> dict[str, Any]:
    """The method (or metric) settings given on the command line: setting name -> value
    (with or without the command's ``shared`` options)."""
    dests = getattr(args, f"_{kind}_options", {})
    left = () if shared else getattr(args, f"_{kind}_shared", ())
    return {name: getattr(args, dest) for dest, name in dests.items()
            if getattr(args, dest, None) is not None and name not in left}


def method_settings(args, m: Method, bounds: tuple[Any, Any] | None = None,
                    chosen: Sequence[Method] | None = None) -> dict[str, Any]:
    """The keywords of method ``m`` from the command line: what was given, else the
    command's override, else nothing (the method's own default); ``from_input`` settings
    from the model's input ``bounds``. A given option that no method in ``chosen`` (default:
    ``m`` alone) reads is an error naming the methods that do."""
    given = given_settings(args)
    refuse_foreign(args, given, chosen or [m])
    overrides = getattr(args, "_method_overrides", {})
    names = {s.name for s in m.settings}
    return {**{k: v for k, v in {**overrides, **given}.items() if k in names},
            **m.from_input(bounds)}


def refuse_foreign(args, given: dict[str, Any], chosen: Sequence[Method]) -> None:
    shared = getattr(args, "_method_shared", ())
    for name in given:
        if name in shared or any(name in {s.name for s in m.settings} for m in chosen):
            continue
        owners = [n for n, other in METHODS.items() if name in {s.name for s in other.settings}]
        which = chosen[0].label if len(chosen) == 1 else "the chosen methods"
        raise NetscopeError(f"{flag_of(args, name)} does not apply to {which}: it is a "
                            f"setting of {', '.join(owners)}; drop it or choose one of those "
                            f"methods.")


def flag_of(args, name: str) -> str:
    dest = next((d for d, n in getattr(args, "_method_options", {}).items() if n == name), name)
    return "--" + dest.replace("_", "-")
