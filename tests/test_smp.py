"""model=smp: segmentation_models_pytorch models behind seglab's interface (optional dependency).

No network: encoders are randomly initialised; the weights download is replaced by a failure.
"""

import subprocess
import sys

import hydra
import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch")

from huggingface_hub.errors import LocalEntryNotFoundError  # noqa: E402

from seglab.models.smp import SMPModel  # noqa: E402
from seglab.train import run_task  # noqa: E402

from .conftest import TINY_DATA, TINY_TRAINER, compose_train  # noqa: E402
from .models.contract import NetworkContract  # noqa: E402

SIZES = [(32, 32), (45, 61), (64, 40), (33, 97)]


class TestSMPUnetContract(NetworkContract):
    def build(self, in_channels=1, num_classes=2):
        return SMPModel(
            in_channels, num_classes, "Unet", "resnet18", decoder_channels=(32, 16, 16, 8, 8)
        )


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("arch", ["FPN"])  # Unet: the contract
def test_output_matches_input_size(arch):
    net = SMPModel(in_channels=3, num_classes=3, arch=arch, encoder_name="resnet18").eval()
    assert net.size_multiple == 32
    with torch.no_grad():
        for size in SIZES:
            assert net(torch.randn(2, 3, *size)).shape == (2, 3, *size)


def test_encoder_is_smps_and_freezes_from_the_config():
    net = SMPModel(1, 2, encoder_name="resnet18", freeze_encoder=True)
    assert net.encoder is net.model.encoder
    assert net.encoder_frozen and not any(p.requires_grad for p in net.model.encoder.parameters())
    assert all(p.requires_grad for p in net.model.decoder.parameters())
    assert not any(name.startswith("encoder.") for name in net.state_dict())  # one copy


def test_same_network_as_smp_unet():
    with torch.device("meta"):
        ours = SMPModel(in_channels=1, num_classes=4, arch="Unet", encoder_name="resnet34")
        reference = smp.Unet("resnet34", encoder_weights=None, classes=4, in_channels=1)
    assert (ours.in_channels, ours.num_classes) == (1, 4)
    assert n_params(ours) == n_params(reference)
    assert {k: v.shape for k, v in ours.model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_architecture_arguments_pass_through_hydra(tmp_path):
    """Lists from the config (ListConfig) reach smp as plain lists."""
    cfg = compose_train(
        tmp_path,
        ["model=smp", "model.encoder_name=resnet18", "+model.decoder_channels=[64,32,16,8,4]"],
    )
    with torch.device("meta"):
        net = hydra.utils.instantiate(cfg.model)
    assert net.model.segmentation_head[0].in_channels == 4
    assert net.num_classes == len(cfg.data.class_names)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "Unett"}, r"(?s)model.arch='Unett'.*Did you mean Unet.*DeepLabV3Plus"),
        ({"encoder_name": "resnet35"}, r"(?s)encoder_name='resnet35'.*resnet34.*mit_b0.*tu-"),
        ({"encoder_name": "tu-no_such_net"}, "not a timm model"),
        ({"encoder_weights": "coco"}, r"encoder_weights='coco'.*null.*imagenet"),
        ({"num_classes": 0}, "num_classes"),
        ({"aux_params": {"classes": 2}}, "aux_params"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message), torch.device("meta"):
        SMPModel(**{"in_channels": 3, "num_classes": 2, "encoder_name": "resnet18", **kwargs})


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "seglab\[smp\]"'):
        SMPModel(3, 2)


def test_failed_download_says_how_to_do_without(monkeypatch):
    asked = []

    def no_network(repo_id, *args, **kwargs):
        asked.append(repo_id)
        raise LocalEntryNotFoundError("no network")

    monkeypatch.setattr(smp.encoders, "hf_hub_download", no_network)
    with pytest.raises(RuntimeError, match=r"(?s)'imagenet' weights.*model.encoder_weights=null"):
        SMPModel(3, 2, encoder_name="resnet18", encoder_weights="imagenet")
    assert asked  # the failure came from smp's download, not from an earlier check


def test_seglab_models_does_not_import_smp():
    code = "import sys, seglab.models; print('segmentation_models_pytorch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_trains_through_the_task(tmp_path):
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            *TINY_TRAINER,
            "model=smp",
            "model.encoder_name=resnet18",
            "logger=csv",
            "trainer.max_epochs=1",
        ],
    )
    metrics = run_task(cfg)
    assert 0 <= metrics["val/dice"] <= 1
    assert "test/dice" in metrics
