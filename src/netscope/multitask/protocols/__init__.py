"""Evaluation protocols (which rows train and test, which rows the scalers see) and the
preparation of one split for the models."""

from netscope.multitask.protocols.prepare import SCALE_CHOICES, Prepared, prepare
from netscope.multitask.protocols.splits import Protocol, lecture, random_split, standard

__all__ = ["SCALE_CHOICES", "Prepared", "Protocol", "lecture", "prepare", "random_split",
           "standard"]
