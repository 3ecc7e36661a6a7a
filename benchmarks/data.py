"""Can the train loader feed the model? Loader images/s against training-step images/s, one run.

    python benchmarks/data.py [overrides ...] [--workers 0 1 2] [--batches 100] [--steps 5]
                              [--threads N] [--device cuda]

Both sides come from the real Hydra configs (``seglab.config.CONFIG_DIR``), by default
``data=isbi2012 model=unet``: the ISBI 2012 slices (``../shared/data/isbi2012_membrane``,
resolved against the repository root) with the preset's augmentation (``crop256``: random
256x256 crops, flips, 90-degree rotations, brightness/contrast), batch ``data.batch_size`` (4),
and the default U-Net with 1 input channel and 2 classes. Extra arguments are Hydra overrides,
e.g. ``data/augmentation=strong`` or ``data.batch_size=8`` (before the options).

For each ``num_workers``:
- loader: images/s over ``--batches`` batches of ``train_dataloader()`` (epochs are repeated as
  needed: 25 slices make 6 batches of 4), timed from the first batch on, so worker start-up is
  left out; each batch is only touched, not used;
- model: images/s of full training steps (forward, the configured loss, backward, the
  configured optimiser's step) on a batch of the loader's shape, median of ``--steps`` steps
  after one warm-up step, measured right after the loader so that both see the same load;
- loader / model: how many times faster the loader produces images than the model consumes them
  (the goal: >= 3).

Timings depend on the machine and its load; the ratio is the number to compare. The model runs
in the main process on ``--threads`` threads while the loader runs, like in training, in
``num_workers`` worker processes (or in the main process for 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from seglab.config import CONFIG_DIR  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = ["data=isbi2012", "model=unet"]


def compose_config(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*DEFAULTS, *overrides])
    root = cfg.data.dataset.get("root")
    if root is not None and not Path(root).is_absolute():
        with open_dict(cfg):  # relative to the repository root, wherever this runs from
            cfg.data.dataset.root = str((REPO_ROOT / root).resolve())
    return cfg


def loader_rate(cfg: DictConfig, num_workers: int, batches: int) -> tuple[float, tuple]:
    """Images/s of the train loader over ``batches`` batches, and a batch's image shape."""
    with open_dict(cfg):
        cfg.data.num_workers = num_workers
    datamodule = hydra.utils.instantiate(cfg.data)
    loader = datamodule.train_dataloader()
    seen, images, shape, start = -1, 0, None, 0.0
    while seen < batches:
        for batch in loader:
            if seen == -1:  # the first batch starts the clock (workers are up)
                shape, start = tuple(batch["image"].shape), time.perf_counter()
            else:
                images += batch["image"].shape[0]
            seen += 1
            if seen == batches:
                break
    seconds = time.perf_counter() - start
    del loader  # stops persistent workers
    return images / seconds, shape


def model_rate(cfg: DictConfig, shape: tuple, steps: int, device: str = "cpu") -> float:
    """Images/s of full training steps of the configured model, loss and optimiser (on CUDA:
    bf16 autocast and channels-last, as ``trainer=gpu``)."""
    torch.manual_seed(0)
    net = hydra.utils.instantiate(cfg.model).train().to(device)
    loss_fn = hydra.utils.instantiate(cfg.loss)
    optimizer = hydra.utils.instantiate(cfg.optimizer)(params=net.parameters())
    num_classes = len(cfg.data.class_names)
    images = torch.randn(shape, device=device)
    masks = torch.randint(0, num_classes, (shape[0], *shape[2:]), device=device)
    cuda = device.startswith("cuda")
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(net(images), masks)
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if i:  # step 0 is the warm-up
            times.append(time.perf_counter() - start)
    return shape[0] / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=100, help="loader batches per setting")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per setting")
    parser.add_argument("--threads", type=int, help="torch threads of the model (default: all)")
    parser.add_argument("--device", default="cpu", help="the model's device, e.g. cuda")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=8")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = compose_config(args.overrides)
    augmentation = [t._target_.rsplit(".", 1)[-1] for t in cfg.data.augmentation.train]
    print(
        f"data {cfg.data.dataset._target_} at {cfg.data.dataset.get('root')}, batch "
        f"{cfg.data.batch_size}, augmentation {augmentation}\nmodel {cfg.model._target_} "
        f"({cfg.model.get('base_width')} wide, depth {cfg.model.get('depth')}), "
        f"{len(cfg.data.class_names)} classes, {torch.get_num_threads()} torch thread(s); "
        f"{os.cpu_count()} CPUs\n"
    )
    rows = []
    for workers in args.workers:
        loader, shape = loader_rate(cfg, workers, args.batches)
        model = model_rate(cfg, shape, args.steps, args.device)
        rows.append((workers, shape, loader, model))
        print(f"num_workers={workers}: loader {loader:.1f} images/s, model {model:.2f} images/s")
    print("\n| num_workers | batch | loader images/s | model images/s | loader / model |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for workers, shape, loader, model in rows:
        batch = "x".join(map(str, shape))
        print(f"| {workers} | {batch} | {loader:.1f} | {model:.2f} | {loader / model:.1f} |")


if __name__ == "__main__":
    main()
