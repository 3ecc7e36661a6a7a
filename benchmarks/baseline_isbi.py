"""The plain-PyTorch reference of issue 15: ISBI 2012 membranes within a fixed time budget.

    python benchmarks/baseline_isbi.py [--minutes 10] [--threads N] [--eval-every 60]
                                       [--data ../shared/data/isbi2012_membrane] [--json out.json]

``smp.Unet("resnet34")`` from scratch (no pretrained weights), 1 input channel, 2 classes
(background, membrane), AdamW (lr 1e-3, torch's default weight decay), cross-entropy, batches of 4
random 256x256 crops of slices 00-24 with random horizontal / vertical flips and 90-degree
rotations, normalised with the same mean and std as ``data=isbi2012`` (0.491, 0.171). Every
``--eval-every`` seconds and when the budget is spent it measures the membrane Dice over the 5 full
512x512 val slices 25-29: ``2 TP / (2 TP + FP + FN)`` over all their pixels, membrane being the
BLACK (0) mask value (the data's README) -- the same number seglab logs as ``val/dice/membrane``.
Evaluation time counts against the budget (as validation does under ``trainer.max_time``).
Prints one JSON object: steps, seconds, best and final membrane Dice, the evaluations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data" / "isbi2012_membrane"
TRAIN, VAL = [f"{i:02d}" for i in range(25)], [f"{i:02d}" for i in range(25, 30)]
MEAN, STD = 0.491, 0.171


def load(root: Path, stems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) float32 normalised, targets (N, H, W) int64: 1 = membrane (mask 0)."""
    images = [np.asarray(Image.open(root / "images" / f"{s}.png"), np.float32) for s in stems]
    masks = [np.asarray(Image.open(root / "masks" / f"{s}.png")) for s in stems]
    images = (np.stack(images) / 255.0 - MEAN) / STD
    return images.astype(np.float32), (np.stack(masks) == 0).astype(np.int64)


def random_batch(images, targets, rng: np.random.Generator, batch: int, crop: int):
    """``batch`` random crops of random slices, each flipped / rotated at random."""
    xs, ys = [], []
    for _ in range(batch):
        i = rng.integers(len(images))
        top = rng.integers(images.shape[1] - crop + 1)
        left = rng.integers(images.shape[2] - crop + 1)
        x = images[i, top : top + crop, left : left + crop]
        y = targets[i, top : top + crop, left : left + crop]
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        if rng.random() < 0.5:
            x, y = x[::-1], y[::-1]
        k = int(rng.integers(4))
        xs.append(np.rot90(x, k).copy())
        ys.append(np.rot90(y, k).copy())
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))


@torch.no_grad()
def membrane_dice(net: torch.nn.Module, images: np.ndarray, targets: np.ndarray) -> float:
    """Membrane Dice over all pixels of the full slices (one slice per forward pass)."""
    net.eval()
    tp = fp = fn = 0
    for image, target in zip(images, targets, strict=True):
        predicted = net(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy() == 1
        truth = target == 1
        tp += int((predicted & truth).sum())
        fp += int((predicted & ~truth).sum())
        fn += int((~predicted & truth).sum())
    net.train()
    return 2 * tp / max(2 * tp + fp + fn, 1)


def run(minutes: float, data: Path, eval_every: float, seed: int = 0, batch: int = 4) -> dict:
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_images, train_targets = load(data, TRAIN)
    val_images, val_targets = load(data, VAL)
    net = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    budget, evaluations, steps = minutes * 60.0, [], 0
    start = next_eval = time.monotonic()
    next_eval += eval_every
    while time.monotonic() - start < budget:
        images, targets = random_batch(train_images, train_targets, rng, batch, 256)
        loss = loss_fn(net(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        if time.monotonic() >= next_eval:
            dice = membrane_dice(net, val_images, val_targets)
            evaluations.append(
                {
                    "seconds": round(time.monotonic() - start, 1),
                    "steps": steps,
                    "membrane_dice": round(dice, 4),
                }
            )
            next_eval = time.monotonic() + eval_every
    final = membrane_dice(net, val_images, val_targets)
    seconds = time.monotonic() - start
    evaluations.append({"seconds": round(seconds, 1), "steps": steps, "membrane_dice": final})
    return {
        "name": "plain PyTorch smp.Unet resnet34",
        "steps": steps,
        "seconds": round(seconds, 1),
        "best_membrane_dice": max(e["membrane_dice"] for e in evaluations),
        "final_membrane_dice": final,
        "evaluations": evaluations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="the time budget")
    parser.add_argument("--data", type=Path, default=DATA, help="the isbi2012_membrane folder")
    parser.add_argument("--eval-every", type=float, default=60.0, help="seconds between evals")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if not (args.data / "images").is_dir():
        raise SystemExit(f"--data {args.data}: no images/ folder; point it at isbi2012_membrane")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args.minutes, args.data, args.eval_every, args.seed)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
