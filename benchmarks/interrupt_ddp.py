"""Interrupt a two-process DDP run of the real train.py and resume it (too slow for the suite).

    python benchmarks/interrupt_ddp.py [--signal SIGTERM|SIGINT|SIGUSR1] [--group] [--keep DIR]

A tiny synthetic run (32x32 images, width-4 U-Net, 2 CPU processes under DDP, one DataLoader
worker each) is started in a temporary folder; once its first ``last.ckpt`` exists the signal
goes to rank zero alone (default) or, with ``--group``, to the whole process group (as Ctrl-C in
a terminal, ``timeout`` or a scheduler do). Checked and printed: the exit code (128 + signal),
the step each rank says it stopped at (the same on both), ``interrupted.ckpt``, the processes
left in the group (none), then ``python train.py resume=last trainer.max_epochs=<n>``: exit code
0, the same run folder, every epoch validated once in ``csv/metrics.csv``. Exits 1 on a failed
check. Takes about a minute on two idle cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.splits.train.num_samples=16",
    "data.splits.val.num_samples=8",
    "data.splits.test.num_samples=8",
    "data.dataset.image_size=32",
    "data.batch_size=2",  # 4 steps per epoch and process
    "data.num_workers=1",
    "model.depth=2",
    "model.base_width=4",
    "trainer=ddp",
    "trainer.devices=2",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.early_stopping=null",
    "logger=csv",
]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "WANDB_MODE": "offline",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def group_processes(pgid: int) -> list[str]:
    ps = ["ps", "-o", "pid=,stat=", "-g", str(pgid)]
    return subprocess.run(ps, capture_output=True, text=True).stdout.split("\n")[:-1]


def interrupt(folder: Path, signum: int, group: bool) -> tuple[int, str, list[str]]:
    log_path = folder / "first.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *TINY, "trainer.max_epochs=1000"],
            cwd=folder,
            env=env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    while not list(folder.glob("logs/train/runs/*/checkpoints/last.ckpt")):
        if process.poll() is not None:
            sys.exit(f"the run ended before its first checkpoint:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    code = process.wait(timeout=300)
    time.sleep(1)
    return code, log_path.read_text(), group_processes(process.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signal", default="SIGTERM", choices=["SIGTERM", "SIGINT", "SIGUSR1"])
    parser.add_argument("--group", action="store_true", help="signal the whole process group")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args()
    signum = signal.Signals[args.signal]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="interrupt_ddp_"))
    folder.mkdir(parents=True, exist_ok=True)
    failed = []

    def check(ok: bool, what: str) -> None:
        print(("ok    " if ok else "FAILED ") + what)
        failed.extend([] if ok else [what])

    code, output, left = interrupt(folder, signum, args.group)
    check(code == 128 + signum, f"exit code {code} (expected {128 + signum})")
    stops = re.findall(r"\[rank: (\d)\] SIG\w+: stopping at epoch (\d+), step (\d+)", output)
    check(len(stops) == 2 and len({s[1:] for s in stops}) == 1, f"ranks stopped at {stops}")
    (run_dir,) = (folder / "logs" / "train" / "runs").iterdir()
    check((run_dir / "checkpoints" / "interrupted.ckpt").is_file(), "interrupted.ckpt saved")
    check(left == [], f"processes left in the group: {left}")
    epoch = int(stops[0][1]) if stops else 1
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "resume=last", f"trainer.max_epochs={epoch + 2}"],
        cwd=folder,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    check(resumed.returncode == 0, f"resume=last exit code {resumed.returncode}")
    check(list((folder / "logs" / "train" / "runs").iterdir()) == [run_dir], "same run folder")
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        epochs = [int(r["epoch"]) for r in csv.DictReader(file) if r.get("val/dice")]
    check(epochs == list(range(epoch + 2)), f"validated epochs {epochs}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
