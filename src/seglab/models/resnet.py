"""A torchvision ResNet as a segmentation encoder: the feature pyramid at strides 2 to 32.

The stem and the four stages are torchvision's own modules, kept under torchvision's names
(``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so a torchvision state dict loads as it is; the
classifier (``avgpool``, ``fc``) is dropped. Weights come from torchvision's ImageNet checkpoints
(``pretrained="imagenet"``, downloaded once into the torch hub cache) or from a local file
(``weights_path``). When ``in_channels != 3`` the first convolution's RGB kernels are adapted as
segmentation_models_pytorch does: summed for one channel, else cycled and scaled by
``3 / in_channels``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

# name -> (builder, weights enum, channels of the features at strides 2, 4, 8, 16, 32)
RESNETS = {
    "resnet18": (models.resnet18, models.ResNet18_Weights, (64, 64, 128, 256, 512)),
    "resnet34": (models.resnet34, models.ResNet34_Weights, (64, 64, 128, 256, 512)),
    "resnet50": (models.resnet50, models.ResNet50_Weights, (64, 256, 512, 1024, 2048)),
    "resnet101": (models.resnet101, models.ResNet101_Weights, (64, 256, 512, 1024, 2048)),
}


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB kernels (out, 3, k, k) of a first convolution turned into ``in_channels`` kernels."""
    if weight.shape[1] == in_channels:
        return weight
    if weight.shape[1] != 3:
        raise ValueError(
            f"cannot adapt a first convolution with {weight.shape[1]} input channels to "
            f"{in_channels}: only RGB (3-channel) weights are adapted"
        )
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    cycled = weight[:, [i % 3 for i in range(in_channels)]]
    return cycled * (3 / in_channels)


def encoder_state_dict(loaded: dict) -> dict[str, torch.Tensor]:
    """The encoder's entries of a torchvision state dict or of a seglab Lightning checkpoint."""
    state = loaded.get("state_dict", loaded)
    if "conv1.weight" not in state:  # a checkpoint: keys like "net.encoder.conv1.weight"
        stems = sorted((k for k in state if k.endswith(".conv1.weight")), key=len)
        prefix = stems[0].removesuffix("conv1.weight") if stems else ""
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


class ResNetEncoder(nn.Module):
    """torchvision ResNet without its classifier; ``forward`` returns five feature maps.

    Args:
        name: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        in_channels: channels of the input image.
        pretrained: ``None`` (random init) or ``"imagenet"`` (torchvision's IMAGENET1K_V1).
        weights_path: a local torchvision state dict (``fc.*`` entries are ignored) or a seglab
            checkpoint whose network has this encoder.
    """

    def __init__(
        self,
        name: str = "resnet34",
        in_channels: int = 3,
        pretrained: str | None = None,
        weights_path: str | None = None,
    ):
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"model.encoder={name!r} is not one of {sorted(RESNETS)}")
        if pretrained is not None and weights_path is not None:
            raise ValueError(
                "set model.pretrained or model.weights_path, not both "
                f"(got pretrained={pretrained!r}, weights_path={weights_path!r})"
            )
        builder, _, self.out_channels = RESNETS[name]
        self.name = name
        self.in_channels = in_channels
        resnet = builder(weights=None)
        if in_channels != 3:
            resnet.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.conv1, self.bn1, self.relu, self.maxpool = (
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
        )
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        if pretrained is not None:
            self.load_weights(download_weights(name, pretrained), f"pretrained={pretrained!r}")
        elif weights_path is not None:
            self.load_weights(read_weights(weights_path), f"weights_path={weights_path}")

    def load_weights(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load a torchvision ResNet state dict, adapting ``conv1`` to ``in_channels``."""
        state = encoder_state_dict(state)
        if "conv1.weight" in state and state["conv1.weight"].shape[1] == 3:  # RGB weights
            state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], self.in_channels)
        expected = self.state_dict()
        missing = [k for k in expected if k not in state and "num_batches_tracked" not in k]
        unexpected = [k for k in state if k not in expected]
        wrong_shape = [
            f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ]
        if missing or unexpected or wrong_shape:
            raise ValueError(
                f"{source}: the weights do not fit the {self.name} encoder (missing keys "
                f"{missing[:5]}, unexpected keys {unexpected[:5]}, wrong shapes {wrong_shape[:5]}; "
                f"{len(missing)}/{len(unexpected)}/{len(wrong_shape)} in all). Use a state dict "
                f"of torchvision.models.{self.name}(), or set model.encoder to the weights' ResNet."
            )
        self.load_state_dict(state, strict=False)  # num_batches_tracked may be absent

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 2 (stem, after ReLU), 4, 8, 16 and 32 (layer1 to layer4)."""
        stem = self.relu(self.bn1(self.conv1(x)))
        stride4 = self.layer1(self.maxpool(stem))
        stride8 = self.layer2(stride4)
        stride16 = self.layer3(stride8)
        return [stem, stride4, stride8, stride16, self.layer4(stride16)]


def download_weights(name: str, pretrained: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights of ``name``, through its weights API (cached after once)."""
    if pretrained != "imagenet":
        raise ValueError(f"model.pretrained={pretrained!r}: use null or 'imagenet'")
    weights = RESNETS[name][1].IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as error:
        raise RuntimeError(
            f"could not download the ImageNet weights of {name} from {weights.url} ({error}). "
            "Without network, set model.pretrained=null (random init), or download that file "
            f"elsewhere and set model.weights_path=<file> (or put it in "
            f"{torch.hub.get_dir()}/checkpoints/)."
        ) from error


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict (or a checkpoint holding one) from a local file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights_path={path} does not exist: point it at a file saved with "
            "torch.save(resnet.state_dict(), path), or set model.weights_path=null"
        )
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise ValueError(f"model.weights_path={path} holds a {type(loaded).__name__}, not a dict")
    return loaded
