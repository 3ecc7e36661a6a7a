"""benchmarks/soak.py (issue 13, item 7): the kill plan and the table, without training; the soak
itself (``--runs 2``, a few minutes) runs only with ``SEGLAB_SOAK=1``, outside the default suite."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from benchmarks.soak import (
    STEPS_PER_EPOCH,
    Attempt,
    RunResult,
    describe,
    draw_kill,
    is_mid_epoch,
    summary,
    table,
)

from .conftest import REPO_ROOT, train_script_env


def test_kills_are_seeded_and_land_where_the_process_still_goes():
    epochs = 3
    total = epochs * STEPS_PER_EPOCH
    for start in (0, 7, total):
        rng = random.Random(f"0:{start}")
        kills = [draw_kill(rng, start, epochs) for _ in range(200)]
        again = random.Random(f"0:{start}")  # the same seed, the same plan
        assert kills == [draw_kill(again, start, epochs) for _ in range(200)]
        for kill in kills:
            name, at, number = kill.split(":")
            assert name in ("SIGTERM", "SIGKILL")
            if at == "step":  # a later step of this run
                assert start < int(number) <= total
            else:  # a save it is sure to make: one last.ckpt per epoch left
                assert 1 <= int(number) <= max(1, epochs - start // STEPS_PER_EPOCH)
        if start < total:
            assert {k.split(":")[1] for k in kills} == {"step", "save"}


def test_the_table_counts_kills_resumes_and_where_the_runs_resumed():
    boundary = RunResult(0, "seed 1, 3 epochs", identical=True, equal_metrics=True)
    boundary.attempts = [
        Attempt("fresh", "SIGKILL:save:2", "SIGKILL at save 2 (last.ckpt, ...)", -9),
        Attempt("last.ckpt@6", None),
    ]
    mid = RunResult(1, "seed 2, 4 epochs", lost=["last.ckpt: damaged"])
    mid.attempts = [
        Attempt("fresh", "SIGTERM:step:3", "SIGTERM at step 3", 143),
        Attempt("restart", "SIGTERM:step:9", "SIGTERM at step 9", 143),
        Attempt("interrupted.ckpt@9", "SIGTERM:step:24", "SIGTERM at step 24", 0),
    ]
    figures = summary([boundary, mid])
    assert figures["kills"] == 4 and (figures["sigterm"], figures["sigkill"]) == (3, 1)
    assert figures["kills_in_saves"] == 1 and figures["no_effect"] == 1
    assert (figures["resumes"], figures["restarts"]) == (2, 1)
    assert (figures["boundary_runs"], figures["boundary_identical"]) == (1, 1)
    assert (figures["mid_epoch_runs"], figures["mid_epoch_identical"]) == (1, 0)
    assert figures["checkpoints_lost"] == 1
    assert describe(mid).endswith(
        "interrupted.ckpt@9, SIGTERM at step 24 (no effect: the fit had ended)"
    )
    shown = table([boundary, mid], 90.0)
    assert "| 2 | 4 (3 / 1) | 1 | 2 | 1 | 1 | 1 | 1 | 0 |" in shown
    assert "Identical: 1 of 1 runs resumed only at epoch boundaries (or restarted), 0 of 1" in shown
    assert "run 1: last.ckpt: damaged" in shown
    assert not is_mid_epoch("last.ckpt@7") and not is_mid_epoch("interrupted.ckpt@12")
    assert is_mid_epoch("interrupted.ckpt@7") and is_mid_epoch("epoch_001-dice_0.5000.ckpt@12")


@pytest.mark.skipif(not os.environ.get("SEGLAB_SOAK"), reason="minutes long: set SEGLAB_SOAK=1")
def test_two_soak_runs_end_as_their_twins(tmp_path):
    report = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "soak.py"), "--runs", "2"]
        + ["--out", str(tmp_path / "out"), "--json", str(report)],
        env=train_script_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| runs | kills (SIGTERM / SIGKILL) |" in done.stdout
