"""Dead filters: channels that stay at zero for (almost) every picture of a data set.

"Some activation maps may be all zero for many different inputs, which can indicate dead
filters, and can be a symptom of high learning rates" (CS231n, Understanding CNNs,
https://cs231n.github.io/understanding-cnn/). A channel counts as active in a picture when
any of its values there is positive; it is dead when that happens in at most ``max_active``
of the pictures (0 asks for never) *after a rectifier*, where it passes (almost) nothing on.
A layer with negative values (a channel's mean below zero: a convolution or linear layer before
its ReLU, a leaky ReLU) is not rectified: a channel that is rarely positive there still carries
its negative values to the next layer, so it is reported as rarely positive, never as dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from convscope.render.layout import stack, text_picture, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.scan.statistics import ChannelStatistics

if TYPE_CHECKING:
    from convscope.scan.result import ScanResult

NO_RECTIFIER = "some channels average below zero"


@dataclass
class DeadFilters:
    """The dead channels of one layer (``dead`` ``[C]`` bool) with every channel's statistics.

    ``rarely_positive`` ``[C]``: positive in at most ``max_active`` of the pictures; on a rectified
    layer these are the dead channels, elsewhere (``rectified`` false) none is dead.
    """

    layer: str
    max_active: float
    statistics: ChannelStatistics
    dead: Tensor
    rarely_positive: Tensor | None = None
    rectified: bool = True

    @property
    def channels(self) -> list[int]:
        """The dead channels (none on a layer without a rectifier)."""
        return self.dead.nonzero().flatten().tolist()

    @property
    def listed(self) -> list[int]:
        """The channels the view lists: dead ones, or on an unrectified layer the rarely positive ones."""
        chosen = self.dead if self.rectified or self.rarely_positive is None else self.rarely_positive
        return chosen.nonzero().flatten().tolist()

    @property
    def summary(self) -> str:
        """``'4 dead channels'``, or on a layer without a rectifier what is measured instead."""
        if self.rectified:
            return f"{len(self.channels)} dead channels"
        return (f"no rectifier ({NO_RECTIFIER}): {len(self.listed)} channels rarely positive, none dead")

    def lines(self) -> list[str]:
        stats = self.statistics
        total = stats.channels
        share = f"positive in at most {self.max_active:.1%} of {stats.count_images} pictures"
        if self.rectified:
            head = f"{self.layer}: {len(self.channels)} of {total} channels dead ({share})"
        else:
            head = (f"{self.layer}: no rectifier ({NO_RECTIFIER}), so no channel is dead; {len(self.listed)} of "
                    f"{total} channels are {share}")
        rows = [f"  #{c:<5} active in {stats.active_images[c]:7.2%} of pictures, largest value {stats.max[c]:.3g}, "
                f"mean {stats.mean[c]:.3g}" for c in self.listed]
        return [head, *rows]

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def picture(self) -> Picture:
        """Every channel's share of active pictures, dead ones marked red, the dead channels listed below."""
        stats = self.statistics
        figure, axes = new_figure(size=(min(14.0, 3 + 0.06 * stats.channels), 3.0))
        axis = axes[0, 0]
        band = "#d62728" if self.rectified else "#999999"
        for channel in self.listed:
            axis.axvspan(channel - 0.5, channel + 0.5, color=band, alpha=0.35, linewidth=0)
        axis.bar(range(stats.channels), stats.active_images.float().tolist(), color="#4c72b0", width=0.9)
        axis.axhline(self.max_active, color=band, linewidth=0.8, linestyle="--")
        axis.set_xlim(-0.5, stats.channels - 0.5)
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("channel")
        axis.set_ylabel("share of pictures\nwith a positive value")
        chart = figure_to_picture(figure)
        stats = self.statistics
        entries = [f"#{c}: {stats.active_images[c]:.2%} (max {stats.max[c]:.2g})" for c in self.listed]
        empty = "no dead channels" if self.rectified else "no rarely positive channels"
        columns = [entries[i:i + 10] for i in range(0, min(len(entries), 60), 10)] or [[empty]]
        if len(entries) > 60:
            columns[-1].append(f"… and {len(entries) - 60} more")
        listing = stack([text_picture(column, size=12) for column in columns], gap=12)
        body = stack([chart, listing], direction="vertical", gap=4)
        if not self.rectified:
            return titled(body, f"No dead filters at {self.layer}: it has no rectifier ({NO_RECTIFIER})",
                          f"grey bands: {len(self.listed)} of {stats.channels} channels positive in at most "
                          f"{self.max_active:.1%} of the {stats.count_images} scanned pictures — their negative "
                          "values still pass on, so they are not dead")
        return titled(body, f"Dead filters at {self.layer}: {len(self.channels)} of {stats.channels}",
                      f"red bands: channels positive in at most {self.max_active:.1%} of the {stats.count_images} "
                      "scanned pictures; listed with that share and their largest value")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def dead_filters(result: ScanResult, layer: str | None = None, *, max_active: float = 0.01) -> DeadFilters:
    """The channels of ``layer`` positive in at most ``max_active`` (a share, 0–1) of the scanned pictures."""
    if not 0 <= max_active < 1:
        raise ValueError(f"max_active is a share of pictures in [0, 1), got {max_active}")
    layer = result.check_layer(layer)
    statistics = result.statistics(layer)
    rarely = statistics.active_images <= max_active
    rectified = bool((statistics.mean >= 0).all())  # a negative mean: negative values pass on
    return DeadFilters(layer, max_active, statistics, rarely & rectified, rarely, rectified)
