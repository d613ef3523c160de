"""Figures without pyplot, their PNG bytes, and inline <img> tags for self-contained pages.

Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas: nothing here
selects a backend or touches pyplot's global state, so importing netscope in a notebook
leaves its inline plots alone, and no figure outlives its PNG.
"""

from __future__ import annotations

import base64
import html
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             dpi: float | None = None, **kw):
    """(figure, axes) as ``pyplot.subplots`` gives them, on a figure pyplot never sees."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kw)


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **({"dpi": dpi} if dpi else {}))
    return buf.getvalue()


def img_tag(data: bytes, alt: str) -> str:
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}">')
