"""trainer=gpu is fast by construction (bf16, cuDNN autotuning, channels-last, pinned memory,
workers), composes on any machine, and leaves command-line overrides in charge."""

import torch

from seglab.callbacks import ChannelsLast

from .conftest import compose_train


def test_gpu_trainer_sets_the_fast_options(tmp_path):
    cfg = compose_train(tmp_path, ["trainer=gpu", "data=isbi2012", "data.num_workers=8"])
    assert (cfg.trainer.precision, cfg.trainer.benchmark) == ("bf16-mixed", True)
    assert cfg.trainer.max_time is None and cfg.trainer.max_epochs == 10  # the default's keys
    assert cfg.data.pin_memory is True and cfg.data.num_workers == 8  # the override wins
    assert cfg.callbacks.channels_last._target_ == "seglab.callbacks.ChannelsLast"
    assert cfg.callbacks.model_checkpoint is not None  # the default callbacks stay


def test_channels_last_callback_converts_the_network():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, 2, 3))
    ChannelsLast().setup(None, net, "fit")
    weight = net[1].weight  # 2 x 4 x 3 x 3: NCHW and NHWC strides differ
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert net(torch.randn(2, 1, 9, 9)).is_contiguous(memory_format=torch.channels_last)
