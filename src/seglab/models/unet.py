"""The U-Net of Ronneberger et al. (2015), with the options practitioners use today.

Contracting path: ``depth`` blocks of two 3x3 convolutions + ReLU, each followed by a 2x2 max-pool,
the number of feature maps doubling at every step; a bottleneck block; an expanding path whose
steps up-sample (2x2 transposed convolution halving the channels, or bilinear up-sampling), concat
the skip feature map of the same level and apply two 3x3 convolutions; a final 1x1 convolution
gives one logit map per class. Softmax and loss live in :class:`seglab.module.SegmentationModule`.

``padding="same"`` (the default) keeps the spatial size; inputs whose height or width is not a
multiple of ``2**depth`` are zero-padded on the bottom/right and the logits are cropped back to
the input size (by :class:`seglab.models.base.SegmentationNet`). ``padding="valid"`` is the
paper's geometry: unpadded convolutions, skip maps centre-cropped before concatenation, and an
output smaller than the input (572x572 -> 388x388 at depth 4), the centre of the input
(``align_target``); sizes that do not fit the network raise an error naming the nearest ones that
do.
"""

import torch
from torch import nn

from seglab.models.base import SegmentationNet, center_crop, check_positive

PADDINGS = {"same": 1, "valid": 0}


class DoubleConv(nn.Sequential):
    """(3x3 conv -> [batch norm] -> ReLU) x 2; ``padding`` 1 keeps the size, 0 loses 4 pixels."""

    def __init__(
        self, in_channels: int, out_channels: int, batch_norm: bool = True, padding: int = 1
    ):
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            layers.append(
                nn.Conv2d(
                    channels_in, out_channels, kernel_size=3, padding=padding, bias=not batch_norm
                )
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max-pool followed by a double convolution."""

    def __init__(
        self, in_channels: int, out_channels: int, batch_norm: bool = True, padding: int = 1
    ):
        super().__init__(
            nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, batch_norm, padding)
        )


class Up(nn.Module):
    """Up-sample, concatenate the (centre-cropped) skip feature map, double convolution.

    ``in_channels`` are the channels coming from below; the skip map has ``in_channels // 2``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bilinear: bool,
        batch_norm: bool = True,
        padding: int = 1,
    ):
        super().__init__()
        skip_channels = in_channels // 2
        if bilinear:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, skip_channels, kernel_size=1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_channels, skip_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(skip_channels * 2, out_channels, batch_norm, padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([center_crop(skip, [x.shape[-2], x.shape[-1]]), x], dim=1))


class UNet(SegmentationNet):
    """U-Net for ``num_classes``-way per-pixel classification.

    Args:
        in_channels: channels of the input image (1 for grayscale, 3 for RGB).
        num_classes: number of output logit maps (background included).
        depth: number of contraction (max-pool) steps; the paper uses 4.
        base_width: feature maps of the first block; the paper uses 64. Each level doubles it.
        batch_norm: add batch normalisation after every convolution (not in the paper).
        bilinear: bilinear up-sampling + 1x1 conv instead of the paper's 2x2 transposed conv.
        padding: ``same`` (output size = input size) or ``valid`` (the paper's geometry).
        dropout: probability of the dropout applied to the bottleneck's feature maps (the paper
            puts drop-out at the end of the contracting path); 0 disables it.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 4,
        base_width: int = 64,
        batch_norm: bool = True,
        bilinear: bool = False,
        padding: str = "same",
        dropout: float = 0.0,
    ):
        if padding not in PADDINGS:
            raise ValueError(
                f"UNet padding must be one of {sorted(PADDINGS)}, got {padding!r} (model.padding)"
            )
        if depth < 1:
            raise ValueError(f"UNet depth must be >= 1, got {depth} (model.depth)")
        if not 0 <= dropout < 1:
            raise ValueError(f"UNet dropout must be in [0, 1), got {dropout} (model.dropout)")
        check_positive(base_width=base_width)
        super().__init__(in_channels, num_classes, 2**depth, pads_input=padding == "same")
        self.depth = depth
        self.padding = padding
        pad = PADDINGS[padding]
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], batch_norm, pad)
        self.downs = nn.ModuleList(
            Down(widths[level], widths[level + 1], batch_norm, pad) for level in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[level + 1], widths[level], bilinear, batch_norm, pad)
            for level in reversed(range(depth))
        )
        self.bottleneck_dropout = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def valid_output_size(self, size: int) -> int | None:
        """Output length for an input length with ``padding="valid"``; None if it does not fit
        (every max-pool needs an even length, every level at least one pixel)."""
        for _ in range(self.depth):
            size -= 4
            if size <= 0 or size % 2:
                return None
            size //= 2
        size -= 4
        for _ in range(self.depth):
            size = 2 * size - 4
        return size if size > 0 else None

    def nearest_valid_sizes(self, size: int) -> tuple[int | None, int | None]:
        """The closest input lengths below and above ``size`` that ``padding="valid"`` accepts."""
        step = self.size_multiple
        below = next((s for s in range(size, 0, -1) if self.valid_output_size(s)), None)
        above = next(s for s in range(size, size + 4 * step) if self.valid_output_size(s))
        return below, above

    def _check_size(self, height: int, width: int) -> None:
        if self.padding == "valid" and not torch.jit.is_scripting():  # a scripted net skips it
            self.check_valid_size(height, width)

    @torch.jit.unused
    def check_valid_size(self, height: int, width: int) -> None:
        for name, size in (("height", height), ("width", width)):
            if self.valid_output_size(size) is None:
                below, above = self.nearest_valid_sizes(size)
                raise ValueError(
                    f"UNet(padding='valid', depth={self.depth}) cannot take an input {name} of "
                    f"{size}: use {above}" + (f" or {below}" if below else "") + " (pad or crop "
                    "the images), or model.padding=same, which takes any size"
                )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if self.padding == "same":
            return height, width
        self.check_valid_size(height, width)
        return self.valid_output_size(height), self.valid_output_size(width)

    def align_target(self, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """With ``padding="valid"`` the output is the centre of the input: that of the target."""
        if self.padding == "valid":
            return center_crop(target, list(logits.shape[-2:]))
        return super().align_target(target, logits)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = self.bottleneck_dropout(skips.pop())
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)
