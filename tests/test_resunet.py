"""ResUNet: torchvision ResNet encoder, U-Net decoder, weights and freezing (the shared network
contract in tests/models/contract.py; the finetune callback in test_finetune.py).

No network: the ImageNet download is replaced by a state dict made here.
"""

import urllib.error

import pytest
import torch
import torchvision
from torch.nn.modules.batchnorm import _BatchNorm

from seglab.models import ResNetEncoder, ResUNet
from seglab.models.resnet import RESNETS, adapt_first_conv

from .models.contract import NetworkContract


class TestResUNetContract(NetworkContract):
    def build(self, in_channels=1, num_classes=2):
        return ResUNet(in_channels, num_classes, "resnet18", decoder_channels=(32, 16, 16, 8, 8))


def batch_norms(module: torch.nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def random_resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet18().state_dict()


@pytest.mark.parametrize("encoder", ["resnet50"])  # resnet18: the contract
@pytest.mark.parametrize("size", [(32, 32), (45, 61), (64, 40)])
def test_output_matches_input_size(encoder, size):
    net = ResUNet(in_channels=3, num_classes=3, encoder=encoder).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("name", sorted(RESNETS))
def test_encoder_is_torchvision_resnet_without_classifier(name):
    with torch.device("meta"):
        encoder = ResNetEncoder(name)
        reference = getattr(torchvision.models, name)()
        features = encoder(torch.empty(1, 3, 64, 96))
    expected = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("fc."))
    assert sum(p.numel() for p in encoder.parameters()) == expected
    assert set(encoder.state_dict()) == {k for k in reference.state_dict() if "fc." not in k}
    # the feature pyramid: strides 2, 4, 8, 16, 32 with the advertised channels
    assert [f.shape[1] for f in features] == list(encoder.out_channels)
    assert [(f.shape[2], f.shape[3]) for f in features] == [
        (64 // s, 96 // s) for s in (2, 4, 8, 16, 32)
    ]


def test_weights_path_loads_a_torchvision_state_dict(tmp_path):
    state = random_resnet18_state()
    torch.save(state, tmp_path / "resnet18.pth")
    net = ResUNet(3, 2, encoder="resnet18", weights_path=str(tmp_path / "resnet18.pth"))
    loaded = net.encoder.state_dict()
    assert torch.equal(loaded["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))


def test_weights_path_accepts_a_seglab_checkpoint(tmp_path):
    source = ResUNet(1, 2, encoder="resnet18")
    module_state = {f"net.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": module_state, "epoch": 3}, tmp_path / "last.ckpt")
    net = ResUNet(1, 2, encoder="resnet18", weights_path=str(tmp_path / "last.ckpt"))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[key], value), key


def test_weights_path_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights_path=.*nope.pth does not exist"):
        ResUNet(3, 2, encoder="resnet18", weights_path=str(tmp_path / "nope.pth"))
    torch.save(random_resnet18_state(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="do not fit the resnet34 encoder.*missing keys"):
        ResUNet(3, 2, encoder="resnet34", weights_path=str(tmp_path / "resnet18.pth"))


def fake_imagenet(monkeypatch, state=None, error=None) -> list:
    """Replace torchvision's download of ResNet18 weights; returns the weights asked for."""
    asked = []

    def get_state_dict(self, *args, **kwargs):
        asked.append(self)
        if error is not None:
            raise error
        return state

    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", get_state_dict)
    return asked


def test_pretrained_imagenet_goes_through_torchvision_weights(monkeypatch):
    state = random_resnet18_state()
    asked = fake_imagenet(monkeypatch, state)
    net = ResUNet(3, 2, encoder="resnet18", pretrained="imagenet")
    assert asked == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1]
    assert torch.equal(net.encoder.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_failed_download_says_how_to_do_without(monkeypatch):
    fake_imagenet(monkeypatch, error=urllib.error.URLError("no network"))
    with pytest.raises(RuntimeError, match="(?s)no network.*model.pretrained=null.*weights_path"):
        ResUNet(3, 2, encoder="resnet18", pretrained="imagenet")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"encoder": "resnet19"}, "resnet19.*resnet101"),
        ({"pretrained": "imagenet", "weights_path": "w.pth"}, "not both"),
        ({"pretrained": "coco"}, "null or 'imagenet'"),
        ({"decoder_channels": (64, 32, 16)}, "5 positive"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message), torch.device("meta"):
        ResUNet(**{"in_channels": 3, "num_classes": 2, "encoder": "resnet18", **kwargs})


def test_first_conv_adapted_to_one_and_four_channels(monkeypatch):
    state = random_resnet18_state()
    rgb = state["conv1.weight"]
    fake_imagenet(monkeypatch, state)
    gray = ResUNet(1, 2, encoder="resnet18", pretrained="imagenet").encoder.conv1.weight
    assert gray.shape == (64, 1, 7, 7)
    assert torch.allclose(gray, rgb.sum(dim=1, keepdim=True))
    rgbn = ResUNet(4, 2, encoder="resnet18", pretrained="imagenet").encoder.conv1.weight
    assert rgbn.shape == (64, 4, 7, 7)
    assert torch.allclose(rgbn[:, :3], rgb * 3 / 4)
    assert torch.allclose(rgbn[:, 3], rgb[:, 0] * 3 / 4)
    assert torch.equal(adapt_first_conv(rgb, 3), rgb)


def test_freeze_keeps_encoder_weights_and_statistics():
    """model.freeze_encoder=true; the decoder's batch norms keep training (the rest: contract)."""
    net = ResUNet(1, 2, encoder="resnet18", freeze_encoder=True)
    encoder_bns, decoder_bns = batch_norms(net.encoder), batch_norms(net.decoder)
    assert net.encoder_frozen
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for n, p in net.named_parameters() if not n.startswith("encoder."))
    net.eval().train()  # as Lightning does around validation
    assert not any(bn.training for bn in encoder_bns) and all(bn.training for bn in decoder_bns)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net(torch.randn(2, 1, 64, 64)).sum().backward()
    for key, value in net.encoder.state_dict().items():
        assert torch.equal(value, before[f"encoder.{key}"]), key
    assert not torch.equal(decoder_bns[0].running_mean, before["decoder.0.conv.1.running_mean"])
    net.unfreeze_encoder()
    assert all(bn.training for bn in encoder_bns)
