"""ResUNet: torchvision ResNet encoder, U-Net decoder, weights, freezing and the finetune callback.

No network: the ImageNet download is replaced by a state dict made here.
"""

import urllib.error
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torchvision
from torch.nn.modules.batchnorm import _BatchNorm

import seglab.train
from seglab.callbacks import EncoderFreezeUnfreeze
from seglab.models import ResNetEncoder, ResUNet
from seglab.models.resnet import RESNETS, adapt_first_conv
from seglab.train import run_task

from .conftest import TINY, TINY_DATA, TINY_TRAINER, compose_train, run_train_script


def batch_norms(module: torch.nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def random_resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet18().state_dict()


@pytest.mark.parametrize("encoder", ["resnet18", "resnet50"])
@pytest.mark.parametrize("size", [(32, 32), (45, 61), (64, 40)])
def test_output_matches_input_size(encoder, size):
    net = ResUNet(in_channels=3, num_classes=3, encoder=encoder).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 3, *size)


def test_padding_does_not_leak_into_the_cropped_output():
    torch.manual_seed(0)
    net = ResUNet(in_channels=1, num_classes=2, encoder="resnet18").eval()
    x = torch.randn(1, 1, 45, 61)
    padded = torch.nn.functional.pad(x, (0, 64 - 61, 0, 64 - 45))
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :45, :61], atol=1e-5)


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


def test_every_parameter_gets_a_gradient():
    net = ResUNet(in_channels=1, num_classes=3, encoder="resnet18")
    net(torch.randn(2, 1, 64, 64)).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing


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
    net = ResUNet(1, 2, encoder="resnet18", freeze_encoder=True)
    encoder_bns, decoder_bns = batch_norms(net.encoder), batch_norms(net.decoder)
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for n, p in net.named_parameters() if not n.startswith("encoder."))
    net.eval().train()  # as Lightning does around validation
    assert not any(bn.training for bn in encoder_bns) and all(bn.training for bn in decoder_bns)
    assert net.encoder.training  # only the norm layers are held in eval mode
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net(torch.randn(2, 1, 64, 64)).sum().backward()
    for key, value in net.encoder.state_dict().items():
        assert torch.equal(value, before[f"encoder.{key}"]), key
    assert not torch.equal(decoder_bns[0].running_mean, before["decoder.0.conv.1.running_mean"])
    assert all(p.grad is None for p in net.encoder.parameters())

    net.encoder.unfreeze()
    assert all(p.requires_grad for p in net.parameters())
    assert all(bn.training for bn in encoder_bns)
    net.eval()
    assert not any(bn.training for bn in batch_norms(net))


def test_callback_setup_unfreezes_so_every_parameter_is_registered():
    """DDP registers the parameters that require grad when it wraps the model, after setup."""
    module = L.LightningModule()
    module.net = ResUNet(1, 2, encoder="resnet18", freeze_encoder=True)
    EncoderFreezeUnfreeze(unfreeze_at_epoch=1).setup(None, module, "fit")
    assert all(p.requires_grad for p in module.net.parameters())


@pytest.mark.parametrize("resumed_epoch, frozen", [(0, True), (1, True), (2, False), (5, False)])
def test_callback_unfreezes_at_the_first_epoch_at_or_past_the_given_one(resumed_epoch, frozen):
    """Also when a run resumes from a checkpoint: freezing at fit start, unfreezing on time."""
    module = L.LightningModule()
    module.net = ResUNet(1, 2, encoder="resnet18")
    strategy = SimpleNamespace(model=module)
    trainer = SimpleNamespace(strategy=strategy, is_global_zero=True, current_epoch=resumed_epoch)
    callback = EncoderFreezeUnfreeze(unfreeze_at_epoch=2)
    callback.on_fit_start(trainer, module)
    assert module.net.encoder.frozen
    callback.on_train_epoch_start(trainer, module)
    assert module.net.encoder.frozen == frozen
    assert all(p.requires_grad != frozen for p in module.net.encoder.parameters())


class EncoderRecorder(L.Callback):
    """Per epoch: encoder and decoder weights at its start and end, and the encoder's state."""

    def __init__(self):
        self.weights: dict[int, tuple[dict, dict]] = {}
        self.trainable: dict[int, set[bool]] = {}
        self.bn_training: dict[int, set[bool]] = {}

    @staticmethod
    def snapshot(pl_module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = self.snapshot(pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        encoder, epoch = pl_module.net.encoder, trainer.current_epoch
        self.trainable.setdefault(epoch, set()).update(
            p.requires_grad for p in encoder.parameters()
        )
        self.bn_training.setdefault(epoch, set()).update(bn.training for bn in batch_norms(encoder))

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights[trainer.current_epoch] = (self.start, self.snapshot(pl_module))


def changed(start: dict, end: dict, prefix: str) -> list[str]:
    return [k for k in start if k.startswith(prefix) and not torch.equal(start[k], end[k])]


def test_finetune_callback_trains_the_encoder_from_the_given_epoch(tmp_path, monkeypatch):
    recorder = EncoderRecorder()
    instantiate_named = seglab.train.instantiate_named
    monkeypatch.setattr(
        seglab.train,
        "instantiate_named",
        lambda cfg, group: [*instantiate_named(cfg, group), *([recorder] * (group == "callbacks"))],
    )
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            *TINY_TRAINER,
            "model=resunet",
            "model.encoder=resnet18",
            "callbacks=finetune",
            "callbacks.encoder_freezing.unfreeze_at_epoch=1",
            "trainer.max_epochs=2",
            "logger=csv",
            "test=false",
        ],
    )
    metrics = run_task(cfg)
    assert "val/dice" in metrics
    assert sorted(recorder.weights) == [0, 1]
    # epoch 0: encoder frozen (weights and batch-norm statistics), decoder trained
    start, end = recorder.weights[0]
    assert recorder.trainable[0] == {False} and recorder.bn_training[0] == {False}
    assert not changed(start, end, "encoder.")
    assert changed(start, end, "decoder.")
    # epoch 1: the whole network is trained, with the optimiser built at the start
    start, end = recorder.weights[1]
    assert recorder.trainable[1] == {True} and recorder.bn_training[1] == {True}
    # every encoder weight, batch-norm statistic and counter moved
    assert changed(start, end, "encoder.") == [k for k in start if k.startswith("encoder.")]


@pytest.mark.slow
def test_finetune_under_ddp_needs_find_unused_parameters(tmp_path):
    args = [
        *TINY,
        "logger=csv",
        "model=resunet",
        "model.encoder=resnet18",
        "callbacks=finetune",
        "callbacks.encoder_freezing.unfreeze_at_epoch=1",
        "trainer.devices=2",
        "test=false",
    ]
    args = [a for a in args if not a.startswith(("model.depth", "model.base_width"))]
    result = run_train_script([*args, f"hydra.run.dir={tmp_path / 'ddp'}"], cwd=tmp_path)
    assert result.returncode != 0
    assert "trainer.strategy=ddp_find_unused_parameters_true" in result.stderr
    result = run_train_script(
        [
            *args,
            "trainer.strategy=ddp_find_unused_parameters_true",
            f"hydra.run.dir={tmp_path / 'ok'}",
        ],
        cwd=tmp_path,
        check=True,
    )
    assert "Encoder unfrozen at epoch 1" in result.stdout + result.stderr
