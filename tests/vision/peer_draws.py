"""The samples a peer library draws, kept so netscope can be run on the same ones (Captum's
LIME and KernelSHAP draw inside their perturbation functions)."""

from __future__ import annotations

import inspect


def recording(perturb):
    """``perturb`` (a function or generator function, as Captum's ``perturb_func``) and
    the list every sample it draws is appended to (row 0 of each, cloned)."""
    seen = []
    if inspect.isgeneratorfunction(perturb):
        def gen(*args, **kwargs):
            for row in perturb(*args, **kwargs):
                seen.append(row[0].clone())
                yield row
        return gen, seen

    def plain(*args, **kwargs):
        row = perturb(*args, **kwargs)
        seen.append(row[0].clone())
        return row
    return plain, seen
