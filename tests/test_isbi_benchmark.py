"""benchmarks/isbi.py: the step budget and k-fold cross-validation (the runs are faked)."""

from __future__ import annotations

import csv
import json

import pytest

from benchmarks import isbi
from seglab.data.folder import choose_stems
from tests.conftest import compose_train

STEMS = [f"{i:02d}" for i in range(30)]


def split_of(cfg, split: str) -> list[str]:
    options = {key: cfg.data.dataset[key] for key in ("val_fraction", "test_fraction", "seed")}
    options |= {key: cfg.data.dataset[key] for key in ("num_folds", "fold", "val_stems")}
    return choose_stems(STEMS, split, test_stems=cfg.data.dataset.test_stems, **options)


def test_a_step_budget_replaces_the_time_budget_and_schedule(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=isbi2012", *isbi.budget_overrides(10, 470)])
    assert cfg.trainer.max_steps == 470 and cfg.trainer.max_time is None
    assert cfg.scheduler._target_ == "seglab.schedules.StepSchedule"
    cfg = compose_train(tmp_path, ["experiment=isbi2012", *isbi.budget_overrides(2.5, None)])
    assert cfg.trainer.max_time == "00:00:02:30" and cfg.trainer.max_steps == -1


def test_the_folds_cover_all_30_slices_once_each(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=isbi2012", *isbi.fold_overrides(3, 5)])
    assert (cfg.data.dataset.num_folds, cfg.data.dataset.fold) == (5, 3)
    vals = []
    for fold in range(5):
        cfg.data.dataset.fold = fold  # one composition: the overrides differ in fold= alone
        val, train = split_of(cfg, "val"), split_of(cfg, "train")
        assert len(val) == 6 and sorted(val + train) == STEMS
        vals += val
    assert sorted(vals) == STEMS


def write_metrics(path, dice: list[float]) -> None:
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, ["epoch", "step", "train/loss", "val/dice/membrane"])
        writer.writeheader()
        for epoch, value in enumerate(dice):
            writer.writerow({"epoch": epoch, "step": 50 * epoch + 49, "train/loss": 0.5})
            writer.writerow({"epoch": epoch, "step": 50 * epoch + 49, "val/dice/membrane": value})


def test_folds_run_seglab_per_fold_and_report_mean_and_spread(tmp_path, monkeypatch):
    calls = []

    def fake_run_seglab(minutes, out, overrides, threads, steps=None):
        calls.append((out, overrides, steps))
        fold = int(out.name.removeprefix("fold"))
        write_metrics(out / "seglab" / "csv" / "metrics.csv", [0.7, 0.8 + fold / 100, 0.75])
        return {
            "name": "x",
            "seconds": 1.0,
            **isbi.validation_figures(out / "seglab/csv/metrics.csv"),
        }

    monkeypatch.setattr(isbi, "run_seglab", fake_run_seglab)
    argv = ["--folds", "3", "--steps", "470", "--out", str(tmp_path), "--", "optimizer.lr=2e-3"]
    isbi.main(argv)
    assert [out.name for out, _, _ in calls] == ["fold0", "fold1", "fold2"]
    assert all(
        steps == 470 and overrides[0] == "optimizer.lr=2e-3" for _, overrides, steps in calls
    )
    assert calls[2][1][1:] == isbi.fold_overrides(2, 3)
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [row["best_membrane_dice"] for row in rows[:3]] == pytest.approx([0.8, 0.81, 0.82])
    assert rows[0]["steps"] == 149 and rows[0]["final_membrane_dice"] == 0.75
    assert rows[3]["best_membrane_dice"] == pytest.approx(0.81)
    assert rows[3]["best_membrane_dice_std"] == pytest.approx(0.01)
    assert "0.8100 ± 0.0100" in isbi.table(rows, 10, "470 steps")


def test_folds_of_one_are_refused_with_the_fix(capsys):
    with pytest.raises(SystemExit):
        isbi.main(["--folds", "1"])
    assert "use --folds 2 or more" in capsys.readouterr().err


def test_alone_runs_seglab_at_the_time_budget_without_the_baseline(tmp_path, monkeypatch):
    calls = []

    def fake_run_seglab(minutes, out, overrides, threads, steps=None):
        calls.append((minutes, overrides, steps))
        write_metrics(out / "seglab" / "csv" / "metrics.csv", [0.7, 0.82])
        return {
            "name": "x",
            "seconds": 1.0,
            **isbi.validation_figures(out / "seglab/csv/metrics.csv"),
        }

    def no_baseline(*args):
        raise AssertionError("--alone ran the baseline")

    monkeypatch.setattr(isbi, "run_seglab", fake_run_seglab)
    monkeypatch.setattr(isbi, "run_baseline", no_baseline)
    isbi.main(["--alone", "--minutes", "3", "--out", str(tmp_path), "--", "data.batch_size=8"])
    assert calls == [(3.0, ["data.batch_size=8"], None)]
    rows = json.loads((tmp_path / "results.json").read_text())
    assert rows[0]["best_membrane_dice"] == pytest.approx(0.82)
