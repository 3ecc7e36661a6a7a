"""callbacks=finetune: the encoder frozen at the start of fitting, unfrozen at an epoch, through the
networks' interface (SegmentationNet.freeze_encoder), for model=resunet and model=smp alike."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import seglab.train
from seglab.callbacks import EncoderFreezeUnfreeze
from seglab.models import ResUNet, UNet
from seglab.train import run_task

from .conftest import TINY, TINY_DATA, TINY_TRAINER, compose_train, run_train_script

# model config, the prefix of the encoder's and of the decoder's state-dict keys in the network
MODELS = {
    "resunet": (["model=resunet", "model.encoder=resnet18"], "encoder.", "decoder."),
    "smp": (["model=smp", "model.encoder_name=resnet18"], "model.encoder.", "model.decoder."),
}


def batch_norms(module: torch.nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


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
    assert module.net.encoder_frozen
    callback.on_train_epoch_start(trainer, module)
    assert module.net.encoder_frozen == frozen
    assert all(p.requires_grad != frozen for p in module.net.encoder.parameters())


def test_callback_stops_a_network_without_encoder():
    module = L.LightningModule()
    module.net = UNet(1, 2, depth=2, base_width=4)
    with pytest.raises(ValueError, match="UNet has none: use model=resunet or model=smp"):
        EncoderFreezeUnfreeze().setup(None, module, "fit")


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


@pytest.mark.parametrize("model", sorted(MODELS))
def test_finetune_callback_trains_the_encoder_from_the_given_epoch(model, tmp_path, monkeypatch):
    if model == "smp":
        pytest.importorskip("segmentation_models_pytorch")
    overrides, encoder, decoder = MODELS[model]
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
            *overrides,
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
    assert not changed(start, end, encoder)
    assert changed(start, end, decoder)
    # epoch 1: the whole network is trained, with the optimiser built at the start
    start, end = recorder.weights[1]
    assert recorder.trainable[1] == {True} and recorder.bn_training[1] == {True}
    # every encoder weight, batch-norm statistic and counter moved
    assert changed(start, end, encoder) == [k for k in start if k.startswith(encoder)]


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
