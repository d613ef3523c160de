"""How a network with shared parameters combines its tasks' gradients (``--balancing``).

``registry.py`` declares every strategy (torch-free, for the command line), ``balancer.py``
turns a step's Jacobian of the shared parameters into one update, with torchjd's
aggregators (``aggregators.py``) or the loss weightings written here (``weightings.py``).
"""

from netscope.multitask.balancing.registry import BALANCINGS, Balancing, check_balancings

__all__ = ["BALANCINGS", "Balancing", "check_balancings"]
