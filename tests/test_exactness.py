"""Issue 13, item 4: a seeded, deterministic run stopped by SIGTERM and resumed with ``resume=``
ends bit-identical to the uninterrupted one (``tiny_run_dir``, the same config), whether it
continues from the epoch boundary (``last.ckpt``) or from the middle of an epoch
(``interrupted.ckpt``, where it trains on exactly the remaining samples of that epoch). The
stopped run uses a DataLoader worker (persistent) and the uninterrupted one none: the data is a
function of the seed, the epoch and the sample index alone."""

from __future__ import annotations

import ast
import shutil
import signal

import pytest
import torch

from seglab.data.resumable import EpochSampler, SampleKey

from .conftest import TINY, run_train_script
from .helpers.exactness import RECORD, read_indices, stop_after
from .helpers.runs import metric_rows

ARGS = [*TINY, "logger=csv", "test=false", "trainer.deterministic=true"]  # tiny_run_dir's
SAMPLES, STEPS_PER_EPOCH = 16, 4


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_run(run_dir, reference):
    ours, theirs = weights(run_dir), weights(reference)
    assert ours.keys() == theirs.keys()
    assert [key for key in ours if not torch.equal(ours[key], theirs[key])] == []
    metrics = [{k: v for k, v in row.items() if v} for row in metric_rows(run_dir)]
    assert metrics == [{k: v for k, v in row.items() if v} for row in metric_rows(reference)]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """tiny_run_dir's run with one worker, stopped by SIGTERM after step 5 (it stops after step
    6, the 2nd of epoch 1's 4 batches) and resumed from ``interrupted.ckpt`` (mid-epoch); and
    the stopped run again, from ``last.ckpt`` (the end of epoch 0). (A copy resumes in the
    stopped run's own folder: checkpoint callbacks keep their state only in their own folder.)"""
    cwd = tmp_path_factory.mktemp("exactness")
    run, mid_epoch, saved = cwd / "run", cwd / "mid_epoch", cwd / "saved"
    args = [*ARGS, "data.num_workers=1", *RECORD, *stop_after(5), f"hydra.run.dir={run}"]
    stopped = run_train_script(args, cwd)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-4000:]
    shutil.copytree(run, saved)
    run_train_script([f"resume={run}"], cwd, check=True)
    run.rename(mid_epoch)
    saved.rename(run)
    last = run / "checkpoints" / "last.ckpt"
    again = [f"resume={run}", f"ckpt_path={last}", "callbacks.signal_after=null"]  # step 5
    run_train_script(again, cwd, check=True)
    return mid_epoch, run


def epoch_rows(run_dir, epoch):
    return [
        (step, indices)
        for _, e, step, indices in read_indices(run_dir / "indices.txt")
        if e == epoch
    ]


@pytest.mark.slow
def test_resumed_mid_epoch_it_trains_on_the_rest_of_the_epoch_and_ends_bit_identical(
    resumed, tiny_run_dir
):
    mid_epoch, _ = resumed
    rows = epoch_rows(mid_epoch, 1)
    # steps 5-6 before the signal, 7-8 after the resume: each step once, each sample once
    assert [step for step, _ in rows] == [5, 6, 7, 8]
    seen = [index for _, indices in rows for index in indices]
    assert sorted(seen) == list(range(SAMPLES))
    # in the order of epoch 1 of the uninterrupted run (its sampler: seed 42, epoch 1)
    sampler = EpochSampler(range(SAMPLES), seed=42)
    sampler.set_epoch(1)
    assert seen == [key.index for key in sampler]
    assert_same_run(mid_epoch, tiny_run_dir)


@pytest.mark.slow
def test_resumed_at_an_epoch_boundary_it_ends_bit_identical(resumed, tiny_run_dir):
    mid_epoch, boundary = resumed
    # after the stopped part (steps 5-6), the resumed run trains epoch 1 from its first batch
    rows = epoch_rows(boundary, 1)
    assert [step for step, _ in rows] == [5, 6, 5, 6, 7, 8]
    assert rows[2:] == epoch_rows(mid_epoch, 1)
    assert_same_run(boundary, tiny_run_dir)


def test_an_epoch_sampler_is_a_function_of_seed_epoch_and_rank_and_starts_anywhere():
    def keys(epoch, rank=0, world=1, start=0):
        sampler = EpochSampler(range(10), num_replicas=world, rank=rank, seed=3)
        sampler.set_epoch(epoch)
        sampler.start = start
        return list(sampler)

    assert keys(1) == keys(1) and keys(1) != keys(2)
    assert all(key.epoch == 2 for key in keys(2))
    assert keys(1, start=4) == keys(1)[4:]
    shares = [keys(1, rank, world=2) for rank in (0, 1)]
    assert sorted(k.index for share in shares for k in share) == list(range(10))
    assert SampleKey.of(7) == SampleKey(7, 0)


@pytest.mark.slow
def test_a_signal_at_the_last_batch_of_an_epoch_stops_after_its_validation(tmp_path, tiny_run_dir):
    """Step 4 ends epoch 0; its validation (2 batches) follows. Stopped in the middle of that
    validation, the run would resume without it (no val/dice for EarlyStopping at the epoch's
    end: the soak's failure); it stops once the validation and the epoch have ended instead."""
    run = tmp_path / "run"
    stopped = run_train_script(
        [*ARGS, *stop_after(STEPS_PER_EPOCH), f"hydra.run.dir={run}"], tmp_path
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-4000:]
    assert "SIGTERM: stopping at epoch 1, step 4" in stopped.stdout + stopped.stderr
    assert [row["epoch"] for row in metric_rows(run) if row.get("val/dice")] == ["0"]
    run_train_script([f"resume={run}"], tmp_path, check=True)
    assert_same_run(run, tiny_run_dir)


def final_metrics(run_dir) -> dict:
    """The metrics of the last "Final metrics: {...}" line of a run's train.log."""
    line = [x for x in (run_dir / "train.log").read_text().splitlines() if "Final metrics" in x][-1]
    return ast.literal_eval(line.split("Final metrics: ", 1)[1])


@pytest.mark.slow
def test_stopped_after_its_last_epoch_the_resumed_run_reports_the_best_score(
    tmp_path, tiny_run_dir
):
    """Step 8 is the fit's last: the run stops after the final epoch (before the test), and the
    resumed fit has nothing left to train, so it runs no validation; its result is still the
    best validation Dice, restored from the checkpoint (a sweep optimises it)."""
    run = tmp_path / "run"
    stopped = run_train_script(
        [*ARGS, *stop_after(2 * STEPS_PER_EPOCH), f"hydra.run.dir={run}"], tmp_path
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-4000:]
    run_train_script([f"resume={run}"], tmp_path, check=True)
    assert_same_run(run, tiny_run_dir)
    best = final_metrics(tiny_run_dir)["val/dice_best"]
    assert final_metrics(run)["val/dice_best"] == best
