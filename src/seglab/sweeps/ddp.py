"""Make ``python train.py -m ... trainer.devices=2`` run each sweep job once, in its own folder.

Lightning's DDP launcher starts ranks 1.. as ``python <script> <sys.argv[1:]>
hydra.run.dir=<HydraConfig run.dir> ...``. Under ``-m`` that argv still holds ``-m`` and the whole
sweep, so every child would run the entire sweep again, in a sweep folder of its own.

:func:`multirun_job` fixes that for the duration of one multirun job (it does nothing in a single
run): ``sys.argv`` becomes the script, its ``--config-*`` flags, this job's own task overrides and
``hydra.mode=RUN``, and ``hydra.run.dir`` becomes the job's output folder, so each child runs just
this job, in RUN mode, in this job's folder. Afterwards it puts ``sys.argv`` back, destroys the
process group the job created and removes the DDP variables Lightning set (MASTER_ADDR, ...):
left in place they make the next job's rank 0 believe its peers already exist and wait forever.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from seglab.sweeps.context import in_multirun

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def job_argv(argv: list[str], task_overrides: list[str]) -> list[str]:
    """``argv`` without ``-m`` and the sweep: the script, its config flags, this job's overrides.

    Known flags only: a launcher's worker process (Ray's, say) has an argv of its own, on which
    a strict parse would exit the job.
    """
    args, _ = get_args_parser().parse_known_args(argv[1:])
    flags = [
        f"--{name.replace('_', '-')}={getattr(args, name)}"
        for name in ("config_path", "config_name", "config_dir")
        if getattr(args, name)
    ]
    return [argv[0], *flags, *task_overrides, "hydra.mode=RUN"]


@contextmanager
def multirun_job() -> Iterator[None]:
    """Run one multirun job so that DDP children re-run this job only (see the module docstring)."""
    if not in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    saved_argv = sys.argv
    saved_env = {name: os.environ.get(name) for name in DDP_ENV}
    group_before = dist.is_available() and dist.is_initialized()
    sys.argv = job_argv(sys.argv, list(hydra_cfg.overrides.task))
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        if not group_before and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
