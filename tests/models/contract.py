"""The behaviour every seglab network promises (as segmentation_models_pytorch's BaseModelTester).

A network's test file subclasses :class:`NetworkContract` as ``Test<Name>Contract`` and says how
to build a small instance (``build``); the class attributes below adapt the contract to it.
TorchScript: ``torch.jit.trace`` works for every network; ``torch.jit.script`` too for all of
seglab's (UNet same and valid, ResUNet, SMPModel Unet), set ``scriptable = False`` for one that
cannot be scripted. ``torch.export`` is checked as well (torch marks ``torch.jit`` deprecated).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.modules.batchnorm import _NormBase

from seglab.models.base import SegmentationNet, center_crop, pad_to_multiple

CHANNELS_AND_CLASSES = [(1, 2), (3, 11)]


def norm_layers(module: torch.nn.Module) -> list[_NormBase]:
    return [m for m in module.modules() if isinstance(m, _NormBase)]


class NetworkContract:
    """Inherit and implement ``build``; not collected itself (its name has no ``Test`` prefix)."""

    # input (height, width) sizes; odd and even, 1x1 where the network takes it
    sizes: tuple[tuple[int, int], ...] = ((1, 1), (31, 17), (45, 61), (64, 40), (64, 64))
    train_size: tuple[int, int] = (64, 64)  # for gradients: > 1 pixel at the coarsest level
    has_encoder = True
    scriptable = True
    atol = 1e-5  # padded vs cropped outputs, scripted vs eager

    def build(self, in_channels: int = 1, num_classes: int = 2) -> SegmentationNet:
        raise NotImplementedError

    def net(self, in_channels: int = 1, num_classes: int = 2) -> SegmentationNet:
        torch.manual_seed(0)
        return self.build(in_channels, num_classes)

    def inputs(self, net: SegmentationNet, size: tuple[int, int], batch: int = 2):
        return torch.randn(batch, net.in_channels, *size)

    # shapes and arguments

    @pytest.mark.parametrize("in_channels, num_classes", CHANNELS_AND_CLASSES)
    def test_output_shape_for_odd_and_even_sizes(self, in_channels, num_classes):
        net = self.net(in_channels, num_classes).eval()
        assert (net.in_channels, net.num_classes) == (in_channels, num_classes)
        with torch.no_grad():
            for size in self.sizes:
                out = net(self.inputs(net, size))
                assert out.shape == (2, num_classes, *net.output_size(*size)), size
                if net.pads_input:
                    assert out.shape[-2:] == size

    def test_padding_does_not_leak_into_the_cropped_output(self):
        net = self.net().eval()
        if not net.pads_input:
            pytest.skip("the network takes its input as it is")
        x = self.inputs(net, (31, 17), batch=1)
        padded = pad_to_multiple(x, net.size_multiple)
        assert padded.shape[-2:] != x.shape[-2:]
        with torch.no_grad():
            torch.testing.assert_close(net(x), net(padded)[..., :31, :17], atol=self.atol, rtol=0)

    @pytest.mark.parametrize("argument", ["in_channels", "num_classes"])
    def test_non_positive_channels_or_classes_name_the_config_key(self, argument):
        kwargs = {"in_channels": 1, "num_classes": 2, argument: 0}
        with pytest.raises(ValueError, match=f"model.{argument}=0"):
            self.build(**kwargs)

    def test_wrong_input_channels_name_model_in_channels(self):
        net = self.net(in_channels=1).eval()
        with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*model.in_channels"):
            net(torch.randn(1, 3, *self.train_size))

    def test_config_rebuilds_the_same_network(self):
        net = self.net(1, 3).eval()
        config = net.config
        target = config.pop("_target_")
        assert target == f"{type(net).__module__}.{type(net).__qualname__}"
        rebuilt = type(net)(**config).eval()
        rebuilt.load_state_dict(net.state_dict())
        x = self.inputs(net, self.train_size, batch=1)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), net(x))

    # training

    def test_gradients_reach_every_trainable_parameter(self):
        net = self.net().train()
        net(self.inputs(net, self.train_size)).sum().backward()
        missing = [name for name, p in net.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing

    def test_eval_is_deterministic(self):
        net = self.net().eval()
        x = self.inputs(net, self.train_size)
        with torch.no_grad():
            assert torch.equal(net(x), net(x))

    def test_align_target_is_the_part_of_the_mask_the_logits_predict(self):
        net = self.net().eval()
        size = self.train_size
        mask = torch.arange(size[0] * size[1]).reshape(1, *size)
        with torch.no_grad():
            logits = net(self.inputs(net, size, batch=1))
        aligned = net.align_target(mask, logits)
        assert aligned.shape[-2:] == logits.shape[-2:]
        assert torch.equal(aligned, center_crop(mask, list(logits.shape[-2:])))
        if net.pads_input:
            assert aligned is mask
            with pytest.raises(ValueError, match="same size"):
                net.align_target(mask[..., :-1], logits)

    # encoder freezing

    def test_freeze_and_unfreeze_encoder(self):
        net = self.net()
        if not self.has_encoder:
            assert net.encoder is None
            with pytest.raises(ValueError, match="has no encoder.*model=resunet or model=smp"):
                net.freeze_encoder()
            return
        encoder = net.encoder
        encoder_ids = {id(p) for p in encoder.parameters()}
        others = [p for p in net.parameters() if id(p) not in encoder_ids]
        assert norm_layers(encoder) and others
        net.freeze_encoder()
        assert net.encoder_frozen
        assert not any(p.requires_grad for p in encoder.parameters())
        assert all(p.requires_grad for p in others)
        net.eval().train()  # as Lightning does around validation
        assert not any(m.training for m in norm_layers(encoder))
        assert encoder.training  # only the norm layers are held in eval mode
        net.unfreeze_encoder()
        assert not net.encoder_frozen
        assert all(p.requires_grad for p in net.parameters())
        assert all(m.training for m in norm_layers(net))
        net.eval()
        assert not any(m.training for m in norm_layers(net))

    def test_frozen_encoder_keeps_its_weights_and_statistics(self):
        if not self.has_encoder:
            pytest.skip("no encoder")
        net = self.net().train()
        net.freeze_encoder()
        before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
        net(self.inputs(net, self.train_size)).sum().backward()
        for key, value in net.encoder.state_dict().items():
            assert torch.equal(value, before[key]), key
        assert all(p.grad is None for p in net.encoder.parameters())

    # export

    def test_trace_gives_the_same_output(self):
        net = self.net().eval()
        x = self.inputs(net, self.sizes[1] if net.pads_input else self.train_size)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings, torch.jit's deprecation
            traced = torch.jit.trace(net, x)
            assert torch.equal(traced(x), net(x))

    def test_script_gives_the_same_output_for_other_sizes(self):
        net = self.net().eval()
        if not self.scriptable:
            pytest.skip(f"{type(net).__name__} cannot be scripted")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(net)
            for size in self.sizes[1:] if net.pads_input else [self.train_size]:
                x = self.inputs(net, size)
                torch.testing.assert_close(scripted(x), net(x), atol=self.atol, rtol=0)

    def test_torch_export_gives_the_same_output(self):
        net = self.net().eval()
        x = self.inputs(net, self.sizes[1] if net.pads_input else self.train_size)
        with torch.no_grad():
            exported = torch.export.export(net, (x,)).module()
            torch.testing.assert_close(exported(x), net(x), atol=self.atol, rtol=0)
