"""Evaluation protocols (which rows train and test, which rows the scalers see) and the
preparation of one split for the models."""

from netscope.multitask.protocols.prepare import SCALE_CHOICES, Prepared, prepare
from netscope.multitask.protocols.splits import (
    Protocol,
    hold_out_tasks,
    lecture,
    new_tasks,
    random_split,
    standard,
)

__all__ = ["SCALE_CHOICES", "Prepared", "Protocol", "hold_out_tasks", "lecture", "new_tasks",
           "prepare", "random_split", "standard"]
