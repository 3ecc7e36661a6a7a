"""Framework overhead: train.py's path against a minimal PyTorch loop, interleaved in one job.

    python benchmarks/overhead.py [--epochs 5] [--steps 128] [--val-batches 16] [--threads 1]
                                  [--profile out.txt] [--gpu] [overrides ...]

(a) seglab: the objects ``train.py`` builds from the default config (``seglab.train.instantiate``:
    SegmentationModule with its metrics, every default callback -- checkpoints, last.ckpt, early
    stopping, LR monitor, model summary, Rich progress bar, prediction images --, the CSV and W&B
    (offline) loggers) fitted by Lightning's Trainer;
(b) plain: a copy of the same network with the same loss and optimiser, trained by a bare loop on
    the same DataModule's loaders, plus the same validation batches (forward, argmax, a confusion
    bincount).
On the CPU (default) the loaders run in the main process (``data.num_workers=0``) and torch on
``--threads``; ``--gpu`` uses ``trainer=gpu`` (bf16 autocast, channels-last, pinned memory and
its loader workers) and the plain loop does the same on CUDA.

Each epoch is ``--steps`` training batches and ``--val-batches`` validation batches for both (by
default the default config's whole epoch: 128 and 16, so per-epoch costs weigh as in a run). The
two alternate: at the start of each seglab epoch a callback runs one plain epoch, so both see the
same machine load; the first pair is a warm-up and not counted. A seglab epoch is timed from its
start to the next one's (everything Lightning and the callbacks do in between counts). Printed:
median steps/s of both (training steps / epoch time) and the median of the per-epoch ratios
seglab / plain (1.0 = no overhead), by wall-clock time and by CPU time (this process's threads
plus its children, i.e. W&B's service: on a machine that others load, CPU time is the steadier
figure; background threads count in it, not in wall-clock time when a core is free).
``--profile FILE`` also runs a cProfile of a seglab-only fit, timed in the main thread's CPU time
(``time.thread_time``: other processes' load does not count), and writes the functions with the
most cumulative time. Extra arguments are Hydra overrides, e.g. ``callbacks.prediction_images=null``
or Lightning's time per hook and callback: ``+trainer.profiler._target_=lightning.pytorch.
profilers.SimpleProfiler +trainer.profiler.dirpath=DIR +trainer.profiler.filename=NAME``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from seglab.config import CONFIG_DIR  # noqa: E402

try:  # the CPU time of W&B's service process too (psutil comes with most installs)
    import psutil
except ImportError:  # pragma: no cover
    psutil = None


def compose_config(overrides: list[str], output_dir: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = str(output_dir)
    return cfg


class PlainLoop:
    """The reference: a bare training loop and validation pass over the same loaders."""

    def __init__(self, net, loss, optimizer_factory, datamodule, steps, val_batches, gpu=False):
        self.device = torch.device("cuda" if gpu else "cpu")
        self.net = copy.deepcopy(net).to(self.device)
        if gpu:  # what trainer=gpu does: channels-last network, bf16 autocast
            self.net = self.net.to(memory_format=torch.channels_last)
        self.loss = copy.deepcopy(loss).to(self.device)
        self.optimizer = optimizer_factory(params=self.net.parameters())
        self.datamodule, self.steps, self.val_batches = datamodule, steps, val_batches
        self.num_classes = net.num_classes
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=gpu)

    def batches(self, loader, limit: int):
        for index, batch in enumerate(loader):
            if index == limit:
                return
            yield (batch[key].to(self.device, non_blocking=True) for key in ("image", "mask"))

    def epoch(self) -> float:
        start = time.perf_counter()
        self.net.train()
        for images, masks in self.batches(self.datamodule.train_dataloader(), self.steps):
            with self.autocast:
                loss = self.loss(self.net(images), masks)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.net.eval()
        confusion = torch.zeros(self.num_classes**2, dtype=torch.long, device=self.device)
        with torch.no_grad(), self.autocast:
            for images, masks in self.batches(self.datamodule.val_dataloader(), self.val_batches):
                predicted = self.net(images).argmax(1)
                keep = masks < self.num_classes
                pairs = masks[keep] * self.num_classes + predicted[keep]
                confusion += torch.bincount(pairs, minlength=self.num_classes**2)
        confusion.cpu()  # waits for the device
        return time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its child processes (W&B's service),
    user + system: what the run costs the machine, much less sensitive to other processes' load
    than wall-clock time."""
    total = time.process_time()
    if psutil is not None:
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                total += times.user + times.system
    return total


class Interleave(L.Callback):
    """Runs one plain epoch before each seglab epoch and times both (wall-clock and CPU)."""

    def __init__(self, plain: PlainLoop | None):
        self.plain, self.seglab_times, self.plain_times = plain, [], []
        self.seglab_cpu, self.plain_cpu = [], []
        self._start: tuple[float, float] | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._lap()
        if self.plain is not None:
            cpu = cpu_seconds()
            self.plain_times.append(self.plain.epoch())
            self.plain_cpu.append(cpu_seconds() - cpu)
        self._start = (time.perf_counter(), cpu_seconds())

    def on_train_end(self, trainer, pl_module) -> None:
        self._lap()

    def _lap(self) -> None:
        if self._start is not None:
            wall, cpu = self._start
            self.seglab_times.append(time.perf_counter() - wall)
            self.seglab_cpu.append(cpu_seconds() - cpu)
            self._start = None


def fit(cfg: DictConfig, args, with_plain: bool) -> Interleave:
    from seglab.train import instantiate

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    run = instantiate(cfg)
    plain = None
    if with_plain:
        plain = PlainLoop(
            run.net,
            run.module.loss,
            run.module.optimizer_factory,
            run.datamodule,
            args.steps,
            args.val_batches,
            gpu=args.gpu,
        )
    interleave = Interleave(plain)
    run.trainer.callbacks.append(interleave)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return interleave


def profile(cfg: DictConfig, args, path: Path) -> None:
    profiler = cProfile.Profile(time.thread_time)  # CPU time: others' load not counted
    profiler.enable()
    fit(cfg, args, with_plain=False)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(80)
    out.write("\n\n# by own time\n")
    stats.sort_stats("tottime").print_stats(40)
    path.write_text(out.getvalue())
    print(f"profile written to {path}")


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    device = ["trainer=gpu"] if args.gpu else ["trainer.accelerator=cpu", "data.num_workers=0"]
    overrides = [
        *device,
        f"trainer.max_epochs={args.epochs}",
        f"trainer.limit_train_batches={args.steps}",
        f"trainer.limit_val_batches={args.val_batches}",
        "test=false",
        *args.overrides,
    ]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(overrides, Path(tmp) / "run")
        timed = fit(cfg, args, with_plain=True)
        if args.profile:
            profile(compose_config(overrides, Path(tmp) / "profiled"), args, args.profile)
    seglab, plain = timed.seglab_times[1:], timed.plain_times[1:]  # the first pair: warm-up
    seglab_cpu, plain_cpu = timed.seglab_cpu[1:], timed.plain_cpu[1:]
    ratios = [p / s for s, p in zip(seglab, plain, strict=True)]
    cpu_ratios = [p / s for s, p in zip(seglab_cpu, plain_cpu, strict=True)]
    batch = cfg.data.batch_size
    return {
        "device": "cuda (trainer=gpu)" if args.gpu else "cpu",
        "seglab_images_per_s": batch * args.steps / statistics.median(seglab),
        "seglab_steps_per_s": args.steps / statistics.median(seglab),
        "plain_steps_per_s": args.steps / statistics.median(plain),
        "ratio": statistics.median(ratios),
        "ratios": [round(r, 3) for r in ratios],
        "seglab_cpu_s_per_step": statistics.median(seglab_cpu) / args.steps,
        "plain_cpu_s_per_step": statistics.median(plain_cpu) / args.steps,
        "cpu_ratio": statistics.median(cpu_ratios),
        "cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "load_average": (load_before, os.getloadavg()[0]),
        "threads": args.threads,
        "steps": args.steps,
        "val_batches": args.val_batches,
        "epochs": len(seglab),
    }


def parse(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each (1 is warm-up)")
    # the default config's epoch: 1024 synthetic samples / batch 8 = 128 steps, 16 val batches
    parser.add_argument("--steps", type=int, default=128, help="training steps per epoch")
    parser.add_argument("--val-batches", type=int, default=16, help="val batches per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile of a seglab fit")
    parser.add_argument("--gpu", action="store_true", help="trainer=gpu, the plain loop on CUDA")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.base_width=32")
    return parser.parse_args(argv)


def table(result: dict) -> str:
    load = "{:.1f} -> {:.1f}".format(*result["load_average"])
    return "\n".join(
        [
            f"| path | steps/s ({result['device']}, {result['threads']} thread(s), "
            f"{result['steps']} steps + "
            f"{result['val_batches']} val batches per epoch, median of {result['epochs']}; "
            f"load average {load}) | CPU s/step |",
            "| --- | ---: | ---: |",
            f"| seglab (train.py's objects, default config) | {result['seglab_steps_per_s']:.3f} "
            f"| {result['seglab_cpu_s_per_step']:.3f} |",
            f"| plain PyTorch loop | {result['plain_steps_per_s']:.3f} "
            f"| {result['plain_cpu_s_per_step']:.3f} |",
            f"| seglab / plain | {result['ratio']:.3f} (per epoch: {result['ratios']}) "
            f"| {result['cpu_ratio']:.3f} (per epoch: {result['cpu_ratios']}) |",
            f"| seglab images/s | {result['seglab_images_per_s']:.1f} | |",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    result = measure(parse(argv))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
