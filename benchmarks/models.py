"""Time one training step (forward + backward) per batch of each network, as ratios to a reference.

    python benchmarks/models.py [--device cpu|cuda] [--size 128] [--batch 2] [--steps 5]

The reference is seglab's default U-Net (``model=unet``: base width 16, depth 4). Each network
runs ``--steps`` timed steps after two warm-up steps on random (batch, 3, size, size) images; the
median is printed. Numbers depend on the machine: compare ratios, and only within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from seglab.models import ResUNet, UNet

MODELS = {
    "unet (width 16, reference)": lambda: UNet(3, 4, depth=4, base_width=16),
    "unet (width 64, the paper)": lambda: UNet(3, 4, depth=4, base_width=64),
    "resunet resnet18": lambda: ResUNet(3, 4, encoder="resnet18"),
    "resunet resnet34": lambda: ResUNet(3, 4, encoder="resnet34"),
    "resunet resnet34, frozen encoder": lambda: ResUNet(3, 4, "resnet34", freeze_encoder=True),
}


def step_seconds(net: torch.nn.Module, images: torch.Tensor, steps: int) -> float:
    """Median seconds of one forward + backward pass."""
    times = []
    for step in range(steps + 2):
        if images.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        net(images).sum().backward()
        net.zero_grad(set_to_none=True)
        if images.is_cuda:
            torch.cuda.synchronize()
        if step >= 2:  # warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    print(f"device {args.device}, batch {tuple(images.shape)}, median of {args.steps} steps")
    reference = None
    for name, build in MODELS.items():
        net = build().to(args.device).train()
        params = sum(p.numel() for p in net.parameters()) / 1e6
        seconds = step_seconds(net, images, args.steps)
        reference = reference or seconds
        print(
            f"{name:34s} {params:6.2f}M params  {seconds * 1000:8.1f} ms/step  "
            f"x{seconds / reference:.2f}"
        )


if __name__ == "__main__":
    main()
