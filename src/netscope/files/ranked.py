"""Files that each rank of a run writes as ``r<rank>-<5 digits><suffix>`` (explain parts,
atlas shards): listed in name order, and a stray file in their folder refused by name
rather than read or skipped silently."""

from __future__ import annotations

import re
from pathlib import Path

from netscope.errors import NetscopeError


def ranked_files(folder: Path, suffix: str, kind: str) -> list[tuple[Path, int, int]]:
    """(path, rank, index) of every ``r*-*<suffix>`` file in ``folder``; ``kind`` names
    them in the error ("part", "shard")."""
    name = re.compile(rf"^r(\d+)-(\d{{5}}){re.escape(suffix)}$")
    found = []
    for path in sorted(folder.glob(f"r*-*{suffix}")) if folder.is_dir() else []:
        m = name.match(path.name)
        if m is None:
            raise NetscopeError(f"{path}: not a {kind} netscope wrote ({kind}s are named "
                                f"r<rank>-<5 digits>{suffix}); move it out of {folder}.")
        found.append((path, int(m.group(1)), int(m.group(2))))
    return found
