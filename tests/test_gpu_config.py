"""trainer=gpu is fast by construction (bf16, cuDNN autotuning, channels-last, pinned memory,
workers), composes on any machine, and leaves command-line overrides in charge."""

from pathlib import Path

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


def test_a_cpu_fit_in_bf16_on_a_channels_last_network_trains(tiny_cfg):
    """experiment=isbi2012's speed options (bf16 autocast, ChannelsLast) on the CPU: the fit,
    its metrics (bf16 logits) and its checkpoints work."""
    from seglab.train import run_task

    cfg = tiny_cfg(
        "trainer.precision=bf16-mixed",
        "+callbacks.channels_last._target_=seglab.callbacks.ChannelsLast",
        "trainer.max_epochs=3",
        "model.base_width=8",
    )
    metrics = run_task(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert 0.0 < metrics["val/dice_best"] <= 1.0 and 0.0 < metrics["test/dice"] <= 1.0
    assert list((Path(cfg.paths.output_dir) / "checkpoints").glob("epoch_*.ckpt"))
