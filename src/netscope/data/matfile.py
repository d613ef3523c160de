"""Read MATLAB files with errors that name the file and the keys that were expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from netscope.errors import NetscopeError


def read_mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Return the named arrays of a .mat file, or raise a NetscopeError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise NetscopeError(
            f"{path}: file not found. Point --data-dir (or NETSCOPE_DATA) at the folder "
            f"that holds it, or run `netscope data fetch`."
        )
    try:
        content = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises many types for a damaged file
        raise NetscopeError(
            f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc}). "
            f"Delete it and fetch it again."
        ) from None
    missing = [k for k in keys if k not in content]
    if missing:
        found = sorted(k for k in content if not k.startswith("__"))
        raise NetscopeError(
            f"{path}: expected variable(s) {', '.join(missing)} but the file holds "
            f"{', '.join(found) or 'none'}; is this the right file?"
        )
    return {k: np.asarray(content[k]) for k in keys}
