"""``ModelCard``: what a checkpoint carries so that a model is usable without its training config.

Every checkpoint seglab writes holds ``checkpoint["seglab"] = card.to_dict()``
(:meth:`seglab.module.SegmentationModule.on_save_checkpoint`): the network config (``_target_``
and constructor arguments, :attr:`seglab.models.SegmentationNet.config`), class names,
ignore_index, in_channels, normalisation, a colour palette, how eval-time inputs are handled and
seglab's version. Plain types only (str, int, float, bool, None, list, dict), so
``torch.load(weights_only=True)`` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

CARD_KEY = "seglab"
# how every seglab network treats an input whose sides are not multiples of size_multiple
PADDING_MODE = "zeros, bottom/right, after normalisation; logits cropped back"


def default_palette(num_classes: int) -> list[list[int]]:
    """seglab's class colours (:func:`seglab.utils.overlay.class_colours`) as [r, g, b] 0..255."""
    from seglab.utils.overlay import class_colours

    return np.round(class_colours(num_classes) * 255).astype(int).tolist()


def dataset_palette(palette: Mapping | None, class_names: Sequence[str]) -> list[list[int]]:
    """The data config's ``{class name or index: [r, g, b]}`` palette as one colour per class,
    when it names every class; else seglab's class colours."""
    colours = default_palette(len(class_names))
    if not palette:
        return colours
    found = 0
    for key, colour in palette.items():
        index = class_names.index(key) if key in class_names else key
        if isinstance(index, int) and 0 <= index < len(class_names):
            colours[index] = [int(c) for c in colour]
            found += 1
    return colours if found >= len(class_names) else default_palette(len(class_names))


@dataclass
class ModelCard:
    """The metadata of a trained network; see the module docstring."""

    net: dict[str, Any]
    class_names: list[str]
    in_channels: int
    ignore_index: int = 255
    mean: list[float] = field(default_factory=lambda: [0.5])
    std: list[float] = field(default_factory=lambda: [0.25])
    max_value_16bit: float = 65535.0
    palette: list[list[int]] = field(default_factory=list)
    size_multiple: int = 1
    padding_mode: str = PADDING_MODE
    version: str = ""

    def __post_init__(self):
        if not self.palette:
            self.palette = default_palette(len(self.class_names))
        if not self.version:
            from seglab import __version__

            self.version = __version__

    @property
    def target(self) -> str:
        return str(self.net.get("_target_", ""))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def from_training(cls, net, data: Mapping[str, Any]) -> ModelCard:
        """The card of ``net`` trained on ``data`` (the resolved ``data`` config as a dict)."""
        dataset = data.get("dataset") or {}
        class_names = [str(name) for name in data["class_names"]]
        return cls(
            net=net.config,
            class_names=class_names,
            in_channels=int(net.in_channels),
            ignore_index=int(data.get("ignore_index", 255)),
            mean=[float(v) for v in np.atleast_1d(data.get("mean", [0.5]))],
            std=[float(v) for v in np.atleast_1d(data.get("std", [0.25]))],
            max_value_16bit=float(dataset.get("max_value_16bit", 65535.0)),
            palette=dataset_palette(dataset.get("palette"), class_names),
            size_multiple=int(getattr(net, "size_multiple", 1)),
        )
