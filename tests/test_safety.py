"""Issue 13, items 3-6: runs reproduce bit for bit and record what reruns them, secrets are never
saved, bad samples met during training fail naming the file or are skipped and listed."""

import subprocess

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seglab.data import SegmentationDataModule, TransformedDataset
from seglab.data.bad_samples import FILENAME, BadSampleError, SkipBadSamples
from seglab.data.transforms import build_pipeline
from seglab.data.validation import Rules
from seglab.module import SegmentationModule
from seglab.train import run_task

from .conftest import TINY, TINY_MODEL, TINY_TRAINER, compose_train, train_script_argv
from .conftest import train_script_env as script_env
from .helpers.folders import folder_overrides, make_folder

# set as environment variables and config values of one run; none may appear in a saved file
SECRETS = {
    "WANDB_API_KEY": "wandb-key-0123456789abcdef",
    "MY_SERVICE_TOKEN": "env-token-4242-XYZ",
    "DB_PASSWORD": "hunter2-hunter2",
}
CONFIG_SECRET = "config-secret-777-ABC"
# tiny_run_dir's run (conftest) plus a W&B logger and secrets: the same training
SECRET_ARGS = [
    "logger=wandb",
    f"+secret_token={CONFIG_SECRET}",
    "+run_note=note ${oc.env:MY_SERVICE_TOKEN}",  # a secret resolved into a plain key
]


def git(cwd, *args):
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def state_dict(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_a_run_reproduces_bit_for_bit_records_its_versions_and_saves_no_secret(
    tiny_run_dir, tmp_path
):
    # the run starts in a git checkout with an uncommitted change that holds a secret
    git(tmp_path, "init", "-q")
    (tmp_path / "notes.txt").write_text("first\n")
    git(tmp_path, "add", "notes.txt")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "notes.txt").write_text(f"first\ntoken {SECRETS['MY_SERVICE_TOKEN']}\n")
    env = {**script_env(), **SECRETS}  # W&B stays offline (WANDB_MODE), with a key set
    args = [*TINY, "test=false", "trainer.deterministic=true", *SECRET_ARGS]
    done = subprocess.run(
        train_script_argv(args), cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()

    # seeded and deterministic (train.yaml's seed 42, trainer.deterministic=true): the same
    # weights and metrics as the tiny_run_dir run, which had no W&B and no secrets
    ours, theirs = state_dict(run), state_dict(tiny_run_dir)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    csv_file = "csv/metrics.csv"
    assert (run / csv_file).read_text() == (tiny_run_dir / csv_file).read_text()

    # what reruns it: config and overrides (.hydra), versions, git commit and diff
    assert (run / ".hydra" / "config.yaml").is_file() and (
        run / ".hydra" / "overrides.yaml"
    ).is_file()
    versions = OmegaConf.load(run / "versions.yaml")
    packages = ("torch", "lightning", "torchmetrics", "albumentations", "hydra-core", "numpy")
    assert set(packages) | {"seglab"} <= set(versions.packages)
    assert versions.packages.torch == torch.__version__.split("+")[0]
    assert versions.git.commit == git(tmp_path, "rev-parse", "HEAD").strip()
    assert versions.git.dirty is True and versions.git.diff == "git.diff"
    assert "+token <redacted>" in (run / "git.diff").read_text()

    # no saved file, binary ones included (checkpoints, W&B's run file), holds a secret
    values = [*SECRETS.values(), CONFIG_SECRET]
    leaks = {
        (str(path.relative_to(run)), value)
        for path in run.rglob("*")
        if path.is_file()
        for value in values
        if value.encode() in path.read_bytes()
    }
    assert not leaks
    overrides = OmegaConf.load(run / ".hydra" / "overrides.yaml")
    assert "+secret_token=<redacted>" in overrides
    assert OmegaConf.load(run / "csv" / "hparams.yaml").secret_token == "<redacted>"


# --- bad samples met during training ----------------------------------------------------------


def corrupt_at_fit_start(monkeypatch, picks):
    """Once training starts (after the data check), damage the files ``picks(datamodule)``
    names: truncated, as a disk or a copy gone wrong leaves them."""

    def damage(module):
        for path in picks(module.trainer.datamodule):
            path.write_bytes(path.read_bytes()[:60])

    monkeypatch.setattr(SegmentationModule, "on_fit_start", damage)


def folder_run(tmp_path, *overrides):
    # 11 images: 8 train (2 whole batches: every one is read), 2 val, 1 test
    root = make_folder(tmp_path / "data", [f"{i:02d}" for i in range(11)], size=(32, 32))
    args = [*folder_overrides(root), *TINY_MODEL, *TINY_TRAINER, "logger=csv", "test=false"]
    return compose_train(tmp_path / "run", [*args, "trainer.max_epochs=1", *overrides])


def test_a_file_unreadable_mid_run_fails_naming_it(tmp_path, monkeypatch):
    corrupt_at_fit_start(monkeypatch, lambda dm: [dm.datasets["val"].samples[0][2]])
    with pytest.raises(ValueError, match=r"val sample 0: cannot read \S+/masks/\d+\.png .*skip"):
        run_task(folder_run(tmp_path))


def test_bad_samples_are_skipped_counted_and_listed_across_workers(tmp_path, monkeypatch, caplog):
    picked = []

    def picks(datamodule):
        train, val = datamodule.datasets["train"], datamodule.datasets["val"]
        # met first: the val mask (the sanity check), then the train image
        picked.extend([("val", val.source(0).mask), ("train", train.source(1).image)])
        return [val.samples[0][2], train.samples[1][1]]

    corrupt_at_fit_start(monkeypatch, picks)
    # read by DataLoader worker processes, which share nothing with this one
    run_task(folder_run(tmp_path, "data.on_bad_sample=skip", "data.num_workers=2"))
    listed = (tmp_path / "run" / FILENAME).read_text().splitlines()
    assert [tuple(line.split("\t")[:2]) for line in listed] == picked
    assert all("cannot read" in line for line in listed)
    warning = [r.getMessage() for r in caplog.records if "bad sample(s) were skipped" in r.message]
    assert len(warning) == 1 and warning[0].startswith("2 bad sample(s)"), warning


def test_non_finite_pixels_are_named_and_skipped_samples_replaced_by_the_next(tmp_path):
    image = np.ones((8, 8, 1), np.float32)
    samples = [
        {"image": image, "mask": np.zeros((8, 8), np.uint8)},
        {"image": image * np.nan, "mask": np.zeros((8, 8), np.uint8)},
        {"image": image * 0.5, "mask": np.ones((8, 8), np.uint8)},
    ]
    dataset = TransformedDataset(samples, build_pipeline([], [0.5], [0.25]), Rules(2), "train")
    with pytest.raises(BadSampleError, match=r"train sample 1: NaN or inf values"):
        dataset[1]
    record = tmp_path / FILENAME
    skipping = SkipBadSamples(dataset, record)
    assert torch.equal(skipping[1]["mask"], skipping[2]["mask"])  # the next good sample
    assert record.read_text() == "train\tsample 1\tNaN or inf values\n"
    with pytest.raises(ValueError, match="data.on_bad_sample='maybe' must be one of"):
        SegmentationDataModule(datasets={"train": samples, "val": samples}, on_bad_sample="maybe")
