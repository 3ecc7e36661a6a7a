"""SegmentationNet itself: what the base does for any subclass (the networks' shared behaviour is
in contract.py, which every network's test file inherits)."""

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from seglab.models import SegmentationNet, UNet
from seglab.train import check_compatible


class Toy(SegmentationNet):
    """A 1x1 convolution that records the size it was given."""

    def __init__(self, in_channels=1, num_classes=2, **options):
        super().__init__(in_channels, num_classes, size_multiple=8)
        self.conv = nn.Conv2d(in_channels, num_classes, 1)
        self.seen = None

    def _forward(self, x):
        self.seen = tuple(x.shape[-2:])
        return self.conv(x)


class ToyWithWidth(Toy):
    def __init__(self, width=3, in_channels=1):
        super().__init__(in_channels, 2, unused=width)


def test_forward_pads_to_the_size_multiple_and_crops_back():
    net = Toy()
    x = torch.randn(2, 1, 13, 8)
    out = net(x)
    assert net.seen == (16, 8) and out.shape == (2, 2, 13, 8)
    assert torch.equal(out, net.conv(x))  # a 1x1 conv: the padding does not leak


def test_config_holds_the_outermost_constructor_arguments():
    net = Toy(3, 4, extra=OmegaConf.create({"a": [1, 2]}))
    assert net.config == {
        "_target_": "tests.models.test_base.Toy",
        "in_channels": 3,
        "num_classes": 4,
        "extra": {"a": [1, 2]},  # **kwargs flattened, Hydra containers made plain
    }
    assert ToyWithWidth(5).config == {
        "_target_": "tests.models.test_base.ToyWithWidth",
        "width": 5,
        "in_channels": 1,
    }
    net.config["in_channels"] = 9  # a copy
    assert net.config["in_channels"] == 3


def test_encoder_is_none_without_one_and_freezing_says_what_to_use():
    net = Toy()
    assert net.encoder is None and not net.encoder_frozen
    with pytest.raises(ValueError, match="Toy has no encoder to freeze: .*model=resunet"):
        net.freeze_encoder()


def test_check_compatible_reads_the_interface():
    data = type("Data", (), {"in_channels": 1, "num_classes": 2, "class_names": ["a", "b"]})()
    check_compatible(UNet(1, 2, depth=1, base_width=2), data)
    with pytest.raises(ValueError, match="set model.num_classes=2"):
        check_compatible(UNet(1, 3, depth=1, base_width=2), data)
    with pytest.raises(TypeError, match="Conv2d, not a seglab.models.SegmentationNet"):
        check_compatible(nn.Conv2d(1, 2, 1), data)


def test_networks_import_no_data_or_training_code():
    code = (
        "import sys, seglab.models, seglab.models.smp; "
        "print(sorted(m for m in sys.modules if m.startswith(('seglab.', 'lightning'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = result.stdout.strip()
    assert loaded.startswith("["), result.stderr[-2000:]
    assert all(name.startswith(("seglab.config", "seglab.models")) for name in eval(loaded))
