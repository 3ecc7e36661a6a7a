"""``Predictor``: a network and its preprocessing as a function from image arrays to masks.

    predictor = Predictor(net, Preprocessing(1, [0.491], [0.171]), ["background", "membrane"])
    mask = predictor(image)                    # H x W class indices (uint8 for <= 256 classes)
    probabilities = predictor.probabilities(image)   # (num_classes, H, W) float32

The network is any module with ``in_channels``, ``num_classes`` and ``size_multiple`` whose
``net(x)`` maps (N, in_channels, H, W) to (N, num_classes, H, W) logits for any H and W (seglab's
networks pad to their size multiple and crop back). Images larger than ``tile_size`` go through
MONAI's sliding-window inference (:mod:`seglab.inference.tiling`), others through one forward
pass; ``tta`` averages the probabilities of flipped / rotated copies
(:mod:`seglab.inference.tta`), per tile when tiling. Everything runs under
``torch.inference_mode()`` with the network in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from seglab.inference.preprocessing import Preprocessing
from seglab.inference.tiling import check_tiling, needs_tiling, sliding_window, tile_shape
from seglab.inference.tta import averaged_probabilities, check_tta
from seglab.utils.argmax import class_argmax

ARGMAX_ROWS = 512  # rows per argmax step of a large probability map (int64 indices stay small)


def mask_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned type that holds class indices ``0..num_classes-1``."""
    if num_classes <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if num_classes <= 65536 else np.dtype(np.int32)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: the GPU when there is one, else the CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def argmax_mask(probabilities: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(K, H, W) -> (H, W) ``dtype`` class indices, a block of rows at a time."""
    height = probabilities.shape[-2]
    mask = np.empty(probabilities.shape[-2:], dtype=dtype)
    small = torch.uint8 if dtype == np.uint8 else torch.int32  # fewer bytes back from a GPU
    for top in range(0, height, ARGMAX_ROWS):
        block = class_argmax(probabilities[:, top : top + ARGMAX_ROWS], dim=0).to(small)
        mask[top : top + ARGMAX_ROWS] = block.cpu().numpy()
    return mask


def _check_net(net: nn.Module, preprocessing: Preprocessing, class_names: Sequence[str]) -> None:
    missing = [a for a in ("in_channels", "num_classes", "size_multiple") if not hasattr(net, a)]
    if missing:
        raise TypeError(
            f"{type(net).__name__} has no {', '.join(missing)}: the predictor needs a seglab "
            "SegmentationNet (or a module with in_channels, num_classes and size_multiple)"
        )
    if len(class_names) != net.num_classes:
        raise ValueError(
            f"{len(class_names)} class names {list(class_names)} for a network of "
            f"num_classes={net.num_classes}: give one name per output class"
        )
    if preprocessing.in_channels != net.in_channels:
        raise ValueError(
            f"Preprocessing in_channels={preprocessing.in_channels} but the network takes "
            f"in_channels={net.in_channels}: use the training data's channels"
        )


class Predictor:
    """Segment H x W (x C) numpy images with ``net``; see the module docstring.

    Args:
        net: the network (moved to ``device`` and put in eval mode).
        preprocessing: channels, normalisation and 16-bit scale of the training data.
        class_names: one name per output class.
        palette: one [r, g, b] (0..255) per class for overlays; None: seglab's class colours.
        ignore_index: the mask value training ignored (overlays paint it white).
        tile_size: images with a side above this (rounded up to the network's size multiple) are
            predicted in tiles of this size; None: always the whole image at once.
        tile_overlap: fraction of a tile shared with its neighbour, in [0, 1).
        tile_batch_size: tiles per forward pass.
        blend: ``gaussian`` (tile centres weigh most) or ``constant`` weights for overlaps.
        tta: ``none``, ``flips`` or ``d4`` test-time augmentation.
        device: ``auto`` (GPU if available), ``cpu``, ``cuda``, ``cuda:1``, ...
    """

    def __init__(
        self,
        net: nn.Module,
        preprocessing: Preprocessing,
        class_names: Sequence[str],
        *,
        palette: Sequence[Sequence[int]] | None = None,
        ignore_index: int = 255,
        tile_size: int | None = 1024,
        tile_overlap: float = 0.25,
        tile_batch_size: int = 4,
        blend: str = "gaussian",
        tta: str = "none",
        device: str | torch.device = "auto",
    ):
        _check_net(net, preprocessing, class_names)
        check_tiling(tile_size, tile_overlap, tile_batch_size, blend)
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.palette = palette
        self.ignore_index = ignore_index
        self.tile_size, self.tile_overlap = tile_size, tile_overlap
        self.tile_batch_size, self.blend = tile_batch_size, blend
        self.tta = check_tta(tta)
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __call__(self, image) -> np.ndarray:
        """(H, W) class-index mask of ``image`` (uint8 up to 256 classes, else uint16 / int32)."""
        with torch.inference_mode():
            x = self._input(image)
            if self.tta == "none" and not self._tiled(x):
                logits = self._logits(x.to(self.device))[0]
                return argmax_mask(logits, mask_dtype(self.num_classes))
            return argmax_mask(self._probabilities(x)[0], mask_dtype(self.num_classes))

    def probabilities(self, image) -> np.ndarray:
        """(num_classes, H, W) float32 softmax probabilities of ``image``."""
        with torch.inference_mode():
            return self._probabilities(self._input(image))[0].numpy()

    def batch_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) float32 probabilities, on ``x``'s device, of an already preprocessed
        (N, C, H, W) batch (a DataLoader's, as seglab-eval feeds it): each image with this
        predictor's tiling and TTA, the network run on ``x``'s device."""
        device = x.device
        images = (self._probabilities(image[None].cpu(), device) for image in x)
        return torch.cat([p.to(device) for p in images])

    def _input(self, image) -> torch.Tensor:
        if self.net.training:  # put back in eval mode if the caller trained it meanwhile
            self.net.eval()
        return self.preprocessing.to_tensor(image)

    def _tiled(self, x: torch.Tensor) -> bool:
        return needs_tiling(self.tile_size, self.net.size_multiple, *x.shape[-2:])

    def _probabilities(self, x: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """(1, K, H, W) float32 on the CPU from the (1, C, H, W) CPU input; the network runs on
        ``device`` (default: the predictor's)."""
        device = device or self.device
        if not self._tiled(x):
            return self._tile_probabilities(x.to(device)).cpu()
        roi = tile_shape(self.tile_size, self.net.size_multiple, *x.shape[-2:])
        return sliding_window(
            self._tile_probabilities,
            x,
            roi,
            batch_size=self.tile_batch_size,
            overlap=self.tile_overlap,
            blend=self.blend,
            tile_device=device,
        )

    def _tile_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return averaged_probabilities(self._logits, x, self.tta)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        expected = (x.shape[0], self.num_classes, *x.shape[-2:])
        if tuple(logits.shape) != expected:
            raise ValueError(
                f"{type(self.net).__name__} gave logits of shape {tuple(logits.shape)} for an "
                f"input of shape {tuple(x.shape)}, expected {expected}: the predictor needs a "
                "network whose output has the input's size (e.g. UNet padding='same', not "
                "'valid')"
            )
        return logits.float()
