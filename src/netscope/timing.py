"""How long something will take, said the way people read it."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """A rough time span: '40 s', '3 min', '1.5 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def time_left(elapsed: float, done: int, total: int) -> str:
    """', about N left' at the pace so far (empty when nothing or everything is done)."""
    if not 0 < done < total or elapsed <= 0:
        return ""
    return f", about {duration(elapsed / done * (total - done))} left"
