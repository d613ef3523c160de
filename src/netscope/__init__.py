"""netscope: multi-task learning on grouped tabular data, and seeing inside CNNs."""

from netscope.errors import NetscopeError

__all__ = ["NetscopeError"]
__version__ = "0.1.0"
