"""Batching samples of different sizes: pad to the largest in the batch, masks with ignore_index.

A folder of photos rarely has one size. Stacking needs one, so :class:`PadCollate` pads each
image (with 0, the normalised mean) and mask (with ``ignore_index``, so padding counts in neither
loss nor metrics) at the bottom and right to the batch's largest height and width. Batches of one
size are stacked as they are. The networks pad to their own size multiple themselves. A batch
also holds the samples' ``index`` (int64) when they have one (seglab's datasets do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate


class PadCollate:
    """``collate_fn`` of the DataModule's loaders (a class, so DataLoader workers can pickle it)."""

    def __init__(self, ignore_index: int):
        self.ignore_index = ignore_index

    def __call__(self, samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        shapes = {tuple(sample["image"].shape[-2:]) for sample in samples}
        if len(shapes) == 1:
            return default_collate(samples)
        height = max(h for h, _ in shapes)
        width = max(w for _, w in shapes)

        def pad(tensor: torch.Tensor, value: float) -> torch.Tensor:
            h, w = tensor.shape[-2:]
            return F.pad(tensor, (0, width - w, 0, height - h), value=value)

        batch = {
            "image": torch.stack([pad(s["image"], 0.0) for s in samples]),
            "mask": torch.stack([pad(s["mask"], self.ignore_index) for s in samples]),
        }
        if all("index" in sample for sample in samples):
            batch["index"] = torch.tensor([sample["index"] for sample in samples])
        return batch
