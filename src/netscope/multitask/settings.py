"""The run's hyper-parameters: one frozen record with a field per setting declared in the
family registry (``families.py``), each checked by its declaration. The defaults are the
course's values for the school data; ``Settings.for_dataset`` adjusts them for the survey."""

from __future__ import annotations

from dataclasses import asdict, fields, make_dataclass
from typing import Any

from netscope.multitask.families import all_settings

# The survey's tasks have 15-16 rows (one mini-batch per epoch), so its per-task parts need
# more epochs and a larger first-stage learning rate, and every subject rates the same 16
# computers, so the networks need weight decay not to memorize them (without it they
# extrapolate badly to the 4 hold-out profiles).
SURVEY = {"per_task_epochs": 100, "pooled_epochs": 20, "gated_epochs": 60,
          "stage_epochs": (40, 20, 20), "stage_lr": (1e-2, 1e-3, 1e-4), "weight_decay": 1e-2}


def _post_init(self) -> None:
    """Every value checked (and made canonical: tuples, ints) by its declaration."""
    for s in all_settings():
        object.__setattr__(self, s.name, s.check(getattr(self, s.name)))


def _for_dataset(cls, name: str | None, **overrides: Any):
    """Course defaults, or the survey's; ``name`` is the built-in data set
    (``TaskData.reference``): a user's file, even one called survey.csv, gets the general
    defaults. Overrides given as None are ignored (flags not given)."""
    values = dict(SURVEY) if name == "survey" else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def _as_dict(self) -> dict[str, Any]:
    """name -> value, tuples as lists (for JSON)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


Settings = make_dataclass(
    "Settings", [(s.name, Any, s.default) for s in all_settings()], frozen=True,
    namespace={"__post_init__": _post_init, "for_dataset": classmethod(_for_dataset),
               "as_dict": _as_dict,
               "__doc__": "Hyper-parameters of a run, one field per declared setting."})
Settings.__module__ = __name__  # pickles by name (worker processes get the run's settings)


def setting_names() -> list[str]:
    return [f.name for f in fields(Settings)]
