import pytest
import torch

from seglab.models import UNet
from seglab.models.base import center_crop

from .models.contract import NetworkContract


class TestUNetContract(NetworkContract):
    has_encoder = False
    atol = 1e-6

    def build(self, in_channels=1, num_classes=2):
        return UNet(in_channels, num_classes, depth=2, base_width=4)


class TestValidUNetContract(TestUNetContract):
    """padding=valid: no padding, the output is the centre of the input."""

    sizes = ((44, 60), (64, 48), (52, 44))
    train_size = (64, 48)

    def build(self, in_channels=1, num_classes=2):
        return UNet(in_channels, num_classes, depth=2, base_width=4, padding="valid")


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 40), (17, 16)])
def test_output_matches_input_size_at_every_depth(depth, size):
    net = UNet(in_channels=1, num_classes=3, depth=depth, base_width=4).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_variants_build_and_keep_shape(bilinear, batch_norm):
    net = UNet(
        in_channels=3,
        num_classes=2,
        depth=3,
        base_width=8,
        bilinear=bilinear,
        batch_norm=batch_norm,
    )
    assert net(torch.randn(1, 3, 30, 30)).shape == (1, 2, 30, 30)
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    has_transposed = any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert has_bn == batch_norm
    assert has_transposed == (not bilinear)


def test_width_doubles_per_level_and_paper_count():
    net = UNet(in_channels=1, num_classes=2, depth=4, base_width=64, batch_norm=False)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    widths = sorted({c.out_channels for c in convs})
    assert widths == [2, 64, 128, 256, 512, 1024]
    # the paper's network with same padding: 31.03M parameters
    assert sum(p.numel() for p in net.parameters()) == 31_030_658


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 0}, "depth"),
        ({"base_width": 0}, "base_width"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)


def test_valid_padding_reproduces_the_paper_geometry():
    net = UNet(
        in_channels=1, num_classes=2, depth=4, base_width=64, batch_norm=False, padding="valid"
    )
    assert sum(p.numel() for p in net.parameters()) == 31_030_658
    assert net.valid_output_size(572) == 388
    small = UNet(in_channels=1, num_classes=2, depth=4, base_width=2, padding="valid").eval()
    with torch.no_grad():
        assert small(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


@pytest.mark.parametrize("depth, size", [(1, 20), (2, 44), (3, 92)])
def test_valid_padding_output_is_the_centre_of_the_input(depth, size):
    net = UNet(in_channels=1, num_classes=2, depth=depth, base_width=4, padding="valid").eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, size, size + 2**depth))
    assert out.shape[-2:] == (net.valid_output_size(size), net.valid_output_size(size + 2**depth))


def test_valid_padding_names_the_nearest_sizes_that_fit():
    net = UNet(in_channels=1, num_classes=2, depth=2, base_width=4, padding="valid")
    with pytest.raises(ValueError, match="height of 45: use 48 or 44 .*model.padding=same"):
        net(torch.randn(1, 1, 45, 44))
    with pytest.raises(ValueError, match="padding must be one of"):
        UNet(padding="full")


def test_center_crop():
    x = torch.arange(36).reshape(6, 6)
    assert torch.equal(center_crop(x, (2, 4)), x[2:4, 1:5])
    with pytest.raises(ValueError, match="larger size"):
        center_crop(x, (7, 6))


def test_bottleneck_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, depth=2, base_width=4, dropout=0.5)
    assert isinstance(net.bottleneck_dropout, torch.nn.Dropout2d)
    x = torch.randn(2, 1, 16, 16)
    net.train()
    assert not torch.allclose(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), net(x))
    assert isinstance(UNet(dropout=0.0).bottleneck_dropout, torch.nn.Identity)
    with pytest.raises(ValueError, match="dropout"):
        UNet(dropout=1.0)
