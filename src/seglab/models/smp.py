"""Any segmentation_models_pytorch architecture as a seglab network (``model=smp``, optional).

``SMPModel`` builds ``smp.create_model(arch, encoder_name=..., encoder_weights=...,
in_channels=..., classes=num_classes, **kwargs)`` and takes any input size like seglab's own
networks: height and width are zero-padded on the bottom/right to a multiple of the encoder's
output stride (``encoder.output_stride``, the number smp checks inputs against) and the logits
are cropped back. smp's ``Unet`` would accept other sizes itself (it interpolates to each skip
map's size); seglab pads for every architecture, so an image gives the logits of its padded
version, as with :class:`seglab.models.ResUNet`. The smp model's encoder is the network's
``encoder``: ``freeze_encoder()`` and ``callbacks=finetune`` work as for ``model=resunet``.

segmentation-models-pytorch is imported when a model is built: ``pip install "seglab[smp]"``.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from seglab.models.base import SegmentationNet, plain

INSTALL_HINT = 'pip install "seglab[smp]"'


def import_smp():
    """The ``segmentation_models_pytorch`` module, or an ImportError saying how to install it."""
    try:
        import segmentation_models_pytorch
    except ImportError as error:
        raise ImportError(
            f"model=smp needs segmentation-models-pytorch, which could not be imported ({error}). "
            f"Install it with: {INSTALL_HINT}"
        ) from error
    return segmentation_models_pytorch


def one_of(kind: str, name: str, valid: list[str], extra: str = "") -> ValueError:
    """A ValueError naming the wrong value, the closest valid ones and all of them."""
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"model.{kind}={name!r} is not known to smp.{hint} Valid: {valid}{extra}")


def check_names(smp, arch: str, encoder_name: str, encoder_weights: str | None) -> None:
    """Fail before building with a ValueError for an unknown arch, encoder or weights name."""
    archs = {
        model.__name__.lower(): model.__name__ for model in smp.MODEL_ARCHITECTURES_MAPPING.values()
    }
    if arch.lower() not in archs:
        raise one_of("arch", arch, sorted(archs.values()))
    if encoder_name.startswith("tu-"):  # any timm model: tu-<name>[.<pretrained tag>]
        import timm

        if not timm.is_model(encoder_name[3:]):
            raise ValueError(
                f"model.encoder_name={encoder_name!r}: {encoder_name[3:]!r} is not a timm model "
                "(see timm.list_models())"
            )
        return
    if encoder_name.startswith("timm-"):  # deprecated aliases: smp maps them to tu- names
        return
    names = smp.encoders.get_encoder_names()
    if encoder_name not in names:
        raise one_of("encoder_name", encoder_name, names, " or 'tu-<any timm model>'")
    weights = list(smp.encoders.encoders[encoder_name]["pretrained_settings"])
    if encoder_weights is not None and encoder_weights not in weights:
        raise ValueError(
            f"model.encoder_weights={encoder_weights!r} does not exist for {encoder_name}: "
            f"use null (random init) or one of {weights}"
        )


def is_download_error(error: Exception) -> bool:
    """Network or Hub failures (Hugging Face Hub, httpx, requests, urllib all raise OSErrors)."""
    root = type(error).__module__.split(".")[0]
    return isinstance(error, OSError) or root in {"huggingface_hub", "httpx", "requests"}


class SMPModel(SegmentationNet):
    """A segmentation_models_pytorch model with seglab's interface and any input size.

    Args:
        in_channels: channels of the input image (smp adapts pretrained first-conv weights).
        num_classes: number of output logit maps (background included); smp's ``classes``.
        arch: an smp architecture (``Unet``, ``FPN``, ``DeepLabV3Plus``, ... case-insensitive).
        encoder_name: an smp encoder (``resnet34``, ``efficientnet-b0``, ``tu-<timm model>``...).
        encoder_weights: ``None`` (random init) or a weights name such as ``"imagenet"``
            (downloaded from the Hugging Face Hub once; needs network).
        freeze_encoder: train the decoder only (see :meth:`SegmentationNet.freeze_encoder`).
        **kwargs: further arguments of the architecture, e.g. ``decoder_channels``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        arch: str = "Unet",
        encoder_name: str = "resnet34",
        encoder_weights: str | None = None,
        freeze_encoder: bool = False,
        **kwargs: Any,
    ):
        super().__init__(in_channels, num_classes)
        if kwargs.get("aux_params") is not None:
            raise ValueError(
                "model.aux_params adds smp's classification head, which seglab does not train: "
                "remove it"
            )
        smp = import_smp()
        check_names(smp, arch, encoder_name, encoder_weights)
        self.arch = arch
        self.encoder_name = encoder_name
        try:
            self.model = smp.create_model(
                arch,
                encoder_name=encoder_name,
                encoder_weights=encoder_weights,
                in_channels=in_channels,
                classes=num_classes,
                **{key: plain(value) for key, value in kwargs.items()},
            )
        except Exception as error:
            if encoder_weights is None or not is_download_error(error):
                raise
            raise RuntimeError(
                f"could not download the {encoder_weights!r} weights of the smp encoder "
                f"{encoder_name} ({type(error).__name__}: {error}). Without network, set "
                "model.encoder_weights=null (random init), or fetch them once where there is "
                "network: they are cached in the Hugging Face Hub cache (HF_HOME)."
            ) from error
        # the output stride, the number smp checks inputs against
        self.size_multiple = int(getattr(self.model.encoder, "output_stride", 32))
        if freeze_encoder:
            self.freeze_encoder()

    @property
    def encoder(self) -> nn.Module:
        """smp's encoder of the model (``self.model.encoder``)."""
        return self.model.encoder

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
