"""Values that cannot work fail before any work with one line naming the key, the value and the
fix, and a non-zero exit code (issue 10, item 7), through the real ``train.py``."""

import json
import os
import re
import subprocess
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from PIL import Image

from seglab.checkpoints import CheckpointError, check_fits
from seglab.preflight import ConfigError, check_config, unwritable

from .conftest import (
    TINY,
    TINY_MODEL,
    TINY_TRAINER,
    compose_train,
    run_train_script,
    train_script_argv,
    train_script_env,
)

HELPER = Path(__file__).parent / "helpers" / "train_many.py"
NO_UNSAFE_ADVICE = "weights_only=False"


def save_net(net: torch.nn.Module, path: Path) -> Path:
    """A checkpoint holding ``net``'s weights under Lightning's ``net.`` prefix."""
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def binary_mask_folder(root: Path) -> Path:
    """Six 40x56 RGB images with 0/255 masks (class indices expected: a data-check problem)."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    mask = np.zeros((40, 56), np.uint8)
    mask[10:30, 10:40] = 255
    for i in range(6):
        image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    return root


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """Each case: the arguments of a tiny run, and a regular expression its message matches."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint\n")
    cfg = compose_train(tmp_path / "compose", TINY)
    classes = len(cfg.data.class_names)
    other = save_net(
        hydra.utils.instantiate(cfg.model, num_classes=classes + 1), tmp_path / "o.ckpt"
    )
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(other.read_bytes()[: other.stat().st_size // 2])
    unreadable = "is not a readable checkpoint .*: point it at a .ckpt file"
    binary = binary_mask_folder(tmp_path / "binary")
    cases = {
        # the data check's error is its message alone too (a new user's 0/255 masks)
        "data_check": (
            [*TINY_MODEL, *TINY_TRAINER, "data=folder", f"data.dataset.root={binary}"],
            r"data problem\(s\) found before training:",
        ),
        # the mandatory key is found in the config, not hard-coded (data.root today)
        "missing": (
            [*TINY_MODEL, *TINY_TRAINER, "data=folder"],
            r"(\S*root) must be set .*: python train\.py \1=\.\.\.",
        ),
        "epochs": (
            ["trainer.max_epochs=abc"],
            r"trainer\.max_epochs='abc' is not a whole number:"
            r" .*python train\.py trainer\.max_epochs=10",
        ),
        "lr": (["optimizer.lr=fast"], r"optimizer\.lr='fast' is not a number: .*optimizer\.lr="),
        "batch0": (["data.batch_size=0"], r"data\.batch_size=0 must be at least 1: .*batch_size="),
        "batch-3": (["data.batch_size=-3"], r"data\.batch_size=-3 must be at least 1"),
        "samples_per_epoch": (
            ["data.samples_per_epoch=0"],
            r"data\.samples_per_epoch=0 must be at least 1: .*samples_per_epoch=200",
        ),
        "class_weights": (
            ["loss.class_weights=[1,2]"],
            rf"loss\.class_weights=\[1, 2\] has 2 value\(s\) but the data has {classes} classes "
            rf"\(0 background, .*\): give one weight per class, .*loss\.class_weights=\[1(,1)+\]",
        ),
        "border_objects_class": (
            ["loss.border_w0=10", f"loss.border_objects_class={classes}"],
            rf"loss\.border_objects_class={classes} is not a class of the data \(0 background, "
            r".*\): name the class .*loss\.border_objects_class=0",
        ),
        "time_schedule": (
            ["scheduler=time_cosine"],
            r"scheduler=time_cosine decays over trainer\.max_time, which is not set: .*"
            r"trainer\.max_time=00:00:10:00",
        ),
        "output_dir": (
            [f"paths.output_dir={a_file}/run"],
            rf"paths\.output_dir={a_file}/run "
            rf"cannot be created: {a_file} is a file, not a folder: .*paths\.log_dir=",
        ),
        "run_dir": (
            [f"paths.log_dir={a_file}/logs"],
            rf"hydra\.run\.dir={a_file}/logs/\S+ cannot "
            r"be created: .* is a file, not a folder",
        ),
        "checkpoint_dir": (
            [f"callbacks.model_checkpoint.dirpath={a_file}/checkpoints"],
            rf"callbacks\.model_checkpoint\.dirpath={a_file}/checkpoints cannot be created: "
            r".* is a file, not a folder: .*callbacks\.model_checkpoint\.dirpath=",
        ),
        "garbage": ([f"ckpt_path={garbage}"], f"ckpt_path={garbage} {unreadable}"),
        "truncated": ([f"ckpt_path={truncated}"], f"ckpt_path={truncated} {unreadable}"),
        "classes": (
            [f"ckpt_path={other}"],
            rf"ckpt_path={other} was trained for {classes + 1} "
            rf"classes but the config has {classes} .*: use the data config it was trained",
        ),
    }
    if not torch.cuda.is_available():
        cases["gpu"] = (
            ["trainer=gpu"],
            r"trainer\.accelerator=gpu but torch finds no GPU .*: "
            r"train on the CPU with python train\.py trainer=cpu",
        )
    # the tiny run's overrides first (the folder data has other keys; TINY runs on the CPU)
    tiny = {
        "missing": [],
        "data_check": [],
        "gpu": [o for o in TINY if not o.startswith("trainer.accelerator")],
    }
    return {name: ([*tiny.get(name, TINY), *args], p) for name, (args, p) in cases.items()}


@pytest.mark.slow
def test_bad_inputs_fail_before_any_work_with_one_line_and_the_fix(tmp_path):
    cases = bad_inputs(tmp_path)
    # one interpreter runs every case through train.py's Hydra entry point (imports paid once)
    cases_file, results_file = tmp_path / "cases.json", tmp_path / "results.json"
    cases_file.write_text(json.dumps({name: args for name, (args, _) in cases.items()}))
    argv = train_script_argv([])
    command = [argv[0], str(HELPER), argv[1], str(cases_file), str(results_file)]
    subprocess.run(command, cwd=tmp_path, env=train_script_env(), check=True, timeout=300)
    results = json.loads(results_file.read_text())
    wrong = {}  # every case that is not one line with the fix and a non-zero exit, at once
    for name, (_, pattern) in cases.items():
        output, returncode = results[name]["output"], results[name]["returncode"]
        lines = [line for line in output.splitlines() if re.search(pattern, line)]
        unsafe = "Traceback" in output or NO_UNSAFE_ADVICE in output
        if returncode == 0 or len(lines) != 1 or unsafe:
            wrong[name] = (returncode, pattern, output[-1500:])
    assert not wrong, "\n\n".join(f"{name}: {detail}" for name, detail in wrong.items())
    # nothing was trained: no run folder holds a checkpoint
    assert not list((tmp_path / "logs").glob("**/*.ckpt"))


@pytest.mark.slow
def test_train_script_exits_non_zero_with_the_message_alone(tmp_path):
    result = run_train_script([*TINY_MODEL, *TINY_TRAINER, "data=folder"], cwd=tmp_path)
    assert result.returncode == 1
    assert re.search(r"\S*root must be set .*python train\.py \S*root=\.\.\.", result.stderr)
    assert "Traceback" not in result.stderr and "MissingMandatoryValue" not in result.stderr


def test_a_valid_config_passes(tiny_cfg):
    check_config(tiny_cfg("optimizer.lr=1", "trainer.max_epochs=-1"))  # an int lr is a number


@pytest.mark.parametrize("objects_class", ["true", "-1", "1.5"])
def test_a_border_objects_class_that_is_no_class_index_is_named(tiny_cfg, objects_class):
    check_config(tiny_cfg("loss.border_w0=10", "loss.border_objects_class=3"))  # the last class
    check_config(tiny_cfg(f"loss.border_objects_class={objects_class}"))  # border weights off
    with pytest.raises(
        ConfigError, match="loss.border_objects_class=.* is not a class of the data"
    ):
        check_config(tiny_cfg("loss.border_w0=10", f"loss.border_objects_class={objects_class}"))


def test_a_checkpoint_of_another_network_is_named(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    deeper = save_net(hydra.utils.instantiate(cfg.model, depth=3), tmp_path / "deeper.ckpt")
    with pytest.raises(CheckpointError, match=r"holds another network than the configured UNet"):
        check_fits(deeper, hydra.utils.instantiate(cfg.model))
    check_fits(
        save_net(hydra.utils.instantiate(cfg.model), tmp_path / "same.ckpt"),
        hydra.utils.instantiate(cfg.model),
    )


def test_a_checkpoint_with_unsafe_objects_is_refused(tiny_cfg, tmp_path):
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "where": Path("/x")}, unsafe)
    with pytest.raises(CheckpointError, match=r"holds pathlib.PosixPath, which safe loading"):
        check_config(tiny_cfg(f"ckpt_path={unsafe}"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_folder_is_not_writable(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert unwritable(tmp_path / "run") == f"{tmp_path} is not writable"
        with pytest.raises(ConfigError, match="cannot be created"):
            from seglab.preflight import check_writable

            check_writable(tmp_path / "run", "paths.output_dir", "paths.log_dir=x")
    finally:
        tmp_path.chmod(0o700)
