"""Matplotlib figures turned into pictures (for curves, scatters and tables)."""

from __future__ import annotations

import io

from PIL import Image

from convscope.render.picture import Picture


def figure_to_picture(figure, dpi: int = 110) -> Picture:
    """Render a matplotlib figure to a :class:`Picture` and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(figure)
    buffer.seek(0)
    return Picture(Image.open(buffer))


def new_figure(columns: int = 1, rows: int = 1, size: tuple[float, float] = (4.2, 3.2)):
    """A headless matplotlib figure with ``rows`` × ``columns`` axes.

    Lines cycle through ten colours solid, then the same ten dashed, so up to twenty series (every
    attribution method on one plot) stay distinguishable.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from cycler import cycler

    colours = list(plt.get_cmap("tab10").colors)  # type: ignore[attr-defined]  # a ListedColormap
    styles = cycler(color=colours * 2) + cycler(linestyle=["-"] * len(colours) + ["--"] * len(colours))
    figure, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False)
    for axis in axes.flat:
        axis.set_prop_cycle(styles)
    return figure, axes
