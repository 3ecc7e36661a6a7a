"""What every seglab network is: :class:`SegmentationNet` (as segmentation_models_pytorch's
``SegmentationModel``), and the shape helpers it uses.

A network maps (N, in_channels, H, W) images to (N, num_classes, h, w) logits for any H and W:
``forward`` checks the input, zero-pads it on the bottom/right to a multiple of
``size_multiple``, runs the architecture's own ``_forward`` and crops the logits back. A network
whose output is smaller than its input (``UNet(padding="valid")``) sets ``pads_input = False``
and says through ``output_size`` and ``align_target`` which part of the input it predicts. A
network with a backbone exposes it as ``encoder``; ``freeze_encoder()`` then stops its training
(no gradients, normalisation statistics fixed, also across ``train()``) until
``unfreeze_encoder()``. ``config`` holds the constructor's arguments, so the network can be
rebuilt without the training config.
"""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.nn.modules.batchnorm import _NormBase


def _never() -> bool:
    return False


# torch.compiler.is_exporting: torch >= 2.7 (torch.export is then the ONNX exporter's default)
_IS_EXPORTING = getattr(torch.compiler, "is_exporting", _never)


def exporting() -> bool:
    """Whether the network is being traced (``torch.jit.trace``, the TorchScript-based ONNX
    exporter) or exported (``torch.export``, the dynamo-based ONNX exporter)."""
    if torch.jit.is_scripting():  # TorchScript compiles nothing below this
        return False
    return torch.jit.is_tracing() or _IS_EXPORTING()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom/right of (..., H, W) so that H and W are multiples of ``multiple``.

    The network's logits are cropped back with ``logits[..., :H, :W]``. The padded size is
    written ``ceil(H / multiple) * multiple`` and, when exporting, the pad is always in the graph
    (zero-sized for multiples), so one exported graph takes every height and width.
    """
    height, width = x.shape[-2], x.shape[-1]
    pad_h = (height + multiple - 1) // multiple * multiple - height
    pad_w = (width + multiple - 1) // multiple * multiple - width
    if exporting() or pad_h or pad_w:
        return F.pad(x, [0, pad_w, 0, pad_h])
    return x


def center_crop(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """The central ``size`` (height, width) window of the last two dimensions of ``x``."""
    if size[0] > x.shape[-2] or size[1] > x.shape[-1]:
        raise ValueError(
            f"cannot centre-crop a {x.shape[-2]}x{x.shape[-1]} map to the larger size "
            f"{size[0]}x{size[1]}"
        )
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


def plain(value: Any) -> Any:
    """Hydra's DictConfig/ListConfig arguments as plain dicts and lists."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


# where the default configs take the values from: the fix to name in an error
SOURCES = {"in_channels": "data.in_channels", "num_classes": "the length of data.class_names"}


def check_positive(**values: int) -> None:
    """A ValueError naming the config key ``model.<name>`` of the first value below 1."""
    for name, value in values.items():
        if value < 1:
            source = (
                f" (the default config takes it from {SOURCES[name]})" if name in SOURCES else ""
            )
            raise ValueError(
                f"model.{name}={value} must be a positive integer: set it >= 1{source}"
            )


def recording_arguments(init):
    """Wrap a network's ``__init__`` so that the outermost call stores its bound arguments."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if "_init_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = {}
            for name, value in list(bound.arguments.items())[1:]:  # without self
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update({key: plain(item) for key, item in value.items()})
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    arguments[name] = plain(value)
            object.__setattr__(self, "_init_args", arguments)
        init(self, *args, **kwargs)

    return wrapper


class SegmentationNet(nn.Module):
    """Base of seglab's networks; a subclass builds its layers and implements ``_forward``.

    Args:
        in_channels: channels of the input images (``model.in_channels``).
        num_classes: logit maps of the output, background included (``model.num_classes``).
        size_multiple: height and width that need no padding are multiples of this.
        pads_input: False for a network that takes the input as it is and whose output may be
            smaller (see :meth:`output_size` and :meth:`align_target`).
    """

    __jit_unused_properties__ = ["encoder", "config"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = recording_arguments(cls.__init__)

    def __init__(
        self, in_channels: int, num_classes: int, size_multiple: int = 1, pads_input: bool = True
    ):
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.size_multiple = size_multiple
        self.pads_input = pads_input
        self.encoder_frozen = False

    @property
    def config(self) -> dict[str, Any]:
        """``_target_`` and the constructor's arguments: ``hydra.utils.instantiate`` (or the
        class called with the arguments) rebuilds the same network."""
        target = f"{type(self).__module__}.{type(self).__qualname__}"
        return {"_target_": target, **copy.deepcopy(self.__dict__.get("_init_args", {}))}

    @property
    def encoder(self) -> nn.Module | None:
        """The backbone that :meth:`freeze_encoder` freezes, or None when there is none (a
        subclass registers it as the submodule ``encoder`` or overrides this property)."""
        return self._modules.get("encoder")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"the network takes (N, {self.in_channels}, H, W) images "
                f"(model.in_channels={self.in_channels}), got a tensor of shape {x.shape}: "
                "set model.in_channels to the images' channels"
            )
        height, width = x.shape[-2], x.shape[-1]
        self._check_size(height, width)
        if not self.pads_input:
            return self._forward(x)
        logits = self._forward(pad_to_multiple(x, self.size_multiple))
        return logits[..., :height, :width]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The architecture: logits of an input whose sides are multiples of size_multiple."""
        raise NotImplementedError

    def _check_size(self, height: int, width: int) -> None:
        """Raise a ValueError naming sizes that work when the network cannot take this one."""

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The logits' (h, w) for an input of (height, width): the same for padding networks."""
        return height, width

    def align_target(self, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The part of ``target`` (a (..., H, W) mask, or an image) that ``logits`` predict."""
        if target.shape[-2:] != logits.shape[-2:]:
            raise ValueError(
                f"{type(self).__name__} gave {tuple(logits.shape[-2:])} logits for a target of "
                f"{tuple(target.shape[-2:])}: it predicts every input pixel, so the two must "
                "have the same size"
            )
        return target

    def freeze_encoder(self) -> None:
        """Stop training the encoder: no gradients, its normalisation layers in eval mode (their
        running statistics fixed), also after ``train()``, until :meth:`unfreeze_encoder`."""
        self._set_encoder_trainable(False)

    def unfreeze_encoder(self) -> None:
        """Train the encoder again, its normalisation layers in the network's mode."""
        self._set_encoder_trainable(True)

    def _set_encoder_trainable(self, trainable: bool) -> None:
        if self.encoder is None:
            raise ValueError(
                f"{type(self).__name__} has no encoder to freeze: use a network with one "
                "(model=resunet or model=smp), or remove callbacks=finetune / "
                "model.freeze_encoder=true"
            )
        self.encoder.requires_grad_(trainable)
        self.encoder_frozen = not trainable
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationNet:
        """As ``nn.Module.train``, but a frozen encoder's normalisation layers stay in eval."""
        super().train(mode)
        if self.encoder_frozen:
            for module in self.encoder.modules():
                if isinstance(module, _NormBase):
                    module.eval()
        return self
